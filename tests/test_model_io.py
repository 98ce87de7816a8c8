"""Model I/O: loading bad files fails with one clear line; saving is atomic; hashes are stable."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphkit.ir.model_io import clone, content_hash, load_model, save_model
from graphkit.pipeline.demo_model import demo_model
from graphkit.runtime.feeds import random_feeds
from graphkit.runtime.ort import run_ort
from graphkit.util.errors import ModelLoadError, OutputError


@pytest.fixture
def model_file(tmp_path):
    return save_model(demo_model(), tmp_path / "demo.onnx")


def bad_files(tmp_path, model_file):
    data = model_file.read_bytes()
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.onnx").write_text("this is not a model\n")
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "folder.onnx").mkdir()
    return {
        "missing.onnx": "no such file",
        "empty.onnx": "empty",
        "truncated.onnx": "not a valid ONNX model",
        "text.onnx": "not a valid ONNX model",
        "random.onnx": "not a valid ONNX model",
        "folder.onnx": "directory",
    }


def test_load_rejects_every_kind_of_bad_file(tmp_path, model_file):
    for name, expected in bad_files(tmp_path, model_file).items():
        with pytest.raises(ModelLoadError) as info:
            load_model(tmp_path / name)
        assert name in str(info.value) and expected in str(info.value), str(info.value)


@pytest.mark.parametrize("name", ["missing.onnx", "empty.onnx", "truncated.onnx", "text.onnx", "folder.onnx"])
def test_cli_bad_model_is_one_line_exit_2_and_writes_nothing(tmp_path, model_file, cli, name):
    bad_files(tmp_path, model_file)
    out = tmp_path / "golden_out"
    result = cli("golden", "make", tmp_path / name, "-o", out)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and lines[0].startswith("graphkit: error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_save_load_roundtrip_keeps_content(tmp_path):
    model = demo_model()
    path = save_model(model, tmp_path / "m.onnx")
    assert content_hash(load_model(path)) == content_hash(model)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp files left


def test_external_data_roundtrip_runs_identically(tmp_path):
    model = demo_model(channels=64)
    path = save_model(model, tmp_path / "ext.onnx", external_data=True)
    assert (tmp_path / "ext.onnx.data").exists()
    loaded = load_model(path)
    assert content_hash(loaded) == content_hash(model)
    feeds = random_feeds(model, dims={"batch": 1})
    for name, value in run_ort(model, feeds).items():
        np.testing.assert_array_equal(run_ort(path, feeds)[name], value)


def test_missing_external_data_is_a_clear_error(tmp_path):
    path = save_model(demo_model(channels=64), tmp_path / "ext.onnx", external_data=True)
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(ModelLoadError, match="external data"):
        load_model(path)


def test_failed_save_leaves_no_partial_file(tmp_path):
    target = tmp_path / "blocked"
    target.mkdir()
    (target / "m.onnx").mkdir()  # a directory where the file should go: refused, nothing written
    with pytest.raises(OutputError, match="is a folder"):
        save_model(demo_model(), target / "m.onnx")
    assert sorted(p.name for p in target.iterdir()) == ["m.onnx"]


def test_content_hash_sees_weights_and_structure():
    model = demo_model()
    same = clone(model)
    assert content_hash(model) == content_hash(same)
    weights = clone(model)
    raw = bytearray(weights.graph.initializer[0].raw_data)
    raw[0] ^= 1
    weights.graph.initializer[0].raw_data = bytes(raw)
    assert content_hash(weights) != content_hash(model)
    renamed = clone(model)
    renamed.graph.node[0].name = "other"
    assert content_hash(renamed) != content_hash(model)
    opset = clone(model)
    opset.opset_import[0].version = 13
    assert content_hash(opset) != content_hash(model)


def test_load_passes_checker_for_valid_model(model_file):
    onnx.checker.check_model(load_model(model_file))


def test_models_over_the_single_file_limit_go_through_external_data(tmp_path, monkeypatch):
    """The >2 GB code paths (save, checker, shape inference, ORT), exercised with a lowered limit."""
    from graphkit.ir import model_io as model_module
    from graphkit.ir.model_io import check_model, infer_shapes

    model = demo_model(channels=64)
    monkeypatch.setattr(model_module, "SINGLE_FILE_LIMIT", 4096)
    assert model_module.too_big_for_one_file(model)
    path = save_model(model, tmp_path / "big.onnx")  # external data chosen automatically
    assert (tmp_path / "big.onnx.data").stat().st_size > 4096
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]
    check_model(model)
    inferred = infer_shapes(model)
    assert {v.name for v in inferred.graph.value_info} >= {"conv", "relu", "nhwc"}
    feeds = random_feeds(model, dims={"batch": 2})
    via_temp_file = run_ort(model, feeds)
    for name, value in run_ort(path, feeds).items():
        np.testing.assert_array_equal(via_temp_file[name], value)
    assert content_hash(load_model(path)) == content_hash(model)


def test_external_save_streams_raw_weights_as_they_are(tmp_path):
    """The data file is the large raw weights back to back; small and typed-field tensors stay inline."""
    from onnx import numpy_helper

    model = demo_model(channels=64)
    typed = onnx.helper.make_tensor("typed", onnx.TensorProto.FLOAT, [600], np.arange(600, dtype=np.float32))
    model.graph.initializer.append(typed)  # float_data, not raw_data: stays in the proto (as onnx does)
    before = content_hash(model)
    path = save_model(model, tmp_path / "ext.onnx", external_data=True)
    assert content_hash(model) == before  # the model saved is not modified
    large = [t for t in model.graph.initializer if len(t.raw_data) >= 1024]
    assert large  # the demo model has weights past the threshold
    assert (tmp_path / "ext.onnx.data").read_bytes() == b"".join(t.raw_data for t in large)
    stored = onnx.load(str(path), load_external_data=False)
    external = {t.name for t in stored.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    assert external == {t.name for t in large}
    inline = next(t for t in stored.graph.initializer if t.name == "typed")
    np.testing.assert_array_equal(numpy_helper.to_array(inline), np.arange(600, dtype=np.float32))
    onnx.checker.check_model(str(path))
    assert content_hash(load_model(path)) == before


def test_remove_nodes_at_deletes_in_place_in_runs_and_keeps_order():
    from onnx import helper

    from graphkit.ir.model_io import remove_nodes_at

    graph = helper.make_graph(
        [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"], name=f"n{i}") for i in range(8)], "g", [], []
    )
    kept = graph.node[7]
    assert remove_nodes_at(graph, {0, 1, 4, 6, 99, -1}) == 4  # out-of-range indices are ignored
    assert [n.name for n in graph.node] == ["n2", "n3", "n5", "n7"]
    assert graph.node[3] is kept  # not a copy
    assert remove_nodes_at(graph, set()) == 0 and len(graph.node) == 4
