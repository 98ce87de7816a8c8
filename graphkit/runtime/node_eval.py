"""Run one ONNX node on constant inputs (for constant folding): onnxruntime, except a plain
Unsqueeze, which is computed here (a session per node was constant folding's main cost).

A node evaluated again on the same constant inputs is answered from memory: exports repeat the
same small shape computation once per layer (MobileNetV2 at opset 13: 52 identical
``ConstantOfShape -> Concat -> Reshape -> Slice -> Transpose -> Reshape`` pad chains, 312
sessions), and onnxruntime computes the same outputs from the same node and inputs. The key is
everything the result depends on, compared byte for byte (no hash): op type, domain, the
attributes' bytes, the model's opset imports and IR version, each input slot's element type,
shape, bytes and which slots share a tensor, and which outputs are asked for. Random ops and
nodes with subgraphs are never memoized; neither is a node whose inputs or outputs exceed
:data:`MEMO_MAX_BYTES`, nor a failure (it is raised again each time); the least recently used
entries go once the memory holds :data:`MEMO_TOTAL_BYTES`.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import onnx

from graphkit.ir.model_io import ONNX_DOMAINS, default_opset
from graphkit.ir.value_type import RANDOM_OPS
from graphkit.runtime.ort import create_session
from graphkit.util.errors import PassError


def evaluate_node(node: onnx.NodeProto, arrays: dict[str, np.ndarray], like: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Run one node on constant inputs with onnxruntime (optimizations off). An Unsqueeze (a
    reshape, no arithmetic) is computed here instead: a session per node is folding's main cost."""
    if node.op_type == "Unsqueeze" and node.domain in ONNX_DOMAINS:
        unsqueezed = _unsqueeze(node, arrays, default_opset(like))
        if unsqueezed is not None:
            return {node.output[0]: unsqueezed}
    key = _memo_key(node, arrays, like)
    if key is not None and key in _MEMO:
        _MEMO.move_to_end(key)
        return {name: value.copy() for name, value in zip(_wanted(node), _MEMO[key][0])}
    result = _evaluate(node, arrays, like)
    out_bytes = sum(v.nbytes for v in result.values())
    if key is not None and out_bytes <= MEMO_MAX_BYTES:
        in_bytes = sum(a.nbytes for a in arrays.values())  # the key holds them too
        _MEMO.remember(key, tuple(value.copy() for value in result.values()), in_bytes + out_bytes)
    return result


MEMO_MAX_BYTES = 64 * 1024  # inputs (and, apart, outputs) past this are evaluated every time
MEMO_TOTAL_BYTES = 8 * 1024 * 1024  # the least recently used entries go past this


class _Memo(OrderedDict):
    """Key -> (outputs, bytes held), least recently used first, at most MEMO_TOTAL_BYTES in all."""

    def __init__(self):
        super().__init__()
        self.nbytes = 0

    def remember(self, key: tuple, values: tuple[np.ndarray, ...], nbytes: int) -> None:
        if key in self:
            return
        self[key] = (values, nbytes)
        self.nbytes += nbytes
        while self.nbytes > MEMO_TOTAL_BYTES and self:
            self.nbytes -= self.popitem(last=False)[1][1]

    def clear(self) -> None:
        super().clear()
        self.nbytes = 0


_MEMO = _Memo()


def _wanted(node: onnx.NodeProto) -> list[str]:
    return [o for o in node.output if o]


def _memo_key(node: onnx.NodeProto, arrays: dict[str, np.ndarray], like: onnx.ModelProto) -> tuple | None:
    """What the node's outputs are a function of, byte for byte; None where it must run each time."""
    if node.op_type in RANDOM_OPS or any(a.type in _SUBGRAPH_TYPES or a.ref_attr_name for a in node.attribute):
        return None
    if sum(a.nbytes for a in arrays.values()) > MEMO_MAX_BYTES:
        return None
    slots, first = [], {}  # first: the slot that first reads each tensor (slots may share one)
    for position, name in enumerate(node.input):
        if not name:
            slots.append(None)
            continue
        array = arrays.get(name)
        if not isinstance(array, np.ndarray) or array.dtype.hasobject:  # object arrays' bytes are pointers
            return None
        if name in first:
            slots.append((first[name],))
            continue
        first[name] = position
        slots.append((position, array.dtype.str, array.shape, array.tobytes()))
    if set(arrays) - set(node.input):  # extra graph inputs change the evaluated model: not memoized
        return None
    return (
        node.op_type,
        node.domain,
        tuple(a.SerializeToString(deterministic=True) for a in node.attribute),
        tuple((o.domain, o.version) for o in like.opset_import),
        max(like.ir_version, 7),
        tuple(bool(o) for o in node.output),
        tuple(slots),
    )


_SUBGRAPH_TYPES = frozenset({onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS})


def _evaluate(node: onnx.NodeProto, arrays: dict[str, np.ndarray], like: onnx.ModelProto) -> dict[str, np.ndarray]:
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
