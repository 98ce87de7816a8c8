"""Extracting one side of a region as a standalone model, and running it on boundary data."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from graphkit.check.region_find import RegionUnavailable, Side
from graphkit.ir.external_data import tensor_array
from graphkit.ir.shapes import ValueType
from graphkit.runtime.backend import open_validation_backend
from graphkit.runtime.ort import ValidationRuntime, ort_error_text
from graphkit.util.errors import one_line


def extract_side(side: Side, types: Mapping[str, ValueType]) -> onnx.ModelProto | None:
    """The side's region as a standalone model (None when it has no nodes: outputs are inputs).

    Inputs and outputs are declared with their element type and rank, every dim open, so one
    extracted model serves every case (batch size).
    """
    if not side.nodes:
        return None
    source = side.model
    nodes = [source.graph.node[i] for i in side.nodes]
    produced = {t for n in nodes for t in n.output if t}
    read = {t for n in nodes for t in n.input if t}
    inits = [t for t in source.graph.initializer if t.name in read and t.name not in produced]
    inputs = [t for t in side.inputs if t in read]
    outputs = [t for t in side.outputs if t in produced]
    model = onnx.ModelProto()
    model.ir_version = source.ir_version
    model.opset_import.extend(source.opset_import)
    model.functions.extend(source.functions)
    graph = model.graph
    graph.name = "region"
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    for name in inputs:
        graph.input.append(_any_shape(name, types[name]))
    for name in outputs:
        vtype = types.get(name)
        if vtype is None or not vtype.elem_type:
            raise RegionUnavailable(f"the type of region output '{name}' is unknown")
        graph.output.append(_any_shape(name, vtype))
    return model


def _any_shape(name: str, vtype: ValueType) -> onnx.ValueInfoProto:
    """A value info with the element type and rank of ``vtype`` and every dim left open."""
    dims = None if vtype.dims is None else [None] * len(vtype.dims)
    return onnx.helper.make_tensor_value_info(name, vtype.elem_type, dims)


class RegionRunFailed(Exception):
    """An extracted region failed to run on the boundary data."""


class SideRunner:
    """Runs one side's extracted region; outputs that are boundary inputs come from the feeds."""

    def __init__(self, side: Side, types: Mapping[str, ValueType], runtime: ValidationRuntime):
        self.side = side
        model = extract_side(side, types)
        try:
            self.backend = (
                open_validation_backend(model, runtime.optimization, runtime.threads) if model is not None else None
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            reason = one_line(exc, 200)
            raise RegionUnavailable(f"onnxruntime cannot load the extracted region: {reason}") from exc
        self.inputs = [info.name for info in self.backend.inputs] if self.backend else []
        wanted = set(side.outputs)
        self.initializers = {t.name: t for t in side.model.graph.initializer if t.name in wanted}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = {}
        if self.backend is not None:
            try:
                results = self.backend.run({name: feeds[name] for name in self.inputs})
            except Exception as exc:  # InputError, or any onnxruntime failure while running
                raise RegionRunFailed(ort_error_text(exc)) from exc
        for name in self.side.outputs:
            if name in results:
                continue
            if name in feeds:
                results[name] = feeds[name]
            elif name in self.initializers:
                results[name] = tensor_array(self.initializers[name])
        return results
