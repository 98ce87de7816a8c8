"""fuse-reshapes: Reshape after a reshape-like op becomes one Reshape; Squeeze/Unsqueeze pairs cancel."""

from __future__ import annotations

import numpy as np
import pytest
from graphkit_passes.fuse_reshapes import FuseReshapes
from hypothesis import assume, given
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
    run_pass,
    value,
)
from graphkit.transform.registry import get_pass

ATOL = RTOL = 0.0  # shape-only ops: bit-exact


def model(body: str, inputs: str = "float[N,3,4] x", outputs: str = "float[N,12] y", opset: int = 13):
    return parse_model(f'<ir_version: 8, opset_import: ["" : {opset}]> g ({inputs}) => ({outputs}) {{ {body} }}')


def fuse(m, expected_ops):
    result = assert_pass_rewrites(FuseReshapes(), m, atol=ATOL, rtol=RTOL, dims={"N": 2})
    assert_op_types(result.model, expected_ops)
    assert_idempotent(FuseReshapes(), result.model)
    assert [o.name for o in result.model.graph.output] == [o.name for o in m.graph.output]
    return result


def test_reshape_chain_becomes_the_last_reshape():
    m = model(
        "a = Constant<value=int64[2] {-1, 4}>() b = Constant<value=int64[2] {-1, 12}>() "
        "r = Reshape(x, a) t = Reshape(r, b) y = Relu(t)"
    )
    result = fuse(m, ["Constant", "Reshape", "Relu"])
    assert result.counts == {"reshape_chain": 1}
    reshape = next(n for n in result.model.graph.node if n.op_type == "Reshape")
    assert reshape.input[0] == "x" and reshape.output[0] == "t"


@pytest.mark.parametrize(
    "inner",
    [
        "r = Flatten<axis=1>(x)",
        "k = Constant<value=int64[1] {1}>() r = Unsqueeze(x, k)",
        "k = Constant<value=int64[1] {0}>() r = Squeeze(x, k)",
    ],
)
def test_reshape_after_flatten_squeeze_unsqueeze(inner):
    inputs = "float[1,3,4] x" if "Squeeze(" in inner else "float[N,3,4] x"
    m = model(
        f"{inner} b = Constant<value=int64[2] {{-1, 12}}>() y = Reshape(r, b)", inputs=inputs, outputs="float[N,12] y"
    )
    result = fuse(m, ["Constant", "Reshape"])
    assert result.model.graph.node[-1].output[0] == "y"


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("order", ["squeeze_first", "unsqueeze_first"])
def test_squeeze_unsqueeze_pairs_cancel(opset, order):
    if opset < 13:
        first, second = ("Squeeze<axes=[1]>(x)", "Unsqueeze<axes=[-2]>(s)")
    else:
        first, second = ("Squeeze(x, k)", "Unsqueeze(s, m)")
    if order == "unsqueeze_first":
        first, second = first.replace("Squeeze", "Unsqueeze"), second.replace("Unsqueeze", "Squeeze")
        first = first.replace("[1]", "[-2]") if opset < 13 else first
    consts = "k = Constant<value=int64[1] {1}>() m = Constant<value=int64[1] {-2}>() " if opset >= 13 else ""
    shape = "float[N,1,4] x" if order == "squeeze_first" else "float[N,4] x"
    m = model(
        f"{consts}s = {first} t = {second} y = Relu(t)", inputs=shape, outputs=shape.replace(" x", " y"), opset=opset
    )
    result = fuse(m, ["Relu"])
    assert result.counts == {"squeeze_pair": 1}
    assert result.model.graph.node[-1].input[0] == "x"


def test_declines_a_target_that_copies_the_intermediate_dim():
    m = model(
        "a = Constant<value=int64[2] {-1, 4}>() b = Constant<value=int64[2] {0, -1}>() "
        "r = Reshape(x, a) t = Reshape(r, b) y = Relu(t)",
        outputs="float[?,?] y",
    )
    assert_declines(FuseReshapes(), m, reason_contains="a target of static dims or -1 would make the chain fusable")


@pytest.mark.parametrize(
    ("first", "last", "fused"),
    [
        # the outer 0 copies the inner 0, which copied x's dim 0 (Swin's window partition at opset 13)
        ([0, 12], [0, 3, 4], [0, 3, 4]),
        # an outer 0 where the inner target is static takes that dim
        ([0, 3, 2, 2], [0, 6, 0], [0, 6, 2]),
    ],
)
def test_a_zero_copied_from_the_inner_target_is_resolved(first, last, fused):
    m = model(
        f"a = Constant<value=int64[{len(first)}] {{{', '.join(map(str, first))}}}>() "
        f"b = Constant<value=int64[{len(last)}] {{{', '.join(map(str, last))}}}>() "
        "r = Reshape(x, a) t = Reshape(r, b) y = Relu(t)",
        outputs="float[N,?,?] y",
    )
    result = fuse(m, ["Reshape", "Relu"] + (["Constant"] if fused == last else []))
    assert result.counts == {"reshape_chain": 1}
    reshape = next(n for n in result.model.graph.node if n.op_type == "Reshape")
    targets = {i.name: numpy_helper.to_array(i) for i in result.model.graph.initializer}
    targets |= {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in result.model.graph.node if n.op_type == "Constant"
    }
    assert reshape.input[0] == "x" and targets[reshape.input[1]].tolist() == fused


def test_declines_a_target_that_is_not_constant():
    m = model(
        "a = Constant<value=int64[2] {-1, 4}>() r = Reshape(x, a) t = Reshape(r, b) y = Relu(t)",
        inputs="float[N,3,4] x, int64[2] b",
        outputs="float[?,?] y",
    )
    assert_declines(FuseReshapes(), m, reason_contains="folding it first would make the chain fusable")


def test_declines_a_pair_with_different_axes_and_a_shared_intermediate():
    m = model(
        "k = Constant<value=int64[1] {1}>() m = Constant<value=int64[1] {0}>() s = Squeeze(x, k) y = Unsqueeze(s, m)",
        inputs="float[N,1,4] x",
        outputs="float[1,N,4] y",
    )
    assert_declines(FuseReshapes(), m, reason_contains="differ; only a pair with the same axes cancels")
    m = model(
        "a = Constant<value=int64[2] {-1, 4}>() b = Constant<value=int64[2] {-1, 12}>() "
        "r = Reshape(x, a) t = Reshape(r, b) y = Relu(t) z = Neg(r)",
        outputs="float[N,12] y, float[?,4] z",
    )
    assert_declines(FuseReshapes(), m, reason_contains="also read by Neg")


def test_allowzero_keeps_zero_literal():
    m = model(
        "a = Constant<value=int64[2] {-1, 4}>() b = Constant<value=int64[3] {0, 3, 4}>() "
        "r = Reshape(x, a) t = Reshape<allowzero=1>(r, b) y = Relu(t)",
        inputs="float[0,3,4] x",
        outputs="float[0,3,4] y",
        opset=14,
    )
    result = run_pass(FuseReshapes(), m)
    assert result.modified and result.counts == {"reshape_chain": 1}


def test_registered_exact_and_in_the_generic_preset():
    from graphkit.transform.presets import pass_names, preset_passes

    cls = get_pass("fuse-reshapes")
    assert cls is FuseReshapes and cls.exact
    assert "fuse-reshapes" in pass_names(preset_passes("generic"))


@st.composite
def chains(draw):
    """x [2,3,4] through two reshape-like ops (a matching chain or pair, or a near miss)."""
    kind = draw(st.sampled_from(["reshape", "pair", "pair"]))
    opset = draw(st.sampled_from([11, 13, 17]))
    nodes, inits = [], []

    def axes_node(op, src, dst, axes):
        if opset < 13:
            nodes.append(helper.make_node(op, [src], [dst], axes=axes))
        else:
            inits.append(numpy_helper.from_array(np.array(axes, np.int64), f"{dst}_axes"))
            nodes.append(helper.make_node(op, [src, f"{dst}_axes"], [dst]))

    if kind == "reshape":
        first = draw(st.sampled_from([[-1, 4], [6, 4], [2, 12], [24]]))
        last = draw(st.sampled_from([[4, 6], [-1], [0, -1], [2, 3, 4], [3, 0, 2]]))  # 0 copies: near misses
        inits += [numpy_helper.from_array(np.array(v, np.int64), n) for v, n in ((first, "a"), (last, "b"))]
        nodes += [helper.make_node("Reshape", ["x", "a"], ["r"]), helper.make_node("Reshape", ["r", "b"], ["t"])]
        x_shape = [2, 3, 4]
        middle = np.zeros(x_shape).reshape(first).shape
        assume(all(i < len(middle) for i, v in enumerate(last) if v == 0))
        target = [middle[i] if v == 0 else v for i, v in enumerate(last)]
        try:
            y_shape = list(np.zeros(x_shape).reshape(target).shape)
        except ValueError:
            assume(False)
    else:
        a = draw(st.sampled_from([[1], [-2]]))
        b = draw(st.sampled_from([[1], [-2], [0], [2]]))  # [0] and [2]: near misses
        if draw(st.booleans()):
            x_shape = [2, 1, 4]
            axes_node("Squeeze", "x", "r", a)
            axes_node("Unsqueeze", "r", "t", b)
            y_shape = list(np.expand_dims(np.zeros(x_shape).squeeze(a[0]), b[0]).shape)
        else:
            x_shape = [2, 4]
            b = b if b != [0] else [2]
            axes_node("Unsqueeze", "x", "r", a)
            axes_node("Squeeze", "r", "t", b)
            middle = np.expand_dims(np.zeros(x_shape), a[0])
            assume(middle.shape[b[0]] == 1)
            y_shape = list(middle.squeeze(b[0]).shape)
    nodes.append(helper.make_node("Relu", ["t"], ["y"]))
    return make_model(nodes, [value("x", x_shape)], [value("y", y_shape)], inits, opset=opset)


APPLIED: list[bool] = []


@property_settings(max_examples=40)
@given(chains())
def test_property_declines_or_is_exact(m):
    APPLIED.append(check_declines_or_exact(FuseReshapes(), m, atol=ATOL, rtol=RTOL))


def test_property_applies_on_a_share_of_generated_cases():
    if not APPLIED:
        test_property_declines_or_is_exact()
    assert_applies_share(APPLIED, at_least=0.3)
    assert not all(APPLIED)


def unsqueeze_pair(first, second, opset):
    """Nodes and initializers of y = Relu(Unsqueeze(Unsqueeze(x, first), second)) (middle u)."""
    nodes, inits = [], []
    for src, dst, axes in (("x", "u", first), ("u", "t", second)):
        if opset < 13:
            nodes.append(helper.make_node("Unsqueeze", [src], [dst], axes=axes))
        else:
            inits.append(numpy_helper.from_array(np.array(axes, np.int64), f"{dst}_axes"))
            nodes.append(helper.make_node("Unsqueeze", [src, f"{dst}_axes"], [dst]))
    return nodes + [helper.make_node("Relu", ["t"], ["y"])], inits


@pytest.mark.parametrize("opset", [11, 13, 17])
@pytest.mark.parametrize(
    ("first", "second", "combined"),
    [([1], [2], [1, 2]), ([0], [0], [0, 1]), ([2], [0], [0, 3]), ([-1], [1, -1], [1, 3, 4]), ([1, 2], [-3], [1, 2, 3])],
)
def test_unsqueeze_chain_becomes_one_unsqueeze(opset, first, second, combined):
    """Unsqueeze(Unsqueeze(x, a), c) == Unsqueeze(x, a mapped to the output's positions, plus c)."""
    x = np.zeros((2, 3))
    middle = np.expand_dims(x, first)
    y_shape = list(np.expand_dims(middle, second).shape)
    assert y_shape == list(np.expand_dims(x, combined).shape)  # the mapping, checked by numpy itself
    nodes, inits = unsqueeze_pair(first, second, opset)
    m = make_model(nodes, [value("x", [2, 3])], [value("y", y_shape)], inits, opset=opset)
    result = fuse(m, {"Unsqueeze": 1, "Relu": 1})
    assert result.counts == {"unsqueeze_chain": 1}
    node = next(n for n in result.model.graph.node if n.op_type == "Unsqueeze")
    if opset < 13:
        assert list(helper.get_attribute_value(node.attribute[0])) == combined
    else:
        axes = next(t for t in result.model.graph.initializer if t.name == node.input[1])
        assert numpy_helper.to_array(axes).tolist() == combined


def test_unsqueeze_chain_declines_a_shared_middle():
    shared = model(
        "a = Constant<value = int64[1] {1}>() b = Constant<value = int64[1] {2}>() "
        "u = Unsqueeze(x, a) t = Unsqueeze(u, b) y = Relu(t) z = Relu(u)",
        inputs="float[N,3] x",
        outputs="float[N,1,1,3] y, float[N,1,3] z",
    )
    assert_declines(FuseReshapes(), shared)


@st.composite
def unsqueeze_chains(draw):
    """x [2,3] through Unsqueeze(Unsqueeze(x, a), c): every valid pair of axes lists (negative too)."""
    opset = draw(st.sampled_from([11, 13, 17]))
    first = draw(st.lists(st.integers(-3, 2), min_size=1, max_size=2, unique=True))
    second = draw(st.lists(st.integers(-5, 4), min_size=1, max_size=2, unique=True))
    shared = draw(st.booleans())  # the middle also read elsewhere: a decline
    try:
        middle = np.expand_dims(np.zeros((2, 3)), first)
        out = np.expand_dims(middle, second)
    except (ValueError, np.exceptions.AxisError):
        assume(False)
    nodes, inits = unsqueeze_pair(first, second, opset)
    outputs = [value("y", list(out.shape))]
    if shared:
        nodes.append(helper.make_node("Relu", ["u"], ["z"]))
        outputs.append(value("z", list(middle.shape)))
    return make_model(nodes, [value("x", [2, 3])], outputs, inits, opset=opset)


UNSQUEEZE_APPLIED: list[bool] = []


@property_settings(max_examples=40)
@given(unsqueeze_chains())
def test_property_unsqueeze_chains_decline_or_are_exact(m):
    UNSQUEEZE_APPLIED.append(check_declines_or_exact(FuseReshapes(), m, atol=ATOL, rtol=RTOL))


def test_property_unsqueeze_chains_apply_on_a_share():
    if not UNSQUEEZE_APPLIED:
        test_property_unsqueeze_chains_decline_or_are_exact()
    assert_applies_share(UNSQUEEZE_APPLIED, at_least=0.3)
    assert not all(UNSQUEEZE_APPLIED)
