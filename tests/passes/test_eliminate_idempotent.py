"""eliminate-idempotent: f(f(x)) -> f(x) for idempotent unary ops, g(g(x)) -> x for Neg and Not."""

from __future__ import annotations

import numpy as np
import pytest
from graphkit_passes.eliminate_idempotent import IDEMPOTENT_OPS, INVOLUTION_OPS, EliminateIdempotent
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper

from graphkit.runtime.ort import run_ort
from graphkit.testing import (
    assert_applies_share,
    assert_declines,
    assert_idempotent,
    assert_op_types,
    assert_pass_rewrites,
    check_declines_or_exact,
    make_model,
    parse_model,
    property_settings,
    run_pass,
    value,
)
from graphkit.transform.registry import get_pass

ATOL = RTOL = 0.0  # bit-exact
SPECIAL = np.array([[-0.0, 0.0, np.inf, -np.inf], [np.nan, 1e-45, -3.5, 7.5], [-2.5, 0.5, 1.5, -1.0]], np.float32)


def model(body: str, inputs: str = "float[N,4] x", outputs: str = "float[N,4] y", opset: int = 13):
    return parse_model(f'<ir_version: 8, opset_import: ["" : {opset}]> g ({inputs}) => ({outputs}) {{ {body} }}')


@pytest.mark.parametrize("op", IDEMPOTENT_OPS)
def test_second_of_two_idempotent_ops_is_removed(op):
    m = model(f"a = {op}(x) b = {op}(a) y = Sigmoid(b)")
    result = assert_pass_rewrites(EliminateIdempotent(), m, atol=ATOL, rtol=RTOL, dims={"N": 3})
    assert result.counts == {"idempotent": 1}
    assert_op_types(result.model, [op, "Sigmoid"])
    assert_idempotent(EliminateIdempotent(), result.model)
    # inf, NaN, signed zeros and halves (Round's ties) come out bit for bit
    assert run_ort(result.model, {"x": SPECIAL})["y"].tobytes() == run_ort(m, {"x": SPECIAL})["y"].tobytes()


def test_inner_op_with_other_readers_stays_and_the_output_name_is_kept():
    m = model("a = Relu(x) y = Relu(a) z = Neg(a)", outputs="float[N,4] y, float[N,4] z")
    result = assert_pass_rewrites(EliminateIdempotent(), m, atol=ATOL, rtol=RTOL, dims={"N": 2})
    assert_op_types(result.model, ["Relu", "Neg"])
    assert [o.name for o in result.model.graph.output] == ["y", "z"]


@pytest.mark.parametrize(("op", "elem"), [("Neg", "float"), ("Neg", "int32"), ("Not", "bool")])
def test_involution_pairs_cancel(op, elem):
    m = model(
        f"r = Abs(x) a = {op}(r) b = {op}(a) y = Sign(b)"
        if elem != "bool"
        else f"a = {op}(x) b = {op}(a) y = Xor(b, x)",
        inputs=f"{elem}[N,4] x",
        outputs=f"{elem}[N,4] y",
    )
    result = assert_pass_rewrites(EliminateIdempotent(), m, atol=ATOL, rtol=RTOL, dims={"N": 2})
    assert result.counts == {"involution": 1}
    assert op not in {n.op_type for n in result.model.graph.node}
    assert_idempotent(EliminateIdempotent(), result.model)


def test_int_min_through_neg_twice_is_itself():
    m = model("a = Neg(x) b = Neg(a) y = Abs(b)", inputs="int32[N] x", outputs="int32[N] y")
    result = run_pass(EliminateIdempotent(), m)
    x = np.array([np.iinfo(np.int32).min, -1, 0, 7], np.int32)
    assert result.counts == {"involution": 1}
    assert np.array_equal(run_ort(result.model, {"x": x})["y"], run_ort(m, {"x": x})["y"])


def test_declines_renaming_a_graph_output():
    m = model("a = Neg(x) y = Neg(a)")
    assert_declines(EliminateIdempotent(), m, reason_contains="removing would rename it")


@pytest.mark.parametrize("body", ["a = Relu(x) y = Abs(a)", "a = Sigmoid(x) y = Sigmoid(a)", "a = Exp(x) y = Relu(a)"])
def test_different_or_non_idempotent_ops_do_not_match(body):
    result = run_pass(EliminateIdempotent(), model(body))
    assert not result.modified and not result.declined


def test_registered_exact_and_in_the_generic_preset():
    from graphkit.transform.presets import pass_names, preset_passes

    cls = get_pass("eliminate-idempotent")
    assert cls is EliminateIdempotent and cls.exact
    assert "eliminate-idempotent" in pass_names(preset_passes("generic"))


OPS = [*IDEMPOTENT_OPS, *INVOLUTION_OPS, "Sigmoid", "Exp"]  # the last two: near misses


@st.composite
def unary_chains(draw):
    """float x [2,3] through 2-3 drawn unary ops (Not on bool through Casts); a Sigmoid at the end."""
    ops = draw(st.lists(st.sampled_from([o for o in OPS if o != "Not"]), min_size=2, max_size=3))
    if draw(st.booleans()):
        ops = [ops[0], ops[0], *ops[1:]]  # a repeated op: the rewrite's trigger
    nodes, source = [], "x"
    for k, op in enumerate(ops):
        nodes.append(helper.make_node(op, [source], [f"v{k}"]))
        source = f"v{k}"
    nodes.append(helper.make_node("Sigmoid", [source], ["y"]))
    return make_model(nodes, [value("x", [2, 3])], [value("y", [2, 3])], opset=draw(st.sampled_from([13, 17])))


APPLIED: list[bool] = []


@property_settings(max_examples=40)
@given(unary_chains())
def test_property_declines_or_is_exact(m):
    APPLIED.append(check_declines_or_exact(EliminateIdempotent(), m, atol=ATOL, rtol=RTOL))


def test_property_applies_on_a_share_of_generated_cases():
    if not APPLIED:
        test_property_declines_or_is_exact()
    assert_applies_share(APPLIED, at_least=0.3)
    assert not all(APPLIED)  # chains without a repeated op are generated too
