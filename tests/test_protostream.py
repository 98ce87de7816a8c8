"""Streaming model I/O: exact round trips, any truncation is an error, memory stays near 1x."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from graphkit.ir.model_io import load_model
from graphkit.ir.protostream import WireFormatError, read_model, write_model
from graphkit.pipeline.demo_model import demo_model
from graphkit.util.errors import ModelLoadError


def rich_model() -> onnx.ModelProto:
    """Initializers, a sparse initializer, an If subgraph, a local function and metadata."""
    model = demo_model(channels=16)
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["branch_out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("branch_out", onnx.TensorProto.FLOAT, None)],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    model.graph.initializer.append(cond)
    model.graph.node.append(helper.make_node("If", ["cond"], ["unused"], then_branch=branch, else_branch=branch))
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.5, 2.5], np.float32), "sparse_values"),
        numpy_helper.from_array(np.array([1, 3], np.int64), "sparse_indices"),
        [4],
    )
    model.graph.sparse_initializer.append(sparse)
    model.functions.append(
        helper.make_function("local", "Double", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])], [])
    )
    helper.set_model_props(model, {"author": "graphkit tests", "weights": "random"})
    model.graph.doc_string = "doc"
    return model


@pytest.mark.parametrize("make", [demo_model, rich_model])
def test_round_trip_is_exact_both_ways(make):
    model = make()
    buffer = io.BytesIO()
    write_model(model, buffer)
    parsed_by_protobuf = onnx.ModelProto()
    parsed_by_protobuf.ParseFromString(buffer.getvalue())
    assert parsed_by_protobuf == model
    assert read_model(io.BytesIO(model.SerializeToString())) == model
    assert read_model(io.BytesIO(buffer.getvalue())) == model


def test_every_truncation_is_an_error(tmp_path):
    data = demo_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    for cut in range(1, len(data), max(1, len(data) // 97)):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelLoadError, match="cut.onnx: not a valid ONNX model"):
            load_model(path)


def test_unknown_wire_type_is_a_wire_format_error():
    with pytest.raises(WireFormatError, match="wire type"):
        read_model(io.BytesIO(b"\x0f\x00"))  # field 1, wire type 7


def test_save_and_load_keep_peak_memory_near_the_model_size(tmp_path):
    """A 64 MiB model: streaming load + save add little beyond one copy (onnx.load + save: 3x)."""
    import subprocess
    import sys

    weights = [numpy_helper.from_array(np.full((1024, 1024), i, np.float32), f"w{i}") for i in range(16)]
    nodes = [helper.make_node("Add", ["x" if i == 0 else f"h{i - 1}", f"w{i}"], [f"h{i}"]) for i in range(16)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", 1, [1024, 1024])],
        [helper.make_tensor_value_info("h15", 1, [1024, 1024])],
        weights,
    )
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    script = f"""
from graphkit.ir.model_io import load_model, save_model
def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) // 1024
base = status("VmRSS")
save_model(load_model(r"{tmp_path / "m.onnx"}"), r"{tmp_path / "out.onnx"}")
print(base, status("VmHWM"))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert load_model(tmp_path / "out.onnx") == load_model(tmp_path / "m.onnx")
    base, peak = map(int, out)
    assert peak - base < 64 * 1.3, (base, peak)  # one copy (64 MiB) plus small buffers


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes, claimed: int | None = None) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload) if claimed is None else claimed) + payload


@pytest.mark.parametrize(
    ("data", "claim"),
    [
        (_field(8, b"", claimed=2**60), 2**60),  # opset_import claims an exabyte in a 10-byte file
        (_field(7, b"", claimed=2**40), 2**40),  # the graph claims a terabyte
        (_field(7, _field(5, b"\x08\x01", claimed=2**33)), 2**33),  # an initializer, inside the graph
        (_field(7, _field(1, b"abc", claimed=5)) + b"\x00" * 8, 5),  # a node overruns the graph's end
    ],
)
def test_length_fields_are_checked_against_the_remaining_bytes_before_reading(data, claim):
    with pytest.raises(WireFormatError, match=f"claims {claim} bytes but only"):
        read_model(io.BytesIO(data))


def test_a_graph_length_past_the_end_of_the_file_is_refused(tmp_path):
    data = demo_model().SerializeToString()
    path = tmp_path / "long.onnx"
    path.write_bytes(data[:-10])  # the graph's length field now points past the end
    with pytest.raises(ModelLoadError, match="long.onnx: not a valid ONNX model .*claims .* bytes but only"):
        load_model(path)
