"""Issue 10: validation never passes what it did not check; golden sets and values are checked.

Each test reproduces one way a wrong model, a bad value or a corrupt golden set used to get
through (a skipped case counted as a pass, a NaN tolerance, a pass mutating its input...).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper

from graphkit.check.compare import compare_array
from graphkit.check.golden import load_golden, make_or_load_golden
from graphkit.check.golden_integrity import with_digests
from graphkit.check.golden_validation import validate_against_golden
from graphkit.check.region import check_region
from graphkit.ir.model_io import clone, save_model
from graphkit.pipeline.demo_model import demo_model
from graphkit.pipeline.spec import parse_pipeline
from graphkit.runtime.feeds import load_npz, resolve_shape
from graphkit.transform.instruments import Honesty
from graphkit.transform.manager import PassManager
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.util.errors import FieldValueError, GoldenError, InputError, PassError, PipelineSpecError, SpecError
from graphkit.util.tolerance import Tolerance, Tolerances

HOSTILE_PASSES = textwrap.dedent(
    '''
    """Passes that misbehave the way issue 10 describes."""
    import os
    import sys
    import time

    import numpy as np
    from onnx import helper, numpy_helper

    from graphkit.ir.model_io import clone
    from graphkit.transform.pass_base import Pass, PassResult
    from graphkit.transform.registry import register


    @register("bake-reshape")
    class BakeReshape(Pass):
        """Replace the Reshape target with a constant [1, 2048]: right at batch 1, wrong at 2."""

        def run(self, model):
            out = clone(model)
            out.graph.initializer.append(numpy_helper.from_array(np.array([1, 2048], np.int64), "baked"))
            for node in out.graph.node:
                if node.op_type == "Reshape":
                    node.input[1] = "baked"
            return PassResult(out, True)


    @register("unknown-op")
    class UnknownOp(Pass):
        """Turn Relu into an op of a custom domain that onnxruntime cannot run."""

        def run(self, model):
            out = clone(model)
            for node in out.graph.node:
                if node.op_type == "Relu":
                    node.op_type, node.domain = "Mystery", "com.example"
            out.opset_import.append(helper.make_opsetid("com.example", 1))
            return PassResult(out, True)


    @register("calls-exit")
    class CallsExit(Pass):
        """Calls sys.exit(0) in the middle of the run."""

        def run(self, model):
            sys.exit(0)


    @register("raises-interrupt")
    class RaisesInterrupt(Pass):
        """Raises KeyboardInterrupt itself (nobody pressed Ctrl-C)."""

        def run(self, model):
            raise KeyboardInterrupt


    @register("waits")
    class Waits(Pass):
        """Writes a marker file, then waits for a real Ctrl-C (swallowed when SWALLOW is set)."""

        def run(self, model):
            open(os.environ["MARKER"], "w").close()
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    time.sleep(0.05)
                except KeyboardInterrupt:
                    if not os.environ.get("SWALLOW"):
                        raise
                    break  # swallows the Ctrl-C and returns as if nothing happened
            return PassResult(model, False)


    @register("mutates-input")
    class MutatesInput(Pass):
        """Renames a node of its input model in place and says it changed nothing."""

        def run(self, model):
            model.graph.node[0].name = "mutated"
            return PassResult(model, False)
    '''
)


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile_passes")
    (folder / "hostile.py").write_text(HOSTILE_PASSES)
    return folder


def write_pipeline(tmp_path: Path, hostile_dir: Path, passes: str, extra: str = "") -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: t\nsource: {{builtin: demo}}\npass_dirs: [{hostile_dir}]\n"
        f"golden: {{dir: {tmp_path / 'golden'}, batch_sizes: [1, 2]}}\n"
        f"output: {{dir: {tmp_path / 'run'}}}\npasses: {passes}\n{extra}"
    )
    return path


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert lines and lines[-1].startswith("graphkit: error: "), result.stderr
    return lines[-1]


# --- §1: a case that cannot run fails the pass and the final check ---------------------------


@pytest.mark.parametrize("mode", ["full", "region"])
@pytest.mark.parametrize("each", [None, "[1]"])
def test_baked_reshape_is_rejected_not_validated_on_b1(tmp_path, hostile_dir, cli, mode, each):
    extra = f"validate: {{mode: {mode}" + (f", each_batch_sizes: {each}" if each else "") + "}\n"
    result = cli("apply", write_pipeline(tmp_path, hostile_dir, "[bake-reshape]", extra))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "OK" not in result.stdout.splitlines()[0]
    assert "b2" in result.stderr and "requested shape:{1,2048}" in result.stderr
    assert not (tmp_path / "run" / "model.onnx").exists()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["status"] == "failed"


def test_region_check_fails_when_only_the_rewritten_region_cannot_run():
    before = demo_model()
    after = clone(before)
    after.graph.initializer.append(numpy_helper.from_array(np.array([1, 2048], np.int64), "baked"))
    for node in after.graph.node:
        if node.op_type == "Reshape":
            node.input[1] = "baked"
    check = check_region(before, after, [("b1", {"x": (1, 3, 16, 16)}), ("b2", {"x": (2, 3, 16, 16)})], Tolerance())
    assert [comparison.passed for _, comparison in check.cases] == [True, False]
    assert "failed to run where the original runs" in check.first_failure()


def reseal_golden(folder: Path) -> None:
    """Record fresh digests for a golden folder edited on purpose (a set recorded that way)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(with_digests(manifest, folder)))


def test_validate_with_a_wrong_dtype_golden_input_fails(tmp_path, cli):
    model_path = save_model(demo_model(), tmp_path / "m.onnx")
    make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1, 2])
    with np.load(tmp_path / "g" / "b1.inputs.npz") as data:
        inputs = {k: data[k].astype(np.float64) for k in data.files}
    np.savez(tmp_path / "g" / "b1.inputs.npz", **inputs)
    tampered = cli("validate", model_path, "--golden", tmp_path / "g")  # edited after recording: not trusted
    assert tampered.returncode == 2 and "b1.inputs.npz: does not match the digest in its manifest" in tampered.stderr
    reseal_golden(tmp_path / "g")  # as if it had been recorded with float64 inputs
    result = cli("validate", model_path, "--golden", tmp_path / "g")
    assert result.returncode == 1, result.stdout
    assert "PASSED" not in result.stdout
    assert "FAILED: case b1: does not fit the model: input 'x' is float32 in the model, float64" in result.stdout


def test_a_model_onnxruntime_cannot_load_fails_every_case(tmp_path):
    golden, _ = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1, 2])
    broken = clone(demo_model())
    broken.graph.node[1].op_type, broken.graph.node[1].domain = "Mystery", "com.example"
    broken.opset_import.add(domain="com.example", version=1)
    result = validate_against_golden(broken, golden)
    assert not result.passed and all("onnxruntime cannot load the model" in c.error for c in result.cases)
    assert "Mystery" in result.first_failure()


def test_missing_and_unexpected_outputs_fail():
    tol = Tolerances()
    from graphkit.check.compare import compare_outputs

    value = np.ones(3, np.float32)
    assert not compare_outputs({}, {"y": value}, tol).passed
    assert not compare_outputs({"y": value, "extra": value}, {"y": value}, tol).passed
    assert not compare_outputs({}, {}, tol).passed  # comparing nothing proves nothing
    assert compare_outputs({"y": value}, {"y": value}, tol).passed


def test_unknown_op_from_a_user_pass_is_rolled_back_with_the_reason(tmp_path, hostile_dir, cli):
    result = cli("apply", write_pipeline(tmp_path, hostile_dir, "[unknown-op]"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "onnxruntime cannot load the model" in result.stderr and "Mystery" in result.stderr
    record = json.loads((tmp_path / "run" / "report.json").read_text())["passes"][0]
    assert record["status"] == "failed" and not (tmp_path / "run" / "model.onnx").exists()


# --- non-finite values, compared as Polygraphy does -----------------------------------------

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("expected", "actual", "passes"),
    [
        ([INF], [INF], True),
        ([-INF], [-INF], True),
        ([INF], [-INF], False),
        ([INF], [1.0], False),
        ([INF], [NAN], False),
        ([NAN], [NAN], True),
        ([NAN], [1.0], False),
        ([NAN], [INF], False),
        ([1.0], [NAN], False),
        ([1.0], [INF], False),
        ([NAN, 1.0], [1.0, NAN], False),  # NaN at other positions
    ],
)
def test_non_finite_values_must_meet_the_same_value(expected, actual, passes):
    huge = Tolerance(atol=1e30, rtol=1e30)  # no tolerance turns a NaN/inf mismatch into a pass
    result = compare_array("y", np.float32(actual), np.float32(expected), huge)
    assert result.passed is passes
    if not passes:
        assert result.nonfinite_mismatches >= 1 and result.mismatch_fraction > 0
        assert "no tolerance passes" in result.describe()


def test_matching_non_finite_values_report_finite_figures():
    want = np.array([NAN, INF, -INF, 1.0], np.float32)
    got = np.array([NAN, INF, -INF, 1.0 + 1e-6], np.float32)
    result = compare_array("y", got, want, Tolerance(atol=1e-5, rtol=0))
    assert result.passed and result.max_abs == pytest.approx(1e-6, rel=0.1) and math.isfinite(result.needed_atol)


def test_an_all_nan_candidate_never_prints_max_abs_inf_passed():
    want = np.zeros((2, 3), np.float32)
    result = compare_array("y", np.full_like(want, NAN), want, Tolerance(atol=1e6, rtol=1e6))
    assert not result.passed and result.mismatch_fraction == 1.0
    assert result.describe().startswith("y: MISMATCH")


def test_float64_overflow_of_the_difference_is_a_mismatch():
    want, got = np.array([-1e308]), np.array([1e308])
    result = compare_array("y", got, want, Tolerance(atol=1e300, rtol=1e300))
    assert not result.passed


def test_empty_outputs_and_exact_booleans():
    empty = np.zeros((0, 4), np.float32)
    assert compare_array("y", empty, empty, Tolerance()).passed
    flags = np.array([True, False])
    assert not compare_array("y", ~flags, flags, Tolerance(atol=5, rtol=5)).passed
    assert not compare_array("y", np.float16([1]), np.float32([1]), Tolerance()).passed  # dtype, not only kind


# --- tolerances are finite and >= 0 wherever they enter -------------------------------------


@pytest.mark.parametrize("value", [NAN, INF, -INF, -1e-9, "1e-5x", True, None])
def test_tolerance_constructor_rejects_bad_values(value):
    with pytest.raises(FieldValueError, match="atol: must be a finite number >= 0"):
        Tolerance(atol=value)
    with pytest.raises(FieldValueError, match="rtol"):
        Tolerance(1e-3, value)  # positional (atol, rtol), as a pass's ``tolerance`` is written


def test_passes_and_comparisons_share_one_tolerance_type():
    from graphkit.transform import pass_base

    assert pass_base.Tolerance is Tolerance
    from graphkit.transform.registry import all_passes

    loose = [cls.tolerance for cls in all_passes().values() if cls.tolerance is not None]
    assert loose and all(isinstance(t, Tolerance) for t in loose)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("golden.tolerance.atol=.nan", "golden.tolerance.atol"),
        ("golden.tolerance.rtol=-1", "golden.tolerance.rtol"),
        ("golden.tolerance.atol=1e999", "golden.tolerance.atol"),
        ("golden.outputs={prob: {atol: .inf}}", "golden.outputs.prob.atol"),
        ("golden.outputs={prob: {min_argmax_agreement: .nan}}", "golden.outputs.prob.min_argmax_agreement"),
    ],
)
def test_pipeline_tolerances_are_checked_with_the_key_named(override, key):
    with pytest.raises(PipelineSpecError, match=f"p.yaml: {key}: must be"):
        parse_pipeline({"name": "t", "source": {"builtin": "demo"}}, "p.yaml", [override])


def test_cli_tolerance_flags_are_checked(tmp_path, cli):
    model_path = save_model(demo_model(), tmp_path / "m.onnx")
    make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1])
    for flags, expected in [
        (["--atol", "nan"], "--atol: must be a finite number >= 0, got nan"),
        (["--rtol", "-1"], "--rtol: must be a finite number >= 0"),
        (["--output-tol", "prob:inf:0"], "--output-tol prob:inf:0: atol must be a finite number >= 0"),
        (["--output-tol", "porb:1:1"], "no output of that name (did you mean: prob?)"),
    ]:
        result = cli("validate", model_path, "--golden", tmp_path / "g", *flags)
        assert result.returncode == 2 and expected in one_error_line(result), result.stderr
    located = cli("localize", model_path, model_path, "--rtol", "nan")
    assert located.returncode == 2 and "--rtol: must be a finite number >= 0" in one_error_line(located)
    made = cli("golden", "make", model_path, "-o", tmp_path / "g2", "--atol", "-0.5")
    assert made.returncode == 2 and "--atol: must be" in one_error_line(made)
    assert not (tmp_path / "g2").exists()


def test_a_nan_tolerance_in_a_manifest_is_refused_when_loaded(tmp_path):
    make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1])
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    manifest["tolerances"]["default"]["atol"] = NAN
    (tmp_path / "g" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SpecError, match="manifest.json: tolerances.default.atol: must be a finite number"):
        load_golden(tmp_path / "g")


def test_unknown_output_names_and_argmax_axis_out_of_range_are_errors(tmp_path):
    model = demo_model()
    with pytest.raises(SpecError, match="'mask', but the model has no output of that name"):
        make_or_load_golden(
            model, tmp_path / "g", batch_sizes=[1], tolerances=Tolerances(outputs={"mask": Tolerance()})
        )
    with pytest.raises(SpecError, match="argmax_axis 4 is out of range for output 'prob' of rank 4"):
        make_or_load_golden(
            model, tmp_path / "g", batch_sizes=[1], tolerances=Tolerances(outputs={"prob": Tolerance(argmax_axis=4)})
        )
    assert not (tmp_path / "g").exists()
    with pytest.raises(SpecError, match="default.argmax_axis 3 is out of range for output 'flat' of rank 2"):
        make_or_load_golden(model, tmp_path / "g", batch_sizes=[1], tolerances=Tolerances(Tolerance(argmax_axis=3)))


# --- golden sets with nothing in them ---------------------------------------------------------


def test_golden_sets_without_cases_or_outputs_are_invalid(tmp_path, cli):
    model = demo_model()
    with pytest.raises(GoldenError, match="at least one batch size"):
        make_or_load_golden(model, tmp_path / "g", batch_sizes=[])
    with pytest.raises(GoldenError, match="returned no outputs"):
        make_or_load_golden(model, tmp_path / "g", batch_sizes=[1], producer=lambda feeds: {})
    with pytest.raises(GoldenError, match="output 'prob' is <U1 data"):
        make_or_load_golden(model, tmp_path / "g", batch_sizes=[1], producer=lambda feeds: {"prob": np.array(["a"])})
    assert not (tmp_path / "g").exists()
    model_path = save_model(model, tmp_path / "m.onnx")
    for sizes in ["0", ",", "-2", "1,1"]:
        result = cli("golden", "make", model_path, "-o", tmp_path / "g", "--batch-sizes", sizes)
        assert result.returncode == 2 and "golden batch sizes" in one_error_line(result), (sizes, result.stderr)
    assert not (tmp_path / "g").exists()


# --- §1 last bullet and §3: honesty before the first pass; passes that exit -----------------


class MutatesInput(Pass):
    name = "mutates-input"

    def run(self, model):
        model.graph.node[0].name = "mutated"
        return PassResult(model, False)


class Noop(Pass):
    name = "noop"

    def run(self, model):
        return PassResult(model, False)


@pytest.mark.parametrize("on_failure", ["stop", "skip"])
def test_pass_one_mutating_its_input_is_caught_and_rolled_back(on_failure):
    model = demo_model()
    before = model.SerializeToString()
    run = PassManager([MutatesInput(), Noop()], [Honesty()], on_failure=on_failure).run(model)
    assert not run.ok if on_failure == "stop" else run.ok
    assert "edited its input model in place" in run.records[0].error and run.records[0].input_mutated
    assert [r.status for r in run.records] == (["failed"] if on_failure == "stop" else ["rolled-back", "unchanged"])
    # the pass ran on a copy: the caller's model and the result are the model before the pass, byte for byte
    assert model.SerializeToString() == before and run.model.SerializeToString() == before


@pytest.mark.parametrize(
    ("passes", "message"),
    [("[calls-exit]", "raised SystemExit: 0"), ("[raises-interrupt]", "raised KeyboardInterrupt")],
)
def test_a_pass_that_exits_is_a_reported_pass_failure(tmp_path, hostile_dir, cli, passes, message):
    result = cli("apply", write_pipeline(tmp_path, hostile_dir, passes))
    assert result.returncode == 1 and message in result.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["status"] == "failed" and report["passes"][0]["status"] == "failed"


def test_pass_contract_turns_base_exceptions_into_pass_errors():
    class Exits(Pass):
        name = "exits"

        def run(self, model):
            raise SystemExit(3)

    with pytest.raises(PassError, match="pass 'exits' raised SystemExit: 3"):
        Exits()(demo_model())


@pytest.mark.parametrize("statement", ["import sys; sys.exit(0)", "raise KeyboardInterrupt", "raise SystemExit(4)"])
def test_a_pass_file_that_exits_at_import_is_a_load_error(tmp_path, statement):
    from graphkit.transform.registry import load_pass_dir
    from graphkit.util.errors import PassLoadError

    (tmp_path / "exits.py").write_text(statement + "\n")
    with pytest.raises(PassLoadError, match="exits.py: cannot import pass file: (SystemExit|KeyboardInterrupt)"):
        load_pass_dir(tmp_path)


@pytest.mark.parametrize("swallow", [False, True])
def test_a_real_ctrl_c_during_a_pass_still_interrupts_the_run(tmp_path, hostile_dir, swallow):
    marker = tmp_path / "started"
    env = {**os.environ, "GRAPHKIT_NO_PROGRESS": "1", "MARKER": str(marker), "SWALLOW": "1" if swallow else ""}
    pipeline = write_pipeline(tmp_path, hostile_dir, "[waits]")
    process = subprocess.Popen(
        [sys.executable, "-m", "graphkit", "apply", str(pipeline)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for _ in range(1200):
            if marker.exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), process.communicate()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and not (tmp_path / "run" / "model.onnx").exists()


# --- §4: corrupt golden sets, escaping labels, unwritable folders ----------------------------


@pytest.fixture
def golden_dir(tmp_path) -> Path:
    make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1])
    return tmp_path / "g"


def npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ones(3))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("manifest.json", b"[]", "manifest must be a JSON object, got a list"),
        ("manifest.json", b"null", "manifest must be a JSON object, got null"),
        ("manifest.json", b'"text"', "manifest must be a JSON object, got a string"),
        ("manifest.json", b"\xff\xfe\x00{", "manifest is not UTF-8 text"),
        ("manifest.json", b"[" * 100000, "unreadable manifest"),
        ("b1.outputs.npz", b"PK\x03\x04trunc", "golden outputs is not a readable .npz file"),
        ("b1.inputs.npz", npy_bytes(), "golden inputs is an .npy file, not an .npz"),
    ],
)
def test_corrupt_golden_files_are_one_line_exit_2(golden_dir, cli, name, content, message):
    (golden_dir / name).write_bytes(content)
    result = cli("validate", save_model(demo_model(), golden_dir.parent / "m.onnx"), "--golden", golden_dir)
    assert result.returncode == 2 and message in one_error_line(result)


def test_truncated_golden_npz_is_refused(golden_dir):
    data = (golden_dir / "b1.outputs.npz").read_bytes()
    for size in (len(data) // 3, len(data) - 40):
        (golden_dir / "b1.outputs.npz").write_bytes(data[:size])
        with pytest.raises(GoldenError, match="b1.outputs.npz"):
            load_golden(golden_dir)


@pytest.mark.parametrize("key", ["model_hash", "seed", "cases", "output_names", "tolerances"])
def test_a_manifest_that_lacks_a_key_names_it(golden_dir, key):
    manifest = json.loads((golden_dir / "manifest.json").read_text())
    del manifest[key]
    (golden_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GoldenError, match=f"manifest lacks the key '{key}'"):
        load_golden(golden_dir)


@pytest.mark.parametrize("label", ["../other/b1", "/tmp/b1", "b1/../b1", "", "b1\nx"])
def test_case_labels_cannot_read_outside_the_golden_folder(golden_dir, label):
    outside = golden_dir.parent / "other"
    outside.mkdir()
    for kind in ("inputs", "outputs"):
        shutil.copy(golden_dir / f"b1.{kind}.npz", outside / f"b1.{kind}.npz")
    manifest = json.loads((golden_dir / "manifest.json").read_text())
    manifest["cases"][0]["label"] = label
    (golden_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GoldenError, match="is not a plain name"):
        load_golden(golden_dir)


def test_manifest_without_cases_is_invalid_when_loaded(golden_dir):
    manifest = json.loads((golden_dir / "manifest.json").read_text())
    manifest["cases"] = []
    (golden_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GoldenError, match="manifest has no cases"):
        load_golden(golden_dir)


def test_golden_dir_that_is_a_file_is_one_line(tmp_path, cli):
    model_path = save_model(demo_model(), tmp_path / "m.onnx")
    (tmp_path / "file").write_text("x")
    for command in (
        ["golden", "make", model_path, "-o", tmp_path / "file"],
        ["validate", model_path, "--golden", tmp_path / "file"],
    ):
        result = cli(*command)
        assert result.returncode == 2 and "a file, not a folder" in one_error_line(result)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"name: t\nsource: {{builtin: demo}}\ngolden: {{dir: {tmp_path / 'file'}}}\noutput: {{dir: {tmp_path / 'run'}}}\n"
    )
    result = cli("apply", pipeline)
    assert result.returncode == 2 and "a file, not a folder" in one_error_line(result)


def test_truncated_inputs_npz_for_localize_is_one_line(tmp_path, cli):
    model_path = save_model(demo_model(), tmp_path / "m.onnx")
    buffer = io.BytesIO()
    np.savez(buffer, x=np.ones((1, 3, 16, 16), np.float32))
    (tmp_path / "in.npz").write_bytes(buffer.getvalue()[:-60])
    result = cli("localize", model_path, model_path, "--inputs", tmp_path / "in.npz")
    assert result.returncode == 2 and "in.npz" in one_error_line(result)


def test_npz_reader_refuses_lying_sizes_and_pickles(tmp_path):
    import zipfile

    npy = io.BytesIO()
    np.save(npy, np.ones(4, np.float32))
    for claimed in (b"(9,)", b"(10**12,)".replace(b"10**12", b"999999999999")):
        lying = npy.getvalue().replace(b"(4,)", claimed)  # a header claiming more than the bytes hold
        with zipfile.ZipFile(tmp_path / "lie.npz", "w") as archive:
            archive.writestr("x.npy", lying)  # a valid CRC: only the size check can catch it
        with pytest.raises(InputError, match="lie.npz: member 'x.npy' declares .* float32 .* bytes"):
            load_npz(tmp_path / "lie.npz")
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="Python objects"):
        load_npz(tmp_path / "objects.npz")


def test_full_disk_during_golden_make_leaves_nothing_half_written(tmp_path):
    """RLIMIT_FSIZE makes writes fail (EFBIG) like a full disk, without root or a tmpfs."""
    model_path = save_model(demo_model(), tmp_path / "m.onnx")
    code = textwrap.dedent(
        """
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        from graphkit.cli.main import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "golden",
            "make",
            str(model_path),
            "-o",
            str(tmp_path / "out" / "g"),
            "--batch-sizes",
            "1,2",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "cannot write the golden set" in one_error_line(result)
    assert list((tmp_path / "out").iterdir()) == []  # no set, no staging folder, no partial file


# --- §4: bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "-1"], "golden seed: must be an integer >= 0"),
        (["--dim", "batch"], "--dim batch: expected NAME=SIZE"),
        (["--dim", "batch=abc"], "--dim batch=abc: expected NAME=SIZE"),
        (["--dim", "x:0=3"], "'x:0' is the batch axis"),
        (["--dim", "H=4"], "the model has no symbolic dim 'H'"),
        (["--batch-sizes", "100000000"], "the inputs of golden case b100000000 need 286.1 GiB"),
    ],
)
def test_bad_golden_values_are_one_line_exit_2(tmp_path, cli, args, message):
    model_path = save_model(demo_model(), tmp_path / "m.onnx")
    result = cli("golden", "make", model_path, "-o", tmp_path / "g", *args)
    assert result.returncode == 2 and message in one_error_line(result)
    assert not (tmp_path / "g").exists()


def test_dims_must_be_positive_never_symbolic():
    model = demo_model()
    value = model.graph.input[0]
    with pytest.raises(InputError, match="must be an integer >= 1, got 0"):
        resolve_shape(value, {"batch": 0})
    value.type.tensor_type.shape.dim[1].dim_value = -1
    with pytest.raises(InputError, match="axis 1 is declared with size -1; sizes must be >= 1"):
        resolve_shape(value, {"batch": 1})


def test_no_golden_case_fits_says_which_input_dim_and_value(tmp_path):
    golden, _ = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1, 2])
    static = clone(demo_model())
    static.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    message = validate_against_golden(static, golden).first_failure()
    assert message.startswith("no golden case runs on the model: case b1: does not fit the model: ")
    assert "input 'x' axis 0 is static 4 in the model, 1 in the golden case" in message
    assert "case b2: does not fit the model: input 'x' axis 0 is static 4 in the model, 2 in the golden case" in message
    assert "record the golden set with batch sizes the model accepts" in message


def test_golden_values_with_nan_and_inf_compare_by_position(tmp_path):
    """A golden set recorded from a model that makes NaN/inf accepts the same model, rejects others."""
    golden, _ = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1])
    outputs = golden.cases[0].outputs
    outputs["prob"][0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "g" / "b1.outputs.npz", **outputs)
    reseal_golden(tmp_path / "g")
    result = validate_against_golden(demo_model(), load_golden(tmp_path / "g"))
    assert not result.passed and "1 NaN/inf mismatch" in result.first_failure()


def test_regenerate_replaces_the_whole_set_and_unknown_each_cases_are_errors(tmp_path):
    from graphkit.check.instruments import EndToEndCheck

    make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1, 2])
    golden, reused = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[3], regenerate=True)
    assert not reused and sorted(p.name for p in (tmp_path / "g").iterdir()) == [
        "b3.inputs.npz",
        "b3.outputs.npz",
        "manifest.json",
    ]
    assert [c.label for c in load_golden(tmp_path / "g").cases] == ["b3"]
    assert [p.name for p in tmp_path.iterdir()] == ["g"]  # no staging folder left
    with pytest.raises(GoldenError, match="validate.each_batch_sizes: golden case\\(s\\) b1 .* \\(cases: b3\\)"):
        EndToEndCheck(golden, Tolerances(), labels=["b1"])
