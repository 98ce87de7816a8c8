"""The result of :func:`graphkit.check.localize.localize`: compared and skipped tensors, as JSON and text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphkit.ir.provenance import Provenance
from graphkit.util.console import format_table
from graphkit.util.errors import printable

SCHEMA_VERSION = 1


@dataclass
class TensorComparison:
    """One compared tensor pair; ``tensor`` is B's name, ``node``/``op_type`` B's producer."""

    tensor: str
    tensor_a: str
    node: str
    op_type: str
    position: int
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    max_abs: float | None
    max_rel: float | None
    mismatch_fraction: float | None
    passed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "tensor_a": self.tensor_a,
            "node": self.node,
            "op_type": self.op_type,
            "position": self.position,
            "shape_a": list(self.shape_a),
            "shape_b": list(self.shape_b),
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "mismatch_fraction": self.mismatch_fraction,
            "passed": self.passed,
            "note": self.note,
        }


@dataclass
class SkippedTensor:
    """A B tensor that could not be compared, and why."""

    tensor: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"tensor": self.tensor, "reason": self.reason}


@dataclass
class LocalizeResult:
    """Outcome of :func:`localize`. ``first_divergent`` is None when every compared tensor matched."""

    first_divergent: TensorComparison | None
    compared: list[TensorComparison]
    skipped: list[SkippedTensor]
    unpaired: int
    candidates: int
    runs: int
    atol: float
    rtol: float
    inputs: dict[str, list[int]] = field(default_factory=dict)
    nodes_run: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    peak_live_tensors: int = 0
    made_by: Provenance | None = None  # the pass that made the first divergent node, when B records it

    @property
    def diverged(self) -> bool:
        return self.first_divergent is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; its layout is versioned by ``schema_version``. ``made_by`` ({pass, step})
        is present only when B records which pass made the first divergent node."""
        return {
            "schema_version": SCHEMA_VERSION,
            "diverged": self.diverged,
            "first_divergent": self.first_divergent.to_dict() if self.first_divergent else None,
            "atol": self.atol,
            "rtol": self.rtol,
            "inputs": self.inputs,
            "candidates": self.candidates,
            "unpaired": self.unpaired,
            "runs": self.runs,
            "nodes_run": self.nodes_run,
            "peak_live_tensors": self.peak_live_tensors,
            "compared": [c.to_dict() for c in self.compared],
            "skipped": [s.to_dict() for s in self.skipped],
            **({"made_by": self.made_by.to_dict()} if self.made_by else {}),
        }

    def summary_line(self) -> str:
        """One line naming the first divergent tensor and its node, or saying none diverged."""
        first = self.first_divergent
        if first is None:
            return f"no divergence: {len(self.compared)} tensors within atol={self.atol:g} rtol={self.rtol:g}"
        made_by = f" made by {self.made_by.label}" if self.made_by else ""
        return f"first divergent tensor '{first.tensor}' from node '{first.node}' ({first.op_type}){made_by}: {_figures(first)}"

    def to_text(self) -> str:
        """A human-readable report."""
        lines = [self.summary_line()]
        first = self.first_divergent
        if first is not None:
            if first.tensor_a != first.tensor:
                lines.append(f"  compared with A's tensor '{first.tensor_a}'")
            lines.append(f"  node #{first.position} of B; atol={self.atol:g} rtol={self.rtol:g}")
        lines.append(
            f"compared {len(self.compared)} of {self.candidates} paired tensors in {self.runs} segment(s) per model "
            f"(nodes run once each: A {self.nodes_run['a']}, B {self.nodes_run['b']}); "
            f"{len(self.skipped)} skipped (no element type); {self.unpaired} B tensors have no counterpart in A"
        )
        shown = self.compared[-10:]
        if shown:
            rows = [
                (
                    c.position,
                    c.tensor,
                    c.op_type,
                    c.max_abs,
                    c.max_rel,
                    c.mismatch_fraction,
                    "ok" if c.passed else "DIVERGES",
                )
                for c in shown
            ]
            title = "last compared tensors:" if len(shown) < len(self.compared) else "compared tensors:"
            lines += [title, format_table(("#", "tensor", "op", "max abs", "max rel", "mismatch", "result"), rows)]
        return "\n".join(printable(line) for line in "\n".join(lines).split("\n"))  # names escaped


def _figures(c: TensorComparison) -> str:
    if c.note:
        return c.note
    if c.max_abs is None:
        return f"mismatch {100 * c.mismatch_fraction:.3g}% (compared for equality)"
    return f"max abs {c.max_abs:.3g}, max rel {c.max_rel:.3g}, mismatch {100 * c.mismatch_fraction:.3g}%"
