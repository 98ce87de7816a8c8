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

from graphkit.ir.model_io import default_opset
from graphkit.ir.opset import LATEST_OPSET, ConversionRefused, convert_model
from graphkit.transform.pass_base import Declined, Pass, PassResult, option
from graphkit.transform.registry import register
from graphkit.util.errors import SpecError


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
