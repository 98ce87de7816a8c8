"""What the pass manager records of one pass: its status and the figures instruments observed.

Instruments never write a :class:`PassRecord`: each hook returns an :class:`Observation`, and
the manager merges the observations and the pass's own result into the record. The record
becomes one entry of ``report.json`` (``to_dict``; the keys are part of the report's format).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from graphkit.util.typed_config import to_mapping


class PassStatus(StrEnum):
    """How a pass ended; the values are the ``status`` strings of ``report.json``."""

    PENDING = "pending"  # not finished (only seen while the pass runs)
    APPLIED = "applied"  # changed the model, every check passed, kept
    UNCHANGED = "unchanged"  # changed nothing (declined every site, or nothing matched)
    ROLLED_BACK = "rolled-back"  # failed, its result dropped, the run went on (on_failure: skip)
    FAILED = "failed"  # failed, its result dropped, the run stopped


@dataclass
class Observation:
    """What one instrument hook saw of a pass. ``None``/empty fields leave the record as it is.

    ``times`` are added to the record's (several hooks may time the same key), ``notes`` are
    appended, ``artifacts`` merged. ``rejection``, when set, rejects the pass's result with
    this error after the observation's figures are on the record (a failed check keeps its
    figures); an instrument may also simply raise a GraphkitError.
    """

    times: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)
    nodes_before: int | None = None
    nodes_after: int | None = None
    op_delta: dict[str, list[int]] | None = None
    validation: dict | None = None
    max_abs: dict[str, float] | None = None
    diff_summary: str | None = None
    rejection: Exception | None = None


_REPLACED = ("nodes_before", "nodes_after", "op_delta", "validation", "max_abs", "diff_summary")


@dataclass
class PassRecord:
    """Everything the report says about one pass (one entry of ``report.json``'s ``passes``)."""

    index: int
    name: str
    options: dict
    exact: bool
    status: PassStatus = PassStatus.PENDING
    modified: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    declined: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nodes_before: int = 0
    nodes_after: int = 0
    op_delta: dict[str, list[int]] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)
    validation: dict | None = None
    max_abs: dict[str, float] = field(default_factory=dict)
    diff_summary: str = ""
    error: str = ""
    traceback: str = ""  # the formatted traceback, when the pass itself raised
    input_mutated: bool = False  # the pass edited the model it was given in place (it gets a copy)
    artifacts: dict[str, Any] = field(default_factory=dict)
    group: str | None = None  # the group the pass ran in ("2", "2.1": positions), None at top level
    iteration: int | None = None  # the iteration of that group (1-based)

    def observe(self, observation: Observation | None) -> None:
        """Merge one instrument's observation (called by the manager only)."""
        if observation is None:
            return
        for key, seconds in observation.times.items():
            self.times[key] = self.times.get(key, 0.0) + seconds
        self.notes.extend(observation.notes)
        self.artifacts.update(observation.artifacts)
        for name in _REPLACED:
            value = getattr(observation, name)
            if value is not None:
                setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        data = to_mapping(self)
        data["status"] = self.status.value
        return data
