"""Run one ONNX node on constant inputs (for constant folding): onnxruntime, except a plain
Unsqueeze, which is computed here (a session per node was constant folding's main cost)."""

from __future__ import annotations

import numpy as np
import onnx

from graphkit.ir.model_io import ONNX_DOMAINS, default_opset
from graphkit.runtime.ort import create_session
from graphkit.util.errors import PassError


def evaluate_node(node: onnx.NodeProto, arrays: dict[str, np.ndarray], like: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Run one node on constant inputs with onnxruntime (optimizations off). An Unsqueeze (a
    reshape, no arithmetic) is computed here instead: a session per node is folding's main cost."""
    if node.op_type == "Unsqueeze" and node.domain in ONNX_DOMAINS:
        unsqueezed = _unsqueeze(node, arrays, default_opset(like))
        if unsqueezed is not None:
            return {node.output[0]: unsqueezed}
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


def _unsqueeze(node: onnx.NodeProto, arrays: dict[str, np.ndarray], opset: int) -> np.ndarray | None:
    """Unsqueeze of a constant, exactly as ONNX defines it; None when the node is not a plain valid
    one (onnxruntime then evaluates it and reports what is wrong)."""
    if len(node.output) != 1 or not node.input or not node.input[0]:
        return None
    data = arrays.get(node.input[0])
    if opset >= 13:
        if len(node.input) != 2 or any(a.name == "axes" for a in node.attribute):
            return None
        axes = arrays.get(node.input[1])
        if axes is None or axes.dtype != np.int64 or axes.ndim > 1:
            return None
        axes = [int(a) for a in axes.reshape(-1)]
    else:
        attribute = next((a for a in node.attribute if a.name == "axes"), None)
        if len(node.input) != 1 or attribute is None or len(node.attribute) != 1:
            return None
        axes = list(attribute.ints)
    if data is None or not isinstance(data, np.ndarray) or not axes:
        return None
    rank = data.ndim + len(axes)
    if not all(-rank <= a < rank for a in axes):
        return None
    axes = [a + rank if a < 0 else a for a in axes]
    if len(set(axes)) != len(axes):
        return None
    return np.expand_dims(data, tuple(axes)).copy()
