"""onnx-graphsurgeon as the pass IR: convert a ModelProto to a ``gs.Graph`` and back.

Neither function mutates the model it is given. :func:`to_graph` is cheap: graphsurgeon keeps
the model's own ``TensorProto`` objects (initializers, ``Constant`` node tensors, subgraph and
function tensors) behind lazily loaded constants instead of copying them. graphsurgeon's
exporter writes each such constant's name back into that shared proto before copying it out
(for an unnamed ``Constant`` attribute tensor this alone adds ``name: ""`` to the input), so
:func:`to_model` first gives every lazily loaded constant whose proto would change a private
copy; protos whose name already matches (every untouched initializer) are never copied.
:func:`to_model` also restores the model-level fields that graphsurgeon does not carry (IR
version, producer, metadata, functions, non-default opset imports).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import numpy_helper
from onnx_graphsurgeon.ir.tensor import LazyValues


def to_graph(model: onnx.ModelProto) -> gs.Graph:
    """The model's main graph as a graphsurgeon Graph (shares, never changes, the model's tensors)."""
    return gs.import_onnx(model)


def to_model(graph: gs.Graph, like: onnx.ModelProto, opset: int | None = None) -> onnx.ModelProto:
    """Export ``graph`` as a model with the model-level fields of ``like``.

    ``opset`` overrides the default-domain opset (for passes that change it). The protos the
    graph shares with the model it was imported from are left as they were.
    """
    _detach_renamed_constants(graph)
    lifted = _lift_large_initializers(graph)
    try:
        model = gs.export_onnx(graph, do_type_check=False)
    finally:
        _put_back(lifted)
    if lifted:  # the large weights, copied once (the exporter would copy them twice)
        names = {constant.name for constant, _ in lifted}
        value_info = [v for v in model.graph.value_info if v.name not in names]
        del model.graph.value_info[:]
        model.graph.value_info.extend(value_info)
        model.graph.initializer.extend(_tensor_proto(constant) for constant, _ in lifted)
    model.ir_version = like.ir_version
    model.producer_name = like.producer_name
    model.producer_version = like.producer_version
    model.domain = like.domain
    model.model_version = like.model_version
    model.doc_string = like.doc_string
    del model.metadata_props[:]
    model.metadata_props.extend(like.metadata_props)
    del model.functions[:]
    model.functions.extend(like.functions)
    del model.opset_import[:]
    for entry in like.opset_import:
        copy = model.opset_import.add()
        copy.CopyFrom(entry)
        if opset is not None and entry.domain in ("", "ai.onnx"):
            copy.version = opset
    return model


LIFT_MIN_BYTES = 1 << 16


def _lift_large_initializers(graph: gs.Graph) -> list[tuple[gs.Constant, list[tuple[gs.Node, int]]]]:
    """Swap large dense initializers for placeholders so that export does not copy them.

    Returns each lifted constant with the (node, input slot) pairs it was taken from. Graphs
    with subgraphs (outer-scope references) and constants that are graph outputs are left alone.
    """
    if any(isinstance(v, gs.Graph) for node in graph.nodes for v in node.attrs.values()):
        return []
    outputs = {id(t) for t in graph.outputs}
    lifted = []
    for tensor in list(graph.tensors().values()):
        if not isinstance(tensor, gs.Constant) or id(tensor) in outputs or not _large_dense(tensor):
            continue
        uses = [(node, i) for node in list(tensor.outputs) for i, t in enumerate(node.inputs) if t is tensor]
        placeholder = gs.Variable(tensor.name, dtype=tensor.dtype, shape=tensor.shape)
        for node, i in uses:
            node.inputs[i] = placeholder
        lifted.append((tensor, uses))
    return lifted


def _put_back(lifted: list[tuple[gs.Constant, list[tuple[gs.Node, int]]]]) -> None:
    for constant, uses in lifted:
        for node, i in uses:
            node.inputs[i] = constant


def _large_dense(constant: gs.Constant) -> bool:
    values = constant._values
    if isinstance(values, LazyValues):
        count = 1
        for dim in values.tensor.dims:
            count *= dim
        return values.tensor.data_location != onnx.TensorProto.EXTERNAL and count * 4 >= LIFT_MIN_BYTES
    return isinstance(values, np.ndarray) and values.nbytes >= LIFT_MIN_BYTES


def _tensor_proto(constant: gs.Constant) -> onnx.TensorProto:
    """The constant's proto: the model's own (already named right, or a private copy) or a new one."""
    values = constant._values
    if isinstance(values, LazyValues):
        if not _named(values.tensor, constant.name):  # a private copy (see _detach_renamed_constants)
            values.tensor.name = constant.name
        return values.tensor
    return numpy_helper.from_array(np.asarray(values), constant.name)


def _detach_renamed_constants(graph: gs.Graph) -> None:
    """Give each lazily loaded constant that export would rename its own copy of its proto.

    Walks the graph, its subgraphs (node attributes, at any depth) and its functions.
    """
    seen_graphs: set[int] = set()
    seen_constants: set[int] = set()
    pending: list[gs.Graph] = [graph, *getattr(graph, "functions", [])]
    while pending:
        current = pending.pop()
        if id(current) in seen_graphs:
            continue
        seen_graphs.add(id(current))
        constants = [t for t in current.tensors().values() if isinstance(t, gs.Constant)]
        for node in current.nodes:
            for value in node.attrs.values():
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(item, gs.Graph):
                        pending.append(item)
                    elif isinstance(item, gs.Constant):
                        constants.append(item)
        for constant in constants:
            if id(constant) in seen_constants:
                continue
            seen_constants.add(id(constant))
            values = constant._values
            if isinstance(values, LazyValues) and not _named(values.tensor, constant.name):
                private = onnx.TensorProto()
                private.CopyFrom(values.tensor)
                constant._values = LazyValues(private)


def _named(tensor: onnx.TensorProto, name: str) -> bool:
    """True when setting ``tensor.name = name`` would leave the proto's content unchanged."""
    return tensor.HasField("name") and tensor.name == name
