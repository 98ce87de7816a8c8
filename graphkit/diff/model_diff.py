"""What changed between two ONNX models: model fields, graph I/O, nodes, initializers, op counts.

:func:`diff_models` never mutates its inputs and reads initializer bytes in place: each
initializer is hashed once (xxh3 on its raw bytes), and values are compared element-wise only
for tensors that kept their name, shape and dtype but changed content, in bounded slices of
``np.frombuffer`` views.

Nodes are matched in four steps:

1. by name, where a name is non-empty and unique in both graphs;
2. by structure, in B's topological order: same domain and op type, and the same producers
   (inputs that map to the same tensors, or constants -- initializers or Constant outputs --
   with the same content), with attributes then all inputs then only the non-constant inputs
   required to agree;
3. backwards from matched consumers: an unmatched producer feeding the same input slot of a
   matched pair, with the same op type (steps 2 and 3 repeat while they find pairs);
4. by position, as a last resort: the op-type sequences of the nodes still unmatched are
   aligned in topological order (``difflib``), and aligned nodes of the same op type pair up.

Matched nodes map their outputs onto each other, which yields the tensor correspondence
(:attr:`ModelDiff.tensor_map`) that :mod:`graphkit.check.localize` uses for renamed tensors. A pure
renaming of a tensor is reported once under ``tensors_renamed``, not as a change of every node
that reads it.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import xxhash
from onnx import numpy_helper

from graphkit.ir.model_io import op_counts
from graphkit.ir.shapes import dims_of, format_dims
from graphkit.transform.provenance import Provenance, provenance_by_index
from graphkit.util.errors import printable

SCHEMA_VERSION = 1
_SLICE = 1 << 20  # elements per slice when computing the max abs change of a large tensor


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output: name, dtype name and dims (int, dim name, or None)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}

    def describe(self) -> str:
        return f"{self.dtype}{_shape_text(self.shape)}"


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
        return {"before": _plain(self.before), "after": _plain(self.after)}


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
        return f"{self.dtype}{_shape_text(self.shape)}"


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
            parts.append(f"{label} {_or_dash(change.before)}->{_or_dash(change.after)}")
        for kind, io in (("input", self.inputs), ("output", self.outputs)):
            parts += [f"+{kind} {v.name}" for v in io.added]
            parts += [f"-{kind} {v.name}" for v in io.removed]
            parts += [f"{kind} {c.name} {'/'.join(c.fields)}" for c in io.changed]
        changed = [c for c in self.nodes_changed if not c.renamed_only]
        renamed = len(self.nodes_changed) - len(changed)
        parts += _counted(len(changed), "node changed", "nodes changed")
        parts += _counted(renamed, "node renamed", "nodes renamed")
        parts += _counted(len(self.tensors_renamed), "tensor renamed", "tensors renamed")
        if not self.op_count_delta():  # added/removed nodes already show in the op deltas
            parts += _counted(len(self.nodes_added), "node added", "nodes added")
            parts += _counted(len(self.nodes_removed), "node removed", "nodes removed")
        parts += _counted(len(self.initializers_added), "initializer added", "initializers added")
        parts += _counted(len(self.initializers_removed), "initializer removed", "initializers removed")
        parts += _counted(len(self.initializers_changed), "initializer changed", "initializers changed")
        parts += _counted(len(self.initializers_renamed), "initializer renamed", "initializers renamed")
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

    def to_text(self, color: bool = False) -> str:
        """A human-readable report; ANSI colors when ``color``."""
        return _TextReport(self, color).render()

    def _with_made_by(self, entry: dict[str, Any], index_b: int) -> dict[str, Any]:
        """``entry`` plus ``made_by`` ({pass, step}) when B's node ``index_b`` carries provenance."""
        if index_b in self.made_by:
            entry["made_by"] = self.made_by[index_b].to_dict()
        return entry

    def made_by_text(self, index_b: int) -> str:
        """`` [made by pass 'x' (step 2)]`` for a B node that carries provenance, else ''."""
        provenance = self.made_by.get(index_b)
        return f" [made by {provenance.label}]" if provenance else ""


# ---------------------------------------------------------------------------------------------
# The diff


def diff_models(a: onnx.ModelProto, b: onnx.ModelProto) -> ModelDiff:
    """The differences from ``a`` to ``b``. Neither model is modified."""
    diff = ModelDiff()
    if a.ir_version != b.ir_version:
        diff.ir_version = Change(a.ir_version, b.ir_version)
    diff.opsets = _opset_changes(a, b)
    diff.inputs = _io_diff(_real_inputs(a), _real_inputs(b))
    diff.outputs = _io_diff(list(a.graph.output), list(b.graph.output))

    inits_a = _initializer_infos(a)
    inits_b = _initializer_infos(b)
    matcher = _NodeMatcher(a, b, inits_a, inits_b)
    matcher.match()
    diff.node_pairs = sorted(((ia, ib, how) for ib, (ia, how) in matcher.pair_of_b.items()), key=lambda p: p[1])
    diff.tensor_map = dict(matcher.tmap)
    diff.made_by = provenance_by_index(b)
    # A rename: the tensor's A name is gone from B and its B name is new (else it is a rewiring).
    names_a, names_b = _tensor_names(a), _tensor_names(b)
    diff.tensors_renamed = {
        ta: tb for ta, tb in matcher.tmap.items() if ta and tb and ta not in names_b and tb not in names_a
    }
    nodes_a = [node_info(n, i) for i, n in enumerate(a.graph.node)]
    nodes_b = [node_info(n, i) for i, n in enumerate(b.graph.node)]
    for ia, ib, how in diff.node_pairs:
        changes = matcher.node_changes(ia, ib, nodes_a[ia], nodes_b[ib])
        if changes:
            diff.nodes_changed.append(NodeChange(nodes_a[ia], nodes_b[ib], how, changes))
    matched_a = {ia for ia, _, _ in diff.node_pairs}
    matched_b = {ib for _, ib, _ in diff.node_pairs}
    diff.nodes_removed = [n for n in nodes_a if n.index not in matched_a]
    diff.nodes_added = [n for n in nodes_b if n.index not in matched_b]

    _diff_initializers(diff, a, b, inits_a, inits_b, matcher)
    before, after = op_counts(a), op_counts(b)
    diff.op_counts = {op: (before.get(op, 0), after.get(op, 0)) for op in sorted(set(before) | set(after))}
    return diff


def _tensor_names(model: onnx.ModelProto) -> set[str]:
    graph = model.graph
    names = {v.name for v in (*graph.input, *graph.output)} | {t.name for t in graph.initializer}
    return names | {t for n in graph.node for t in (*n.input, *n.output) if t}


def _opset_changes(a: onnx.ModelProto, b: onnx.ModelProto) -> dict[str, Change]:
    def versions(model):
        return {(e.domain or "ai.onnx"): e.version for e in model.opset_import}

    va, vb = versions(a), versions(b)
    return {d: Change(va.get(d), vb.get(d)) for d in sorted(set(va) | set(vb)) if va.get(d) != vb.get(d)}


def _real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in inits]


def value_info(value: onnx.ValueInfoProto) -> ValueInfo:
    """The diff's view of a graph input/output."""
    tensor_type = value.type.tensor_type
    dtype = _dtype_name(tensor_type.elem_type) if value.type.HasField("tensor_type") else "non-tensor"
    if not tensor_type.HasField("shape"):
        return ValueInfo(value.name, dtype, None)
    return ValueInfo(value.name, dtype, dims_of(value))


def _io_diff(before: list[onnx.ValueInfoProto], after: list[onnx.ValueInfoProto]) -> IODiff:
    va = {v.name: value_info(v) for v in before}
    vb = {v.name: value_info(v) for v in after}
    result = IODiff()
    result.removed = [v for name, v in va.items() if name not in vb]
    result.added = [v for name, v in vb.items() if name not in va]
    for name, old in va.items():
        new = vb.get(name)
        if new is None:
            continue
        fields = tuple(f for f in ("dtype", "shape") if getattr(old, f) != getattr(new, f))
        if fields:
            result.changed.append(ValueChange(name, old, new, fields))
    return result


def _dtype_name(elem_type: int) -> str:
    if elem_type == 0:
        return "undefined"
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        if elem_type not in onnx.TensorProto.DataType.values():
            return f"unknown-type-{elem_type}"
        return onnx.TensorProto.DataType.Name(elem_type).lower()


# ---------------------------------------------------------------------------------------------
# Initializers and tensor content


def tensor_hash(tensor: onnx.TensorProto) -> str:
    """xxh3-64 hex of a tensor's values (raw bytes hashed in place; typed fields otherwise)."""
    digest = xxhash.xxh3_64()
    digest.update(b"%d:%s|" % (tensor.data_type, ",".join(map(str, tensor.dims)).encode()))
    if tensor.HasField("raw_data"):
        digest.update(tensor.raw_data)
    else:
        values = onnx.TensorProto()
        values.CopyFrom(tensor)
        values.name = ""
        values.doc_string = ""
        digest.update(values.SerializeToString(deterministic=True))
    return digest.hexdigest()


def _initializer_infos(model: onnx.ModelProto) -> dict[str, InitializerInfo]:
    infos = {}
    for tensor in model.graph.initializer:
        nbytes = len(tensor.raw_data) if tensor.HasField("raw_data") else tensor.ByteSize()
        infos[tensor.name] = InitializerInfo(
            tensor.name, _dtype_name(tensor.data_type), tuple(tensor.dims), tensor_hash(tensor), nbytes
        )
    return infos


def _values_view(tensor: onnx.TensorProto) -> np.ndarray | None:
    """A flat numpy view of a numeric tensor (no copy for raw data), or None if unsupported."""
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except (KeyError, TypeError, ValueError):
        return None
    if dtype.kind not in "fiub" or tensor.data_type in (onnx.TensorProto.BFLOAT16,):
        return None
    if tensor.HasField("raw_data"):
        return np.frombuffer(tensor.raw_data, dtype=dtype)
    return numpy_helper.to_array(tensor).reshape(-1)


def max_abs_change(before: onnx.TensorProto, after: onnx.TensorProto) -> float | None:
    """max |after - before| over elements of two same-shape numeric tensors (None if not numeric)."""
    va, vb = _values_view(before), _values_view(after)
    if va is None or vb is None or va.size != vb.size:
        return None
    worst = 0.0
    for start in range(0, va.size, _SLICE):
        delta = np.abs(vb[start : start + _SLICE].astype(np.float64) - va[start : start + _SLICE])
        if np.isnan(delta).any():
            return float("nan")
        if delta.size:
            worst = max(worst, float(delta.max()))
    return worst


def _diff_initializers(diff, a, b, inits_a, inits_b, matcher) -> None:
    tensors_a = {t.name: t for t in a.graph.initializer}
    tensors_b = {t.name: t for t in b.graph.initializer}
    removed = [n for n in inits_a if n not in inits_b]
    added = [n for n in inits_b if n not in inits_a]
    for name in inits_a:
        if name not in inits_b:
            continue
        old, new = inits_a[name], inits_b[name]
        fields = tuple(f for f in ("dtype", "shape") if getattr(old, f) != getattr(new, f))
        if old.hash == new.hash:
            continue
        change = InitializerChange(old, new, fields + ("value",))
        if not fields:
            change.max_abs_change = max_abs_change(tensors_a[name], tensors_b[name])
        diff.initializers_changed.append(change)
    # Same content under another name: a rename, not a removal plus an addition.
    by_hash_added = defaultdict(list)
    for name in added:
        by_hash_added[inits_b[name].hash].append(name)
    still_removed = []
    for name in removed:
        candidates = by_hash_added.get(inits_a[name].hash)
        if candidates:
            diff.initializers_renamed[name] = candidates.pop(0)
        else:
            still_removed.append(name)
    still_added = {n for names in by_hash_added.values() for n in names}
    # Different content under another name in the same input slot of a matched node pair.
    for name_a, name_b in matcher.initializer_slot_pairs():
        if name_a in still_removed and name_b in still_added:
            old, new = inits_a[name_a], inits_b[name_b]
            fields = ("name",) + tuple(f for f in ("dtype", "shape") if getattr(old, f) != getattr(new, f)) + ("value",)
            diff.initializers_changed.append(InitializerChange(old, new, fields))
            still_removed.remove(name_a)
            still_added.discard(name_b)
    diff.initializers_removed = [inits_a[n] for n in still_removed]
    diff.initializers_added = [inits_b[n] for n in added if n in still_added]


# ---------------------------------------------------------------------------------------------
# Node matching


def _attribute_text(attr: onnx.AttributeProto) -> str:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, onnx.TensorProto):
        return f"tensor {_dtype_name(value.data_type)}{_shape_text(tuple(value.dims))} #{tensor_hash(value)}"
    if isinstance(value, onnx.GraphProto):
        return f"graph #{xxhash.xxh3_64(value.SerializeToString(deterministic=True)).hexdigest()}"
    if isinstance(value, bytes):
        return repr(value.decode("utf-8", "replace"))
    if isinstance(value, list):
        items = [
            _attribute_text(onnx.helper.make_attribute("x", [v]))
            if isinstance(v, (onnx.TensorProto, onnx.GraphProto))
            else v
            for v in value
        ]
        items = [i.decode("utf-8", "replace") if isinstance(i, bytes) else i for i in items]
        return repr(items)
    return repr(value)


def node_info(node: onnx.NodeProto, index: int) -> NodeInfo:
    return NodeInfo(
        name=node.name,
        op_type=node.op_type,
        domain=node.domain or "",
        index=index,
        inputs=tuple(node.input),
        outputs=tuple(node.output),
        attributes={a.name: _attribute_text(a) for a in node.attribute},
    )


def _constant_outputs(nodes: list[onnx.NodeProto]) -> dict[str, str]:
    """Output name -> content hash of every default-domain Constant node."""
    hashes = {}
    for node in nodes:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output and node.attribute:
            attr = node.attribute[0]
            if attr.type == onnx.AttributeProto.TENSOR:
                hashes[node.output[0]] = tensor_hash(attr.t)
            else:
                hashes[node.output[0]] = xxhash.xxh3_64(f"{attr.name}={_attribute_text(attr)}".encode()).hexdigest()
    return hashes


class _NodeMatcher:
    """Pairs nodes of A with nodes of B (see the module docstring) and maps tensors A -> B."""

    def __init__(self, a, b, inits_a, inits_b):
        self.nodes_a = list(a.graph.node)
        self.nodes_b = list(b.graph.node)
        self.inits_a = inits_a
        self.inits_b = inits_b
        # Content hash of every constant value: initializers and Constant node outputs.
        self.const_a = {**{n: i.hash for n, i in inits_a.items()}, **_constant_outputs(self.nodes_a)}
        self.const_b = {**{n: i.hash for n, i in inits_b.items()}, **_constant_outputs(self.nodes_b)}
        self.attrs_a = [self._attr_key(n) for n in self.nodes_a]
        self.attrs_b = [self._attr_key(n) for n in self.nodes_b]
        self.pair_of_b: dict[int, tuple[int, str]] = {}
        self.pair_of_a: dict[int, int] = {}
        self.tmap: dict[str, str] = {}
        self.tmap_b: dict[str, str] = {}
        inputs_b = {v.name for v in b.graph.input}
        for value in a.graph.input:
            if value.name in inputs_b:
                self._map_tensor(value.name, value.name)
        for name in inits_a:
            if name in inits_b:
                self._map_tensor(name, name)
        self._map_tensor("", "")
        self.producer_a = {t: (i, k) for i, n in enumerate(self.nodes_a) for k, t in enumerate(n.output) if t}
        self.producer_b = {t: (i, k) for i, n in enumerate(self.nodes_b) for k, t in enumerate(n.output) if t}
        self.consumers_a = defaultdict(list)
        for i, node in enumerate(self.nodes_a):
            for t in node.input:
                if t:
                    self.consumers_a[t].append(i)
        self.consumers_b = defaultdict(list)
        for i, node in enumerate(self.nodes_b):
            for k, t in enumerate(node.input):
                if t:
                    self.consumers_b[t].append((i, k))
        self.outputs_a = {o.name for o in a.graph.output}
        self.outputs_b = {o.name for o in b.graph.output}

    @staticmethod
    def _attr_key(node: onnx.NodeProto) -> str:
        return "|".join(f"{a.name}={_attribute_text(a)}" for a in sorted(node.attribute, key=lambda a: a.name))

    def _map_tensor(self, ta: str, tb: str) -> None:
        if ta not in self.tmap and tb not in self.tmap_b:
            self.tmap[ta] = tb
            self.tmap_b[tb] = ta

    def _pair(self, ia: int, ib: int, how: str) -> None:
        self.pair_of_b[ib] = (ia, how)
        self.pair_of_a[ia] = ib
        for ta, tb in zip(self.nodes_a[ia].output, self.nodes_b[ib].output):
            if ta and tb:
                self._map_tensor(ta, tb)

    def match(self) -> None:
        self._match_by_name()
        for _ in range(4):
            before = len(self.pair_of_b)
            self._match_forward()
            self._match_backward()
            if len(self.pair_of_b) == before:
                break
        self._match_by_position()

    def _match_by_position(self) -> None:
        """Last resort: align the op-type sequences of the still unmatched nodes (topological order)."""
        left_a = [i for i in range(len(self.nodes_a)) if i not in self.pair_of_a]
        left_b = [i for i in range(len(self.nodes_b)) if i not in self.pair_of_b]
        if not left_a or not left_b:
            return
        ops_a = [(self.nodes_a[i].domain, self.nodes_a[i].op_type) for i in left_a]
        ops_b = [(self.nodes_b[i].domain, self.nodes_b[i].op_type) for i in left_b]
        matcher = difflib.SequenceMatcher(a=ops_a, b=ops_b, autojunk=False)
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                self._pair(left_a[block.a + k], left_b[block.b + k], "position")

    def _match_by_name(self) -> None:
        names_a = Counter(n.name for n in self.nodes_a if n.name)
        names_b = Counter(n.name for n in self.nodes_b if n.name)
        index_a = {n.name: i for i, n in enumerate(self.nodes_a) if names_a[n.name] == 1}
        for ib, node in enumerate(self.nodes_b):
            if node.name and names_b[node.name] == 1 and node.name in index_a:
                self._pair(index_a[node.name], ib, "name")

    # A tensor's identity for structural matching: its B name when mapped, its content hash when
    # it is an initializer, else unknown (None).
    def _key_a(self, tensor: str):
        if tensor in self.tmap:
            return ("t", self.tmap[tensor])
        if tensor in self.const_a:
            return ("c", self.const_a[tensor])
        return None

    def _key_b(self, tensor: str):
        if tensor in self.tmap_b:
            return ("t", tensor)
        if tensor in self.const_b:
            return ("c", self.const_b[tensor])
        return None

    def _match_forward(self) -> None:
        unmatched_a = defaultdict(list)
        for ia, node in enumerate(self.nodes_a):
            if ia not in self.pair_of_a:
                unmatched_a[(node.domain, node.op_type)].append(ia)
        for ib, node_b in enumerate(self.nodes_b):
            if ib in self.pair_of_b:
                continue
            candidates = self._forward_candidates(node_b, unmatched_a.get((node_b.domain, node_b.op_type), ()))
            if not candidates:
                continue
            best = self._best_forward(ib, node_b, candidates)
            if best is not None:
                self._pair(best, ib, "structure")

    def _forward_candidates(self, node_b, same_op: list[int]) -> list[int]:
        """Unmatched A nodes of B's op type that could share B's producers.

        Every structural level needs B's non-constant inputs to be mapped, and a candidate must
        then read the A side of each; so the consumers of the first one are the only candidates.
        """
        variable = [t for t in node_b.input if t and t not in self.const_b]
        if any(t not in self.tmap_b for t in variable):
            return []
        if variable:
            op = (node_b.domain, node_b.op_type)
            readers = self.consumers_a.get(self.tmap_b[variable[0]], ())
            return sorted(
                {
                    ia
                    for ia in readers
                    if ia not in self.pair_of_a and (self.nodes_a[ia].domain, self.nodes_a[ia].op_type) == op
                }
            )
        return [ia for ia in same_op if ia not in self.pair_of_a]

    def _best_forward(self, ib: int, node_b, candidates: list[int]) -> int | None:
        keys_b = [self._key_b(t) for t in node_b.input]
        variable_b = [k for k, t in zip(keys_b, node_b.input) if t not in self.const_b]
        levels: list[list[int]] = [[], [], []]
        for ia in candidates:
            node_a = self.nodes_a[ia]
            keys_a = [self._key_a(t) for t in node_a.input]
            same_inputs = len(keys_a) == len(keys_b) and all(k is not None and k == kb for k, kb in zip(keys_a, keys_b))
            if same_inputs and self.attrs_a[ia] == self.attrs_b[ib]:
                levels[0].append(ia)
            elif same_inputs and keys_b:
                levels[1].append(ia)
            else:
                variable_a = [k for k, t in zip(keys_a, node_a.input) if t not in self.const_a]
                if variable_b and variable_a == variable_b and all(k is not None for k in variable_a):
                    levels[2].append(ia)
        for found in levels:
            if found:
                return min(found, key=lambda ia: abs(ia / max(len(self.nodes_a), 1) - ib / max(len(self.nodes_b), 1)))
        return None

    def _match_backward(self) -> None:
        for ib in range(len(self.nodes_b) - 1, -1, -1):
            if ib in self.pair_of_b:
                continue
            node_b = self.nodes_b[ib]
            for k_out, tb in enumerate(node_b.output):
                ia = self._backward_candidate(node_b, k_out, tb)
                if ia is not None:
                    self._pair(ia, ib, "structure")
                    break

    def _backward_candidate(self, node_b, k_out: int, tb: str) -> int | None:
        sources = []
        if tb in self.outputs_b and tb in self.outputs_a:
            sources.append(tb)
        for consumer, slot in self.consumers_b.get(tb, ()):
            if consumer in self.pair_of_b:
                inputs_a = self.nodes_a[self.pair_of_b[consumer][0]].input
                if slot < len(inputs_a):
                    sources.append(inputs_a[slot])
        for ta in sources:
            produced = self.producer_a.get(ta)
            if produced is None:
                continue
            ia, k = produced
            node_a = self.nodes_a[ia]
            if (
                ia not in self.pair_of_a
                and k == k_out
                and (node_a.domain, node_a.op_type) == (node_b.domain, node_b.op_type)
            ):
                return ia
        return None

    def initializer_slot_pairs(self) -> Iterable[tuple[str, str]]:
        """(A initializer, B initializer) read by the same input slot of a matched node pair."""
        for ib, (ia, _) in self.pair_of_b.items():
            for ta, tb in zip(self.nodes_a[ia].input, self.nodes_b[ib].input):
                if ta in self.inits_a and tb in self.inits_b and ta != tb:
                    yield ta, tb

    def node_changes(self, ia: int, ib: int, info_a: NodeInfo, info_b: NodeInfo) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if info_a.name != info_b.name:
            changes["name"] = Change(info_a.name, info_b.name)
        if info_a.domain != info_b.domain:
            changes["domain"] = Change(info_a.domain, info_b.domain)
        if info_a.op_type != info_b.op_type:
            changes["op_type"] = Change(info_a.op_type, info_b.op_type)
        attributes = {}
        for key in sorted(set(info_a.attributes) | set(info_b.attributes)):
            before, after = info_a.attributes.get(key), info_b.attributes.get(key)
            if before != after:
                attributes[key] = Change(before, after)
        if attributes:
            changes["attributes"] = attributes
        if not self._same_inputs(info_a.inputs, info_b.inputs):
            changes["inputs"] = Change(list(info_a.inputs), list(info_b.inputs))
        if len(info_a.outputs) != len(info_b.outputs) or any(
            bool(x) != bool(y) for x, y in zip(info_a.outputs, info_b.outputs)
        ):
            changes["outputs"] = Change(list(info_a.outputs), list(info_b.outputs))
        return changes

    def _same_inputs(self, inputs_a, inputs_b) -> bool:
        if len(inputs_a) != len(inputs_b):
            return False
        for ta, tb in zip(inputs_a, inputs_b):
            if self.tmap.get(ta) == tb or ta == tb:
                continue
            if ta in self.const_a and tb in self.const_b and self.const_a[ta] == self.const_b[tb]:
                continue
            return False
        return True


# ---------------------------------------------------------------------------------------------
# Text rendering


def use_color(stream=None) -> bool:
    """ANSI colors only on a terminal and when NO_COLOR is unset."""
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


_COLORS = {"+": "\033[32m", "-": "\033[31m", "~": "\033[33m", "h": "\033[1m"}
_RESET = "\033[0m"


class _TextReport:
    def __init__(self, diff: ModelDiff, color: bool):
        self.diff = diff
        self.color = color
        self.lines: list[str] = []

    def paint(self, kind: str, text: str) -> str:
        text = printable(text)  # names from the files never reach the terminal as control codes
        return f"{_COLORS[kind]}{text}{_RESET}" if self.color else text

    def head(self, text: str) -> None:
        self.lines.append(self.paint("h", text))

    def item(self, kind: str, text: str) -> None:
        self.lines.append(self.paint(kind, f"  {kind} {text}"))

    def render(self) -> str:
        d = self.diff
        self.head(f"summary: {d.summary_line()}")
        if d.ir_version or d.opsets:
            self.head("model:")
            if d.ir_version:
                self.item("~", f"ir_version {d.ir_version.before} -> {d.ir_version.after}")
            for domain, change in d.opsets.items():
                self.item("~", f"opset {domain} {_or_dash(change.before)} -> {_or_dash(change.after)}")
        for title, io in (("inputs", d.inputs), ("outputs", d.outputs)):
            if io.is_empty():
                continue
            self.head(f"{title}:")
            for v in io.removed:
                self.item("-", f"{v.name} {v.describe()}")
            for v in io.added:
                self.item("+", f"{v.name} {v.describe()}")
            for c in io.changed:
                self.item("~", f"{c.name} {c.before.describe()} -> {c.after.describe()}")
        if d.nodes_removed or d.nodes_added or d.nodes_changed:
            self.head("nodes:")
            for n in d.nodes_removed:
                self.item("-", f"{n.label} {_io_text(n)}")
            for n in d.nodes_added:
                self.item("+", f"{n.label}{_attrs_text(n)} {_io_text(n)}{d.made_by_text(n.index)}")
            for c in d.nodes_changed:
                self.item(
                    "~",
                    f"{c.after.label} [matched by {c.matched_by}]: {_changes_text(c)}{d.made_by_text(c.after.index)}",
                )
        if d.tensors_renamed:
            self.head("tensors renamed:")
            for ta, tb in d.tensors_renamed.items():
                self.item("~", f"{ta} -> {tb}")
        if d.initializers_removed or d.initializers_added or d.initializers_changed or d.initializers_renamed:
            self.head("initializers:")
            for i in d.initializers_removed:
                self.item("-", f"{i.name} {i.describe()}")
            for i in d.initializers_added:
                self.item("+", f"{i.name} {i.describe()}")
            for c in d.initializers_changed:
                name = c.after.name if c.before.name == c.after.name else f"{c.before.name} -> {c.after.name}"
                text = f"{name} {c.before.describe()} -> {c.after.describe()} ({', '.join(c.fields)})"
                if c.max_abs_change is not None:
                    text += f" max abs change {c.max_abs_change:.6g}"
                self.item("~", text)
            for ta, tb in d.initializers_renamed.items():
                self.item("~", f"{ta} -> {tb} (same values)")
        delta = d.op_count_delta()
        if delta:
            self.head("op counts (changed only):")
            rows = [(op, b, a, f"{a - b:+d}") for op, (b, a) in sorted(delta.items())]
            width = max(len(r[0]) for r in rows)
            self.lines.append(f"  {'op'.ljust(width)}  before  after  delta")
            for op, b, a, change in rows:
                kind = "+" if a > b else "-"
                self.lines.append(self.paint(kind, f"  {op.ljust(width)}  {b:>6}  {a:>5}  {change:>5}"))
        return "\n".join(self.lines)


def _io_text(n: NodeInfo) -> str:
    return f"({', '.join(n.inputs)}) -> ({', '.join(n.outputs)})"


def _attrs_text(n: NodeInfo) -> str:
    return (" {" + ", ".join(f"{k}={_short(v)}" for k, v in n.attributes.items()) + "}") if n.attributes else ""


def _changes_text(c: NodeChange) -> str:
    parts = []
    for key, value in c.changes.items():
        if key == "attributes":
            parts += [f"{k} {_short(_or_dash(v.before))} -> {_short(_or_dash(v.after))}" for k, v in value.items()]
        elif key in ("inputs", "outputs"):
            parts.append(f"{key} ({', '.join(value.before)}) -> ({', '.join(value.after)})")
        else:
            parts.append(f"{key} {value.before or '<unnamed>'} -> {value.after or '<unnamed>'}")
    return "; ".join(parts)


def _short(text: str, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape_text(shape) -> str:
    return format_dims(shape)


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def _counted(n: int, singular: str, plural: str) -> list[str]:
    return [f"{n} {singular if n == 1 else plural}"] if n else []


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value
