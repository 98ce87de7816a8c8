"""Tensor name -> dims for the diff page's edge labels, as far as ONNX shape inference knows them."""

from __future__ import annotations

import logging

import onnx

from graphkit.ir.model_io import infer_shapes
from graphkit.util.errors import GraphkitError

logger = logging.getLogger(__name__)

GRAPH_OUTPUTS = "__graph_outputs__"


def _dims(value_type: onnx.TypeProto) -> tuple | None:
    if not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return None
    return tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in value_type.tensor_type.shape.dim
    )


def tensor_shapes(model: onnx.ModelProto) -> dict:
    """Dims (ints, dim names, None for unknown) per tensor name, plus ``GRAPH_OUTPUTS``: the output names.

    Shape inference runs non-strict on the model; where it fails, the shapes the model already
    records (graph I/O, value_info, initializers) are used.
    """
    try:
        inferred = infer_shapes(model, what="diff page", strict=False)
    except (GraphkitError, RecursionError, MemoryError) as exc:
        logger.info("diff page: no inferred shapes (%s); edges show the recorded shapes only", exc)
        inferred = model
    graph = inferred.graph
    shapes: dict = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        dims = _dims(value.type)
        if dims is not None:
            shapes[value.name] = dims
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    shapes[GRAPH_OUTPUTS] = frozenset(o.name for o in graph.output)
    return shapes
