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

import onnx
import onnx_graphsurgeon as gs
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
    model = gs.export_onnx(graph, do_type_check=False)
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
