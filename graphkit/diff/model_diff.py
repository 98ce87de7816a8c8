"""What changed between two ONNX models: model fields, graph I/O, nodes, initializers, op counts.

:func:`diff_models` never mutates its inputs and reads initializer bytes in place: each
initializer is hashed once (xxh3 on its raw bytes), and values are compared element-wise only
for tensors that kept their name, shape and dtype but changed content, in bounded slices of
``np.frombuffer`` views.

Nodes are paired by :mod:`graphkit.diff.matching` (name, structure, consumers, position).
The records are in :mod:`graphkit.diff.records`, the text view in :mod:`graphkit.diff.text_view`.
Matched nodes map their outputs onto each other,
which yields the tensor correspondence (:attr:`ModelDiff.tensor_map`) that :mod:`graphkit.check.localize` uses for renamed tensors. A pure
renaming of a tensor is reported once under ``tensors_renamed``, not as a change of every node
that reads it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.diff.matching import NodeMatcher, dtype_name, node_info, tensor_hash
from graphkit.diff.records import (
    Change,
    InitializerChange,
    InitializerInfo,
    IODiff,
    ModelDiff,
    NodeChange,
    ValueChange,
    ValueInfo,
)
from graphkit.ir.external_data import external_array, external_span, is_external, is_mapped, mapped_span, tensor_array
from graphkit.ir.model_io import graph_inputs, op_counts
from graphkit.ir.provenance import provenance_by_index
from graphkit.ir.shapes import dims_of

_SLICE = 1 << 20  # elements per slice when computing the max abs change of a large tensor


def diff_models(
    a: onnx.ModelProto,
    b: onnx.ModelProto,
    inits_a: dict[str, InitializerInfo] | None = None,
    inits_b: dict[str, InitializerInfo] | None = None,
    folders: tuple[Path | None, Path | None] = (None, None),
) -> ModelDiff:
    """The differences from ``a`` to ``b``. Neither model is modified.

    ``inits_a`` / ``inits_b`` are the models' :func:`initializer_infos` when the caller has them
    already (each reads every weight's bytes once, the bulk of a diff on a large model).
    ``folders`` are the model files' folders for models loaded without their external data:
    their weights are then read from the files in pieces, never all at once.
    """
    diff = ModelDiff()
    if a.ir_version != b.ir_version:
        diff.ir_version = Change(a.ir_version, b.ir_version)
    diff.opsets = _opset_changes(a, b)
    diff.inputs = _io_diff(graph_inputs(a), graph_inputs(b))
    diff.outputs = _io_diff(list(a.graph.output), list(b.graph.output))

    inits_a = initializer_infos(a, folders[0]) if inits_a is None else inits_a
    inits_b = initializer_infos(b, folders[1]) if inits_b is None else inits_b
    matcher = NodeMatcher(a, b, inits_a, inits_b)
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

    _diff_initializers(diff, a, b, inits_a, inits_b, matcher, folders)
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


def value_info(value: onnx.ValueInfoProto) -> ValueInfo:
    """The diff's view of a graph input/output."""
    tensor_type = value.type.tensor_type
    dtype = dtype_name(tensor_type.elem_type) if value.type.HasField("tensor_type") else "non-tensor"
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


def initializer_infos(model: onnx.ModelProto, folder: Path | None = None) -> dict[str, InitializerInfo]:
    """Name -> dtype, dims, value hash and byte size of every initializer (reads each weight once;
    external-data stubs from their files in ``folder``, see :func:`tensor_hash`)."""
    infos = {}
    for tensor in model.graph.initializer:
        if folder is not None and is_external(tensor):
            nbytes = external_span(tensor, folder)[2]
        elif is_mapped(tensor):
            nbytes = mapped_span(tensor)[2]
        else:
            nbytes = len(tensor.raw_data) if tensor.HasField("raw_data") else tensor.ByteSize()
        infos[tensor.name] = InitializerInfo(
            tensor.name, dtype_name(tensor.data_type), tuple(tensor.dims), tensor_hash(tensor, folder), nbytes
        )
    return infos


def _values_view(tensor: onnx.TensorProto, folder: Path | None = None) -> np.ndarray | None:
    """A flat numpy view of a numeric tensor (no copy for raw data, a memory map for external
    data in ``folder``), or None if unsupported."""
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except (KeyError, TypeError, ValueError):
        return None
    if dtype.kind not in "fiub" or tensor.data_type in (onnx.TensorProto.BFLOAT16,):
        return None
    if folder is not None and is_external(tensor):
        return external_array(tensor, folder, dtype)
    if is_mapped(tensor):
        return tensor_array(tensor).reshape(-1)
    if tensor.HasField("raw_data"):
        return np.frombuffer(tensor.raw_data, dtype=dtype)
    return numpy_helper.to_array(tensor).reshape(-1)


def max_abs_change(
    before: onnx.TensorProto, after: onnx.TensorProto, folders: tuple[Path | None, Path | None] = (None, None)
) -> float | None:
    """max |after - before| over elements of two same-shape numeric tensors (None if not numeric)."""
    va, vb = _values_view(before, folders[0]), _values_view(after, folders[1])
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


def _diff_initializers(diff, a, b, inits_a, inits_b, matcher, folders) -> None:
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
            change.max_abs_change = max_abs_change(tensors_a[name], tensors_b[name], folders)
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
