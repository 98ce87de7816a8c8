"""Bad eval input: numeric flags, damaged resume state, damaged run.json, a missing Ray.

Rules under test: a bad value is one ``graphkit: error:`` line and exit 2; a damaged
``state/NAME.npz`` is recomputed with a warning naming it (never counted, never a traceback);
a damaged ``run.json`` refuses the resume with one line (exit 2), since the state files' origin
can no longer be checked.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from graphkit.cli.main import main
from graphkit.wseg.eval.runner import run_eval
from graphkit.wseg.eval.spec import eval_spec_from_mapping
from graphkit.wseg.eval.voc import read_samples


def one_line_exit_2(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("graphkit: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("flags", "key"),
    [
        (["--fp-cut-score", "nan"], "fp_cut_score"),
        (["--fp-cut-score", "inf"], "fp_cut_score"),
        (["--fp-cut-score", "-0.1"], "fp_cut_score"),
        (["--fp-cut-score", "1.5"], "fp_cut_score"),
        (["--fp-cut-score", "1"], "fp_cut_score"),
        (["--bg-pow", "nan"], "bg_pow"),
        (["--bg-pow=-inf"], "bg_pow"),
        (["--bg-pow", "0"], "bg_pow"),
        (["--scales", "1", "nan"], "scales"),
        (["--scales", "inf"], "scales"),
        (["--scales", "0"], "scales"),
        (["--crf-iterations", "0"], "crf_iterations"),
        (["--crf-iterations", "100000000"], "crf_iterations"),
        (["--pad-size", "0", "64"], "pad_size"),
        (["--pad-size", "100000", "100000"], "pad_size"),
        (["--batch-size", "0"], "batch_size"),
        (["--batch-size", "100000000"], "pad_size"),
        (["--threads", "-1"], "threads"),
        (["--workers", "-2"], "workers"),
        (["--limit", "0"], "limit"),
        (["--overlays", "-1"], "overlays"),
        (["--executor", "ray", "--ray-num-cpus-per-worker", "nan"], "num_cpus_per_worker"),
        (["--executor", "ray", "--ray-num-gpus-per-worker", "-1"], "num_gpus_per_worker"),
        (["--executor", "ray", "--ray-workers", "0"], "workers"),
        (["--ray-address", "10.0.0.1:6379"], "--ray-address needs --executor ray"),
        (["--executor", "local", "--ray-num-cpus-per-worker", "2"], "--ray-num-cpus-per-worker needs --executor ray"),
    ],
)
def test_bad_numbers_are_one_line_exit_2_before_any_work(capsys, tmp_path, tiny_voc, classifier_model, flags, key):
    out = tmp_path / "out"
    err = one_line_exit_2(capsys, "eval", classifier_model, "--data-root", tiny_voc, "--out", out, *flags)
    assert key in err
    assert not out.exists()


def test_bad_numbers_in_a_spec_file_too(capsys, tmp_path, tiny_voc, classifier_model):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"eval:\n  data_root: {tiny_voc}\n  fp_cut_score: .nan\n  crf_bilateral_srgb: 13\n")
    err = one_line_exit_2(capsys, "eval", classifier_model, "--spec", spec, "--out", tmp_path / "o")
    assert "eval.fp_cut_score" in err
    spec.write_text(f"eval:\n  data_root: {tiny_voc}\n  crf_gaussian_sxy: -.inf\n")
    assert "crf_gaussian_sxy" in one_line_exit_2(capsys, "eval", classifier_model, "--spec", spec, "--out", tmp_path)


def spec_for(root, **overrides):
    return eval_spec_from_mapping(
        {"data_root": str(root), "pad_size": [64, 64], "workers": 0, "crf": False, **overrides}
    )


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_damaged_state_files_are_recomputed_with_a_warning(tiny_voc, classifier_model, tmp_path, capsys):
    names = [s.name for s in read_samples(tiny_voc)]
    clean = run_eval(spec_for(tiny_voc), classifier_model, tmp_path / "clean", progress=False)
    out = tmp_path / "run"
    shutil.copytree(tmp_path / "clean", out)
    state = out / "state"
    good = (state / f"{names[0]}.npz").read_bytes()
    conf = np.zeros((21, 21), np.int64)
    hw = np.array([24, 30])
    present = np.zeros(20, np.float32)
    damage = {
        names[0]: good[: len(good) // 2],  # truncated
        names[1]: b"\x00garbage" * 40,  # not a zip
        names[2]: _npz_bytes(conf=np.zeros((3, 3), np.int64), present=present, hw=hw),  # wrong shape
        names[3]: _npz_bytes(conf=conf - 1, present=present, hw=hw),  # negative counts
        names[4]: _npz_bytes(conf=conf + 10**6, present=present, hw=hw),  # more pixels than the image
    }
    for name, data in damage.items():
        (state / f"{name}.npz").write_bytes(data)
    capsys.readouterr()
    summary = run_eval(spec_for(tiny_voc), classifier_model, out, progress=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("graphkit: warning:")]
    assert len(warnings) == 5 and all("recomputing" in w for w in warnings)
    assert sorted(summary["images"]["recomputed_untrusted_state"]) == sorted(names)
    assert summary["images"]["computed_this_run"] == 5 and summary["images"]["resumed"] == 0
    assert summary["metrics"] == clean["metrics"]


def test_a_zeroed_or_copied_state_file_whose_counts_fit_is_recomputed(tiny_voc, classifier_model, tmp_path, capsys):
    """The attack: np.savez a zeroed confusion matrix (counts that fit the image) over a finished
    image, and copy another image's state over a third; a resumed run must not count either."""
    names = [s.name for s in read_samples(tiny_voc)][:3]
    clean = run_eval(spec_for(tiny_voc, limit=3), classifier_model, tmp_path / "clean", progress=False)
    out = tmp_path / "run"
    shutil.copytree(tmp_path / "clean", out)
    state = out / "state"
    with np.load(state / f"{names[0]}.npz") as data:
        arrays = {key: data[key] for key in data.files}
    arrays["conf"] = np.zeros_like(arrays["conf"])  # fits every check on counts and shapes
    np.savez(state / f"{names[0]}.npz", **arrays)  # the digest is kept, but no longer matches
    shutil.copyfile(state / f"{names[2]}.npz", state / f"{names[1]}.npz")  # another image's record
    capsys.readouterr()
    summary = run_eval(spec_for(tiny_voc, limit=3), classifier_model, out, progress=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("graphkit: warning:")]
    assert len(warnings) == 2 and all("does not match its digest" in w for w in warnings), warnings
    assert sorted(summary["images"]["recomputed_untrusted_state"]) == sorted(names[:2])
    assert summary["images"]["computed_this_run"] == 2 and summary["images"]["resumed"] == 1
    assert summary["metrics"] == clean["metrics"]


def test_other_damage_kinds_are_recomputed(tiny_voc, classifier_model, tmp_path, capsys):
    names = [s.name for s in read_samples(tiny_voc)][:3]
    clean = run_eval(spec_for(tiny_voc, limit=3), classifier_model, tmp_path / "clean", progress=False)
    out = tmp_path / "run"
    shutil.copytree(tmp_path / "clean", out)
    state = out / "state"
    np.save(state / "x.npy", np.zeros(3))
    (state / "x.npy").rename(state / f"{names[0]}.npz")  # an npy where an npz belongs
    objects = np.empty(1, dtype=object)
    objects[0] = {"a": 1}
    (state / f"{names[1]}.npz").write_bytes(
        _npz_bytes(conf=objects, present=np.zeros(20), hw=np.array([1, 1]))
    )  # a pickle: never loaded
    (state / f"{names[2]}.npz").unlink()
    (state / f"{names[2]}.npz").mkdir()  # a folder in its place
    summary = run_eval(spec_for(tiny_voc, limit=3), classifier_model, out, progress=False)
    assert sorted(summary["images"]["recomputed_untrusted_state"]) == sorted(names)
    assert summary["metrics"] == clean["metrics"]
    # a state file made without the CRF is not trusted by a run with the CRF (and vice versa)
    with_crf = run_eval(spec_for(tiny_voc, limit=1, crf=True, resume=False), classifier_model, out, progress=False)
    assert with_crf["images"]["computed_this_run"] == 1


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00not utf-8",
        b"{truncated",
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b'{"no": "settings"}',
        b"[" * 100000,
    ],
)
def test_damaged_run_json_refuses_the_resume_with_one_line(capsys, tiny_voc, classifier_model, tmp_path, content):
    out = tmp_path / "run"
    args = ["eval", classifier_model, "--data-root", tiny_voc, "--out", out, "--pad-size", "64", "64"]
    assert main([str(a) for a in [*args, "--limit", "1", "--no-crf", "--workers", "0"]]) == 0
    (out / "run.json").write_bytes(content)
    capsys.readouterr()
    err = one_line_exit_2(capsys, *args, "--no-crf", "--workers", "0")
    assert "run.json" in err and "--no-resume" in err
    assert main([str(a) for a in [*args, "--no-crf", "--workers", "0", "--no-resume", "--json"]]) == 0
    assert json.loads((out / "run.json").read_text())["settings"]["crf"] is False


RUN_WITHOUT_RAY = """
import sys
sys.modules["ray"] = None  # as if ray were not installed
from graphkit.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_eval_on_ray_without_ray_installed_is_one_line(tiny_voc, classifier_model, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_RAY, "eval", str(classifier_model), "--data-root", str(tiny_voc)]
        + ["--out", str(tmp_path / "o"), "--pad-size", "64", "64", "--executor", "ray"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr
        == "graphkit: error: the Ray executor needs the ray package: pip install 'graphkit-onnx[ray]' "
        + ("(or use --executor local)\n")
    )


@pytest.mark.parametrize("what", ["run.json is a folder", "state is a file", "state is a link"])
def test_resume_records_of_the_wrong_kind_are_one_line(capsys, tiny_voc, classifier_model, tmp_path, what):
    out = tmp_path / "run"
    args = ["eval", classifier_model, "--data-root", tiny_voc, "--out", out, "--pad-size", "64", "64", "--no-crf"]
    assert main([str(a) for a in [*args, "--limit", "1", "--workers", "0"]]) == 0
    capsys.readouterr()
    if what == "run.json is a folder":
        (out / "run.json").unlink()
        (out / "run.json").mkdir()
    elif what == "state is a file":
        shutil.rmtree(out / "state")
        (out / "state").write_text("x")
    else:
        shutil.rmtree(out / "state")
        (tmp_path / "elsewhere").mkdir()
        (out / "state").symlink_to(tmp_path / "elsewhere")
    for extra in ([], ["--no-resume"]):
        err = one_line_exit_2(capsys, *args, "--workers", "0", *extra)
        assert "remove it or use another --out" in err
    if what == "state is a link":
        assert not list((tmp_path / "elsewhere").iterdir())  # nothing written through the link


def test_an_image_list_that_is_not_utf8_is_one_line(capsys, tiny_voc, classifier_model, tmp_path):
    """Found by the fuzz harness: a binary list file raised UnicodeDecodeError."""
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xff\xfe\x00 2007_000032\n")
    err = one_line_exit_2(
        capsys, "eval", classifier_model, "--data-root", tiny_voc, "--list", listing, "--out", tmp_path / "o"
    )
    assert str(listing) in err and "not UTF-8" in err
