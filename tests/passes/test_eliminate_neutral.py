"""eliminate-neutral: x + 0, x - 0, x * 1, x / 1 removed when the constant keeps x's shape."""

from __future__ import annotations

import numpy as np
import pytest
from graphkit_passes.eliminate_neutral import EliminateNeutral
from hypothesis import given

from graphkit.runtime.ort import run_ort
from graphkit.testing import (
    assert_applies_share,
    assert_declines,
    assert_idempotent,
    assert_op_types,
    assert_pass_rewrites,
    binary_constant_graphs,
    check_declines_or_exact,
    parse_model,
    property_settings,
    run_pass,
)
from graphkit.transform.registry import get_pass

ATOL = RTOL = 0.0  # bit-exact up to the sign of a zero, which compares equal


def model(body: str, inputs: str = "float[N,3,4] x", outputs: str = "float[N,3,4] y", opset: int = 13):
    return parse_model(f'<ir_version: 8, opset_import: ["" : {opset}]> g ({inputs}) => ({outputs}) {{ {body} }}')


def rewrite(m, expected_ops):
    result = assert_pass_rewrites(EliminateNeutral(), m, atol=ATOL, rtol=RTOL, dims={"N": 2})
    assert_op_types(result.model, expected_ops)
    assert_idempotent(EliminateNeutral(), result.model)
    assert [o.name for o in result.model.graph.output] == [o.name for o in m.graph.output]
    return result


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ("z = Constant<value=float[4] {0,0,0,0}>() a = Relu(x) t = Add(a, z) y = Neg(t)", "add_zero"),
        ("z = Constant<value=float {0}>() a = Relu(x) t = Add(z, a) y = Neg(t)", "add_zero"),
        ("z = Constant<value=float[1,1] {0}>() a = Relu(x) t = Sub(a, z) y = Neg(t)", "sub_zero"),
        ("o = Constant<value=float[3,1] {1,1,1}>() a = Relu(x) t = Mul(o, a) y = Neg(t)", "mul_one"),
        (
            "o = Constant<value=float[1,3,4] {1,1,1,1,1,1,1,1,1,1,1,1}>() a = Relu(x) t = Div(a, o) y = Neg(t)",
            "div_one",
        ),
    ],
)
def test_each_neutral_op_is_removed(body, rule):
    result = rewrite(model(body), ["Relu", "Neg"])
    assert result.counts == {rule: 1}
    neg = result.model.graph.node[-1]
    assert neg.op_type == "Neg" and neg.input[0] == "a"


def test_neutral_before_a_graph_output_keeps_the_output_name():
    result = rewrite(model("o = Constant<value=float {1}>() a = Relu(x) y = Mul(a, o)"), ["Relu"])
    assert result.model.graph.node[-1].output[0] == "y"


def test_integer_and_chained_neutral_ops():
    m = model(
        "z = Constant<value=int64 {0}>() o = Constant<value=int64 {1}>() a = Add(x, z) b = Mul(o, a) y = Neg(b)",
        inputs="int64[N,3] x",
        outputs="int64[N,3] y",
    )
    result = rewrite(m, ["Neg"])
    assert result.counts == {"add_zero": 1, "mul_one": 1}


def test_signed_zero_and_special_values_pass_through():
    m = model("z = Constant<value=float {0}>() o = Constant<value=float {1}>() a = Mul(x, o) y = Sub(a, z)")
    x = np.array([[[-0.0, 0.0, np.inf, -np.inf], [np.nan, 1e-45, -3.5, 7.0], [1, 2, 3, 4]]], np.float32)
    result = run_pass(EliminateNeutral(), m)
    assert result.modified
    out = run_ort(result.model, {"x": x})["y"]
    ref = run_ort(m, {"x": x})["y"]
    # x * 1 and x - 0 are bit-exact: the same bits, the sign of -0 included
    assert out.tobytes() == ref.tobytes()


@pytest.mark.parametrize(
    ("body", "inputs", "reason"),
    [
        # the constant has more axes than x: y would be (2, N, 3, 4)
        (
            "z = Constant<value=float[2,1,1,1] {0,0}>() t = Add(x, z) y = ReduceSum<keepdims=0>(t)",
            "float[N,3,4] x",
            "rank 4 > the input's 3",
        ),
        # x's dim is symbolic where the constant has 3: if N were 1, y would be broadcast to 3
        (
            "z = Constant<value=float[3,1,1] {0,0,0}>() t = Add(x, z) y = ReduceSum<keepdims=0>(t)",
            "float[N,1,4] x",
            "a static input dim 3 there would make the node removable",
        ),
    ],
)
def test_declines_a_constant_that_broadcasts_x_up(body, inputs, reason):
    m = model(body, inputs=inputs, outputs="float y")
    assert_declines(EliminateNeutral(), m, reason_contains=reason)


def test_declines_when_the_rank_of_x_is_unknown():
    m = model(
        "z = Constant<value=float[4] {0,0,0,0}>() a = Reshape(x, s) t = Add(a, z) y = Relu(t)",
        inputs="float[N,3,4] x, int64[3] s",
        outputs="float[N,3,4] y",
    )
    m.graph.value_info.clear()
    assert_declines(
        EliminateNeutral(), m, reason_contains="shape inference that gives it would make the node removable"
    )


def test_not_neutral_is_no_match():
    m = model("z = Constant<value=float {0}>() t = Sub(z, x) o = Constant<value=float {1}>() y = Div(o, t)")
    result = run_pass(EliminateNeutral(), m)
    assert not result.modified and not result.declined  # 0 - x and 1 / x are not neutral: nothing to report


def test_registered_exact_and_in_the_generic_preset():
    from graphkit.transform.presets import pass_names, preset_passes

    cls = get_pass("eliminate-neutral")
    assert cls is EliminateNeutral and cls.exact and cls.tolerance is None
    assert "eliminate-neutral" in pass_names(preset_passes("generic"))


PROPERTY_VALUES = [0.0, -0.0, 1.0, 1.0001, 2.0, float("nan")]
APPLIED: list[bool] = []


@property_settings(max_examples=60)
@given(binary_constant_graphs(["Add", "Sub", "Mul", "Div"], PROPERTY_VALUES))
def test_property_declines_or_is_exact(graph):
    APPLIED.append(check_declines_or_exact(EliminateNeutral(), graph, atol=ATOL, rtol=RTOL))


def test_property_applies_on_a_share_of_generated_cases():
    if not APPLIED:
        test_property_declines_or_is_exact()
    assert_applies_share(APPLIED, at_least=0.1)
    assert not all(APPLIED)  # near misses (non-neutral values, broadcasting shapes) are generated too
