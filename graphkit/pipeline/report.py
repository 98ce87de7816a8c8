"""The run report: one typed structure that ``graphkit apply`` fills, the summary renders and
``report.json`` / ``--json`` serialize (:meth:`RunReport.to_dict`, whose keys are the format of
``report.json``).

``report.json`` is strict JSON (:func:`graphkit.util.console.dumps_json`): a float NaN or infinity
is written as the string ``"nan"``, ``"inf"`` or ``"-inf"``, never as the non-standard
``NaN``/``Infinity`` literals. ``schema_version`` (:data:`SCHEMA_VERSION`) changes when a key is
renamed or removed or its meaning changes; added keys keep it.

Sections that a run did not reach are absent from the JSON: ``source_validation`` (no export
reference), ``passes`` (stopped before the passes), ``final`` (a pass failed), ``handoff`` and
``eval`` (the model was not saved; ``null`` when saved but the pipeline has no such section).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from graphkit.transform.record import PassRecord, PassStatus

SCHEMA_VERSION = 2  # 1: before schema_version existed (non-finite floats as NaN/Infinity literals)

__all__ = [
    "SCHEMA_VERSION",
    "FinalModel",
    "GoldenInfo",
    "PassRecord",
    "PassStatus",
    "RunReport",
    "RunStatus",
    "SourceInfo",
]


class RunStatus(StrEnum):
    """How a run ended; the values are ``report.json``'s ``status``."""

    OK = "ok"
    FAILED = "failed"


@dataclass
class SourceInfo:
    """The source model: how it was obtained, its hash, size and opset."""

    kind: str
    description: str
    hash: str
    nodes: int
    opset: int
    export: dict | None = None  # the export's options, for an export source

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, "description": self.description, "hash": self.hash}
        data.update(nodes=self.nodes, opset=self.opset)
        if self.export:
            data["export"] = self.export
        return data


@dataclass
class GoldenInfo:
    """The golden set the run checked against."""

    dir: str
    producer: str
    cases: list[str]
    reused: bool
    notes: list[str] = field(default_factory=list)
    optimization: str | None = None
    note: str = ""  # validated at another onnxruntime level than the set was made with
    dims: dict[str, list[int]] = field(default_factory=dict)  # each dim's sizes over the cases ("batch" too)
    unexercised_dims: dict[str, str] = field(default_factory=dict)  # symbolic dims seen at one size: why
    inputs: str = "seeded noise"  # where the cases' inputs came from

    def to_dict(self) -> dict[str, Any]:
        data = {
            "dir": self.dir,
            "producer": self.producer,
            "cases": list(self.cases),
            "reused": self.reused,
            "notes": list(self.notes),
            "optimization": self.optimization,
            "dims": self.dims,
            "unexercised_dims": self.unexercised_dims,
            "inputs": self.inputs,
        }
        if self.note:
            data["note"] = self.note
        return data


@dataclass
class FinalModel:
    """The final model and its end-to-end check; ``path`` once it is saved."""

    hash: str
    nodes: int
    opset: int
    validation: dict
    max_abs: dict[str, float]
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "hash": self.hash,
            "nodes": self.nodes,
            "opset": self.opset,
            "validation": self.validation,
            "max_abs": self.max_abs,
        }
        if self.path is not None:
            data["path"] = self.path
        return data


@dataclass
class RunReport:
    """Everything ``report.json`` says about one ``graphkit apply`` run."""

    graphkit_version: str
    pipeline: str
    pipeline_file: str
    weights: str
    source: SourceInfo
    golden: GoldenInfo
    validation_runtime: dict
    run_dir: str
    cache: dict = field(default_factory=dict)  # the validation cache's hits and counts
    source_validation: dict | None = None
    passes: list[PassRecord] | None = None
    final: FinalModel | None = None
    stage_results: dict[str, Any] = field(default_factory=dict)  # by report key: handoff, eval, a plugin's
    figures: dict[str, dict] | None = None  # "source"/"final": graphkit.ir.model_summary.ModelSummary.to_dict()
    stages: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    forwards: list[dict] | None = None
    forwards_summary: str | None = None
    status: RunStatus = RunStatus.FAILED
    error: str | None = None
    claim: str | None = None  # what the final check showed, as measured (None: no final check passed)

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.OK

    def to_dict(self) -> dict[str, Any]:
        """The ``report.json`` mapping (plain JSON types)."""
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "graphkit_version": self.graphkit_version,
            "pipeline": self.pipeline,
            "pipeline_file": self.pipeline_file,
            "weights": self.weights,
            "source": self.source.to_dict(),
            "golden": self.golden.to_dict(),
            "validation_runtime": self.validation_runtime,
            "cache": self.cache,
        }
        if self.source_validation is not None:
            data["source_validation"] = self.source_validation
        if self.passes is not None:
            data["passes"] = [record.to_dict() for record in self.passes]
        if self.figures is not None:
            data["figures"] = self.figures
        if self.final is not None:
            data["final"] = self.final.to_dict()
            if self.stage_results:  # the stages after the save ran (a failed one holds {"error": ...})
                data.update(self.stage_results)
        data["stages"] = self.stages
        data["peak_rss_mb"] = self.peak_rss_mb
        if self.forwards is not None:
            data["forwards"] = self.forwards
            data["forwards_summary"] = self.forwards_summary
        data["status"] = self.status.value
        data["claim"] = self.claim
        data["error"] = self.error
        data["run_dir"] = self.run_dir
        return data


def dims_exercised(cases: list[dict]) -> dict[str, list[int]]:
    """Each dim's sizes over the golden cases (``[{"label", "dims"}]``), in case order, once each."""
    sizes: dict[str, list[int]] = {}
    for case in cases:
        for name, size in case["dims"].items():
            if size not in sizes.setdefault(name, []):
                sizes[name].append(size)
    return sizes


def input_sources(cases: list[dict]) -> str:
    """Where the cases' inputs came from, grouped: "seeded noise (b1, b2); data.npz (u1)"."""
    groups: dict[str, list[str]] = {}
    for case in cases:
        source = case.get("source") or "seeded noise"
        groups.setdefault(source.split(" (seed ")[0], []).append(case["label"])
    return "; ".join(f"{source} ({', '.join(labels)})" for source, labels in groups.items())


def _batch_first(item: tuple[str, int]) -> tuple[bool, str]:
    return item[0] != "batch", item[0]


def claim_text(cases: list[dict], tolerances, producer: str, inputs: str, unexercised: dict[str, str]) -> str:
    """What a passed final check showed, as measured: "equal within atol/rtol to the source on N
    cases (each case's batch and dim sizes), inputs from ...", the per-output tolerances, and the
    symbolic dims that were seen at one size only."""
    described = "; ".join(
        f"{case['label']}: "
        + ", ".join(f"{name} {size}" for name, size in sorted(case["dims"].items(), key=_batch_first))
        for case in cases
    )
    default = tolerances.default
    within = f"atol {default.atol:g} / rtol {default.rtol:g}"
    overrides = [f"{name} atol {tol.atol:g} / rtol {tol.rtol:g}" for name, tol in tolerances.outputs.items()]
    if overrides:
        within += f" ({'; '.join(overrides)})"
    versus = "the reference model" if producer.startswith("reference") else "the source model (onnxruntime)"
    text = f"equal within {within} to {versus} on {len(cases)} case(s) ({described}); inputs: {inputs}"
    if unexercised:
        text += f"; not exercised at a second size: {', '.join(unexercised)}"
    return text
