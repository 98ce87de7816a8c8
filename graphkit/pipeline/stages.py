"""The pipeline's stages around the passes: loading the source, and the stages that run after the
model is saved (with the typing of their sections up front).

``onnx`` and ``builtin`` sources are the core's own; every other ``source.<kind>`` and every
stage (``handoff.atc``, ``eval``, a user's) comes from a plugin
(:mod:`graphkit.pipeline.plugins`). Stage messages go to the ``graphkit.pipeline.stages`` logger.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import onnx

from graphkit.ir.model_io import load_user_model
from graphkit.pipeline.plugins import (
    HANDOFF,
    SOURCES,
    STAGES,
    Source,
    SourceKind,
    StageContext,
    handoff_names,
    ordered_stages,
)
from graphkit.pipeline.spec import PipelineSpec
from graphkit.util.errors import GraphkitError, PipelineSpecError, SpecError, one_line

logger = logging.getLogger(__name__)

TOP_LEVEL_SECTIONS = ("eval", "perf", "precision")  # stage sections that are top-level pipeline keys

__all__ = ["load_source", "type_sections", "run_stages", "check_weights_flag"]


def load_source(spec: PipelineSpec, origin: str, input_path: str | None, weights: str | None) -> Source:
    """Load, build or export the source model named by the pipeline (or ``input_path``).

    ``onnx`` and ``builtin`` are the core's own kinds; any other ``source.<kind>`` is loaded by
    the plugin registered for it (:data:`graphkit.pipeline.plugins.SOURCES`).
    """
    if input_path:
        return Source(load_user_model(input_path, mapped=True), "onnx", str(input_path))
    if spec.source.onnx:
        return Source(load_user_model(spec.source.onnx, mapped=True), "onnx", spec.source.onnx)
    if spec.source.builtin == "demo":
        from graphkit.pipeline.demo_model import demo_model

        return Source(demo_model(), "builtin", "demo model", weights="random (seed 0)")
    name, options = plugin_source(spec)
    kind = source_kind(name)
    try:
        typed = kind.parse(options, f"source.{name}", weights)
    except SpecError as exc:
        raise PipelineSpecError(f"{origin}: {exc}") from exc
    try:
        loaded = kind.load(typed)
    except GraphkitError:
        raise
    except Exception as exc:  # a plug-in's bug: one line naming the source kind
        raise GraphkitError(_raised(f"source.{name}: the plug-in's load", exc)) from exc
    return _loaded_source(name, loaded)


def plugin_source(spec: PipelineSpec) -> tuple[str, dict | None]:
    """The ``source.<kind>`` a plugin loads, and its options: the one key besides onnx/builtin."""
    if spec.source.export is not None:
        return "export", spec.source.export
    for name, options in spec.source.plugin.items():
        return name, options
    raise PipelineSpecError("source: no source kind is set")


def source_kind(name: str) -> SourceKind:
    """The registered plugin for ``source.<name>``; a GraphkitError when none is installed."""
    if name not in SOURCES:
        raise PipelineSpecError(
            f"source.{name}: no plugin provides this source kind (entry point group graphkit.sources; "
            "is graphkit installed with 'pip install -e .'?)"
        )
    return SOURCES[name]


def check_weights_flag(spec: PipelineSpec, origin: str, weights: str | None, input_path: str | None) -> None:
    """``--weights`` only with a source kind that takes weights (an export), never with ``--input``."""
    if weights and not input_path and not _takes_weights(spec):
        kinds = ", ".join(f"source.{name}" for name in SOURCES if SOURCES[name].takes_weights)
        raise PipelineSpecError(
            f"--weights: the source of {origin} is {_source_words(spec)}, not an export; weights only apply to {kinds}"
        )
    if weights and input_path:
        raise PipelineSpecError("--weights: with --input the source is an ONNX file, not an export")


def _source_words(spec: PipelineSpec) -> str:
    if spec.source.onnx:
        return "an ONNX file"
    if spec.source.builtin:
        return "the built-in demo"
    return f"source.{plugin_source(spec)[0]}"


def _takes_weights(spec: PipelineSpec) -> bool:
    if spec.source.onnx or spec.source.builtin:
        return False
    return source_kind(plugin_source(spec)[0]).takes_weights


def type_sections(spec: PipelineSpec, origin: str) -> dict[str, Any]:
    """Type every stage's section up front (errors name the key), by section path.

    The ``handoff`` mapping holds one key per registered ``handoff.<name>`` stage; ``eval`` and
    ``perf`` are stage sections themselves (:mod:`graphkit.pipeline.plugins`).
    """
    sections: dict[str, Any] = {}
    try:
        if spec.handoff:
            known = handoff_names()
            unknown = sorted(set(spec.handoff) - set(known))
            if unknown:
                raise SpecError(f"handoff: unknown key '{unknown[0]}'; known keys: {', '.join(known)}")
        for name, stage in ordered_stages():
            raw = _section(spec, name)
            if raw is not None:
                sections[name] = stage.parse(raw, name)
        if spec.eval and "eval" not in STAGES:  # (perf: accepted, run only by a plugin that registers it)
            raise SpecError("eval: no installed plugin runs this section (entry point group graphkit.stages)")
    except SpecError as exc:
        raise PipelineSpecError(f"{origin}: {exc}") from exc
    return sections


def _section(spec: PipelineSpec, name: str) -> Any:
    """The raw value of section ``name`` (``eval``, ``handoff.atc``), None when absent."""
    if name.startswith(HANDOFF):
        if not spec.handoff or name[len(HANDOFF) :] not in spec.handoff:
            return None
        return spec.handoff[name[len(HANDOFF) :]] or {}
    value = getattr(spec, name, None) if name in TOP_LEVEL_SECTIONS else None
    return value or None


def run_stages(
    sections: dict[str, Any], context: StageContext, stages: dict[str, float], results: dict[str, Any]
) -> None:
    """Run the typed stages in their declared order; puts each stage's report entry in ``results``
    by its report key (None for a registered stage the pipeline does not use) and times it in
    ``stages``. A stage that raises stops the run: its entry is ``{"error": ...}`` and the error
    is a GraphkitError (a plug-in's own exception becomes one line naming the stage)."""
    for name, stage in ordered_stages():
        results[stage.report_key] = None
        if name not in sections:
            continue
        clock = time.perf_counter()
        if stage.message:
            logger.info(stage.message)
        try:
            entry = stage.run(sections[name], replace(context, earlier=dict(results)))
        except Exception as exc:  # signals (KeyboardInterrupt, Terminated) are not stage failures
            error = exc if isinstance(exc, GraphkitError) else GraphkitError(_raised(f"stage '{name}'", exc))
            results[stage.report_key] = {"error": str(error)}
            stages[stage.report_key] = time.perf_counter() - clock
            raise error from exc
        results[stage.report_key] = entry
        stages[stage.report_key] = time.perf_counter() - clock


def _raised(what: str, exc: BaseException) -> str:
    return f"{what} raised {type(exc).__name__}: {one_line(exc)}"


def _loaded_source(name: str, loaded: object) -> Source:
    """What a source kind's ``load`` returned, checked: a Source holding an ONNX ModelProto."""
    if not isinstance(loaded, Source):
        raise GraphkitError(f"source.{name}: the plug-in's load returned {type(loaded).__name__}, not a Source")
    if not isinstance(loaded.model, onnx.ModelProto):
        raise GraphkitError(
            f"source.{name}: the plug-in's Source holds {type(loaded.model).__name__}, not an onnx.ModelProto"
        )
    return loaded
