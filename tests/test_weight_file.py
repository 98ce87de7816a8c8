"""The external-data writer (graphkit.ir.weight_file): aligned large weights, direct I/O copies.

Whatever path the bytes take (direct from a map, through the aligned buffer, through the page
cache), the saved weights must equal the source's exactly, and the saved model must load in
onnx and onnxruntime.
"""

from __future__ import annotations

import errno
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir import external_data, weight_file
from graphkit.ir.external_data import is_mapped, mapped_span
from graphkit.ir.model_io import load_model, save_model
from graphkit.ir.weight_file import ALIGN_MIN_BYTES, ALIGNMENT, BLOCK, WeightFileWriter
from graphkit.runtime.ort import create_session
from graphkit.util.errors import ModelLoadError

# (name, shape): a tiny weight first, so that onnx's own (unaligned) layout puts the large ones
# off every block boundary; the large ones end off a block (a tail to write through the cache).
WEIGHTS = [("tiny", (10,)), ("big", (1000, 263)), ("small", (3, 5)), ("big2", (263, 1001))]


def _direct_io_works(folder) -> bool:
    probe = folder / "probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    except (OSError, AttributeError):
        return False
    os.close(fd)
    probe.unlink()
    return True


def _model(tmp_path, aligned_source: bool):
    """A model whose four weights live in an external data file, and the weights' arrays."""
    rng = np.random.default_rng(0)
    arrays = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in WEIGHTS}
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [263])
    outputs = [helper.make_tensor_value_info(f"y_{n}", TensorProto.FLOAT, a.shape) for n, a in arrays.items()]
    nodes = [helper.make_node("Identity", [n], [f"y_{n}"]) for n in arrays]
    graph = helper.make_graph(nodes, "g", [x], outputs, [numpy_helper.from_array(a, n) for n, a in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder = tmp_path / "src"
    folder.mkdir()
    if aligned_source:  # graphkit's own layout
        save_model(model, folder / "m.onnx", external_data=True)
    else:  # onnx's: contiguous, no padding
        onnx.save_model(model, folder / "m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    return folder / "m.onnx", arrays


@pytest.fixture(autouse=True)
def map_every_weight(monkeypatch):
    monkeypatch.setattr(external_data, "MAP_MIN_BYTES", 1)


def _saved_weights(path):
    model = onnx.load(str(path))  # onnx's own loader: the offsets and lengths must be right for it
    onnx.checker.check_model(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _offsets(path):
    model = onnx.load(str(path), load_external_data=False)
    return {
        t.name: {e.key: int(e.value) for e in t.external_data if e.key in ("offset", "length")}
        for t in model.graph.initializer
    }


@pytest.mark.parametrize("aligned_source", [True, False], ids=["aligned-source", "onnx-layout-source"])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "page-cache"])
def test_saved_weights_equal_the_source_and_large_ones_are_aligned(tmp_path, monkeypatch, aligned_source, direct):
    if direct and not _direct_io_works(tmp_path):
        pytest.skip("this file system refuses O_DIRECT (the page-cache case covers the bytes)")
    monkeypatch.setattr(weight_file, "DIRECT_MIN_BYTES", 0 if direct else 1 << 62)
    source, arrays = _model(tmp_path, aligned_source)
    mapped = load_model(source, mapped=True)
    assert all(is_mapped(t) for t in mapped.graph.initializer)
    if not aligned_source:  # the case the aligned buffer exists for
        assert mapped_span(next(t for t in mapped.graph.initializer if t.name == "big"))[1] % BLOCK
    writes = []
    real = WeightFileWriter._write_direct
    monkeypatch.setattr(WeightFileWriter, "_write_direct", lambda self, d, o: writes.append(len(d)) or real(self, d, o))
    out = save_model(mapped, tmp_path / "out" / "m.onnx", external_data=True)
    saved = _saved_weights(out)
    assert saved.keys() == arrays.keys()
    for name, array in arrays.items():
        assert saved[name].tobytes() == array.tobytes(), name
    layout = _offsets(out)
    for name, array in arrays.items():
        assert layout[name]["length"] == array.nbytes
        if array.nbytes >= ALIGN_MIN_BYTES:
            assert layout[name]["offset"] % ALIGNMENT == 0, name
    # the padding stays within what ONNX's format allows
    ordered = sorted(layout.values(), key=lambda e: e["offset"])
    for before, after in zip(ordered, ordered[1:]):
        assert 0 <= after["offset"] - (before["offset"] + before["length"]) < 64 * 1024
    large = sum(a.nbytes // BLOCK * BLOCK for a in arrays.values() if a.nbytes >= BLOCK)
    assert sum(writes) == (large if direct else 0)
    feeds = {"x": np.zeros(263, np.float32)}
    got = create_session(load_model(out, mapped=True)).run(None, feeds)
    for value, name in zip(got, arrays):
        np.testing.assert_array_equal(value, arrays[name])  # atol 0: a copy, not a computation


def test_direct_io_refused_midway_falls_back_to_the_page_cache_with_the_same_bytes(tmp_path, monkeypatch):
    if not _direct_io_works(tmp_path):
        pytest.skip("this file system refuses O_DIRECT")
    monkeypatch.setattr(weight_file, "DIRECT_MIN_BYTES", 0)
    monkeypatch.setattr(weight_file, "DIRECT_CHUNK", 256 * 1024)  # several direct writes per weight
    source, arrays = _model(tmp_path, aligned_source=True)
    mapped = load_model(source, mapped=True)
    real_pwrite, calls = os.pwrite, []

    def refuse_the_third_direct_write(fd, data, offset):
        with open(f"/proc/self/fdinfo/{fd}") as info:
            flags = int(info.read().split("flags:")[1].split()[0], 8)
        if flags & os.O_DIRECT:
            calls.append(offset)
            if len(calls) == 3:
                raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", refuse_the_third_direct_write)
    out = save_model(mapped, tmp_path / "out" / "m.onnx", external_data=True)
    assert len(calls) == 3  # two direct writes landed, the third was refused, then none
    saved = _saved_weights(out)
    for name, array in arrays.items():
        assert saved[name].tobytes() == array.tobytes(), name


def test_a_source_truncated_after_load_is_one_error_and_no_output(tmp_path, monkeypatch):
    monkeypatch.setattr(weight_file, "DIRECT_MIN_BYTES", 0)
    source, _ = _model(tmp_path, aligned_source=False)
    mapped = load_model(source, mapped=True)
    data = source.parent / "m.onnx.data"
    with open(data, "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(ModelLoadError, match="changed during the run|lies outside"):
        save_model(mapped, tmp_path / "out" / "m.onnx", external_data=True)
    assert not (tmp_path / "out" / "m.onnx").exists() and not (tmp_path / "out" / "m.onnx.data").exists()


def test_a_source_cut_short_during_a_direct_copy_is_named_and_nothing_is_written(tmp_path, monkeypatch):
    """Another process truncates the data file while its map is being written out: the kernel
    answers the direct write with EFAULT (no SIGBUS), and the error names the changed file."""
    if not _direct_io_works(tmp_path):
        pytest.skip("this file system refuses O_DIRECT")
    monkeypatch.setattr(weight_file, "DIRECT_MIN_BYTES", 0)
    source, _ = _model(tmp_path, aligned_source=True)
    mapped = load_model(source, mapped=True)
    real = WeightFileWriter._write_direct

    def truncate_then_write(self, data, offset):
        with open(source.parent / "m.onnx.data", "r+b") as handle:
            handle.truncate(4096)
        return real(self, data, offset)

    monkeypatch.setattr(WeightFileWriter, "_write_direct", truncate_then_write)
    with pytest.raises(ModelLoadError, match="changed during the run|lies outside"):
        save_model(mapped, tmp_path / "out" / "m.onnx", external_data=True)
    assert not list((tmp_path / "out").iterdir())
