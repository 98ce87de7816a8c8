"""Export the wseg model to ONNX, and the torch reference that golden outputs come from.

Two forms:

- **legacy** (the default; what the Ascend ModelZoo does): the TorchScript exporter
  (``dynamo=False``) at opset 11, input ``image``, outputs ``cls`` and ``mask``, batch dim
  named ``batch``. The softmax over classes comes out as ``Transpose -> Softmax(axis=3) ->
  Transpose``; H and W are fixed only in the input declaration. At opset 13..20 the same
  exporter writes a single ``Softmax(axis=1)``. The Conv+BatchNorm folds it makes are recomputed
  in float64 (:mod:`graphkit.wseg.exact_fold`), so the same weights give the same bytes on
  every CPU.
- **dynamo**: ``torch.onnx.export(dynamo=True)``; it only emits opset 18 or later (torch 2.13
  cannot convert its output down), so lower opsets are refused.

:func:`export_from_spec` turns an :class:`ExportSpec` (the pipeline's ``export`` section)
into the ONNX model, a torch reference callable and the weights description.

torch is imported only when a model is built or exported, so the CLI and spec checks stay fast.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import onnx

from graphkit.ir.model_io import save_model
from graphkit.util.console import progress
from graphkit.util.errors import InputError, SpecError

if TYPE_CHECKING:
    import torch

    from graphkit.wseg.network import WsegModel

INPUT_NAME = "image"
OUTPUT_NAMES = ("cls", "mask")
BATCH_DIM = "batch"
LEGACY_OPSETS = (11, 20)  # the TorchScript exporter's range we support (the softmax needs >= 11)
DYNAMO_MIN_OPSET = 18
MIN_SIDE = 16  # input H and W: the backbone downsamples by 8
LEGACY_TRACE_SIDE = 64  # the legacy exporter traces at most 64x64 (see export_onnx)
WEIGHTS_METADATA_KEY = "graphkit.weights"

Reference = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class ExportSpec:
    """How to build and export the model (the pipeline's ``export`` section).

    ``weights`` is a checkpoint path, or None for seeded random weights (``seed``).
    ``width`` < 1 gives the tiny variant of the same graph (e.g. 0.03125 for tests).
    """

    model: Literal["wseg"] = "wseg"
    weights: str | None = None
    seed: int = 0
    width: float = 1.0
    input_size: list[int] = field(default_factory=lambda: [1024, 1024])
    exporter: Literal["legacy", "dynamo"] = "legacy"
    opset: int = 11
    dynamic_batch: bool = True


class ExportResult(NamedTuple):
    """What :func:`export_from_spec` returns (unpacks as ``model, reference, weights``)."""

    model: onnx.ModelProto
    reference: Reference
    weights: str


def check_spec(spec: ExportSpec, where: str = "export") -> None:
    """Raise SpecError (naming ``where.field``) for values no export can honour."""
    if not 0 < spec.width <= 1:
        raise SpecError(f"{where}.width: must be in (0, 1], got {spec.width}")
    if len(spec.input_size) != 2 or any(not isinstance(s, int) or s < MIN_SIDE for s in spec.input_size):
        raise SpecError(f"{where}.input_size: expected [H, W], two integers >= {MIN_SIDE}, got {spec.input_size}")
    if not 0 <= spec.seed < 2**32:
        raise SpecError(f"{where}.seed: must be an integer in 0..2**32-1, got {spec.seed}")
    check_exporter_opset(spec.exporter, spec.opset, where)


def check_exporter_opset(exporter: str, opset: int, where: str = "export") -> None:
    """Raise SpecError when ``exporter`` cannot write ``opset``."""
    if exporter == "legacy" and not LEGACY_OPSETS[0] <= opset <= LEGACY_OPSETS[1]:
        raise SpecError(
            f"{where}.opset: the legacy exporter supports opsets {LEGACY_OPSETS[0]}..{LEGACY_OPSETS[1]}, got {opset}"
        )
    if exporter == "dynamo" and opset < DYNAMO_MIN_OPSET:
        raise SpecError(
            f"{where}.opset: the dynamo exporter writes opset {DYNAMO_MIN_OPSET} or later (got {opset}); "
            "use exporter: legacy for lower opsets"
        )
    if exporter not in ("legacy", "dynamo"):
        raise SpecError(f"{where}.exporter: expected 'legacy' or 'dynamo', got {exporter!r}")


def build_model(spec: ExportSpec) -> WsegModel:
    """The torch model of ``spec``: seeded random weights, then the checkpoint if given."""
    from graphkit.wseg.checkpoint import load_checkpoint
    from graphkit.wseg.network import WsegModel

    if spec.weights is None:
        return WsegModel(width=spec.width, seed=spec.seed)
    model = WsegModel(width=spec.width, seed=None)  # every value comes from the checkpoint
    load_checkpoint(model, spec.weights)
    return model


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike | None = None,
    *,
    input_size: Sequence[int] = (1024, 1024),
    batch: int = 1,
    exporter: Literal["legacy", "dynamo"] = "legacy",
    opset: int = 11,
    dynamic_batch: bool = True,
) -> onnx.ModelProto:
    """Export ``model`` (``image`` -> ``cls``, ``mask``) to ONNX; also save it at ``path`` if given.

    The example input is zeros of shape [batch, 3, H, W]; with ``dynamic_batch`` the batch
    dim of the input and both outputs is named ``batch``. The model's weights description
    goes into the ONNX metadata (``graphkit.weights``, without the checkpoint's path).

    The legacy exporter runs the model once to trace it. Its wseg graph computes every
    resize size from the input's shape, so it does not depend on the traced H and W: it
    traces at most 64x64 and then declares [H, W] on the input (byte-identical to tracing at
    full size, which tests check; saves a full-size forward, ~20 s at 1024x1024). The dynamo
    exporter bakes H and W into the graph and traces at the requested size.
    """
    check_exporter_opset(exporter, opset)
    height, width = (int(s) for s in input_size)
    model.eval()
    with progress(total=2, desc=f"export ({exporter}, opset {opset})", unit="stage") as bar:
        if exporter == "legacy":
            traced = (min(height, LEGACY_TRACE_SIDE), min(width, LEGACY_TRACE_SIDE))
            proto = _export_legacy(model, (batch, 3, *traced), opset, dynamic_batch)
            _declare_input_hw(proto, height, width)
        else:
            proto = _export_dynamo(model, (batch, 3, height, width), opset, dynamic_batch)
        bar.update()
        bar.set_description("export: writing")
        description = getattr(model, "weights_description", "")
        if description:
            _set_metadata(proto, WEIGHTS_METADATA_KEY, _without_path(description))
        if path is not None:
            save_model(proto, path)
        bar.update()
    return proto


def _export_legacy(model, shape, opset: int, dynamic_batch: bool) -> onnx.ModelProto:
    import torch

    from graphkit.wseg.exact_fold import conv_batchnorm_pairs, refold_exactly

    axes = {name: {0: BATCH_DIM} for name in (INPUT_NAME, *OUTPUT_NAMES)} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), conv_batchnorm_pairs(model) as pairs:
        warnings.simplefilter("ignore")  # TracerWarnings about shape arithmetic are expected
        torch.onnx.export(
            model,
            (torch.zeros(shape),),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    refold_exactly(proto, model, pairs)  # torch's float32 folds differ by CPU (see exact_fold)
    return proto


def _declare_input_hw(proto: onnx.ModelProto, height: int, width: int) -> None:
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = height, width


def _export_dynamo(model, shape, opset: int, dynamic_batch: bool) -> onnx.ModelProto:
    import torch

    if dynamic_batch and shape[0] < 2:
        shape = (2, *shape[1:])  # torch.export specialises a batch of 1
    dynamic_shapes = {INPUT_NAME: {0: torch.export.Dim(BATCH_DIM)}} if dynamic_batch else None
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (torch.zeros(shape),),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    finally:
        onnx_logger.setLevel(level)
    return program.model_proto


def _set_metadata(proto: onnx.ModelProto, key: str, value: str) -> None:
    for entry in proto.metadata_props:
        if entry.key == key:
            entry.value = value
            return
    proto.metadata_props.add(key=key, value=value)


def _without_path(description: str) -> str:
    # "checkpoint /some/where/x.pth (sha256 ab12)" -> "checkpoint x.pth (sha256 ab12)": the
    # model's content hash must not depend on where the checkpoint lies.
    if description.startswith("checkpoint ") and " (sha256 " in description:
        path, digest = description[len("checkpoint ") :].rsplit(" (sha256 ", 1)
        return f"checkpoint {os.path.basename(path)} (sha256 {digest}"
    return description


def torch_reference(model: torch.nn.Module) -> Reference:
    """A callable ``feeds -> {"cls", "mask"}`` running ``model`` in torch (eval, no_grad).

    ``feeds`` must hold exactly ``image``: a float array [N,3,H,W].
    """
    import torch

    model.eval()

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if set(feeds) != {INPUT_NAME}:
            raise InputError(
                f"torch reference: inputs {sorted(feeds)} do not match the model's inputs ['{INPUT_NAME}']"
            )
        image = np.asarray(feeds[INPUT_NAME])
        if image.ndim != 4 or image.shape[1] != 3:
            raise InputError(f"torch reference: input '{INPUT_NAME}' must be [N,3,H,W], got shape {list(image.shape)}")
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        with torch.no_grad():
            outputs = model(tensor)
        return {name: value.numpy() for name, value in zip(OUTPUT_NAMES, outputs)}

    return run


def export_from_spec(spec: ExportSpec, path: str | os.PathLike | None = None) -> ExportResult:
    """Build the model of ``spec``, export it (saved at ``path`` if given); see ExportResult."""
    check_spec(spec)
    model = build_model(spec)
    proto = export_onnx(
        model,
        path,
        input_size=spec.input_size,
        exporter=spec.exporter,
        opset=spec.opset,
        dynamic_batch=spec.dynamic_batch,
    )
    return ExportResult(proto, torch_reference(model), model.weights_description)
