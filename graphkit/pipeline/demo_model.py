"""The built-in demo model: a small graph with the patterns the built-in passes rewrite.

``x [batch,3,16,16] -> Conv -> Relu -> Identity -> Transpose -> Softmax(axis=3) -> Transpose
-> prob [batch,8,16,16]``, and a ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` chain
that flattens ``prob`` into ``flat [batch,2048]``. Opset 11, weights seeded.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def demo_model(seed: int = 0, channels: int = 8, size: int = 16) -> onnx.ModelProto:
    """Build the demo model (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.3
    bias = rng.standard_normal(channels).astype(np.float32) * 0.1
    inits = [
        numpy_helper.from_array(weight, "conv.weight"),
        numpy_helper.from_array(bias, "conv.bias"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("Identity", ["relu"], ["relu_copy"], name="identity"),
        helper.make_node("Transpose", ["relu_copy"], ["nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Softmax", ["nhwc"], ["soft"], name="softmax", axis=3),
        helper.make_node("Transpose", ["soft"], ["prob"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Shape", ["prob"], ["prob_shape"], name="shape"),
        helper.make_node("Gather", ["prob_shape", "zero"], ["batch_dim"], name="gather_batch", axis=0),
        helper.make_node("Concat", ["batch_dim", "minus_one"], ["flat_shape"], name="concat", axis=0),
        helper.make_node("Reshape", ["prob", "flat_shape"], ["flat"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "graphkit-demo",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, size, size])],
        [
            helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", channels, size, size]),
            helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["batch", channels * size * size]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="graphkit-demo")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model
