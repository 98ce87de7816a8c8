"""Run one ONNX node on constant inputs with onnxruntime (for constant folding)."""

from __future__ import annotations

import numpy as np
import onnx

from graphkit.runtime.ort import create_session
from graphkit.util.errors import PassError


def evaluate_node(node: onnx.NodeProto, arrays: dict[str, np.ndarray], like: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Run one node on constant inputs with onnxruntime (optimizations off)."""
    inputs = [
        onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)
        for name, array in arrays.items()
    ]
    outputs = [onnx.ValueInfoProto(name=o) for o in node.output if o]
    graph = onnx.helper.make_graph([node], "fold", inputs, outputs)
    model = onnx.helper.make_model(graph, opset_imports=list(like.opset_import))
    model.ir_version = max(like.ir_version, 7)
    session = create_session(model)
    names = [o.name for o in outputs]
    values = session.run(names, arrays)
    result = {}
    for name, value in zip(names, values):
        if not isinstance(value, np.ndarray):
            raise PassError(f"output {name} is not a tensor")
        result[name] = value
    return result
