"""graphkit.diff.model_diff: hand-built model pairs with known answers, JSON schema stability, the CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.diff.model_diff import diff_models, max_abs_change
from graphkit.diff.records import SCHEMA_VERSION
from graphkit.diff.text_view import render_text
from graphkit.ir.model_io import clone, content_hash
from graphkit.testing import make_model, parse_model

BASE = """<ir_version: 8, opset_import: ["" : 13]>
g (float[N,4] x) => (float[N,4] y) <float[4] w = {1., 2., 3., 4.}> {
    t = Add(x, w)
    u = Relu(t)
    y = Softmax<axis = 1>(u)
}"""


def named_chain(ops=("Add", "Relu", "Sigmoid", "Neg"), tensor_prefix="t", node_prefix="n", names=True):
    """x -> op0 -> op1 -> ... -> y with one initializer 'w' feeding the Add."""
    nodes, prev = [], "x"
    for i, op in enumerate(ops):
        out = "y" if i == len(ops) - 1 else f"{tensor_prefix}{i}"
        inputs = [prev, "w"] if op == "Add" else [prev]
        nodes.append(helper.make_node(op, inputs, [out], name=f"{node_prefix}{i}" if names else ""))
        prev = out
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [w],
    )


def test_identical_models_give_an_empty_diff():
    a = parse_model(BASE)
    diff = diff_models(a, clone(a))
    assert diff.is_empty()
    assert diff.summary_line() == "no changes"
    assert diff.op_count_delta() == {}
    assert diff.op_counts == {"Add": (1, 1), "Relu": (1, 1), "Softmax": (1, 1)}
    assert len(diff.node_pairs) == 3


def test_diff_does_not_mutate_its_inputs():
    a, b = named_chain(), named_chain(ops=("Add", "Relu", "Neg"))
    before = content_hash(a), content_hash(b)
    diff_models(a, b)
    assert (content_hash(a), content_hash(b)) == before


def test_added_node():
    a = named_chain(ops=("Add", "Relu", "Neg"))
    b = named_chain(ops=("Add", "Relu", "Sigmoid", "Neg"))
    # Make B's node names line up with A's where the node is the same.
    b.graph.node[3].name = "n2"
    b.graph.node[2].name = "new"
    diff = diff_models(a, b)
    assert [(n.name, n.op_type) for n in diff.nodes_added] == [("new", "Sigmoid")]
    assert diff.nodes_removed == []
    assert [(c.after.name, set(c.changes)) for c in diff.nodes_changed] == [("n2", {"inputs"})]
    assert diff.op_count_delta() == {"Sigmoid": (0, 1)}
    assert diff.summary_line().startswith("+1 Sigmoid")


def test_removed_node():
    a = named_chain(ops=("Add", "Relu", "Sigmoid", "Neg"))
    b = named_chain(ops=("Add", "Relu", "Neg"))
    b.graph.node[2].name = "n3"
    diff = diff_models(a, b)
    assert [(n.name, n.op_type) for n in diff.nodes_removed] == [("n2", "Sigmoid")]
    assert diff.nodes_added == []
    assert diff.op_count_delta() == {"Sigmoid": (1, 0)}
    assert "-1 Sigmoid" in diff.summary_line()


def test_attribute_change():
    a = parse_model(BASE)
    b = parse_model(BASE.replace("axis = 1", "axis = 0"))
    diff = diff_models(a, b)
    assert diff.nodes_added == [] and diff.nodes_removed == []
    (change,) = diff.nodes_changed
    assert change.after.op_type == "Softmax"
    assert change.matched_by == "structure"  # parsed nodes are unnamed
    assert set(change.changes) == {"attributes"}
    assert change.changes["attributes"]["axis"].before == "1"
    assert change.changes["attributes"]["axis"].after == "0"
    assert diff.summary_line() == "1 node changed"


def test_renamed_tensor_is_one_rename_not_node_changes():
    a = named_chain()
    b = named_chain(tensor_prefix="renamed_")
    diff = diff_models(a, b)
    assert diff.tensors_renamed == {"t0": "renamed_0", "t1": "renamed_1", "t2": "renamed_2"}
    assert diff.nodes_changed == [] and diff.nodes_added == [] and diff.nodes_removed == []
    assert diff.tensor_map["t1"] == "renamed_1"
    assert not diff.is_empty()


def test_renamed_nodes_and_tensors_are_matched_by_structure():
    a = named_chain(ops=("Add", "Relu", "Sigmoid", "Relu", "Neg"))
    b = named_chain(ops=("Add", "Relu", "Sigmoid", "Relu", "Neg"), tensor_prefix="p", node_prefix="pass_")
    diff = diff_models(a, b)
    assert diff.nodes_added == [] and diff.nodes_removed == []
    assert all(c.matched_by == "structure" and c.renamed_only for c in diff.nodes_changed)
    assert [(c.before.name, c.after.name) for c in diff.nodes_changed] == [(f"n{i}", f"pass_{i}") for i in range(5)]
    assert len(diff.tensors_renamed) == 4


def test_unnamed_nodes_with_a_removed_middle_node():
    a = named_chain(ops=("Add", "Relu", "Sigmoid", "Relu", "Neg"), names=False)
    b = named_chain(ops=("Add", "Relu", "Relu", "Neg"), names=False)
    diff = diff_models(a, b)
    assert [n.op_type for n in diff.nodes_removed] == ["Sigmoid"]
    assert diff.nodes_added == []
    # The Relu after the removed Sigmoid now reads t1 instead of t2: a rewiring, reported once.
    (change,) = diff.nodes_changed
    assert change.after.op_type == "Relu" and set(change.changes) == {"inputs"}


def test_changed_initializer_reports_max_abs_change():
    a = parse_model(BASE)
    b = parse_model(BASE.replace("{1., 2., 3., 4.}", "{1., 2., 3.5, 4.}"))
    diff = diff_models(a, b)
    (change,) = diff.initializers_changed
    assert change.after.name == "w" and change.fields == ("value",)
    assert change.before.hash != change.after.hash
    assert change.max_abs_change == pytest.approx(0.5, abs=0)
    assert diff.nodes_changed == []
    assert diff.summary_line() == "1 initializer changed"


def test_initializer_shape_change_has_no_max_abs_change():
    a = parse_model(BASE)
    b = parse_model(BASE.replace("float[4] w = {1., 2., 3., 4.}", "float[1] w = {1.}"))
    (change,) = diff_models(a, b).initializers_changed
    assert change.fields == ("shape", "value")
    assert change.max_abs_change is None


def test_initializer_added_removed_and_renamed():
    a = parse_model(BASE)
    b = parse_model(BASE.replace("w = {1., 2., 3., 4.}", "w2 = {1., 2., 3., 4.}").replace("Add(x, w)", "Add(x, w2)"))
    diff = diff_models(a, b)
    assert diff.initializers_renamed == {"w": "w2"}
    assert diff.initializers_added == [] and diff.initializers_removed == [] and diff.nodes_changed == []

    c = parse_model(BASE.replace("w = {1., 2., 3., 4.}", "w2 = {9., 2., 3., 4.}").replace("Add(x, w)", "Add(x, w2)"))
    diff = diff_models(a, c)
    (change,) = diff.initializers_changed  # different content in the same slot of the same node
    assert (change.before.name, change.after.name) == ("w", "w2")

    d = clone(a)
    d.graph.initializer.append(numpy_helper.from_array(np.zeros(3, np.float32), "unused"))
    diff = diff_models(a, d)
    assert [i.name for i in diff.initializers_added] == ["unused"]
    assert [i.name for i in diff_models(d, a).initializers_removed] == ["unused"]


def test_max_abs_change_on_a_tensor_larger_than_one_slice():
    values = np.zeros(3_000_000, np.float32)
    changed = values.copy()
    changed[-1] = -2.5
    changed[10] = 1.0
    before = numpy_helper.from_array(values, "big")
    after = numpy_helper.from_array(changed, "big")
    assert max_abs_change(before, after) == 2.5
    assert max_abs_change(before, before) == 0.0


def test_changed_input_shape_and_dim_name():
    a = parse_model(BASE)
    b = parse_model(BASE.replace("float[N,4] x", "float[1,4] x").replace("float[N,4] y", "float[batch,4] y"))
    diff = diff_models(a, b)
    (inp,) = diff.inputs.changed
    assert inp.name == "x" and inp.fields == ("shape",)
    assert inp.before.shape == ("N", 4) and inp.after.shape == (1, 4)
    (out,) = diff.outputs.changed
    assert out.before.shape == ("N", 4) and out.after.shape == ("batch", 4)
    assert diff.nodes_changed == [] and diff.initializers_changed == []
    assert diff.summary_line() == "input x shape, output y shape"


def test_changed_input_dtype_and_added_input():
    a = parse_model(BASE)
    b = clone(a)
    b.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    b.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.INT64, [2]))
    diff = diff_models(a, b)
    assert [(c.name, c.fields, c.after.dtype) for c in diff.inputs.changed] == [("x", ("dtype",), "float16")]
    assert [(v.name, v.dtype, v.shape) for v in diff.inputs.added] == [("extra", "int64", (2,))]


def test_opset_and_ir_version_change():
    a = parse_model(BASE)
    b = parse_model(BASE.replace('"" : 13', '"" : 17').replace("ir_version: 8", "ir_version: 9"))
    diff = diff_models(a, b)
    assert diff.ir_version.before == 8 and diff.ir_version.after == 9
    assert {d: (c.before, c.after) for d, c in diff.opsets.items()} == {"ai.onnx": (13, 17)}
    assert diff.summary_line() == "ir 8->9, opset 13->17"
    assert diff.nodes_changed == []


def test_summary_line_of_a_softmax_rewrite():
    a = parse_model(
        """<ir_version: 7, opset_import: ["" : 11]>
        g (float[1,3,2,2] x) => (float[1,3,2,2] y) {
            t = Transpose<perm = [0, 2, 3, 1]>(x)
            s = Softmax<axis = 3>(t)
            y = Transpose<perm = [0, 3, 1, 2]>(s)
        }"""
    )
    b = parse_model(
        """<ir_version: 7, opset_import: ["" : 13]>
        g (float[1,3,2,2] x) => (float[1,3,2,2] y) { y = Softmax<axis = 1>(x) }"""
    )
    diff = diff_models(a, b)
    assert diff.op_count_delta() == {"Transpose": (2, 0)}
    assert diff.summary_line() == "-2 Transpose, opset 11->13, 1 node changed"
    assert [n.op_type for n in diff.nodes_removed] == ["Transpose", "Transpose"]


def test_text_output_colors_only_on_request():
    diff = diff_models(named_chain(), named_chain(ops=("Add", "Relu", "Neg")))
    plain = render_text(diff, color=False)
    colored = render_text(diff, color=True)
    assert "\033[" not in plain
    assert "\033[31m" in colored  # removed in red
    assert "- n2 (Neg)" in plain or "- n" in plain
    assert plain.splitlines()[0] == f"summary: {diff.summary_line()}"


# --- JSON schema stability -------------------------------------------------------------------
# Committed expectation: changing these keys is a schema change and needs a schema_version bump.
EXPECTED_KEYS = {
    "": {
        "schema_version",
        "summary",
        "empty",
        "model",
        "inputs",
        "outputs",
        "nodes",
        "tensors_renamed",
        "initializers",
        "op_counts",
    },
    "model": {"ir_version", "opsets"},
    "model.ir_version": {"before", "after"},
    "model.opsets[]": {"domain", "before", "after"},
    "inputs": {"added", "removed", "changed"},
    "inputs.added[]": {"name", "dtype", "shape"},
    "inputs.changed[]": {"name", "fields", "before", "after"},
    "nodes": {"added", "removed", "changed"},
    "nodes.added[]": {"name", "op_type", "domain", "index", "inputs", "outputs", "attributes"},
    "nodes.changed[]": {"before", "after", "matched_by", "changes"},
    "tensors_renamed[]": {"before", "after"},
    "initializers": {"added", "removed", "changed", "renamed"},
    "initializers.added[]": {"name", "dtype", "shape", "hash", "nbytes"},
    "initializers.changed[]": {"name", "before_name", "fields", "before", "after", "max_abs_change"},
    "initializers.renamed[]": {"before", "after"},
    "op_counts[]": {"op", "before", "after", "delta"},
}


def _lookup(data, path):
    for part in filter(None, path.split(".")):
        data = data[part[:-2]][0] if part.endswith("[]") else data[part]
    return data


def test_json_schema_is_stable():
    a = parse_model(BASE)
    b = parse_model(
        BASE.replace("ir_version: 8", "ir_version: 9")
        .replace('"" : 13', '"" : 14')
        .replace("float[N,4] x", "float[1,4] x, float[4] z")
        .replace("{1., 2., 3., 4.}", "{1., 2., 3., 5.}, float[2] k = {1., 1.}")
        .replace("t = Add(x, w)", "t2 = Add(x, w)  q = Neg(z)")
        .replace("u = Relu(t)", "u = Relu(t2)")
        .replace("axis = 1", "axis = 0")
    )
    b.graph.initializer.append(numpy_helper.from_array(np.ones(3, np.float32), "renamed_w"))
    a.graph.initializer.append(numpy_helper.from_array(np.ones(3, np.float32), "old_w"))
    data = json.loads(json.dumps(diff_models(a, b).to_dict()))
    assert data["schema_version"] == SCHEMA_VERSION == 1
    for path, keys in EXPECTED_KEYS.items():
        assert set(_lookup(data, path)) == keys, path
    assert data["nodes"]["changed"][0]["changes"]["attributes"]["axis"] == {"before": "1", "after": "0"}


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def model_pair(tmp_path):
    a = parse_model(BASE)
    b = parse_model(BASE.replace("axis = 1", "axis = 0").replace('"" : 13', '"" : 14'))
    onnx.save(a, tmp_path / "a.onnx")
    onnx.save(b, tmp_path / "b.onnx")
    return tmp_path / "a.onnx", tmp_path / "b.onnx"


def test_cli_text(cli, model_pair):
    done = cli("diff", *model_pair)
    assert done.returncode == 0, done.stderr
    assert "\033[" not in done.stdout  # not a terminal
    assert done.stdout.startswith("summary: opset 13->14, 1 node changed")
    assert "axis 1 -> 0" in done.stdout


def test_cli_exit_code_flag(cli, model_pair):
    assert cli("diff", *model_pair, "--exit-code").returncode == 1
    assert cli("diff", model_pair[0], model_pair[0], "--exit-code").returncode == 0


def test_cli_json(cli, model_pair):
    done = cli("diff", *model_pair, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["schema_version"] == 1
    assert data["model"]["opsets"] == [{"domain": "ai.onnx", "before": 13, "after": 14}]


def test_cli_html(cli, model_pair, tmp_path):
    target = tmp_path / "out" / "diff.html"
    done = cli("diff", *model_pair, "--html", target)
    assert done.returncode == 0, done.stderr
    text = target.read_text()
    assert text.startswith("<!DOCTYPE html>") and "Region 1" in text
    assert [p.name for p in target.parent.iterdir()] == ["diff.html"]  # no temp file left


@pytest.mark.parametrize("case", ["missing", "not-onnx", "empty"])
def test_cli_bad_input_is_one_line_exit_2(cli, model_pair, tmp_path, case):
    bad = tmp_path / f"{case}.onnx"
    if case == "not-onnx":
        bad.write_text("this is not a model\n" * 10)
    elif case == "empty":
        bad.write_bytes(b"")
    done = cli("diff", model_pair[0], bad)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and lines[0].startswith("graphkit: error:")
    assert done.stdout == ""


def test_deduplicated_constants_are_not_node_changes():
    a = parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
            c1 = Constant<value = float[1] {2.}>()
            c2 = Constant<value = float[1] {2.}>()
            m = Mul(x, c1)
            y = Add(m, c2)
        }"""
    )
    b = parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) <float[1] k = {2.}> {
            m = Mul(x, k)
            y = Add(m, k)
        }"""
    )
    diff = diff_models(a, b)
    assert [n.op_type for n in diff.nodes_removed] == ["Constant", "Constant"]
    assert diff.nodes_changed == [] and diff.nodes_added == []
    assert [i.name for i in diff.initializers_added] == ["k"]


def test_long_renamed_unnamed_chain_is_fully_matched():
    ops = ("Add",) + ("Relu", "Neg") * 300
    a = named_chain(ops=ops, names=False)
    b = named_chain(ops=ops, names=False, tensor_prefix="r")
    diff = diff_models(a, b)
    assert len(diff.node_pairs) == len(ops) and diff.nodes_changed == []
    assert diff.summary_line() == f"{len(ops) - 1} tensors renamed"


def test_names_with_control_characters_never_reach_the_terminal_raw():
    a = named_chain()
    b = clone(a)
    b.graph.node[1].op_type = "Sigmoid"
    b.graph.node[1].name = "evil\x1b]0;pwned\x07\x1b[2J\nname"
    for color in (False, True):
        text = render_text(diff_models(a, b), color=color)
        assert "\x07" not in text and "\x1b]" not in text and "\x1b[2J" not in text
        assert "evil\\x1b]0;pwned\\x07\\x1b[2J\\nname" in text


# --- models with external data: read from their files, never loaded whole ----------------------


def _external_pair(tmp_path, change_weight: bool):
    """Two external-data models (a 64x64 weight, 16 KiB) in separate folders; b's Softmax axis differs."""
    from graphkit.ir.model_io import save_model

    weight = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    a = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["t"], name="mm"), helper.make_node("Softmax", ["t"], ["y"], axis=1)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])],
        [numpy_helper.from_array(weight, "w")],
    )
    b = clone(a)
    b.graph.node[1].attribute[0].i = 0
    if change_weight:
        b.graph.initializer[0].CopyFrom(numpy_helper.from_array(weight + np.float32(0.5), "w"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return (
        a,
        b,
        save_model(a, tmp_path / "a" / "m.onnx", external_data=True),
        save_model(b, tmp_path / "b" / "m.onnx", external_data=True),
    )


@pytest.mark.parametrize("change_weight", [False, True])
def test_external_data_diff_reads_weights_from_their_files(tmp_path, change_weight):
    from graphkit.ir.model_io import load_model

    a, b, path_a, path_b = _external_pair(tmp_path, change_weight)
    stub_a, stub_b = load_model(path_a, load_external_data=False), load_model(path_b, load_external_data=False)
    assert stub_a.graph.initializer[0].data_location == TensorProto.EXTERNAL
    streamed = diff_models(stub_a, stub_b, folders=(path_a.parent, path_b.parent))
    loaded = diff_models(a, b)
    assert streamed.to_dict() == loaded.to_dict()  # same hashes, sizes and changes as in memory
    assert len(streamed.nodes_changed) == 1
    if change_weight:
        (change,) = streamed.initializers_changed
        assert change.max_abs_change == pytest.approx(0.5, abs=1e-6)  # float32 x + 0.5 - x: exact to 1 ulp
    else:
        assert streamed.initializers_changed == []


def test_cli_diff_of_external_data_models(cli, tmp_path):
    _, _, path_a, path_b = _external_pair(tmp_path, change_weight=False)
    done = cli("diff", path_a, path_b, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert len(data["nodes"]["changed"]) == 1
    (path_b.parent / "m.onnx.data").unlink()
    done = cli("diff", path_a, path_b)
    assert done.returncode == 2
    assert done.stderr.startswith("graphkit: error:") and "m.onnx.data" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", ""])
def test_external_location_outside_the_model_folder_is_refused(tmp_path, location):
    from graphkit.ir.external_data import external_span
    from graphkit.util.errors import ModelLoadError

    stub = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    stub.data_location = TensorProto.EXTERNAL
    stub.external_data.add(key="location", value=location)
    with pytest.raises(ModelLoadError, match="initializer 'w'"):
        external_span(stub, tmp_path)


def test_external_span_past_the_end_of_its_file_is_refused(tmp_path):
    from graphkit.ir.external_data import external_span
    from graphkit.util.errors import ModelLoadError

    (tmp_path / "w.bin").write_bytes(bytes(8))
    stub = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    stub.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "w.bin"), ("offset", "0"), ("length", "16")):
        stub.external_data.add(key=key, value=value)
    with pytest.raises(ModelLoadError, match="outside"):
        external_span(stub, tmp_path)


def test_pass_diff_writer_reuses_hashes_only_of_the_model_it_saw(tmp_path):
    """Consecutive passes: the second diff reuses the first's "after" hashes and equals a fresh diff;
    after a rejected pass nothing is reused (the rejected model is not the next input)."""
    from types import SimpleNamespace

    from graphkit.check.instruments import PassDiffWriter
    from graphkit.transform.pass_base import PassResult

    m0 = named_chain()
    m1 = clone(m0)
    m1.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.arange(4, dtype=np.float32) + 1, "w"))
    m2 = clone(m1)
    m2.graph.node[1].op_type = "Sigmoid"
    writer = PassDiffWriter(tmp_path)
    step = SimpleNamespace(name="p")
    writer.after_pass(0, step, m0, PassResult(m1, True))
    rejected = clone(m2)  # another w: reusing its hashes for m1 would report w as changed
    rejected.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.zeros(4, dtype=np.float32), "w"))
    writer.after_pass(1, step, m1, PassResult(rejected, True))
    writer.pass_failed(1, step, m1, RuntimeError("rejected"), rejected)
    writer.after_pass(2, step, m1, PassResult(m2, True))
    written = json.loads((tmp_path / "03-p.json").read_text())
    assert written == json.loads(json.dumps(diff_models(m1, m2).to_dict()))
    assert written["initializers"]["changed"] == []  # w is the same in m1 and m2
    first = json.loads((tmp_path / "01-p.json").read_text())
    assert [c["name"] for c in first["initializers"]["changed"]] == ["w"]
