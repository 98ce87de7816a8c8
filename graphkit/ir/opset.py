"""Default-domain opset: the newest one onnx knows, and conversion between opsets.

:func:`convert_model` wraps ``onnx.version_converter`` for models of any size: it converts the
graph without its large initializers (:func:`graphkit.ir.shapes.skeleton`) and puts them back.
Used by the ``convert-opset`` pass and by passes that need a newer opset for one rewrite.
"""

from __future__ import annotations

import onnx
import onnx.version_converter

from graphkit.ir.model_check import check_tensor_sizes
from graphkit.ir.model_io import check_model, default_opset, infer_shapes
from graphkit.ir.shapes import io_signature, skeleton
from graphkit.util.errors import PassError, one_line

LATEST_OPSET = onnx.defs.onnx_opset_version()


class ConversionRefused(Exception):
    """The version converter cannot convert this model; ``str()`` is the one-line reason."""


def convert_model(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
    """A copy of ``model`` converted to default-domain opset ``target`` (``model`` untouched).

    The converter works on the graph without its large initializers (they become typed graph
    inputs, see :func:`graphkit.ir.shapes.skeleton`; no adapter rewrites a weight tensor), which are
    put back afterwards: no 500 MB serialization round trips, and no 2 GB protobuf limit.

    Raises ConversionRefused with the converter's message when it cannot convert, and
    PassError when the converted model fails the ONNX checker.
    """
    source = default_opset(model)
    light = skeleton(model)
    try:
        inferred = infer_shapes(light, strict=False)
    except PassError:
        inferred = light  # the converter still converts most ops without inferred shapes
    try:
        converted = onnx.version_converter.convert_version(inferred, target)
    except Exception as exc:  # the converter raises RuntimeError/ValueError/its own ConvertError
        message = one_line(exc, 300)
        raise ConversionRefused(f"onnx version converter cannot convert opset {source} -> {target}: {message}") from exc
    _restore_weights(model, light, converted)
    changed = _io_changes(model, converted)
    if changed:  # e.g. Scan 8 -> 9 drops the batch axis of the graph's inputs
        raise ConversionRefused(f"onnx version converter {source} -> {target} would change the graph {changed}")
    produced = {name for node in converted.graph.node for name in node.output}
    del converted.graph.value_info[:]
    converted.graph.value_info.extend(v for v in model.graph.value_info if v.name in produced)
    needed_ir = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", target)])
    converted.ir_version = max(converted.ir_version, needed_ir)
    what = f"model converted from opset {source} to {target}"
    check_tensor_sizes(converted, what)
    check_model(skeleton(converted), what=what)
    return converted


def _io_changes(before: onnx.ModelProto, after: onnx.ModelProto) -> str:
    """'' when graph inputs and outputs keep names, types and shapes; else what changed."""
    for kind in ("input", "output"):
        old = [io_signature(v) for v in getattr(before.graph, kind)]
        new = [io_signature(v) for v in getattr(after.graph, kind)]
        if old != new:
            return f"{kind}s: {old} -> {new}"
    return ""


def _restore_weights(model: onnx.ModelProto, light: onnx.ModelProto, converted: onnx.ModelProto) -> None:
    """Put the initializers that ``skeleton`` lifted out back into ``converted``, in their order."""
    kept = {t.name for t in light.graph.initializer}
    lifted = {t.name for t in model.graph.initializer} - kept
    listed_as_inputs = {v.name for v in model.graph.input}
    inputs = [v for v in converted.graph.input if v.name not in lifted or v.name in listed_as_inputs]
    del converted.graph.input[:]
    converted.graph.input.extend(inputs)
    new = {t.name: t for t in converted.graph.initializer}
    ordered = []
    for tensor in model.graph.initializer:
        if tensor.name in lifted:
            ordered.append(tensor)
        elif tensor.name in new:
            ordered.append(new.pop(tensor.name))
    ordered.extend(new.values())  # tensors the converter added
    del converted.graph.initializer[:]
    converted.graph.initializer.extend(ordered)
