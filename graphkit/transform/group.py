"""PassGroup: passes run as one step of a pipeline, optionally repeated until nothing changes.

A group holds passes and other groups (after onnx/ir-py's ``PassManager``, itself a pass that
nests). With ``until_fixed_point`` the manager repeats the group's passes until an iteration in
which none of them changed the model, at most ``max_iterations`` times (a group still changing
after that ends with a note on its last record, not an error); without it the group runs once.
Each inner pass is still instrumented, validated, recorded and rolled back on its own; its
record names the group (``group``: the 1-based positions from the outermost list, "2" or
"2.1") and the iteration of its innermost group.

In a pipeline a group is one item of ``passes:``::

    - group:
        passes: [eliminate-noops, cse, {fold-constants: {max_bytes: 1000}}]
        until_fixed_point: true
        max_iterations: 10
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphkit.transform.pass_base import Pass, option

GROUP_KEY = "group"  # the pipeline item key of a group; no pass may be registered under it
MAX_GROUP_ITERATIONS = 1000


@dataclass
class GroupOptions:
    """The mapping under ``group:`` in a pipeline's ``passes:``."""

    passes: list[Any] = option(default_factory=list, doc="the passes (and groups) of the group, in order")
    until_fixed_point: bool = option(False, doc="repeat the passes until an iteration changes nothing")
    max_iterations: int = option(10, doc="the most iterations of a fixed-point group (1..1000)")

    def __post_init__(self):
        if not self.passes:
            raise ValueError("group.passes: a group needs at least one pass")
        if not 1 <= self.max_iterations <= MAX_GROUP_ITERATIONS:
            raise ValueError(f"group.max_iterations: must be 1..{MAX_GROUP_ITERATIONS}, got {self.max_iterations}")


@dataclass
class PassGroup:
    """Passes (and groups) run in order, repeated ``until_fixed_point``; see the module docstring."""

    passes: list[Pass | PassGroup] = field(default_factory=list)
    until_fixed_point: bool = False
    max_iterations: int = 10

    @property
    def iterations(self) -> int:
        """How many times the group may run."""
        return self.max_iterations if self.until_fixed_point else 1


def flat_passes(items: list[Pass | PassGroup]) -> list[Pass]:
    """Every pass of ``items``, groups opened, in order, once each (one iteration)."""
    out: list[Pass] = []
    for item in items:
        out.extend(flat_passes(item.passes) if isinstance(item, PassGroup) else [item])
    return out
