"""The findings of :func:`graphkit.ascend.precheck.precheck`: one :class:`Finding` per problem, in a :class:`PrecheckReport`."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Literal

Level = Literal["error", "warning", "perf"]
LEVELS: tuple[Level, ...] = ("error", "warning", "perf")


@dataclass(frozen=True)
class Finding:
    """One thing ATC will reject, read differently, or run slowly."""

    level: Level
    rule: str
    node: str
    op: str
    message: str
    hint: str = ""
    fix_pass: str | None = None  # the graphkit pass that fixes it, when one exists


@dataclass
class PrecheckReport:
    """All findings for one model and target."""

    model: str
    opset: int
    cann: str
    soc_version: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of findings per level (every level present)."""
        counter = Counter(f.level for f in self.findings)
        return {level: counter.get(level, 0) for level in LEVELS}

    @property
    def has_errors(self) -> bool:
        """True when at least one finding is an error."""
        return self.counts["error"] > 0

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {
            "model": self.model,
            "opset": self.opset,
            "cann": self.cann,
            "soc_version": self.soc_version,
            "counts": self.counts,
            "findings": [asdict(f) for f in self.findings],
            "notes": self.notes,
        }
