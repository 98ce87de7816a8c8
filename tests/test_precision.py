"""fp16 emulation (graphkit.check.fp16_emulation), the per-node errors and the keep-list search.

Tolerances: the fp16 verdicts use atol = rtol = 1e-2 (the library default); fp16 has a 2**-11
relative spacing, so a correct model stays far inside it and the broken ones fail by orders of
magnitude. Comparisons with real fp16 kernels allow a few fp16 ulps: a CPU's fp16 kernel may
round intermediate steps differently (x86 here computes in fp32 and rounds once: 0 ulps).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).parent))
import precision_models as pm  # noqa: E402

from graphkit.check.fp16_emulation import FP16_MAX, candidate_nodes, emulate_fp16, round_fp16  # noqa: E402
from graphkit.check.precision import EmulatedRunner, preview_precision, reference_cases  # noqa: E402
from graphkit.check.precision_analysis import fp16_tolerances  # noqa: E402
from graphkit.check.precision_search import exhaustive_keep_list, search_keep_list  # noqa: E402
from graphkit.runtime.ort import run_ort  # noqa: E402

TOL = fp16_tolerances(None, 1e-2, 1e-2)


def _all(model):
    return set(range(len(model.graph.node)))


def _single(op: str, inputs: int, dtype=TensorProto.FLOAT, shape=(16, 16), **attrs) -> onnx.ModelProto:
    ins = [helper.make_tensor_value_info(f"i{k}", dtype, list(shape)) for k in range(inputs)]
    node = helper.make_node(op, [f"i{k}" for k in range(inputs)], ["o"], name="op", **attrs)
    out = helper.make_tensor_value_info("o", dtype, list(shape))
    model = helper.make_model(helper.make_graph([node], "g", ins, [out]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run_none(model, feeds):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


# --- the transform ---------------------------------------------------------------------------


def test_emulation_structure_rounds_weights_and_stores_outputs_in_fp16():
    model, feeds, _ = pm.softmax_large_logits()
    emulated = emulate_fp16(model, _all(model))
    onnx.checker.check_model(emulated)
    casts = [n for n in emulated.graph.node if n.op_type == "Cast"]
    # input x rounded once; proj, logit_offset, softmax outputs stored: 4 pairs
    assert len(casts) == 8
    assert [n.name for n in emulated.graph.node if n.op_type != "Cast"] == ["proj", "logit_offset", "softmax"]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in emulated.graph.initializer}
    assert np.array_equal(weights["w"], round_fp16(weights["w"]))
    original = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert not np.array_equal(weights["w"], original["w"])  # rounding changed some weights
    assert [o.name for o in emulated.graph.output] == ["y"]
    # nothing kept in fp16: the same function (a plain copy, no casts)
    untouched = emulate_fp16(model, set())
    assert not [n for n in untouched.graph.node if n.op_type == "Cast"]
    np.testing.assert_array_equal(run_ort(untouched, feeds)["y"], run_ort(model, feeds)["y"])


def test_cast_pairs_survive_every_onnxruntime_optimization_level():
    model, feeds, _ = pm.fine_in_fp16()
    emulated = emulate_fp16(model, _all(model))
    results = [run_ort(emulated, feeds, optimization=level)["y"] for level in ("none", "basic", "extended", "all")]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=0, atol=1e-6)  # CPU kernels may fuse; casts stay
    assert not np.allclose(results[0], run_ort(model, feeds)["y"], rtol=0, atol=1e-7)  # the emulation did round


def test_a_kept_node_reads_fp32_weights_and_an_fp16_reader_gets_its_own_rounded_copy():
    model, _, _ = pm.tiny_epsilon()
    positions = {n.name: i for i, n in enumerate(model.graph.node)}
    emulated = emulate_fp16(model, _all(model) - {positions["ln_add_eps"]})
    eps = {t.name: float(onnx.numpy_helper.to_array(t)) for t in emulated.graph.initializer}
    assert eps == {"eps": pytest.approx(1e-9)}  # read only by the kept Add: left unrounded
    add = next(n for n in emulated.graph.node if n.name == "ln_add_eps")
    assert add.output[0] == "ln_var_eps"  # fp32 output kept under its own name, no Cast pair
    sqrt = next(n for n in emulated.graph.node if n.name == "ln_sqrt")
    assert sqrt.input[0] == "ln_var_eps__fp16"  # the fp16 reader rounds it


def test_refuses_a_model_without_float_tensors():
    from graphkit.util.errors import InputError

    model = _single("Add", 2, dtype=TensorProto.INT64)
    with pytest.raises(InputError, match="no float32 tensor"):
        emulate_fp16(model, {0})


@pytest.mark.parametrize("op,inputs", [("Add", 2), ("Sub", 2), ("Mul", 2), ("Div", 2), ("Relu", 1), ("Sqrt", 1)])
def test_matches_real_fp16_kernels_for_correctly_rounded_ops(op, inputs):
    rng = np.random.default_rng(1)
    feeds = {f"i{k}": (3 * rng.standard_normal((16, 16))).astype(np.float32) for k in range(inputs)}
    if op == "Sqrt":
        feeds["i0"] = np.abs(feeds["i0"])
    if op == "Mul":
        feeds["i0"][0, :4] = [300.0, -300.0, 255.9, 1e-4]  # overflow to +-inf, near the top, underflow
        feeds["i1"][0, :4] = [300.0, 300.0, 256.0, 1e-4]
    real = _run_none(_single(op, inputs, TensorProto.FLOAT16), {k: v.astype(np.float16) for k, v in feeds.items()})
    emulated = _run_none(emulate_fp16(_single(op, inputs), {0}), feeds)
    # IEEE add/sub/mul/div/sqrt of fp16 operands are correctly rounded; one rounding of the fp32
    # result agrees except for rare double-rounding ties: allow one fp16 ulp
    finite = np.isfinite(real)
    with np.errstate(over="ignore"):  # the spacing at 65504 is the step to inf
        ulp = np.spacing(np.abs(np.where(finite, real, 0))).astype(np.float32)
    assert np.array_equal(np.isfinite(emulated), finite) and np.array_equal(
        emulated[~finite], real[~finite].astype(np.float32)
    )
    assert np.all(np.abs(emulated[finite] - real[finite].astype(np.float32)) <= ulp[finite])


@pytest.mark.parametrize("op,inputs", [("MatMul", 2), ("Softmax", 1), ("Sigmoid", 1), ("Tanh", 1), ("Exp", 1)])
def test_close_to_real_fp16_kernels_that_accumulate_or_approximate(op, inputs):
    rng = np.random.default_rng(2)
    feeds = {f"i{k}": rng.standard_normal((16, 16)).astype(np.float32) for k in range(inputs)}
    real = _run_none(_single(op, inputs, TensorProto.FLOAT16), {k: v.astype(np.float16) for k, v in feeds.items()})
    emulated = _run_none(emulate_fp16(_single(op, inputs), {0}), feeds)
    # fp16 kernels may accumulate (MatMul, Softmax's sum) or approximate in fp16 on other CPUs: 4 ulps
    ulp = np.spacing(np.abs(real)).astype(np.float32)
    assert np.all(np.abs(emulated - real.astype(np.float32)) <= 4 * ulp)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.floats(-1e5, 1e5, allow_nan=False, width=32), min_size=4, max_size=4),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=4, max_size=4),
)
def test_property_rounding_points_and_inf_propagation(xs, ys):
    model = _single("Add", 2, shape=(4,))
    x, y = np.array(xs, np.float32), np.array(ys, np.float32)
    got = run_ort(emulate_fp16(model, {0}), {"i0": x, "i1": y})["o"]
    with np.errstate(over="ignore", invalid="ignore"):
        want = round_fp16(round_fp16(x) + round_fp16(y))  # inputs rounded, fp32 add, output rounded
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.isinf(got), np.isinf(want))
    # a value past fp16's range is inf after the first rounding point, and inf stays inf through the add
    past = np.abs(x) >= 65520  # 65504 + half a spacing rounds up to inf
    assert np.all(np.isinf(got[past] if past.any() else got[:0]))
    assert np.all(np.abs(got[np.isfinite(got)]) <= FP16_MAX)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.5, 2e5, allow_nan=False), st.integers(0, 2**16))
def test_property_emulation_changes_outputs_on_a_share_of_cases(scale, seed):
    rng = np.random.default_rng(seed)
    model = _single("Mul", 2, shape=(8,))
    x = (scale * rng.standard_normal(8)).astype(np.float32)
    got = run_ort(emulate_fp16(model, {0}), {"i0": x, "i1": x})["o"]
    exact = x * x
    with np.errstate(over="ignore"):
        assert np.array_equal(got, round_fp16(round_fp16(x) * round_fp16(x)))
    # rounding to 11 significant bits changes almost every random product: the transform applies
    assert np.mean(got != exact) > 0.5


# --- analysis and search ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(pm.BREAKING))
def test_breaking_model_names_the_node_and_the_keep_list_is_minimal(name):
    model, feeds, responsible = pm.BREAKING[name]()
    cases = reference_cases(model, [feeds])
    preview = preview_precision(model, cases, _all(model), TOL)
    assert not preview.passed and preview.fixed
    assert set(preview.keep_nodes) == responsible
    # the answer is verified by a forward of its own, and every output passes there
    assert preview.keep_outputs and all(o.comparison.passed for o in preview.keep_outputs)
    # no smaller keep-list exists: the exhaustive search over every subset agrees on the size
    runner = EmulatedRunner(model, cases, TOL)
    fp16 = _all(model)
    smallest = exhaustive_keep_list(candidate_nodes(model), lambda kept: runner.passes(fp16 - kept))
    assert smallest is not None and len(smallest) == len(preview.keep_nodes)
    # named: the node that overflows first, or the one that adds the most error, is ranked in the top 2
    top = {n.node for n in preview.ranked[:2]}
    assert top & responsible
    assert preview.search.forwards <= 12


def test_first_nonfinite_node_is_the_overflowing_one():
    model, feeds, _ = pm.layernorm_variance_overflow()
    preview = preview_precision(model, reference_cases(model, [feeds]), _all(model), TOL)
    assert preview.lockstep.first_nonfinite.node == "ln_square"
    assert preview.ranked[0].node == "ln_square" and preview.ranked[0].new_nonfinite
    report = preview.to_dict()
    assert report["first_nonfinite"]["node"] == "ln_square" and report["keep_list"] == ["ln_square", "ln_var"]
    assert report["outputs"][0]["passed"] is False and report["keep_outputs"][0]["passed"] is True


def test_model_fine_in_fp16_gets_an_empty_keep_list_and_no_search():
    model, feeds, _ = pm.fine_in_fp16()
    preview = preview_precision(model, reference_cases(model, [feeds]), _all(model), TOL)
    assert preview.passed and preview.keep_nodes == [] and preview.search is None
    assert preview.forwards == 1  # the emulated forward; the lockstep walk is counted in segments
    assert preview.outputs[0].comparison.max_abs < 1e-2


def test_search_declines_when_even_keeping_everything_fails():
    calls = []

    def verdict(kept):
        calls.append(kept)
        return False

    result = search_keep_list([3, 1, 2], verdict)
    assert not result.found and result.keep == [] and result.forwards == 2  # none kept, all kept


def test_search_finds_a_one_minimal_set_when_the_ranking_is_wrong():
    needed = {7, 2}
    result = search_keep_list(list(range(10)), lambda kept: needed <= kept)
    assert result.found and set(result.keep) == needed
    assert result.forwards < 2**10


def test_names_taken_by_the_model_are_not_reused_and_unnamed_nodes_are_counted():
    model, feeds, _ = pm.overflow_before_div()
    graph = model.graph
    graph.node[0].output[0] = graph.node[1].input[0] = "x__fp16"  # the name the emulation would pick for x
    graph.node[1].name = ""  # an unnamed Div cannot go into a keep_dtype file
    onnx.checker.check_model(model)
    emulated = emulate_fp16(model, _all(model))
    onnx.checker.check_model(emulated)
    outputs = [t for n in emulated.graph.node for t in n.output]
    assert len(outputs) == len(set(outputs))  # single assignment kept
    preview = preview_precision(model, reference_cases(model, [feeds]), _all(model), TOL)
    assert preview.unnamed_skipped == 1 and not preview.fixed  # the Div must be kept but has no name


def test_a_model_the_lockstep_walk_cannot_split_still_gets_output_errors_and_a_keep_list(monkeypatch):
    import graphkit.check.precision as precision
    from graphkit.util.errors import RuntimeLoadError

    def refuse(*args, **kwargs):
        raise RuntimeLoadError("onnxruntime cannot load model fp32 (nodes 0-2): planted")

    monkeypatch.setattr(precision, "node_errors", refuse)
    model, feeds, responsible = pm.overflow_before_div()
    preview = preview_precision(model, reference_cases(model, [feeds]), _all(model), TOL)
    assert preview.ranked == [] and "planted" in preview.to_dict()["lockstep_unavailable"]
    assert set(preview.keep_nodes) == responsible and preview.fixed  # graph order, verified by running
    assert "no per-node errors: " in preview.to_text()
