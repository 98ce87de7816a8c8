"""The records of a model diff: what :func:`graphkit.diff.model_diff.diff_models` returns.

:class:`ModelDiff` holds the changes from model A ("before") to model B ("after"): model
fields, graph I/O, nodes (added, removed, changed, with how each pair was matched), tensor
renames, initializers and op counts; ``to_dict`` is the versioned JSON layout
(``SCHEMA_VERSION``); the terminal view is :func:`graphkit.diff.text_view.render_text`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphkit.diff.formatting import counted, or_dash, plain, shape_text
from graphkit.ir.provenance import Provenance

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output: name, dtype name and dims (int, dim name, or None)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}

    def describe(self) -> str:
        return f"{self.dtype}{shape_text(self.shape)}"


@dataclass(frozen=True)
class ValueChange:
    """A graph input/output present in both models whose dtype and/or shape differ."""

    name: str
    before: ValueInfo
    after: ValueInfo
    fields: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fields": list(self.fields),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


@dataclass
class IODiff:
    """Graph inputs or outputs added, removed and changed (matched by name)."""

    added: list[ValueInfo] = field(default_factory=list)
    removed: list[ValueInfo] = field(default_factory=list)
    changed: list[ValueChange] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [v.to_dict() for v in self.added],
            "removed": [v.to_dict() for v in self.removed],
            "changed": [c.to_dict() for c in self.changed],
        }


@dataclass(frozen=True)
class NodeInfo:
    """A node as the diff shows it; ``index`` is its position in its graph's node list."""

    name: str
    op_type: str
    domain: str
    index: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.name or f'<unnamed #{self.index}>'} ({self.qualified_op})"

    @property
    def qualified_op(self) -> str:
        return f"{self.domain}::{self.op_type}" if self.domain not in ("", "ai.onnx") else self.op_type

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op_type": self.op_type,
            "domain": self.domain,
            "index": self.index,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True)
class Change:
    """One field's value before and after (None where absent)."""

    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"before": plain(self.before), "after": plain(self.after)}


@dataclass
class NodeChange:
    """A matched node pair that differs; ``changes`` keys: name, op_type, domain, inputs, outputs,
    and ``attributes`` (a dict of attribute name -> Change)."""

    before: NodeInfo
    after: NodeInfo
    matched_by: str  # "name", "structure" (op type + producers/consumers) or "position" (op-type alignment)
    changes: dict[str, Any]

    @property
    def renamed_only(self) -> bool:
        return set(self.changes) == {"name"}

    def to_dict(self) -> dict[str, Any]:
        changes = {}
        for key, value in self.changes.items():
            changes[key] = {k: v.to_dict() for k, v in value.items()} if key == "attributes" else value.to_dict()
        return {
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "matched_by": self.matched_by,
            "changes": changes,
        }


@dataclass(frozen=True)
class InitializerInfo:
    """An initializer's identity: name, dtype, shape, xxh3-64 hash of its bytes, byte size."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    hash: str
    nbytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "hash": self.hash,
            "nbytes": self.nbytes,
        }

    def describe(self) -> str:
        return f"{self.dtype}{shape_text(self.shape)}"


@dataclass
class InitializerChange:
    """An initializer changed in place (same name) or swapped in the same slot of a matched node.

    ``max_abs_change`` is set only when name, shape and dtype are the same (else None).
    """

    before: InitializerInfo
    after: InitializerInfo
    fields: tuple[str, ...]
    max_abs_change: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.after.name,
            "before_name": self.before.name,
            "fields": list(self.fields),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "max_abs_change": self.max_abs_change,
        }


@dataclass
class ModelDiff:
    """The differences from model A ("before") to model B ("after")."""

    ir_version: Change | None = None
    opsets: dict[str, Change] = field(default_factory=dict)
    inputs: IODiff = field(default_factory=IODiff)
    outputs: IODiff = field(default_factory=IODiff)
    nodes_added: list[NodeInfo] = field(default_factory=list)
    nodes_removed: list[NodeInfo] = field(default_factory=list)
    nodes_changed: list[NodeChange] = field(default_factory=list)
    tensors_renamed: dict[str, str] = field(default_factory=dict)
    initializers_added: list[InitializerInfo] = field(default_factory=list)
    initializers_removed: list[InitializerInfo] = field(default_factory=list)
    initializers_changed: list[InitializerChange] = field(default_factory=list)
    initializers_renamed: dict[str, str] = field(default_factory=dict)
    op_counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    node_pairs: list[tuple[int, int, str]] = field(default_factory=list)
    """Every matched node pair (index in A, index in B, how: "name"|"structure"|"position"), changed or not."""
    tensor_map: dict[str, str] = field(default_factory=dict)
    """A tensor name -> B tensor name for every tensor the matching pairs up (renames included)."""
    made_by: dict[int, Provenance] = field(default_factory=dict)
    """B node index -> the pass that made the node, for B's nodes that carry provenance."""

    def _with_made_by(self, entry: dict[str, Any], index_b: int) -> dict[str, Any]:
        """``entry`` plus ``made_by`` ({pass, step}) when B's node ``index_b`` carries provenance."""
        if index_b in self.made_by:
            entry["made_by"] = self.made_by[index_b].to_dict()
        return entry

    def made_by_text(self, index_b: int) -> str:
        """`` [made by pass 'x' (step 2)]`` for a B node that carries provenance, else ''."""
        provenance = self.made_by.get(index_b)
        return f" [made by {provenance.label}]" if provenance else ""

    def is_empty(self) -> bool:
        """True when the two models are the same graph up to node order."""
        return not (
            self.ir_version
            or self.opsets
            or not self.inputs.is_empty()
            or not self.outputs.is_empty()
            or self.nodes_added
            or self.nodes_removed
            or self.nodes_changed
            or self.tensors_renamed
            or self.initializers_added
            or self.initializers_removed
            or self.initializers_changed
            or self.initializers_renamed
        )

    def op_count_delta(self) -> dict[str, tuple[int, int]]:
        """Op types whose count changed: op -> (count in A, count in B)."""
        return {op: counts for op, counts in self.op_counts.items() if counts[0] != counts[1]}

    def summary_line(self) -> str:
        """One line, e.g. ``-2 Transpose, opset 11->13, input image shape, 2 initializers changed``."""
        parts = []
        for op, (before, after) in sorted(self.op_count_delta().items(), key=lambda kv: (kv[1][1] > kv[1][0], kv[0])):
            parts.append(f"{after - before:+d} {op}")
        if self.ir_version:
            parts.append(f"ir {self.ir_version.before}->{self.ir_version.after}")
        for domain, change in self.opsets.items():
            label = "opset" if domain == "ai.onnx" else f"opset {domain}"
            parts.append(f"{label} {or_dash(change.before)}->{or_dash(change.after)}")
        for kind, io in (("input", self.inputs), ("output", self.outputs)):
            parts += [f"+{kind} {v.name}" for v in io.added]
            parts += [f"-{kind} {v.name}" for v in io.removed]
            parts += [f"{kind} {c.name} {'/'.join(c.fields)}" for c in io.changed]
        changed = [c for c in self.nodes_changed if not c.renamed_only]
        renamed = len(self.nodes_changed) - len(changed)
        parts += counted(len(changed), "node changed", "nodes changed")
        parts += counted(renamed, "node renamed", "nodes renamed")
        parts += counted(len(self.tensors_renamed), "tensor renamed", "tensors renamed")
        if not self.op_count_delta():  # added/removed nodes already show in the op deltas
            parts += counted(len(self.nodes_added), "node added", "nodes added")
            parts += counted(len(self.nodes_removed), "node removed", "nodes removed")
        parts += counted(len(self.initializers_added), "initializer added", "initializers added")
        parts += counted(len(self.initializers_removed), "initializer removed", "initializers removed")
        parts += counted(len(self.initializers_changed), "initializer changed", "initializers changed")
        parts += counted(len(self.initializers_renamed), "initializer renamed", "initializers renamed")
        return ", ".join(parts) if parts else "no changes"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; its layout is versioned by ``schema_version``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "summary": self.summary_line(),
            "empty": self.is_empty(),
            "model": {
                "ir_version": self.ir_version.to_dict() if self.ir_version else None,
                "opsets": [{"domain": d, **c.to_dict()} for d, c in self.opsets.items()],
            },
            "inputs": self.inputs.to_dict(),
            "outputs": self.outputs.to_dict(),
            "nodes": {
                "added": [self._with_made_by(n.to_dict(), n.index) for n in self.nodes_added],
                "removed": [n.to_dict() for n in self.nodes_removed],
                "changed": [self._with_made_by(c.to_dict(), c.after.index) for c in self.nodes_changed],
            },
            "tensors_renamed": [{"before": a, "after": b} for a, b in self.tensors_renamed.items()],
            "initializers": {
                "added": [i.to_dict() for i in self.initializers_added],
                "removed": [i.to_dict() for i in self.initializers_removed],
                "changed": [c.to_dict() for c in self.initializers_changed],
                "renamed": [{"before": a, "after": b} for a, b in self.initializers_renamed.items()],
            },
            "op_counts": [
                {"op": op, "before": before, "after": after, "delta": after - before}
                for op, (before, after) in sorted(self.op_counts.items())
            ],
        }
