"""Move a model to a target default-domain opset with onnx's version converter.

Rewrite: shape inference first (so the converter's adapters see ranks and types), then
``onnx.version_converter.convert_version(model, target)``. The converter replaces each op
whose schema changed between the opsets by its equivalent (attributes that became inputs,
``Softmax`` before opset 13 wrapped as ``Flatten -> Softmax -> Reshape`` to keep the
flattened-trailing-dims semantics, ...). Value infos are restored to the ones the model had
(the inferred ones only feed the converter), and the IR version is raised to the minimum the
target opset needs when it was lower. Custom-domain nodes and opset imports pass through.

Math: none of its own; every adapter of the converter is meant to be semantics-preserving, so
the pass is declared exact, and the manager's validate-each checks that claim on every model.

Declines (model unchanged, reason given):
- the model is already at ``target`` (a no-op, ``modified`` false, nothing declined);
- ``target`` is below the model's opset and ``allow_downgrade`` is false (the default:
  downgrades lose ops and attributes more often than not; allow it explicitly);
- the converter cannot convert an op (its message is the reason).

The converter runs on the graph without its large initializers, which are put back after, so
models of any size convert without serializing their weights.

Raises PassError when the converter returns a model that fails the ONNX checker.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx.version_converter

from graphkit.ir.model_io import check_model, check_tensor_sizes, default_opset, infer_shapes
from graphkit.ir.shapes import skeleton
from graphkit.transform.pass_base import Declined, Pass, PassResult, io_signature, option
from graphkit.transform.registry import register
from graphkit.util.errors import PassError, SpecError, one_line

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


@dataclass
class ConvertOpsetOptions:
    """Options of convert-opset."""

    target: int = option(13, doc="default-domain opset to convert to (13: the first with single-axis Softmax)")
    allow_downgrade: bool = option(False, doc="also convert to a lower opset than the model's (off: decline)")

    def __post_init__(self):
        if not 1 <= self.target <= LATEST_OPSET:
            raise SpecError(
                f"convert-opset option 'target': opset {self.target} is outside 1..{LATEST_OPSET} "
                f"(the opsets onnx {onnx.__version__} knows)"
            )


@register("convert-opset")
class ConvertOpset(Pass):
    """Convert the model to a target opset with onnx's version converter (shape inference first).

    See the module docstring for the rewrite, the math and when it declines.
    """

    Options = ConvertOpsetOptions
    exact = True
    opset_range = (1, LATEST_OPSET)
    changes_opset = True
    changes_io = False

    def run(self, model: onnx.ModelProto) -> PassResult:
        source, target = default_opset(model), self.options.target
        if source == target:
            return PassResult(model=model, modified=False, notes=[f"already at opset {target}"])
        if target < source and not self.options.allow_downgrade:
            return self.decline_all(
                model, f"target opset {target} is below the model's opset {source}; set allow_downgrade to convert down"
            )
        try:
            converted = convert_model(model, target)
        except ConversionRefused as exc:
            return PassResult(model=model, modified=False, declined=[Declined("<model>", str(exc))])
        return PassResult(
            model=converted,
            modified=True,
            counts={"from_opset": source, "to_opset": target},
            notes=[f"converted opset {source} -> {target} with onnx.version_converter"],
        )
