"""The run report: one typed structure that ``graphkit apply`` fills, the summary renders and
``report.json`` / ``--json`` serialize (:meth:`RunReport.to_dict`, whose keys are the format of
``report.json``).

Sections that a run did not reach are absent from the JSON: ``source_validation`` (no export
reference), ``passes`` (stopped before the passes), ``final`` (a pass failed), ``handoff`` and
``eval`` (the model was not saved; ``null`` when saved but the pipeline has no such section).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from graphkit.transform.record import PassRecord, PassStatus

__all__ = ["FinalModel", "GoldenInfo", "PassRecord", "PassStatus", "RunReport", "RunStatus", "SourceInfo"]


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

    def to_dict(self) -> dict[str, Any]:
        data = {
            "dir": self.dir,
            "producer": self.producer,
            "cases": list(self.cases),
            "reused": self.reused,
            "notes": list(self.notes),
            "optimization": self.optimization,
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
    stages: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    forwards: list[dict] | None = None
    forwards_summary: str | None = None
    status: RunStatus = RunStatus.FAILED
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.OK

    def to_dict(self) -> dict[str, Any]:
        """The ``report.json`` mapping (plain JSON types)."""
        data: dict[str, Any] = {
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
        data["error"] = self.error
        data["run_dir"] = self.run_dir
        return data
