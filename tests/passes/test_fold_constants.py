"""fold-constants: structure, numerics, checker, idempotence, size-limit decline, properties."""

from __future__ import annotations

import numpy as np
import onnx
from graphkit_passes.fold_constants import FoldConstants
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from graphkit.ir.model_io import op_counts
from graphkit.testing import (
    assert_declines,
    assert_idempotent,
    assert_numerically_equal,
    assert_pass_rewrites,
    make_model,
    property_settings,
    run_pass,
    value,
)

PROPERTY = property_settings()


def weight_chain_model(opset=13, ir_version=8) -> onnx.ModelProto:
    """y = x @ (W^T * 0.5 + 1): the weight arithmetic is all constant, the MatMul is not."""
    nodes = [
        helper.make_node("Constant", [], ["half"], value=numpy_helper.from_array(np.array(0.5, np.float32))),
        helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
        helper.make_node("Mul", ["wt", "half"], ["ws"]),
        helper.make_node("Add", ["ws", "one"], ["wf"]),
        helper.make_node("MatMul", ["x", "wf"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 7, "w"),
        numpy_helper.from_array(np.ones([1], np.float32), "one"),
    ]
    return make_model(nodes, [value("x", ["batch", 4])], [value("y", ["batch", 3])], inits, opset, ir_version)


def test_folds_constant_weight_arithmetic_bit_exact():
    model = weight_chain_model()
    result = assert_pass_rewrites(FoldConstants(), model, atol=0, rtol=0, dims={"batch": 2})
    assert result.counts == {"constants_to_initializers": 1, "nodes_folded": 3, "initializers_removed": 2}
    assert op_counts(result.model) == {"MatMul": 1}
    folded = {t.name: numpy_helper.to_array(t) for t in result.model.graph.initializer}
    assert list(folded) == ["wf"]
    expected = (np.arange(12, dtype=np.float32).reshape(3, 4) / 7).T * np.float32(0.5) + np.float32(1)
    np.testing.assert_array_equal(folded["wf"], expected)
    assert_idempotent(FoldConstants(), result.model)


def test_rank0_constant_stays_rank0():
    model = weight_chain_model()
    result = run_pass(FoldConstants(constants_to_initializers=True), model)
    assert op_counts(result.model) == {"MatMul": 1}
    only = make_model(
        [
            helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(np.array(2.0, np.float32))),
            helper.make_node("Mul", ["x", "s"], ["y"]),
        ],
        [value("x", [3])],
        [value("y", [3])],
    )
    scalar = run_pass(FoldConstants(), only).model.graph.initializer[0]
    assert list(scalar.dims) == []


def test_declines_a_broadcast_over_the_size_limit():
    nodes = [
        helper.make_node("Expand", ["c", "shape"], ["big"]),
        helper.make_node("Add", ["x", "big"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([1.5], np.float32), "c"),
        numpy_helper.from_array(np.array([64, 64], np.int64), "shape"),
    ]
    model = make_model(nodes, [value("x", [64, 64])], [value("y", [64, 64])], inits)
    result = assert_declines(FoldConstants(size_limit_bytes=1024), model, reason_contains="over the 1024-byte limit")
    assert "raise size_limit_bytes" in result.declined[0].reason
    grown = assert_pass_rewrites(FoldConstants(size_limit_bytes=1 << 20), model, atol=0, rtol=0)
    assert op_counts(grown.model) == {"Add": 1}


def test_never_folds_graph_output_producers_random_ops_or_custom_domains():
    nodes = [
        helper.make_node("Neg", ["k"], ["out"]),  # graph output: interface
        helper.make_node("RandomNormal", [], ["r"], shape=[3]),
        helper.make_node("Probe", ["k"], ["p"], domain="com.example"),
        helper.make_node("Add", ["x", "r"], ["y1"]),
        helper.make_node("Add", ["x", "p"], ["y2"]),
    ]
    inits = [numpy_helper.from_array(np.ones(3, np.float32), "k")]
    model = make_model(nodes, [value("x", [3])], [value("out", [3]), value("y1", [3]), value("y2", [3])], inits)
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    result = run_pass(FoldConstants(), model)
    assert not result.modified


def test_initializer_that_is_a_graph_input_is_not_a_constant():
    model = weight_chain_model()
    model.graph.input.append(value("w", [3, 4]))  # can be fed at run time
    result = run_pass(FoldConstants(), model)
    assert op_counts(result.model) == {"Transpose": 1, "Mul": 1, "Add": 1, "MatMul": 1}
    feeds = {"x": np.ones([2, 4], np.float32)}
    assert_numerically_equal(model, result.model, atol=0, rtol=0, feeds=feeds)


def test_old_ir_version_lists_new_initializers_as_inputs():
    model = weight_chain_model(opset=9, ir_version=3)
    model.graph.node[0].attribute[0].t.CopyFrom(numpy_helper.from_array(np.array([0.5], np.float32)))
    for tensor in model.graph.initializer:
        model.graph.input.append(value(tensor.name, list(tensor.dims)))
    result = run_pass(FoldConstants(), model)
    assert [v.name for v in result.model.graph.input] == ["x", "wf"]


@st.composite
def constant_chains(draw, foldable: bool):
    """x op f(constants): the constant side is a random chain of ops on initializers (or on x when not foldable)."""
    shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    inits = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), "c0")]
    nodes, last = [], "c0" if foldable else "x"
    for i in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["Neg", "Abs", "Exp", "Add", "Mul", "Sqrt", "Transpose"]))
        extra = []
        if op in ("Add", "Mul"):
            inits.append(numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), f"k{i}"))
            extra = [f"k{i}"]
        if op == "Transpose":  # keep the shape: reverse perm only on squares
            op = "Neg"
        nodes.append(helper.make_node(op, [last, *extra], [f"v{i}"]))
        last = f"v{i}"
    nodes.append(helper.make_node("Add", ["x", last], ["y"]))
    opset = draw(st.sampled_from([11, 13, 17]))
    return make_model(nodes, [value("x", shape)], [value("y", shape)], inits, opset=opset)


@PROPERTY
@given(st.tuples(*[constant_chains(foldable=i % 2 == 0) for i in range(8)]))
def test_property_fold_constants_is_bit_exact(models):
    applied = 0
    for model in models:
        result = run_pass(FoldConstants(), model)
        if result.modified:
            applied += 1
            assert_numerically_equal(model, result.model, atol=0, rtol=0)
            assert all(node.op_type == "Add" for node in result.model.graph.node) or any(
                node.input[0] == "x" for node in result.model.graph.node
            )
    assert applied >= 4, f"fold-constants applied on only {applied} of {len(models)} generated graphs"
