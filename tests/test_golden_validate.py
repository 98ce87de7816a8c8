"""Golden sets and validation: figures, tolerances, reuse, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graphkit.check.compare import compare_array
from graphkit.check.golden import load_golden, make_or_load_golden
from graphkit.check.golden_validation import validate_against_golden
from graphkit.ir.model_io import clone, save_model
from graphkit.pipeline.demo_model import demo_model
from graphkit.util.errors import GoldenError
from graphkit.util.tolerance import Tolerance, Tolerances


def test_compare_reports_figures_and_needed_tolerances():
    want = np.array([1.0, 2.0, 0.0, -4.0], dtype=np.float32)
    got = np.array([1.0, 2.1, 0.01, -4.0], dtype=np.float32)
    result = compare_array("y", got, want, Tolerance(atol=1e-3, rtol=1e-3))
    assert not result.passed
    assert result.max_abs == pytest.approx(0.1, rel=1e-5)
    assert result.mismatch_fraction == 0.5
    assert result.max_rel == pytest.approx(np.inf)  # 0.01 against an expected 0
    # at rtol 1e-3 the worst element needs atol = 0.1 - 1e-3 * 2
    assert result.needed_atol == pytest.approx(0.1 - 2e-3, rel=1e-4)
    passing = compare_array("y", got, want, Tolerance(atol=result.needed_atol * 1.001, rtol=1e-3))
    assert passing.passed


def test_compare_catches_shape_dtype_nan_and_argmax():
    want = np.zeros((1, 3, 2, 2), np.float32)
    want[:, 1] = 1
    assert "shape" in compare_array("m", want[:, :2], want, Tolerance()).problem
    assert "dtype" in compare_array("m", want.astype(np.int64), want, Tolerance()).problem
    nan = want.copy()
    nan[0, 0, 0, 0] = np.nan
    assert not compare_array("m", nan, want, Tolerance(atol=1, rtol=1)).passed
    flipped = want.copy()
    flipped[0, 2, 0, 0] = 2.0  # changes the argmax of one pixel out of four
    result = compare_array("m", flipped, want, Tolerance(atol=10, rtol=0, argmax_axis=1, min_argmax_agreement=0.9))
    assert result.argmax_agreement == 0.75 and not result.passed


def test_golden_roundtrip_and_batch_cases(tmp_path):
    model = demo_model()
    golden, reused = make_or_load_golden(model, tmp_path / "g", batch_sizes=[1, 3], seed=5)
    assert not reused and [c.label for c in golden.cases] == ["b1", "b3"]
    assert golden.cases[1].inputs["x"].shape == (3, 3, 16, 16)
    loaded = load_golden(tmp_path / "g")
    np.testing.assert_array_equal(loaded.cases[1].outputs["prob"], golden.cases[1].outputs["prob"])
    again, reused = make_or_load_golden(model, tmp_path / "g", batch_sizes=[1, 3], seed=5)
    assert reused
    with pytest.raises(GoldenError, match="batch_sizes differ"):
        make_or_load_golden(model, tmp_path / "g", batch_sizes=[1], seed=5)
    assert validate_against_golden(model, loaded).passed


def test_a_case_that_does_not_fit_the_model_fails_it_is_never_skipped(tmp_path):
    model = demo_model()
    golden, _ = make_or_load_golden(model, tmp_path / "g", batch_sizes=[1, 2])
    static = clone(model)
    for value in (*static.graph.input, *static.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    result = validate_against_golden(static, golden)
    assert [c.passed for c in result.cases] == [True, False]
    assert not result.passed
    assert result.first_failure() == (
        "case b2: does not fit the model: input 'x' axis 0 is static 1 in the model, 2 in the golden case "
        "(record the golden set with batch sizes the model accepts)"
    )


def test_corrupt_golden_is_a_clear_error(tmp_path):
    make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1])
    (tmp_path / "g" / "b1.outputs.npz").write_bytes(b"garbage")
    with pytest.raises(GoldenError, match="b1.outputs.npz: golden outputs is not a readable .npz file"):
        load_golden(tmp_path / "g")


def test_cli_golden_make_and_validate(tmp_path, cli):
    model_path = save_model(demo_model(), tmp_path / "m.onnx")
    made = cli("golden", "make", model_path, "-o", tmp_path / "g", "--batch-sizes", "1,2", "--atol", "1e-6")
    assert made.returncode == 0, made.stderr
    ok = cli("validate", model_path, "--golden", tmp_path / "g", "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["passed"] and [c["label"] for c in data["cases"]] == ["b1", "b2"]
    assert data["cases"][0]["outputs"][0]["atol"] == 1e-6
    # a model with different weights fails, exit 1, and names the output
    other = save_model(demo_model(seed=1), tmp_path / "other.onnx")
    bad = cli("validate", other, "--golden", tmp_path / "g")
    assert bad.returncode == 1
    assert "FAILED: case b1, prob: MISMATCH" in bad.stdout
    loose = cli(
        "validate", other, "--golden", tmp_path / "g", "--output-tol", "prob:100:0", "--output-tol", "flat:100:0"
    )
    assert loose.returncode == 0, loose.stdout
    missing = cli("validate", model_path, "--golden", tmp_path / "nothing")
    assert missing.returncode == 2 and "not a golden set" in missing.stderr


def test_tolerances_roundtrip_through_manifest(tmp_path):
    tol = Tolerances(Tolerance(1e-7, 0.0), {"prob": Tolerance(1e-3, 1e-2, argmax_axis=1, min_argmax_agreement=0.99)})
    golden, _ = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1], tolerances=tol)
    assert load_golden(tmp_path / "g").tolerances == tol


def test_a_mismatched_golden_set_names_both_values_and_the_flag_that_re_records(tmp_path):
    from graphkit.ir.model_io import content_hash

    first, other = demo_model(seed=0), demo_model(seed=1)
    make_or_load_golden(first, tmp_path / "g", batch_sizes=[1], producer_name="onnxruntime")
    with pytest.raises(GoldenError) as raised:
        make_or_load_golden(other, tmp_path / "g", batch_sizes=[1], seed=2, producer_name="reference: x")
    message = str(raised.value)
    assert "(model_hash, producer, seed differ: " in message
    assert f"model content hash: the set has '{content_hash(first)}', this run has '{content_hash(other)}'" in message
    assert "producer: the set has 'onnxruntime', this run has 'reference: x'" in message
    assert "seed: the set has 0, this run has 2" in message
    assert "--regenerate-golden (graphkit apply)" in message and "--regenerate (graphkit golden make)" in message
