"""graphkit apply end to end on the demo model with user passes, as a user runs it (CLI)."""

from __future__ import annotations

import json

import onnx
import pytest

from graphkit.ir.model_io import load_model, op_counts


def pipeline(tmp_path, user_pass_dir, passes, extra=""):
    text = f"""
name: t
source: {{builtin: demo}}
pass_dirs: [{user_pass_dir}]
golden: {{dir: {tmp_path / "golden"}, batch_sizes: [1, 2], tolerance: {{atol: 1.0e-6, rtol: 1.0e-5}}}}
output: {{dir: {tmp_path / "run"}}}
passes: {passes}
{extra}
"""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def report_of(tmp_path):
    return json.loads((tmp_path / "run" / "report.json").read_text())


def test_two_passes_applied_validated_and_written(tmp_path, user_pass_dir, cli):
    result = cli("apply", pipeline(tmp_path, user_pass_dir, "[drop-identity, relu-as-max]"))
    assert result.returncode == 0, result.stderr
    report = report_of(tmp_path)
    assert [p["status"] for p in report["passes"]] == ["applied", "applied"]
    for record in report["passes"]:
        cases = record["validation"]["cases"]
        assert [c["label"] for c in cases] == ["b1", "b2"]  # dynamic batch proven at two sizes
        assert all(o["passed"] and o["max_abs"] == 0.0 for c in cases for o in c["outputs"])
        assert record["times"]["validate"] > 0 and record["times"]["verify"] > 0
    assert report["passes"][0]["op_delta"] == {"Identity": [1, 0]}
    assert report["passes"][1]["op_delta"] == {"Max": [0, 1], "Relu": [1, 0]}
    model = load_model(tmp_path / "run" / "model.onnx")
    onnx.checker.check_model(model)
    assert op_counts(model)["Max"] == 1 and "Identity" not in op_counts(model)
    assert "drop-identity" in result.stdout and "relu-as-max" in result.stdout
    assert (tmp_path / "run" / "summary.txt").read_text() == result.stdout.rstrip("\n")
    assert report["weights"] == "random (seed 0)"


def test_wrong_pass_is_caught_rolled_back_and_reported(tmp_path, user_pass_dir, cli):
    result = cli("apply", pipeline(tmp_path, user_pass_dir, "[drop-identity, break-relu, relu-as-max]"))
    assert result.returncode == 1
    assert "break-relu" in result.stderr and "failed validation" in result.stderr
    report = report_of(tmp_path)
    assert report["status"] == "failed"
    statuses = [(p["name"], p["status"]) for p in report["passes"]]
    assert statuses == [("drop-identity", "applied"), ("break-relu", "failed")]
    failed = report["passes"][1]
    assert "case b1, prob: MISMATCH" in failed["error"] and "passes applied before it: drop-identity" in failed["error"]
    outputs = {o["name"]: o for o in failed["validation"]["cases"][0]["outputs"]}
    assert not outputs["prob"]["passed"] and outputs["prob"]["max_abs"] > 1e-3
    assert not (tmp_path / "run" / "model.onnx").exists()  # a failed model is never written
    # The reproducer holds the model as it was before the failed pass and fails the same way.
    repro = tmp_path / "run" / "repro-02-break-relu"
    assert "Identity" not in op_counts(load_model(repro / "input.onnx"))
    again = cli("apply", "pipeline.yaml", cwd=repro)  # the folder holds its passes and golden request
    assert again.returncode == 1 and "break-relu" in again.stderr


def test_skip_mode_rolls_back_and_continues(tmp_path, user_pass_dir, cli):
    path = pipeline(tmp_path, user_pass_dir, "[break-relu, relu-as-max]", "on_failure: skip")
    result = cli("apply", path)
    assert result.returncode == 0, result.stderr
    report = report_of(tmp_path)
    assert [p["status"] for p in report["passes"]] == ["rolled-back", "applied"]
    model = load_model(tmp_path / "run" / "model.onnx")
    assert "Mul" not in op_counts(model)  # break-relu's change is gone
    assert report["final"]["validation"]["passed"]


def test_dishonest_pass_is_caught(tmp_path, user_pass_dir, cli):
    result = cli("apply", pipeline(tmp_path, user_pass_dir, "[liar]"))
    assert result.returncode == 1
    assert "said it changed nothing, but the content hash says otherwise" in result.stderr


def test_golden_is_reused_and_never_silently_regenerated(tmp_path, user_pass_dir, cli):
    path = pipeline(tmp_path, user_pass_dir, "[drop-identity]")
    assert cli("apply", path).returncode == 0
    assert report_of(tmp_path)["golden"]["reused"] is False
    assert cli("apply", path).returncode == 0
    assert report_of(tmp_path)["golden"]["reused"] is True
    changed = cli("apply", path, "--set", "golden.seed=7")
    assert changed.returncode == 2
    assert "golden set was made for a different request (seed differ" in changed.stderr
    assert cli("apply", path, "--set", "golden.seed=7", "--regenerate-golden").returncode == 0


def test_input_override_and_unknown_input_file(tmp_path, user_pass_dir, cli):
    path = pipeline(tmp_path, user_pass_dir, "[drop-identity]")
    result = cli("apply", path, "--input", tmp_path / "nope.onnx")
    assert result.returncode == 2 and "nope.onnx: no such file" in result.stderr
    assert not (tmp_path / "run").exists()  # nothing written for a run that could not start


@pytest.mark.parametrize("flag", ["--help"])
def test_help_explains_every_flag(cli, flag):
    result = cli("apply", flag)
    assert result.returncode == 0
    for option in ("--input", "--output", "--overwrite", "--set", "--weights", "--passes-dir", "--localize", "--json"):
        assert option in result.stdout


def test_localize_names_the_first_divergent_tensor_of_a_failed_pass(tmp_path, user_pass_dir, cli):
    result = cli("apply", pipeline(tmp_path, user_pass_dir, "[drop-identity, break-relu]"), "--localize")
    assert result.returncode == 1
    failed = report_of(tmp_path)["passes"][1]
    first = failed["artifacts"]["localize"]["first_divergent"]
    # break-relu scales the Relu output: the Relu's output name now comes from the new Mul
    assert first["tensor"] == "relu" and first["op_type"] == "Mul"
    assert any(note.startswith("localize (case b1):") for note in failed["notes"])
    assert (tmp_path / "run" / "repro-02-break-relu" / "rejected.onnx").exists()


def test_each_changing_pass_gets_a_diff_file_and_summary_line(tmp_path, user_pass_dir, cli):
    assert cli("apply", pipeline(tmp_path, user_pass_dir, "[drop-identity, relu-as-max]")).returncode == 0
    report = report_of(tmp_path)
    diffs = sorted(p.name for p in (tmp_path / "run" / "diffs").iterdir())
    assert diffs == ["01-drop-identity.json", "02-relu-as-max.json"]
    first = json.loads((tmp_path / "run" / "diffs" / "01-drop-identity.json").read_text())
    deltas = {row["op"]: row["delta"] for row in first["op_counts"] if row["delta"]}
    assert deltas == {"Identity": -1}
    assert "Identity" in report["passes"][0]["diff_summary"]


def test_per_pass_checks_on_one_batch_and_final_on_all(tmp_path, user_pass_dir, cli):
    path = pipeline(tmp_path, user_pass_dir, "[drop-identity, relu-as-max]", "validate: {each_batch_sizes: [1]}")
    assert cli("apply", path).returncode == 0
    report = report_of(tmp_path)
    for record in report["passes"]:
        assert [c["label"] for c in record["validation"]["cases"]] == ["b1"]
    final_cases = report["final"]["validation"]["cases"]
    assert [c["label"] for c in final_cases] == ["b1", "b2"]
    assert all(o["passed"] for c in final_cases for o in c["outputs"])


# --- the run folder holds one run ---------------------------------------------------------------


def test_failed_rerun_leaves_no_stale_model_diffs_or_repro(tmp_path, user_pass_dir, cli):
    run = tmp_path / "run"
    good = tmp_path / "good.yaml"
    good.write_text(pipeline(tmp_path, user_pass_dir, "[drop-identity, relu-as-max]").read_text())
    assert cli("apply", good).returncode == 0
    assert (run / "model.onnx").exists() and any((run / "diffs").iterdir())
    bad = pipeline(tmp_path, user_pass_dir, "[break-relu]")
    failed = cli("apply", bad)  # the same pipeline name: a rerun, no flag needed
    assert failed.returncode == 1, failed.stderr
    assert not (run / "model.onnx").exists(), "the earlier run's model sits beside a failed report"
    assert not (run / "diffs").exists()
    assert report_of(tmp_path)["status"] == "failed"
    assert sorted(p.name for p in run.iterdir()) == [
        "pipeline.yaml",
        "report.json",
        "repro-01-break-relu",
        "summary.txt",
    ]
    again = cli("apply", good)  # and the repro folder of the failed run goes in turn
    assert again.returncode == 0, again.stderr
    assert not (run / "repro-01-break-relu").exists() and (run / "model.onnx").exists()


def test_foreign_or_other_pipeline_folder_needs_overwrite_and_user_files_are_kept(tmp_path, user_pass_dir, cli):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    path = pipeline(tmp_path, user_pass_dir, "[drop-identity]")
    refused = cli("apply", path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"graphkit: error: {run}: the run folder holds files graphkit did not write (notes.txt); choose an empty "
        "or new folder with --output, or pass --overwrite to replace graphkit's files there"
    )
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # refused before anything was written
    assert cli("apply", path, "--overwrite").returncode == 0
    assert (run / "notes.txt").read_text() == "mine" and (run / "model.onnx").exists()
    other = cli("apply", path, "--set", "name=other", "--set", f"output.dir={run}")
    assert other.returncode == 2 and "holds files graphkit did not write (notes.txt)" in other.stderr
    (run / "notes.txt").unlink()
    other = cli("apply", path, "--set", "name=other")
    assert other.returncode == 2 and "holds a run of pipeline 't', not of 'other'" in other.stderr
    assert cli("apply", path, "--set", "name=other", "--overwrite").returncode == 0
    assert report_of(tmp_path)["pipeline"] == "other"


def test_a_rerun_never_removes_its_own_input(tmp_path, user_pass_dir, cli):
    path = pipeline(tmp_path, user_pass_dir, "[drop-identity]")
    assert cli("apply", path).returncode == 0
    result = cli("apply", path, "--input", tmp_path / "run" / "model.onnx")
    assert result.returncode == 2
    assert "would replace model.onnx, which holds the pipeline's input" in result.stderr
    assert (tmp_path / "run" / "model.onnx").exists()


def test_unwritable_run_folder_and_cache_are_one_line(tmp_path, user_pass_dir, cli):
    (tmp_path / "file").write_text("x")
    path = pipeline(tmp_path, user_pass_dir, "[drop-identity]")
    under_file = cli("apply", path, "--output", tmp_path / "file" / "run")
    assert under_file.returncode == 2
    assert under_file.stderr.strip() == (
        f"graphkit: error: {tmp_path / 'file' / 'run'}: cannot create the run folder: {tmp_path / 'file'} is a file, "
        "not a folder"
    )  # checked before the golden set is recorded
    in_proc = cli("apply", path, "--output", "/proc/graphkit-run")
    assert in_proc.returncode == 2 and "Traceback" not in in_proc.stderr
    assert in_proc.stderr.strip().splitlines()[-1].startswith("graphkit: error: /proc/graphkit-run")
    cache = subprocess_env_cli(tmp_path / "file" / "cache")
    result = cache("apply", path, "--set", "golden.dir=null")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"graphkit: error: {tmp_path / 'file' / 'cache'}")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def subprocess_env_cli(cache):
    import os
    import subprocess
    import sys

    def run(*args):
        env = {**os.environ, "GRAPHKIT_NO_PROGRESS": "1", "GRAPHKIT_CACHE": str(cache)}
        command = [sys.executable, "-m", "graphkit", *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)

    return run


def test_weights_with_a_source_that_is_not_an_export_is_an_error(tmp_path, user_pass_dir, cli):
    path = pipeline(tmp_path, user_pass_dir, "[drop-identity]")
    result = cli("apply", path, "--weights", tmp_path / "w.pth")
    assert result.returncode == 2
    assert "--weights: the source of" in result.stderr and "is the built-in demo, not an export" in result.stderr
    assert not (tmp_path / "run").exists()


def test_bad_pass_option_is_exit_2_before_any_work(tmp_path, user_pass_dir, cli):
    path = pipeline(tmp_path, user_pass_dir, "[{fix-input-shape: {batch: 0}}]")
    result = cli("apply", path)
    assert result.returncode == 2, result.stderr
    assert "passes[0] (fix-input-shape).options: fix-input-shape option batch must be a positive integer" in (
        result.stderr
    )
    assert not (tmp_path / "run").exists() and not (tmp_path / "golden").exists()


def test_a_pipeline_file_kept_in_its_own_run_folder_is_never_removed(tmp_path):
    from graphkit.pipeline.run_folder import check_run_folder
    from graphkit.util.errors import OutputError

    run = tmp_path / "exp"
    run.mkdir()
    own = run / "pipeline.yaml"
    own.write_text("name: t\nsource: {builtin: demo}\noutput: {dir: exp}\n")
    with pytest.raises(OutputError, match="would replace pipeline.yaml, which holds the pipeline's input"):
        check_run_folder(run, "t", "model.onnx", inputs=(own,))
    assert own.exists()
    folder = check_run_folder(run, "t", "model.onnx", inputs=())  # an earlier run's record: replaced
    assert folder.stale == [own]


def test_inputs_and_temporaries_alone_do_not_make_a_folder_foreign(tmp_path):
    from graphkit.pipeline.run_folder import check_run_folder

    run = tmp_path / "exp"
    (run / "my_passes").mkdir(parents=True)
    (run / ".model.onnx.abc123.tmp").mkdir()  # a SIGKILLed run's temporary folder
    folder = check_run_folder(run, "t", "model.onnx", inputs=(run / "my_passes",))
    assert folder.stale == [run / ".model.onnx.abc123.tmp"] and folder.kept == [run / "my_passes"]
    folder.clear()
    assert sorted(p.name for p in run.iterdir()) == ["my_passes"]
