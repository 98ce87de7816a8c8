"""Which rewrites a region check proves as well as an end-to-end check: shape edits.

A pass that edited only shape arithmetic (``Shape -> Gather -> Concat -> Reshape`` chains folded
to a constant, a no-op ``Reshape`` removed, a ``Squeeze``/``Unsqueeze`` pair cancelled) computes
the same function as before exactly when the rewritten region routes the same elements to the
same places at every shape the model runs at. Such a region holds only

- **shape arithmetic**: nodes that read no float value (integer/bool in, integer/bool out:
  ``Gather`` of a shape, ``Concat``, ``Mul``, ``Range``...), and ``Shape``/``Size``, which read
  only their input's shape;
- **constants**: ``Constant``, ``ConstantOfShape``;
- **data movement**: ops whose float outputs are float inputs' elements moved, copied or selected
  (:data:`DATA_MOVEMENT_OPS`), never combined.

On such a region random boundary data at a golden case's shapes proves what the golden inputs
prove there: no output element depends on a float value's size, so a wrong routing shows as a
mismatch on distinct random values (golden activations may even hide one behind ties, e.g. zeros
after a Relu), and a baked dim or a wrong constant shows at the case whose dims differ (every
symbolic dim is checked at two sizes). A node that reads a float value to make an integer or
bool (``ArgMax``, ``Greater``, a ``Cast`` to int) or does float arithmetic is not shape editing:
such a pass is checked end to end.
"""

from __future__ import annotations

from collections.abc import Mapping

import onnx

from graphkit.check.region_find import Region
from graphkit.ir.shapes import ValueType

# float outputs are input elements moved, copied or selected (by integer/bool operands)
DATA_MOVEMENT_OPS = frozenset(
    {
        "Concat",
        "DepthToSpace",
        "Expand",
        "Flatten",
        "Gather",
        "Identity",
        "Reshape",
        "Slice",
        "SpaceToDepth",
        "Split",
        "Squeeze",
        "Tile",
        "Transpose",
        "Unsqueeze",
        "Where",
    }
)
SHAPE_READERS = frozenset({"Shape", "Size"})  # read only their input's shape
CONSTANT_OPS = frozenset({"Constant", "ConstantOfShape"})


def not_shape_edit(region: Region, types_a: Mapping[str, ValueType], types_b: Mapping[str, ValueType]) -> str:
    """Why ``region`` is not a shape edit (the first node of either side that is neither shape
    arithmetic, a constant nor data movement), or '' when it is one."""
    for side, types in ((region.a, types_a), (region.b, types_b)):
        for index in side.nodes:
            node = side.model.graph.node[index]
            reason = _node_reason(node, types)
            if reason:
                return f"{node.op_type} '{node.name or node.output[0]}' {reason}"
    return ""


def _node_reason(node: onnx.NodeProto, types: Mapping[str, ValueType]) -> str:
    if node.domain not in ("", "ai.onnx"):
        return f"is in domain '{node.domain}'"
    if node.op_type in CONSTANT_OPS or node.op_type in SHAPE_READERS or node.op_type in DATA_MOVEMENT_OPS:
        return ""
    for name in [*node.input, *node.output]:
        if not name:
            continue
        vtype = types.get(name)
        if vtype is None:
            return f"has a tensor of unknown type ('{name}')"
        if vtype.elem_type not in _INTEGER_OR_BOOL:
            return "computes on float values"
    return ""


_INTEGER_OR_BOOL = frozenset(
    {
        onnx.TensorProto.BOOL,
        onnx.TensorProto.INT8,
        onnx.TensorProto.INT16,
        onnx.TensorProto.INT32,
        onnx.TensorProto.INT64,
        onnx.TensorProto.UINT8,
        onnx.TensorProto.UINT16,
        onnx.TensorProto.UINT32,
        onnx.TensorProto.UINT64,
    }
)
