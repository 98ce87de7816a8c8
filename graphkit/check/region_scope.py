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
from graphkit.diff.records import ModelDiff
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


def changed_node_not_shape_edit(a: onnx.ModelProto, b: onnx.ModelProto, diff: ModelDiff) -> str:
    """Why a node the pass added, removed or changed is not a shape edit, judged from the types
    the two models declare (initializers, graph inputs and outputs, value_info; no inference), or
    '' when none shows it. Every such node lies in the region, so a reason here is the one
    :func:`not_shape_edit` would give: the caller checks end to end without finding the region."""
    changed_a = [n.index for n in diff.nodes_removed] + [
        c.before.index for c in diff.nodes_changed if not c.renamed_only
    ]
    changed_b = [n.index for n in diff.nodes_added] + [c.after.index for c in diff.nodes_changed if not c.renamed_only]
    for model, indices in ((a, changed_a), (b, changed_b)):
        types = _declared_types(model)
        for index in indices:
            node = model.graph.node[index]
            reason = _node_reason(node, types, unknown_ok=True)
            if reason:
                return f"{node.op_type} '{node.name or node.output[0]}' {reason}"
    return ""


def _declared_types(model: onnx.ModelProto) -> dict[str, ValueType]:
    graph = model.graph
    types = {t.name: ValueType(t.data_type, None) for t in graph.initializer}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            types.setdefault(value.name, ValueType(value.type.tensor_type.elem_type, None))
    return types


def _node_reason(node: onnx.NodeProto, types: Mapping[str, ValueType], unknown_ok: bool = False) -> str:
    if node.domain not in ("", "ai.onnx"):
        return f"is in domain '{node.domain}'"
    if node.op_type in CONSTANT_OPS or node.op_type in SHAPE_READERS or node.op_type in DATA_MOVEMENT_OPS:
        return ""
    for name in [*node.input, *node.output]:
        if not name:
            continue
        vtype = types.get(name)
        if vtype is None:
            if unknown_ok:
                continue
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
