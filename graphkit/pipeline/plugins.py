"""What a pipeline can be extended with: source kinds and stages (the plugin contract).

The pipeline core (:mod:`graphkit.pipeline.run`) knows two sources itself (``source.onnx`` and
``source.builtin``) and no stage; any other key under ``source`` names a registered kind
(:class:`graphkit.pipeline.spec.SourceSpec` keeps its options). Everything else plugs in through two registries
(:class:`graphkit.util.plugin_registry.Registry`), filled from Python entry points, so a user package
adds one exactly as graphkit's own ``wseg`` and ``ascend`` do (see ``pyproject.toml``)::

    [project.entry-points."graphkit.sources"]
    export = "graphkit.wseg.plugin:EXPORT_SOURCE"        # source.export
    [project.entry-points."graphkit.stages"]
    "handoff.atc" = "graphkit.ascend.plugin:ATC_STAGE"   # handoff.atc
    eval = "graphkit.wseg.plugin:EVAL_STAGE"             # eval

- A **source kind** (:class:`SourceKind`) turns the options under ``source.<name>`` into a
  :class:`Source`: the ONNX model, how it was made, and optionally a reference callable
  (numpy feeds -> outputs) that golden outputs can be recorded from.
- A **stage** (:class:`Stage`) runs after the validated model is written. Its pipeline section
  is ``eval`` or ``perf`` (top-level sections) or ``handoff.<name>``. All sections are typed
  before any pass runs (``Stage.parse``, raising SpecError that names the key); the stages then
  run in ascending ``order`` and each one's result (a JSON-able dict) goes into
  ``report.json`` under ``report_key``, its time under ``stages[report_key]``.

Plugins import the core, never the reverse; the CLI (:mod:`graphkit.cli`) is the application
and may import both. Registration is lazy: nothing a plugin names is imported until a pipeline
uses it (the stage objects themselves are loaded when a pipeline's sections are typed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphkit.util.plugin_registry import Registry

Reference = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class Source:
    """The loaded source model and how it was obtained."""

    model: onnx.ModelProto
    kind: str
    description: str
    weights: str = "n/a"
    reference: Reference | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceKind:
    """A ``source.<name>`` kind.

    ``parse(options, where, weights)`` types the raw mapping under the key (None when empty),
    raising :class:`~graphkit.util.errors.SpecError` that names ``where`` and the key; ``weights``
    is the ``--weights`` override (given only to kinds that declare ``takes_weights``; the others
    refuse ``--weights`` up front). ``load(typed)`` returns the :class:`Source`. Plug-ins log
    through :mod:`logging` with :func:`plugin_logger`, like the rest of graphkit.
    """

    parse: Callable[[dict | None, str, str | None], Any]
    load: Callable[[Any], Source]
    takes_weights: bool = False


@dataclass(frozen=True)
class StageContext:
    """What a stage gets to run on: the written model, the run folder, the source, the golden set's
    folder, and the report entries of the stages that ran before it (by report key)."""

    model_path: Path
    run_dir: Path
    source: Source
    golden_dir: Path | None = None
    earlier: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A step after the model is written (see the module docstring).

    ``parse(raw, where)`` types the section (SpecError naming ``where``); ``run(options,
    context)`` returns the report entry. ``message`` is logged before it runs.
    """

    parse: Callable[[Any, str], Any]
    run: Callable[[Any, StageContext], dict | None]
    report_key: str
    order: int = 100
    message: str = ""


SOURCES: Registry[SourceKind] = Registry(
    "graphkit.sources", "source kind", lambda o: isinstance(o, SourceKind), "a graphkit.pipeline.plugins.SourceKind"
)
"""``source.<name>`` kinds from plugins (``onnx`` and ``builtin`` are the core's own)."""

STAGES: Registry[Stage] = Registry(
    "graphkit.stages", "stage", lambda o: isinstance(o, Stage), "a graphkit.pipeline.plugins.Stage"
)
"""Stages by their section path (``eval``, ``handoff.atc``)."""

HANDOFF = "handoff."


def plugin_logger(name: str) -> logging.Logger:
    """The logger a plug-in outside graphkit writes to: ``graphkit.plugins.<name>``, so that the
    CLI's ``-v``/``-q`` apply to its messages as to graphkit's own."""
    return logging.getLogger(f"graphkit.plugins.{name}")


def ordered_stages() -> list[tuple[str, Stage]]:
    """Every registered stage as ``(section, stage)``, in run order (ties: by section name)."""
    return sorted(((name, STAGES[name]) for name in STAGES), key=lambda item: (item[1].order, item[0]))


def handoff_names() -> list[str]:
    """The keys a pipeline's ``handoff`` section may hold."""
    return [name[len(HANDOFF) :] for name in STAGES if name.startswith(HANDOFF)]
