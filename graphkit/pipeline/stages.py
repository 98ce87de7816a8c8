"""The pipeline's stages around the passes: loading the source, and the optional hand-off and
eval stages after the model is saved (with the typing of their sections up front).

Stage messages go to the ``graphkit.pipeline.stages`` logger (``log`` defaults to its
``info``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from graphkit.ir.model_io import load_user_model
from graphkit.pipeline.spec import PipelineSpec
from graphkit.util.errors import PipelineSpecError, SpecError
from graphkit.util.typed_config import from_mapping

logger = logging.getLogger(__name__)

Log = Callable[[str], None]


@dataclass
class Source:
    """The loaded source model and how it was obtained."""

    model: onnx.ModelProto
    kind: str
    description: str
    weights: str = "n/a"
    reference: Callable | None = None
    details: dict[str, Any] = field(default_factory=dict)


def load_source(
    spec: PipelineSpec, origin: str, input_path: str | None, weights: str | None, log: Log = logger.info
) -> Source:
    """Load, build or export the source model named by the pipeline (or ``input_path``)."""
    if input_path:
        return Source(load_user_model(input_path), "onnx", str(input_path))
    if spec.source.onnx:
        return Source(load_user_model(spec.source.onnx), "onnx", spec.source.onnx)
    if spec.source.builtin == "demo":
        from graphkit.pipeline.demo_model import demo_model

        return Source(demo_model(), "builtin", "demo model", weights="random (seed 0)")
    from graphkit.wseg.export import ExportSpec, export_from_spec

    options = dict(spec.source.export or {})
    if weights:
        options["weights"] = weights
    try:
        export_spec = from_mapping(ExportSpec, options, "source.export")
    except SpecError as exc:
        raise PipelineSpecError(f"{origin}: {exc}") from exc
    log(f"exporting {export_spec.model} ({export_spec.exporter} exporter, opset {export_spec.opset}) ...")
    model, reference, weights_description = export_from_spec(export_spec)
    return Source(model, "export", f"export of {export_spec.model}", weights_description, reference, vars(export_spec))


def type_sections(spec: PipelineSpec, origin: str) -> dict[str, Any]:
    """Type the optional ``handoff.atc`` and ``eval`` sections up front (errors name the key)."""
    sections: dict[str, Any] = {}
    try:
        if spec.handoff:
            unknown = sorted(set(spec.handoff) - {"atc"})
            if unknown:
                raise SpecError(f"handoff: unknown key '{unknown[0]}'; known keys: atc")
            from graphkit.ascend.spec import AtcSpec

            sections["atc"] = from_mapping(AtcSpec, spec.handoff.get("atc") or {}, "handoff.atc")
            sections["atc"].validate("handoff.atc")  # every option checked before any pass runs
        if spec.eval:
            from graphkit.wseg.eval.spec import eval_spec_from_mapping

            sections["eval"] = eval_spec_from_mapping(spec.eval, "eval")
    except SpecError as exc:
        raise PipelineSpecError(f"{origin}: {exc}") from exc
    return sections


def _handoff(atc_spec, model_path: Path, run_dir: Path, stages: dict, log: Log = logger.info) -> dict | None:
    if atc_spec is None:
        return None
    from graphkit.ascend.spec import run_handoff

    clock = time.perf_counter()
    log("writing the ATC hand-off ...")
    result = run_handoff(atc_spec, model_path, run_dir / "atc")
    stages["handoff"] = time.perf_counter() - clock
    return result


def _eval(
    eval_spec, source: Source, model_path: Path, run_dir: Path, stages: dict, log: Log = logger.info
) -> dict | None:
    if eval_spec is None:
        return None
    import dataclasses

    from graphkit.wseg.eval.runner import run_eval

    if not eval_spec.weights_description:
        eval_spec = dataclasses.replace(eval_spec, weights_description=source.weights)
    clock = time.perf_counter()
    log("evaluating accuracy on VOC ...")
    result = run_eval(eval_spec, model_path, run_dir / "eval")
    stages["eval"] = time.perf_counter() - clock
    return result
