"""cse: structure, numerics, checker, idempotence, what is never merged, properties."""

from __future__ import annotations

import numpy as np
import onnx
from graphkit_passes.cse import CommonSubexpressions
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.model_io import op_counts
from graphkit.testing import (
    assert_idempotent,
    assert_numerically_equal,
    assert_pass_rewrites,
    make_model,
    property_settings,
    run_pass,
    value,
)

PROPERTY = property_settings()


def twin_model() -> onnx.ModelProto:
    """Two copies of (x * w + b) -> Relu, with equal constants under different names, summed."""
    nodes = [
        helper.make_node("Mul", ["x", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node("Mul", ["x", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b"], ["a2"]),
        helper.make_node("Relu", ["a2"], ["r2"]),
        helper.make_node("Constant", [], ["c1"], value=numpy_helper.from_array(np.array([0.5], np.float32))),
        helper.make_node("Constant", [], ["c2"], value=numpy_helper.from_array(np.array([0.5], np.float32))),
        helper.make_node("Mul", ["r1", "c1"], ["h1"]),
        helper.make_node("Mul", ["r2", "c2"], ["h2"]),
        helper.make_node("Add", ["h1", "h2"], ["y"]),
    ]
    w = np.linspace(-1, 1, 4).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "w1"),
        numpy_helper.from_array(w.copy(), "w2"),
        numpy_helper.from_array(np.ones(4, np.float32), "b"),
    ]
    return make_model(nodes, [value("x", ["batch", 4])], [value("y", ["batch", 4])], inits)


def test_merges_twin_chains_and_equal_constants():
    model = twin_model()
    result = assert_pass_rewrites(CommonSubexpressions(), model, atol=0, rtol=0, dims={"batch": 3})
    assert result.counts == {"nodes_merged": 5, "initializers_merged": 1}
    assert op_counts(result.model) == {"Mul": 2, "Add": 2, "Relu": 1, "Constant": 1}
    assert sorted(t.name for t in result.model.graph.initializer) == ["b", "w1"]
    final = result.model.graph.node[-1]
    assert final.input[0] == final.input[1] == "h1"
    assert_idempotent(CommonSubexpressions(), result.model)


def test_different_attributes_are_not_merged():
    nodes = [
        helper.make_node("Softmax", ["x"], ["s0"], axis=0),
        helper.make_node("Softmax", ["x"], ["s1"], axis=1),
        helper.make_node("Add", ["s0", "s1"], ["y"]),
    ]
    model = make_model(nodes, [value("x", [2, 3])], [value("y", [2, 3])])
    assert not run_pass(CommonSubexpressions(), model).modified


def test_never_merges_random_ops_graph_outputs_or_overridable_initializers():
    nodes = [
        helper.make_node("RandomNormalLike", ["x"], ["n1"], seed=1.0),
        helper.make_node("RandomNormalLike", ["x"], ["n2"], seed=1.0),
        helper.make_node("Relu", ["x"], ["y1"]),
        helper.make_node("Relu", ["x"], ["y2"]),  # a graph output: its name is interface
        helper.make_node("Add", ["n1", "n2"], ["n"]),
        helper.make_node("Add", ["x", "k1"], ["p"]),
        helper.make_node("Add", ["x", "k2"], ["q"]),
    ]
    k = numpy_helper.from_array(np.ones(3, np.float32), "k1")
    k2 = numpy_helper.from_array(np.ones(3, np.float32), "k2")
    outputs = [value(n, [3]) for n in ("y1", "y2", "n", "p", "q")]
    model = make_model(nodes, [value("x", [3]), value("k1", [3])], outputs, [k, k2])
    result = run_pass(CommonSubexpressions(), model)
    assert not result.modified and op_counts(result.model)["RandomNormalLike"] == 2


def test_no_twins_declines_nothing_and_changes_nothing():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [value("x", [3])], [value("y", [3])])
    result = run_pass(CommonSubexpressions(), model)
    assert not result.modified and result.model is model


def test_outer_scope_reads_in_subgraphs_are_renamed():
    then = helper.make_graph([helper.make_node("Neg", ["r2"], ["t"])], "then", [], [value("t", [3])])
    orelse = helper.make_graph([helper.make_node("Abs", ["r2"], ["e"])], "else", [], [value("e", [3])])
    nodes = [
        helper.make_node("Relu", ["x"], ["r1"]),
        helper.make_node("Relu", ["x"], ["r2"]),
        helper.make_node("If", ["cond"], ["z"], then_branch=then, else_branch=orelse),
        helper.make_node("Add", ["r1", "z"], ["y"]),
    ]
    model = make_model(nodes, [value("x", [3]), value("cond", [], TensorProto.BOOL)], [value("y", [3])])
    result = run_pass(CommonSubexpressions(), model)
    assert result.counts == {"nodes_merged": 1}
    branch = result.model.graph.node[1].attribute[0].g
    assert branch.node[0].input[0] == "r1"
    for cond in (True, False):
        feeds = {"x": np.array([-1.0, 0.5, 2.0], np.float32), "cond": np.array(cond)}
        assert_numerically_equal(model, result.model, atol=0, rtol=0, feeds=feeds)


def test_large_constants_are_left_alone():
    model = twin_model()
    result = run_pass(CommonSubexpressions(max_constant_bytes=4), model)
    assert "w2" in {t.name for t in result.model.graph.initializer}


@st.composite
def graphs_with_twins(draw, twin: bool):
    """A random DAG of ops over x; with ``twin``, one node is repeated with the same inputs."""
    names, nodes = ["x"], []
    for i in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["Relu", "Neg", "Add", "Mul", "Max"]))
        inputs = [draw(st.sampled_from(names))] + ([] if op in ("Relu", "Neg") else [draw(st.sampled_from(names))])
        nodes.append(helper.make_node(op, inputs, [f"v{i}"]))
        names.append(f"v{i}")
    if twin:
        original = draw(st.sampled_from(nodes))
        nodes.append(helper.make_node(original.op_type, list(original.input), ["twin"]))
        nodes.append(helper.make_node("Sub", ["twin", original.output[0]], ["diff"]))
        names.append("diff")
    return make_model(nodes, [value("x", ["batch", 4])], [value(names[-1], ["batch", 4])])


@PROPERTY
@given(st.tuples(*[graphs_with_twins(twin=i % 2 == 0) for i in range(8)]))
def test_property_cse_is_exact_and_leaves_no_twins(models):
    applied = 0
    for model in models:
        result = run_pass(CommonSubexpressions(), model)
        outputs = {o.name for o in model.graph.output}
        keys = [(n.op_type, tuple(n.input)) for n in result.model.graph.node if n.output[0] not in outputs]
        assert len(keys) == len(set(keys)), "two identical nodes are left (neither is a graph output)"
        if result.modified:
            applied += 1
            assert_numerically_equal(model, result.model, atol=0, rtol=0, dims={"batch": 2})
    assert applied >= 4, f"cse applied on only {applied} of {len(models)} generated graphs"


def test_declines_nothing_it_does_not_understand():
    # a custom-domain pair with equal inputs is never merged (effects unknown)
    nodes = [
        helper.make_node("Probe", ["x"], ["a"], domain="com.example"),
        helper.make_node("Probe", ["x"], ["b"], domain="com.example"),
    ]
    model = make_model(nodes, [value("x", [3])], [value("a", [3]), value("b", [3])])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert not CommonSubexpressions()(model).modified
