"""dead-code: structure, numerics, checker, idempotence, custom-domain decline, properties."""

from __future__ import annotations

import numpy as np
import onnx
from graphkit_passes.dead_code import DeadCode
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

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


def dead_branch_model(opset=13, ir_version=8) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Mul", ["r", "w_dead"], ["dead1"]),  # nothing reads dead1/dead2
        helper.make_node("Exp", ["dead1"], ["dead2"]),
        helper.make_node("Add", ["r", "b"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.full([3], 2.0, np.float32), "w_dead"),
        numpy_helper.from_array(np.arange(3, dtype=np.float32), "b"),
        numpy_helper.from_array(np.ones([5], np.float32), "unused"),
    ]
    model = make_model(nodes, [value("x", ["batch", 3])], [value("y", ["batch", 3])], inits, opset, ir_version)
    model.graph.value_info.append(value("dead2", ["batch", 3]))
    return model


def test_removes_dead_nodes_initializers_and_their_value_info():
    model = dead_branch_model()
    result = assert_pass_rewrites(DeadCode(), model, atol=0, rtol=0, dims={"batch": 2})
    assert result.counts == {"nodes_removed": 2, "initializers_removed": 2}
    assert op_counts(result.model) == {"Relu": 1, "Add": 1}
    assert [t.name for t in result.model.graph.initializer] == ["b"]
    assert not result.model.graph.value_info
    assert_idempotent(DeadCode(), result.model)


def test_keeps_initializers_that_are_graph_inputs():
    model = dead_branch_model()
    model.graph.input.append(value("unused", [5]))  # overridable at run time: part of the interface
    result = run_pass(DeadCode(), model)
    assert "unused" in {t.name for t in result.model.graph.initializer}
    assert [v.name for v in result.model.graph.input] == ["x", "unused"]


def test_names_read_only_inside_a_subgraph_stay():
    then = helper.make_graph([helper.make_node("Add", ["r", "c"], ["t"])], "then", [], [value("t", [3])])
    orelse = helper.make_graph([helper.make_node("Sub", ["r", "c"], ["e"])], "else", [], [value("e", [3])])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Neg", ["x"], ["c"]),  # read only inside the branches
        helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=orelse),
    ]
    model = make_model(nodes, [value("x", [3]), value("cond", [], TensorProto.BOOL)], [value("y", [3])])
    result = run_pass(DeadCode(), model)
    assert not result.modified


def test_dead_custom_domain_node_is_kept_and_declined():
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Probe", ["x"], ["p"], domain="com.example")]
    model = make_model(nodes, [value("x", [3])], [value("y", [3])])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert_declines(DeadCode(), model, reason_contains="custom domain")


def test_old_ir_removes_the_initializer_input_too():
    model = dead_branch_model(opset=9, ir_version=3)
    for tensor in model.graph.initializer:
        model.graph.input.append(value(tensor.name, list(tensor.dims)))
    result = run_pass(DeadCode(), model)
    assert [v.name for v in result.model.graph.input] == ["x", "b"]


@st.composite
def graphs_with_dead_nodes(draw, dead_tail: bool):
    """A random chain of unary/binary ops over x; some results feed nothing (always one when ``dead_tail``)."""
    count = draw(st.integers(1, 8))
    names, nodes, outputs = ["x"], [], []
    for i in range(count):
        op = draw(st.sampled_from(["Relu", "Neg", "Abs", "Add", "Mul", "Sub"]))
        a = draw(st.sampled_from(names))
        inputs = [a] if op in ("Relu", "Neg", "Abs") else [a, draw(st.sampled_from(names))]
        nodes.append(helper.make_node(op, inputs, [f"v{i}"]))
        names.append(f"v{i}")
    chosen = draw(st.sets(st.sampled_from(names[1:]), min_size=1, max_size=len(names) - 1))
    if dead_tail:  # one more node that nothing reads
        nodes.append(helper.make_node("Exp", [draw(st.sampled_from(names))], ["dead"]))
    outputs = [value(n, ["batch", 4]) for n in sorted(chosen)]
    return make_model(nodes, [value("x", ["batch", 4])], outputs, opset=draw(st.sampled_from([11, 13, 17])))


@PROPERTY
@given(st.tuples(*[graphs_with_dead_nodes(dead_tail=i % 2 == 0) for i in range(8)]))
def test_property_dead_code_is_exact_and_leaves_only_live_nodes(models):
    applied = 0
    for model in models:
        result = run_pass(DeadCode(), model)
        live, wanted = set(), {o.name for o in model.graph.output}
        for node in reversed(model.graph.node):
            if set(node.output) & wanted:
                live.add(node.output[0])
                wanted |= set(node.input)
        assert {n.output[0] for n in result.model.graph.node} == live
        if result.modified:
            applied += 1
            assert_numerically_equal(model, result.model, atol=0, rtol=0, dims={"batch": 3})
    assert applied >= 4, f"dead-code applied on only {applied} of {len(models)} generated graphs"
