"""onnx-graphsurgeon as the pass IR: convert a ModelProto to a ``gs.Graph`` and back.

:func:`to_graph` never mutates the model (graphsurgeon reads initializers lazily);
:func:`to_model` exports the graph and restores the model-level fields that graphsurgeon does
not carry (IR version, producer, metadata, functions, non-default opset imports).
"""

from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs


def to_graph(model: onnx.ModelProto) -> gs.Graph:
    """The model's main graph as a graphsurgeon Graph."""
    return gs.import_onnx(model)


def to_model(graph: gs.Graph, like: onnx.ModelProto, opset: int | None = None) -> onnx.ModelProto:
    """Export ``graph`` as a model with the model-level fields of ``like``.

    ``opset`` overrides the default-domain opset (for passes that change it).
    """
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
