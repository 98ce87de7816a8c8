"""Checks proportional to what changed (issue 24 item 2): in ``full`` mode, on a model with at
least ``validate.shape_edit_region_mb`` of weights, a pass that edited only shape arithmetic and
data movement is checked on its region instead of end to end. Passes that are wrong on purpose
(a baked dim, a wrong routing constant, a float rewrite) still fail the run: exit 1, no model.
The tests set the threshold to 0 MB so that tiny models take the large-model path."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.check.region import check_region
from graphkit.check.region_find import RegionOutOfScope
from graphkit.check.region_scope import not_shape_edit
from graphkit.util.tolerance import Tolerance
from tests.test_every_dim import BAKE, hidden_reshape_model

ALWAYS = ("--set", "validate.shape_edit_region_mb=0")

# Wrong on purpose: every Transpose becomes an Identity (a "no-op" that is not one; same shape
# on a square input) and every Relu an Abs (float arithmetic: not a shape edit).
WRONG = '''
from onnx import helper
from graphkit.ir.model_io import clone
from graphkit.transform.pass_base import Pass, PassResult


def _swap(model, op, new_op):
    out = clone(model)
    changed = 0
    for index, node in enumerate(list(out.graph.node)):
        if node.op_type == op:
            out.graph.node.remove(node)
            out.graph.node.insert(index, helper.make_node(new_op, [node.input[0]], list(node.output), name=node.name))
            changed += 1
    return PassResult(out, bool(changed), counts={"swapped": changed})


@register("transpose-is-noop")
class TransposeIsNoop(Pass):
    """Drop every Transpose (wrong on purpose: it is no no-op)."""

    def run(self, model):
        return _swap(model, "Transpose", "Identity")


@register("relu-to-abs")
class ReluToAbs(Pass):
    """Relu becomes Abs (wrong on purpose: float arithmetic)."""

    def run(self, model):
        return _swap(model, "Relu", "Abs")
'''


def square_model() -> onnx.ModelProto:
    """x [batch, 4, 4] -> Relu -> Transpose(0, 2, 1) -> Reshape(Concat(batch, 16)) -> y [batch, 16]."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Shape", ["t"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["b"]),
        helper.make_node("Unsqueeze", ["b", "zero"], ["b1"]),
        helper.make_node("Concat", ["b1", "sixteen"], ["target"], axis=0),
        helper.make_node("Reshape", ["t", "target"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "i0"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([16], np.int64), "sixteen"),
    ]
    return _checked_model(nodes, inits, "square", ["batch", 4, 4], ["batch", 16])


def _checked_model(nodes, inits, name: str, x_dims: list, y_dims: list) -> onnx.ModelProto:
    """An opset-13 model x (float) -> y (float) of ``nodes``, checked by onnx.checker."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def pass_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("passes")
    # its own name: a pass name is registered from one file only (test_every_dim registers bake-dim)
    (folder / "bake.py").write_text(BAKE.replace('@register("bake-dim")', '@register("bake-seq")'))
    (folder / "wrong.py").write_text("from graphkit.transform.registry import register\n" + WRONG)
    return folder


def _apply(gk, tmp_path, pass_dir, model, passes, *extra):
    onnx.save(model, tmp_path / "m.onnx")
    args = ["apply", tmp_path / "m.onnx", tmp_path / "o.onnx", "--passes", ",".join(passes)]
    code, stdout, err = gk(*args, "--passes-dir", pass_dir, "--strict", *extra)
    report = json.loads((tmp_path / "o.graphkit" / "report.json").read_text())
    return code, stdout + err, report


def _record(report: dict, name: str) -> dict:
    return next(r for r in report["passes"] if r["name"] == name)


def test_a_dim_baked_into_a_shape_chain_fails_the_region_check(gk, tmp_path, pass_dir):
    """bake-seq turns Gather(Shape(x), 1) into 16: a shape edit, checked on its region at both seq
    sizes; seq 12 shows it. The run fails: exit 1, no model."""
    code, text, report = _apply(gk, tmp_path, pass_dir, hidden_reshape_model(), ["bake-seq"], *ALWAYS)
    assert code == 1, text
    assert not (tmp_path / "o.onnx").exists()
    record = _record(report, "bake-seq")
    assert record["status"] == "rolled-back"  # --strict: a rolled-back pass fails the run
    assert record["validation"]["mode"] == "region"  # the region check, not an end-to-end one, caught it
    failing = {o["case"] for o in record["validation"]["outputs"] if not o["passed"]}
    assert failing == {"b2"}  # seq 16 is the baked value; seq 12 is not


def test_a_wrong_routing_fails_the_region_check(gk, tmp_path, pass_dir):
    """A Transpose dropped as a "no-op" keeps every shape; distinct random values show the routing."""
    code, text, report = _apply(gk, tmp_path, pass_dir, square_model(), ["transpose-is-noop"], *ALWAYS)
    assert code == 1, text
    assert not (tmp_path / "o.onnx").exists()
    record = _record(report, "transpose-is-noop")
    assert record["status"] == "rolled-back" and record["validation"]["mode"] == "region"


def test_a_float_rewrite_is_checked_end_to_end(gk, tmp_path, pass_dir):
    """Relu -> Abs computes on float values: not a shape edit, so the golden end-to-end check runs."""
    code, text, report = _apply(gk, tmp_path, pass_dir, square_model(), ["relu-to-abs"], *ALWAYS)
    assert code == 1, text
    assert not (tmp_path / "o.onnx").exists()
    record = _record(report, "relu-to-abs")
    assert record["status"] == "rolled-back"  # --strict: a rolled-back pass fails the run
    assert "mode" not in record["validation"]  # the end-to-end record: golden cases, no region figures
    assert "computes on float values" in record["validation"]["end_to_end_because"]
    assert {c["label"]: c["passed"] for c in record["validation"]["cases"]} == {"b1": False, "b2": False}


def test_a_correct_shape_edit_passes_on_its_region_and_the_final_check(gk, tmp_path, pass_dir):
    code, text, report = _apply(gk, tmp_path, pass_dir, hidden_reshape_model(), ["fold-shapes"], *ALWAYS)
    assert code == 0, text
    assert (tmp_path / "o.onnx").exists()
    record = _record(report, "fold-shapes")
    assert record["status"] == "applied" and record["validation"]["mode"] == "region"
    assert report["final"]["validation"]["passed"]  # the backstop ran on every golden case
    labels = {c["label"] for c in report["final"]["validation"]["cases"]}
    assert {"b1", "b2"} <= labels


def test_below_the_weight_threshold_a_shape_edit_is_checked_end_to_end(gk, tmp_path, pass_dir):
    """The default threshold (100 MB) leaves small models on the end-to-end check, which costs
    less than a region's set-up there."""
    code, text, report = _apply(gk, tmp_path, pass_dir, hidden_reshape_model(), ["fold-shapes"])
    assert code == 0, text
    record = _record(report, "fold-shapes")
    assert "mode" not in record["validation"] and "cases" in record["validation"]


def test_a_bad_threshold_is_one_line_exit_2(gk, tmp_path):
    onnx.save(square_model(), tmp_path / "m.onnx")
    code, _, err = gk("apply", tmp_path / "m.onnx", tmp_path / "o.onnx", "--set", "validate.shape_edit_region_mb=-1")
    assert code == 2
    assert "validate.shape_edit_region_mb" in err and "Traceback" not in err
    assert not (tmp_path / "o.onnx").exists()


def _relu_to_abs(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        if node.op_type == "Relu":
            node.op_type = "Abs"
    return out


def test_the_scope_names_the_first_node_that_computes_on_floats():
    """check_region with the shape-edit scope refuses a float rewrite before running anything."""
    model = square_model()
    with pytest.raises(RegionOutOfScope, match="computes on float values"):
        check_region(
            model, _relu_to_abs(model), [("b1", {"x": (1, 4, 4)})], Tolerance(1e-5, 1e-4), scope=not_shape_edit
        )


def test_a_value_dependent_integer_is_not_a_shape_edit():
    """ArgMax reads float values to make an integer: outside the scope, even though its output is int64."""
    from graphkit.check.region_find import Region, Side
    from graphkit.ir.shapes import infer_value_types

    graph = helper.make_graph(
        [helper.make_node("ArgMax", ["x"], ["a"], axis=1, keepdims=0)],
        "argmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("a", TensorProto.INT64, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    types = infer_value_types(model)
    side = Side(model, [0], ["x"], ["a"])
    reason = not_shape_edit(Region(side, side, [("a", "a")], {"x": "x"}), types, types)
    assert reason.startswith("ArgMax") and "float" in reason


# Wrong on purpose: consumers of an initializer are rewired to the first initializer of the same
# dtype and dims, whatever its values (a "deduplication" that does not compare contents).
MERGE_UNEQUAL = '''
from graphkit.ir.model_io import clone
from graphkit.transform.pass_base import Pass, PassResult


@register("merge-unequal")
class MergeUnequal(Pass):
    """Every initializer read as the first one of its dtype and dims (wrong on purpose)."""

    def run(self, model):
        out = clone(model)
        first, alias = {}, {}
        for tensor in out.graph.initializer:
            key = (tensor.data_type, tuple(tensor.dims))
            alias[tensor.name] = first.setdefault(key, tensor.name)
        for node in out.graph.node:
            for slot, name in enumerate(node.input):
                node.input[slot] = alias.get(name, name)
        kept = [t for t in out.graph.initializer if alias[t.name] == t.name]
        changed = len(kept) != len(out.graph.initializer)
        del out.graph.initializer[:]
        out.graph.initializer.extend(kept)
        return PassResult(out, changed, counts={"merged": len(alias) - len(kept)})


@register("set-ir-7")
class SetIr7(Pass):
    """Only the IR version changes (a model-level field: no node reads it)."""

    def run(self, model):
        out = clone(model)
        out.ir_version = 7
        return PassResult(out, True)
'''


def duplicates_model(equal: bool) -> onnx.ModelProto:
    """y = Gather(x, i1) + b1 + Gather(Relu(x), i2) + b2, x [batch, 4]: with ``equal``, i2 and b2
    are copies of i1 and b1 (what cse merges); else they differ."""
    i1, b1 = np.array([3, 2, 1, 0], np.int64), np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    i2, b2 = (i1.copy(), b1.copy()) if equal else (np.array([0, 1, 2, 3], np.int64), b1 * 3)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Gather", ["x", "i1"], ["g1"], axis=1),
        helper.make_node("Gather", ["r", "i2"], ["g2"], axis=1),
        helper.make_node("Add", ["g1", "b1"], ["a1"]),
        helper.make_node("Add", ["g2", "b2"], ["a2"]),
        helper.make_node("Add", ["a1", "a2"], ["y"]),
    ]
    inits = [numpy_helper.from_array(v, n) for v, n in ((i1, "i1"), (i2, "i2"), (b1, "b1"), (b2, "b2"))]
    return _checked_model(nodes, inits, "duplicates", ["batch", 4], ["batch", 4])


@pytest.fixture(scope="module")
def merge_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("merge_passes")
    (folder / "merge.py").write_text("from graphkit.transform.registry import register\n" + MERGE_UNEQUAL)
    return folder


def _pass_forwards(report: dict, name: str) -> list[dict]:
    return [f for f in report["forwards"] if f["purpose"] == f"validate pass '{name}'"]


def test_merged_equal_initializers_are_validated_by_construction(gk, tmp_path, merge_dir):
    """cse merges i2 into i1 and b2 into b1 (equal contents): every tensor read after the pass is
    one read before it, so the pass's outputs are equal by construction and no session runs for
    it; the final check still runs the model on every golden case."""
    code, text, report = _apply(gk, tmp_path, merge_dir, duplicates_model(True), ["cse"], *ALWAYS)
    assert code == 0, text
    record = _record(report, "cse")
    assert record["status"] == "applied" and record["nodes_before"] == record["nodes_after"]
    assert record["validation"]["mode"] == "identical" and "nothing to compare" in record["validation"]["reason"]
    assert _pass_forwards(report, "cse") == []
    assert "0 (identical by construction)" in (tmp_path / "o.graphkit" / "summary.txt").read_text()
    assert report["final"]["validation"]["passed"]
    assert {c["label"] for c in report["final"]["validation"]["cases"]} == {"b1", "b2"}


def test_merging_unequal_initializers_still_fails(gk, tmp_path, merge_dir):
    """The same rewiring with unequal contents: the Gather indices (data movement) fail their
    region check and the bias (float arithmetic) the end-to-end one; either way exit 1, no model."""
    code, text, report = _apply(gk, tmp_path, merge_dir, duplicates_model(False), ["merge-unequal"], *ALWAYS)
    assert code == 1, text
    assert not (tmp_path / "o.onnx").exists()
    record = _record(report, "merge-unequal")
    assert record["status"] == "rolled-back"
    assert "Add" in record["validation"]["end_to_end_because"]  # b2 -> b1 rewires an Add: end to end at once
    assert not record["validation"]["passed"]


def test_merging_unequal_shape_constants_fails_on_the_region(gk, tmp_path, merge_dir):
    """Only the Gather indices differ (equal biases): a data-movement edit, checked on its region
    on random data, where the reversed routing shows. Exit 1, no model."""
    model = duplicates_model(False)
    for tensor in model.graph.initializer:
        if tensor.name == "b2":
            tensor.CopyFrom(numpy_helper.from_array(np.array([0.5, -1.0, 2.0, 0.25], np.float32), "b2"))
    code, text, report = _apply(gk, tmp_path, merge_dir, model, ["merge-unequal"], *ALWAYS)
    assert code == 1, text
    assert not (tmp_path / "o.onnx").exists()
    record = _record(report, "merge-unequal")
    assert record["status"] == "rolled-back" and record["validation"]["mode"] == "region"


def test_a_model_level_change_is_not_taken_as_identical(gk, tmp_path, merge_dir):
    """Only the IR version changed: nothing in the graph to compare, but a model-level field is
    not proven by the graph, so the pass runs end to end."""
    code, text, report = _apply(gk, tmp_path, merge_dir, duplicates_model(True), ["set-ir-7"], *ALWAYS)
    assert code == 0, text
    record = _record(report, "set-ir-7")
    assert (
        record["validation"].get("mode") == "full" and "nothing to compare" in record["validation"]["fallback_reason"]
    )
    assert len(_pass_forwards(report, "set-ir-7")) == 2
