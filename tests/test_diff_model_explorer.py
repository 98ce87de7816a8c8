"""Model Explorer node-data overlays from ``graphkit diff`` and ``graphkit localize``.

The overlays are read back with Model Explorer's own ``GraphNodeData`` dataclass (strict: no
unknown keys, every field typed) and their node ids checked against the graphs the
``model-explorer-onnx`` adapter builds from the same files; skipped where that package is absent.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from graphkit.check.localize import localize
from graphkit.diff.model_diff import diff_models
from graphkit.diff.model_explorer import diff_overlays, localize_overlay, write_overlays
from graphkit.testing import parse_model

A = """<ir_version: 8, opset_import: ["" : 17]>
main (float[1,4] x) => (float[1,4] y) <float[4] w = {1., 2., 3., 4.}> {
    t = Neg(x)
    u = Add(t, w)
    v = Identity(u)
    y = Relu(v)
}"""
B = """<ir_version: 8, opset_import: ["" : 17]>
main (float[1,4] x) => (float[1,4] y) <float[4] w = {1., 2., 3., 5.}> {
    t = Neg(x)
    v = Add(t, w)
    y = Sigmoid(v)
}"""


def _named(model: onnx.ModelProto, names) -> onnx.ModelProto:
    for node, name in zip(model.graph.node, names, strict=True):
        if name:
            node.name = name
    return model


@pytest.fixture
def pair(tmp_path):
    a = _named(parse_model(A), ["neg", "add", "", "relu"])  # one unnamed node: the adapter calls it "node"
    b = _named(parse_model(B), ["neg", "add", "relu"])  # matched by name: a changed op
    b.graph.node[2].metadata_props.add(key="graphkit.pass", value="act-swap")
    b.graph.node[2].metadata_props.add(key="graphkit.step", value="3")
    onnx.save(a, tmp_path / "a.onnx")
    onnx.save(b, tmp_path / "b.onnx")
    return a, b


def _adapter_graph(path):
    main = pytest.importorskip(
        "model_explorer_onnx.main", reason="model-explorer-onnx not installed ([explorer] extra)"
    )
    graph = main.ONNXAdapter().convert(str(path), {})["graphs"][0]
    return graph.id, {node.id for node in graph.nodes}


def _validated(path, model_path) -> dict:
    """The overlay read with Model Explorer's dataclasses; its node ids exist in the adapter's graph."""
    builder = pytest.importorskip("model_explorer.node_data_builder")
    dacite = pytest.importorskip("dacite")
    graph_id, ids = _adapter_graph(model_path)
    data = json.loads(path.read_text())
    assert list(data) == [graph_id]
    graph_data = dacite.from_dict(builder.GraphNodeData, data[graph_id], config=dacite.Config(strict=True))
    assert set(graph_data.results) <= ids
    assert all(isinstance(r.value, int | float) for r in graph_data.results.values())
    # Model Explorer's writer gives the same content (plus its defaults for the optional fields)
    written = json.loads(builder.ModelNodeData(graphsData={graph_id: graph_data}).to_json_string())[graph_id]
    assert {k: written[k] for k in data[graph_id]} == data[graph_id]
    return {k: r.value for k, r in graph_data.results.items()}


def test_diff_overlays_validate_against_the_adapter(pair, tmp_path):
    a, b = pair
    paths = write_overlays(tmp_path / "me", diff_overlays(diff_models(a, b), a, b))
    assert sorted(p.name for p in paths) == ["a-status.json", "b-pass.json", "b-status.json"]
    status_a = _validated(tmp_path / "me" / "a-status.json", tmp_path / "a.onnx")
    assert status_a == {"neg": 0, "add": 1, "node": 3, "relu": 2}  # add reads the changed w
    status_b = _validated(tmp_path / "me" / "b-status.json", tmp_path / "b.onnx")
    assert status_b == {"neg": 0, "add": 1, "relu": 2}
    assert _validated(tmp_path / "me" / "b-pass.json", tmp_path / "b.onnx") == {"relu": 3}
    assert "3=act-swap" in json.loads((tmp_path / "me" / "b-pass.json").read_text())["main"]["name"]


def test_localize_overlay_validates_and_holds_the_error(pair, tmp_path):
    a, b = pair
    feeds = {"x": np.array([[0.5, -1.0, 2.0, 0.0]], dtype=np.float32)}
    result = localize(a, b, feeds)
    paths = write_overlays(tmp_path / "me", localize_overlay(result, b))
    errors = _validated(paths[0], tmp_path / "b.onnx")
    # neg matches exactly; add differs by |4 - 5| = 1 in the last element (exact in float32)
    assert errors["neg"] == 0.0
    assert errors["add"] == pytest.approx(1.0, abs=1e-6)


def test_node_ids_follow_the_adapter_naming(tmp_path):
    model = _named(parse_model(A), ["", "node", "dup", "dup"])
    onnx.save(model, tmp_path / "m.onnx")
    from graphkit.diff.model_explorer import node_ids

    _, adapter_ids = _adapter_graph(tmp_path / "m.onnx")
    assert node_ids(model) == ["node", "node_1", "dup", "dup_1"]
    assert set(node_ids(model)) <= adapter_ids


def test_overlay_folder_that_is_a_file_is_one_line_exit_2(cli, pair, tmp_path):
    (tmp_path / "taken").write_text("x")
    done = cli("diff", tmp_path / "a.onnx", tmp_path / "b.onnx", "--model-explorer", tmp_path / "taken")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "needs a folder" in done.stderr


def test_cli_prints_the_command_that_opens_the_overlays(cli, pair, tmp_path):
    done = cli("diff", tmp_path / "a.onnx", tmp_path / "b.onnx", "--model-explorer", tmp_path / "me")
    assert done.returncode == 0, done.stderr
    assert "--extensions=model_explorer_onnx" in done.stdout
    assert f"--node_data_paths={tmp_path / 'me' / 'b-status.json'},{tmp_path / 'me' / 'b-pass.json'}" in done.stdout
