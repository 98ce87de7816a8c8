"""fuse-reshape-transpose: a chain of Reshapes and Transposes becomes at most Reshape -> Transpose -> Reshape."""

from __future__ import annotations

import numpy as np
from graphkit_passes.fuse_reshape_transpose import FuseReshapeTranspose
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from graphkit.testing import (
    assert_applies_share,
    assert_declines,
    assert_idempotent,
    assert_numerically_equal,
    assert_op_types,
    assert_pass_rewrites,
    make_model,
    property_settings,
    run_pass,
    value,
)
from graphkit.transform.registry import get_pass

ATOL = RTOL = 0.0  # no arithmetic: bit-exact
FUSED = ["Reshape", "Transpose", "Reshape"]


def _target(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def chain_model(x_dims, steps, y_dims, opset=13, relu_after=False, extra_outputs=()):
    """x -> the steps (("R", target), ("T", perm) or ("Relu", None)) -> y; a Relu after the chain when ``relu_after``."""
    nodes, inits, source = [], [], "x"
    for k, (kind, arg) in enumerate(steps):
        out = f"h{k}"
        if kind == "R":
            inits.append(_target(f"t{k}", arg))
            nodes.append(helper.make_node("Reshape", [source, f"t{k}"], [out], name=f"reshape{k}"))
        elif kind == "T":
            nodes.append(helper.make_node("Transpose", [source], [out], perm=arg, name=f"transpose{k}"))
        else:
            nodes.append(helper.make_node(kind, [source], [out]))
        source = out
    nodes.append(helper.make_node("Relu" if relu_after else "Identity", [source], ["y"]))
    outputs = [value("y", y_dims)] + [value(name, dims) for name, dims in extra_outputs]
    return make_model(nodes, [value("x", x_dims)], outputs, inits, opset=opset)


# MobileViT's unfold (HF MobileViTLayer.unfolding) of a [B, 16, 16, 16] map into 2x2 patches
UNFOLD = [("R", [-1, 2, 8, 2]), ("T", [0, 2, 1, 3]), ("R", [-1, 16, 64, 4]), ("T", [0, 3, 2, 1]), ("R", [-1, 64, 16])]
# ... and its fold back
FOLD = [("R", [-1, 4, 64, 16]), ("T", [0, 3, 2, 1]), ("R", [-1, 8, 2, 2]), ("T", [0, 2, 1, 3]), ("R", [-1, 16, 16, 16])]


def fuse(m, expected_ops, dims=None):
    for size in (1, 3) if dims else (None,):
        result = assert_pass_rewrites(
            FuseReshapeTranspose(), m, atol=ATOL, rtol=RTOL, dims={dims: size} if dims else None
        )
    assert_op_types(result.model, expected_ops)
    assert_idempotent(FuseReshapeTranspose(), result.model)
    assert [o.name for o in result.model.graph.output] == [o.name for o in m.graph.output]
    return result


def _layout(model):
    """Each Reshape's target and each Transpose's perm, in node order."""
    inits = {i.name: numpy_helper.to_array(i).tolist() for i in model.graph.initializer}
    return [
        (n.op_type, inits[n.input[1]] if n.op_type == "Reshape" else list(n.attribute[0].ints))
        for n in model.graph.node
        if n.op_type in ("Reshape", "Transpose")
    ]


def test_mobilevit_unfold_static_becomes_three_nodes():
    m = chain_model([1, 16, 16, 16], UNFOLD, [4, 64, 16])
    result = fuse(m, FUSED + ["Identity"])
    assert result.counts == {"reshape_transpose_chain": 1}
    # [C, nph, ph, npw, pw] -> [ph, pw, nph, npw, C]; the batch of 1 needs no axis
    assert _layout(result.model) == [
        ("Reshape", [16, 8, 2, 8, 2]),
        ("Transpose", [2, 4, 1, 3, 0]),
        ("Reshape", [4, 64, 16]),
    ]


def test_mobilevit_unfold_with_a_symbolic_batch():
    m = chain_model(["N", 16, 16, 16], UNFOLD, ["M", 64, 16])
    result = fuse(m, FUSED + ["Identity"], dims="N")
    assert _layout(result.model) == [
        ("Reshape", [-1, 16, 8, 2, 8, 2]),
        ("Transpose", [0, 3, 5, 2, 4, 1]),
        ("Reshape", [-1, 64, 16]),
    ]


def test_fold_after_unfold_reads_the_product_dim():
    # the fold's input dim 0 is 4 * N (the seeded product name); the fold reads it as (N, 4)
    m = chain_model(["N", 16, 16, 16], UNFOLD + [("Relu", None)] + FOLD, ["N", 16, 16, 16])
    result = fuse(m, FUSED + ["Relu"] + FUSED + ["Identity"], dims="N")
    assert result.counts == {"reshape_transpose_chain": 2}
    assert _layout(result.model)[3:] == [
        ("Reshape", [-1, 2, 2, 8, 8, 16]),
        ("Transpose", [0, 5, 3, 1, 4, 2]),
        ("Reshape", [-1, 16, 16, 16]),
    ]


def test_a_chain_that_moves_no_element_becomes_one_reshape():
    # a Transpose of a size-1 axis between Reshapes keeps the element order
    m = chain_model([2, 3], [("R", [2, 1, 3]), ("T", [1, 0, 2]), ("R", [3, 2])], [3, 2])
    result = fuse(m, ["Reshape", "Identity"])
    assert _layout(result.model) == [("Reshape", [3, 2])]


def test_the_end_reshapes_are_left_out_where_the_shape_is_already_right():
    # Transpose -> Reshape -> Transpose of [2, 3, 4]: one Transpose of the input's own axes
    m = chain_model([2, 3, 4], [("T", [2, 0, 1]), ("R", [4, 2, 3]), ("T", [0, 2, 1])], [4, 3, 2])
    result = fuse(m, ["Transpose", "Identity"])
    assert _layout(result.model) == [("Transpose", [2, 1, 0])]
    assert result.model.graph.node[0].name == "transpose2"  # the chain end's name


def test_a_transpose_without_perm_reverses_the_axes():
    m = chain_model([2, 3, 4], [("T", None), ("R", [4, 6]), ("T", [1, 0]), ("R", [24])], [24])
    m.graph.node[0].ClearField("attribute")
    result = fuse(m, ["Transpose", "Reshape", "Identity"])
    assert _layout(result.model) == [("Transpose", [1, 0, 2]), ("Reshape", [24])]


def test_a_chain_that_is_the_identity_goes():
    # SegFormer: [B, HW, C] -> [B, H, W, C] -> NCHW, then flatten(2).transpose(1, 2) back to [B, HW, C]
    steps = [("R", [0, 4, 4, 8]), ("T", [0, 3, 1, 2]), ("R", [0, 8, -1]), ("T", [0, 2, 1])]
    m = chain_model(["N", 16, 8], steps, ["N", 16, 8], relu_after=True)
    result = fuse(m, ["Relu"], dims="N")
    assert result.model.graph.node[0].input[0] == "x"


def test_an_identity_chain_from_a_graph_input_to_a_graph_output_keeps_one_reshape():
    steps = [("R", [2, 12]), ("T", [1, 0]), ("R", [12, 2]), ("T", [1, 0]), ("R", [2, 3, 4])]
    m = chain_model([2, 3, 4], steps, [2, 3, 4])
    m.graph.node.pop()  # no Identity: the chain writes y
    m.graph.node[-1].output[0] = "y"
    result = fuse(m, ["Reshape"])
    assert _layout(result.model) == [("Reshape", [2, 3, 4])]


def test_a_chain_already_in_its_shortest_form_is_left_alone_silently():
    m = chain_model([2, 3, 4], [("R", [6, 4]), ("T", [1, 0]), ("R", [2, 12])], [2, 12])
    result = run_pass(FuseReshapeTranspose(), m)
    assert not result.modified and not result.declined


def test_declines_a_reshape_that_cuts_a_dim_across_factors():
    m = chain_model([6, 4], [("T", [1, 0]), ("R", [6, 4]), ("T", [1, 0]), ("R", [24])], [24])
    assert_declines(FuseReshapeTranspose(), m, reason_contains="cuts a dim across factors")


def test_declines_a_minus_one_that_is_not_whole_for_every_batch():
    m = chain_model(["N", 6], [("T", [1, 0]), ("R", [4, -1]), ("T", [1, 0]), ("R", [-1])], ["M"])
    assert_declines(FuseReshapeTranspose(), m, reason_contains="not a whole number of elements for every batch")


def test_declines_two_symbolic_dims():
    m = chain_model(["N", "K", 4], [("T", [2, 0, 1]), ("R", [4, -1]), ("T", [1, 0]), ("R", [-1])], ["M"])
    assert_declines(FuseReshapeTranspose(), m, reason_contains="dims of two symbols")


def test_declines_an_input_of_unknown_rank():
    m = chain_model([2, 3, 4], [("R", [6, 4]), ("T", [1, 0]), ("R", [2, 2, 6]), ("T", [2, 0, 1])], [6, 2, 2])
    m.graph.input.append(value("k", [2], elem=7))
    m.graph.node.insert(0, helper.make_node("Reshape", ["x", "k"], ["xk"]))
    m.graph.node[1].input[0] = "xk"
    assert_declines(FuseReshapeTranspose(), m, reason_contains="rank of the chain input 'xk' is unknown")


def test_a_value_read_outside_the_chain_splits_it():
    # h2 is also a graph output: the chain after it is two nodes, the one before it three
    steps = UNFOLD[:3] + [("T", [0, 3, 2, 1]), ("R", [4, 64, 16])]
    m = chain_model([1, 16, 16, 16], steps, [4, 64, 16], extra_outputs=[("h2", [1, 16, 64, 4])])
    result = run_pass(FuseReshapeTranspose(), m)
    assert not result.modified  # three nodes before h2 have no shorter form; two after it neither
    m2 = chain_model([1, 16, 16, 16], steps, [4, 64, 16], extra_outputs=[("h1", [128, 8, 2, 2])])
    result = fuse(m2, ["Reshape", "Transpose", "Reshape", "Transpose", "Identity"])
    assert result.counts == {"reshape_transpose_chain": 1}  # h1..y: 3 nodes -> 2 (its last Reshape left out)
    assert any(o.name == "h1" for o in result.model.graph.output)


def test_registered_exact_and_in_the_generic_preset():
    from graphkit.transform.presets import pass_names, preset_passes

    cls = get_pass("fuse-reshape-transpose")
    assert cls is FuseReshapeTranspose and cls.exact
    assert "fuse-reshape-transpose" in pass_names(preset_passes("generic"))


PRIMES = [2, 3, 2, 5]


@st.composite
def chains(draw):
    """A chain of 3-6 Reshapes (random regroupings of the element count, a -1 for the batch) and
    Transposes (random perms) on a [N?, ...] input whose static dims are small primes' products."""
    symbolic = draw(st.booleans())
    factors = draw(st.permutations(PRIMES))
    cut = sorted(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3, unique=True)))
    static = [int(np.prod(factors[a:b])) for a, b in zip([0, *cut], [*cut, 4])]
    dims = (["N"] if symbolic else []) + static
    rank, steps = len(dims), []
    for _ in range(draw(st.integers(3, 6))):
        if draw(st.booleans()):
            perm = draw(st.permutations(list(range(rank))))
            steps.append(("T", list(perm)))
        else:
            order = draw(st.permutations(PRIMES))  # a regrouping that may cut across factors
            cut = sorted(draw(st.lists(st.integers(1, 3), max_size=3, unique=True)))
            target = [int(np.prod(order[a:b])) for a, b in zip([0, *cut], [*cut, 4])]
            if symbolic:
                target.insert(draw(st.integers(0, len(target))), -1)
            steps.append(("R", target))
            rank = len(target)
    y_dims = [f"d{i}" for i in range(rank)]
    return chain_model(dims, steps, y_dims, opset=draw(st.sampled_from([13, 17])), relu_after=True), symbolic


APPLIED: list[bool] = []


@property_settings(max_examples=60)
@given(chains())
def test_property_declines_or_is_exact(case):
    m, symbolic = case
    result = run_pass(FuseReshapeTranspose(), m)
    if result.modified:
        for size in (1, 3) if symbolic else (1,):
            assert_numerically_equal(m, result.model, atol=ATOL, rtol=RTOL, dims={"N": size})
        assert len(result.model.graph.node) < len(m.graph.node)
        assert_idempotent(FuseReshapeTranspose(), result.model)
    APPLIED.append(result.modified)


def test_property_applies_on_a_share_of_generated_cases():
    if not APPLIED:
        test_property_declines_or_is_exact()
    assert_applies_share(APPLIED, at_least=0.3)
    assert not all(APPLIED)  # chains already short and cuts across factors are generated too
