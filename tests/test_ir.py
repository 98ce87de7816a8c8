"""graphkit.ir.graph: export copies large weights once, keeps them exact, and never touches the input."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.graph import LIFT_MIN_BYTES, to_graph, to_model
from graphkit.ir.model_io import content_hash
from graphkit.testing import assert_pass_rewrites, run_pass
from graphkit.transform.registry import get_pass


def big_conv_model(with_bn: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)  # 73 KiB: above the lift size
    assert weight.nbytes >= LIFT_MIN_BYTES
    inits = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "b"),
    ]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])]
    if with_bn:
        for name in ("scale", "bias", "mean"):
            inits.append(numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), name))
        inits.append(numpy_helper.from_array(rng.uniform(0.5, 2, 64).astype(np.float32), "var"))
        nodes.append(helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"]))
        last = "n"
    else:
        nodes.append(helper.make_node("Identity", ["c"], ["n"]))
        last = "n"
    nodes.append(helper.make_node("Relu", [last], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 32, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_unchanged_large_weight_is_exported_once_and_bit_identical():
    model = big_conv_model(with_bn=False)
    result = assert_pass_rewrites(get_pass("eliminate-noops")(), model, atol=0, rtol=0, dims={"batch": 2})
    weights = {t.name: t for t in result.model.graph.initializer}
    assert weights["w"].raw_data == model.graph.initializer[0].raw_data
    assert "w" not in {v.name for v in result.model.graph.value_info}


def test_new_large_weights_from_a_pass_are_exact():
    model = big_conv_model(with_bn=True)
    # 288-term fp32 sums reaching ~100: folding BN reorders the arithmetic by a few ulps
    result = assert_pass_rewrites(get_pass("fold-batchnorm")(), model, atol=1e-4, rtol=1e-4, dims={"batch": 2})
    assert [n.op_type for n in result.model.graph.node] == ["Conv", "Relu"]


def test_lifted_export_equals_graphsurgeons_own_export():
    import onnx_graphsurgeon as gs

    graph = to_graph(big_conv_model(with_bn=False))
    graph.tensors()["w"].values = graph.tensors()["w"].values * 2  # a new numpy-valued weight
    ours = {t.name: t for t in to_model(graph, big_conv_model(with_bn=False)).graph.initializer}
    theirs = {t.name: t for t in gs.export_onnx(graph, do_type_check=False).graph.initializer}
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].raw_data == theirs[name].raw_data and ours[name].dims == theirs[name].dims


def test_round_trip_leaves_graph_and_input_as_they_were():
    model = big_conv_model(with_bn=False)
    before = content_hash(model)
    graph = to_graph(model)
    exported = to_model(graph, model)
    assert content_hash(model) == before
    # the graph still holds its constants after export (placeholders were swapped back)
    assert isinstance(graph.tensors()["w"], type(graph.tensors()["b"]))
    again = to_model(graph, model)
    assert content_hash(again) == content_hash(exported)
    run_pass(get_pass("eliminate-noops")(), exported)


# --- node removal: one scan per call, tombstones for loops over a snapshot ----------------------


def _chain_graph(length: int = 30):
    """x -> Relu -> Relu -> ... -> y, plus a dead side branch Neg -> Abs hanging off the first Relu."""
    nodes = [helper.make_node("Relu", ["x" if i == 0 else f"t{i - 1}"], [f"t{i}"], name=f"r{i}") for i in range(length)]
    nodes.append(helper.make_node("Neg", ["t0"], ["side0"], name="neg"))
    nodes.append(helper.make_node("Abs", ["side0"], ["side1"], name="abs"))
    nodes.append(helper.make_node("Identity", [f"t{length - 1}"], ["y"], name="out"))
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "chain",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [
                helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]),
                helper.make_tensor_value_info("side1", TensorProto.FLOAT, [2]),
            ],
        )
    )
    return to_graph(model)


def test_remove_nodes_removes_many_at_once_and_their_dead_producers():
    from graphkit.ir.graph import is_removed, remove_nodes

    graph = _chain_graph()
    by_name = {n.name: n for n in graph.nodes}
    graph.outputs = [t for t in graph.outputs if t.name != "side1"]
    remove_nodes(graph, [by_name["abs"], by_name["abs"]])  # listed twice: removed once
    # 'neg' lost its only reader: removed as dead; the chain feeds 'y' and stays.
    assert [n.name for n in graph.nodes] == [f"r{i}" for i in range(30)] + ["out"]
    assert is_removed(by_name["abs"]) and is_removed(by_name["neg"]) and not is_removed(by_name["r0"])
    remove_nodes(graph, [by_name["abs"]])  # no longer in the graph: nothing happens
    assert len(graph.nodes) == 31
    # Dropping the graph output's producer makes the whole chain dead, transitively.
    graph.outputs = []
    remove_nodes(graph, [by_name["out"]])
    assert graph.nodes == [] and all(is_removed(by_name[f"r{i}"]) for i in range(30))


def test_remove_dead_keeps_producers_that_are_still_read():
    from graphkit.ir.graph import is_removed, remove_dead

    graph = _chain_graph()
    by_name = {n.name: n for n in graph.nodes}
    remove_dead(graph, [by_name["neg"].outputs[0]])  # read by 'abs'
    remove_dead(graph, [by_name["abs"].outputs[0]])  # a graph output
    assert len(graph.nodes) == 33 and not any(is_removed(n) for n in graph.nodes)


def _edit(graph, deferred: bool):
    """Replace r3 by two new nodes, drop 'abs' and 'neg', then replace one of the new nodes again."""
    import contextlib

    import onnx_graphsurgeon as gs

    from graphkit.ir.graph import deferred_node_edits, fresh_name, insert_before, remove_nodes, replace_all_uses

    by_name = {n.name: n for n in graph.nodes}
    graph.outputs = [t for t in graph.outputs if t.name != "side1"]
    with deferred_node_edits(graph) if deferred else contextlib.nullcontext():
        r3 = by_name["r3"]
        mid = gs.Variable(fresh_name(graph, "t3"))
        first = gs.Node("Abs", fresh_name(graph, "r3"), inputs=[r3.inputs[0]], outputs=[mid])
        insert_before(graph, r3, [first])
        out = gs.Variable(fresh_name(graph, "t3"))
        second = gs.Node("Relu", fresh_name(graph, "r3"), inputs=[mid], outputs=[out])
        insert_before(graph, r3, [second])
        replace_all_uses(graph, r3.outputs[0], out)
        remove_nodes(graph, [r3, by_name["abs"]])
        third = gs.Node("Neg", fresh_name(graph, "again"), inputs=[first.inputs[0]], outputs=[gs.Variable("t3_again")])
        insert_before(graph, first, [third])
        replace_all_uses(graph, mid, third.outputs[0])
        remove_nodes(graph, [first])
    return [n.name for n in graph.nodes], [t.name for n in graph.nodes for t in n.outputs]


def test_deferred_node_edits_give_the_same_graph_as_immediate_ones():
    from graphkit.ir.graph import is_removed

    immediate = _edit(_chain_graph(), deferred=False)
    deferred = _edit(_chain_graph(), deferred=True)
    assert deferred == immediate
    names, tensors = deferred
    assert names[:5] == ["r0", "r1", "r2", "again", "r3_2"] and "neg" not in names and "abs" not in names
    assert len(set(names)) == len(names) and len(set(tensors)) == len(tensors)  # fresh names stayed unique
    assert not any(is_removed(n) for n in _chain_graph().nodes)
