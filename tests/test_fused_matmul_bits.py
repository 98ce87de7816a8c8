"""benchmarks/fused_matmul_bits.py: the evidence script compares the fused and separate MatMuls' tensors."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from benchmarks.fused_matmul_bits import compare


def test_compare_reports_every_fused_tensor_within_the_declared_tolerance(tmp_path):
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), f"w{i}") for i in range(3)]
    nodes = [helper.make_node("MatMul", ["x", f"w{i}"], [f"q{i}"]) for i in range(3)]
    nodes.append(helper.make_node("Sum", ["q0", "q1", "q2"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 5, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 5, 4])],
        weights,
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    row = compare(str(path))
    assert row["matmuls_fused"] == 3
    for key in ("ort_disable_all_threads_1", "ort_enable_all_threads_default"):
        assert row[key]["tensors_compared"] == 4  # q0, q1, q2 and y
        assert row[key]["max_abs"] <= 1e-5  # the pass's declared atol; bit equality is the machine's to show
