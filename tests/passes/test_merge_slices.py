"""merge-slices: a Slice of a Slice on other axes becomes one Slice."""

from __future__ import annotations

import numpy as np
from graphkit_passes.merge_slices import MergeSlices
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper, numpy_helper

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
    value,
)
from graphkit.transform.registry import get_pass

ATOL = RTOL = 0.0  # no arithmetic: bit-exact
CONSTANTS = (
    "s0 = Constant<value=int64[1] {0}>() s1 = Constant<value=int64[1] {1}>() e = Constant<value=int64[1] {9999}>() "
    "a1 = Constant<value=int64[1] {1}>() a2 = Constant<value=int64[1] {-1}>() two = Constant<value=int64[1] {2}>() "
)


def model(body: str, inputs: str = "float[N,6,8] x", outputs: str = "float[N,3,4] y", opset: int = 13):
    return parse_model(
        f'<ir_version: 8, opset_import: ["" : {opset}]> g ({inputs}) => ({outputs}) {{ {CONSTANTS} {body} }}'
    )


def merge(m, expected_ops):
    result = assert_pass_rewrites(MergeSlices(), m, atol=ATOL, rtol=RTOL, dims={"N": 2})
    assert_op_types(result.model, expected_ops)
    assert_idempotent(MergeSlices(), result.model)
    assert [o.name for o in result.model.graph.output] == [o.name for o in m.graph.output]
    return result


def test_strided_slices_on_two_axes_become_one():
    # x[:, 0::2, 1::2] as the exporter writes it (Swin's patch merging)
    result = merge(model("h = Slice(x, s0, e, a1, two) y = Slice(h, s1, e, a2, two)"), ["Slice"])
    assert result.counts == {"slice_chain": 1}
    node = result.model.graph.node[0]
    assert node.input[0] == "x" and node.output[0] == "y"
    params = {i.name: numpy_helper.to_array(i).tolist() for i in result.model.graph.initializer}
    assert [params[name] for name in node.input[1:]] == [
        [0, 1],
        [9999, 9999],
        [1, 2],
        [2, 2],
    ]  # -1 normalized with the rank


def test_a_shared_inner_slice_goes_with_its_last_reader():
    m = model(
        "h = Slice(x, s0, e, a1, two) y = Slice(h, s1, e, a2, two) z = Slice(h, s0, e, a2, two)",
        outputs="float[N,3,4] y, float[N,3,4] z",
    )
    result = merge(m, ["Slice", "Slice"])
    assert result.counts == {"slice_chain": 2}
    assert all(n.input[0] == "x" for n in result.model.graph.node)


def test_default_axes_and_steps_opset_10():
    m = parse_model(
        '<ir_version: 5, opset_import: ["" : 10]> g (float[4,6] x) => (float[3,5] y) {'
        " s = Constant<value=int64[1] {1}>() e = Constant<value=int64[1] {9}>() a = Constant<value=int64[1] {1}>()"
        " h = Slice(x, s, e) y = Slice(h, s, e, a) }"
    )
    result = assert_pass_rewrites(MergeSlices(), m, atol=ATOL, rtol=RTOL)
    assert result.counts == {"slice_chain": 1}
    assert [n.op_type for n in result.model.graph.node] == ["Slice"]


def test_declines_slices_on_a_common_axis():
    m = model("h = Slice(x, s0, e, a1, two) y = Slice(h, s1, e, a1, two)", outputs="float[N,?,8] y")
    assert_declines(MergeSlices(), m, reason_contains="both Slices cut axis 1")


def test_declines_parameters_that_are_not_constants():
    m = model("h = Slice(x, s0, e, a1, two) y = Slice(h, k, e, a2, two)", inputs="float[N,6,8] x, int64[1] k")
    assert_declines(MergeSlices(), m, reason_contains="folding it first would make the chain mergeable")


def test_declines_negative_axes_on_an_unknown_rank():
    m = model(
        "r = Reshape(x, k) h = Slice(r, s0, e, a2, two) y = Slice(h, s1, e, a1, two)",
        inputs="float[N,6,8] x, int64[K] k",
        outputs="float[N,3,4] y",
    )
    assert_declines(MergeSlices(), m, reason_contains="rank of 'h' is unknown")


def test_registered_exact_and_in_the_generic_preset():
    from graphkit.transform.presets import pass_names, preset_passes

    cls = get_pass("merge-slices")
    assert cls is MergeSlices and cls.exact
    assert "merge-slices" in pass_names(preset_passes("generic"))


@st.composite
def slice_chains(draw):
    """x [3,4,5] through two Slices on drawn axes (disjoint: merged; shared: a near miss)."""
    opset = draw(st.sampled_from([10, 13, 17]))
    inits, nodes, source = [], [], "x"
    for k in range(2):
        axis = draw(st.sampled_from([0, 1, 2, -1, -2]))
        start = draw(st.integers(-3, 2))
        end = draw(st.sampled_from([-1, 3, 9999]))
        step = draw(st.sampled_from([1, 2, -1]))
        for role, v in (("s", start), ("e", end), ("a", axis), ("t", step)):
            inits.append(numpy_helper.from_array(np.array([v], np.int64), f"{role}{k}"))
        nodes.append(helper.make_node("Slice", [source, f"s{k}", f"e{k}", f"a{k}", f"t{k}"], [f"h{k}"]))
        source = f"h{k}"
    nodes.append(helper.make_node("Relu", [source], ["y"]))
    # output dims left symbolic: the checker's inference computes them (empty slices included)
    return make_model(nodes, [value("x", [3, 4, 5])], [value("y", ["d0", "d1", "d2"])], inits, opset=opset)


APPLIED: list[bool] = []


@property_settings(max_examples=40)
@given(slice_chains())
def test_property_declines_or_is_exact(m):
    APPLIED.append(check_declines_or_exact(MergeSlices(), m, atol=ATOL, rtol=RTOL))


def test_property_applies_on_a_share_of_generated_cases():
    if not APPLIED:
        test_property_declines_or_is_exact()
    assert_applies_share(APPLIED, at_least=0.3)
    assert not all(APPLIED)  # chains on a common axis are generated too
