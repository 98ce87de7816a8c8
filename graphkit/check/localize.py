"""Find the first tensor where model B diverges from model A on the same inputs.

:func:`localize` pairs the tensors produced in B with tensors of A (same name first, else the
correspondence found by :func:`graphkit.diff.model_diff.diff_models`) and walks them in B's topological
order, a segment at a time, with both models run in lockstep: each segment of B (``chunk_size``
compared tensors, about ``chunk_bytes`` of them, estimated from inferred shapes) runs once as a
sub-model fed with the tensors live at its start, and A runs just far enough to produce the
tensors B's segment is compared with. Every node of either model runs at most once, so the whole
search costs at most one forward per model (plus a session per segment), and only the tensors
live at a boundary (and A's tensors still to be compared) are held between segments. It stops at
the first segment that holds a divergence and reports the first divergent tensor in it, the B
node that produced it, and the error figures: the same tensor as comparing every pair at once.

A tensor diverges when ``|b - a| <= atol + rtol * |a|`` fails for any element (NaN only
matches NaN), or when its shapes differ. Extra outputs need an element type: it comes from ONNX
shape inference, else from the paired tensor in the other model; tensors without one are
skipped and counted.

The result types are :mod:`graphkit.check.localize_result`; the inputs (golden, .npz, seeded
random) :mod:`graphkit.check.localize_feeds`.

The models are not modified: each segment is a new sub-model (the segment's nodes, the
initializers they read, the live tensors as inputs). Values that are not numeric tensors
(sequences, maps, strings) cannot be carried across a segment boundary and raise InputError.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from graphkit.check.localize_result import LocalizeResult, SkippedTensor, TensorComparison
from graphkit.diff.model_diff import diff_models
from graphkit.diff.records import ModelDiff
from graphkit.ir.model_io import graph_inputs
from graphkit.ir.provenance import provenance_of
from graphkit.ir.shapes import dims_of, format_dims, known_value_types
from graphkit.runtime.backend import open_validation_backend
from graphkit.runtime.ort import cannot_load_message
from graphkit.util.console import progress
from graphkit.util.errors import InputError, RuntimeLoadError

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4
DEFAULT_CHUNK_SIZE = 32
DEFAULT_CHUNK_BYTES = 1 << 28  # estimated bytes of compared tensors per segment (per model)


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    tensor_b: str
    candidates_a: tuple[tuple[str, int], ...]  # (A tensor, element type), preferred first
    node: str
    op_type: str
    position: int
    elem_b: int
    nbytes: int


def localize(
    a: onnx.ModelProto,
    b: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    atol: float | None = None,
    rtol: float | None = None,
    chunk_size: int | None = None,
    chunk_bytes: int | None = None,
    threads: int | None = None,
    diff: ModelDiff | None = None,
    labels: tuple[str, str] = ("model A", "model B"),
) -> LocalizeResult:
    """The first tensor, in B's topological order, whose values in B differ from A's beyond tolerance.

    ``feeds`` must fit both models. ``diff`` may pass a precomputed ``diff_models(a, b)``.
    Defaults: atol 1e-5, rtol 1e-4, 32 compared tensors and about 256 MiB of them per segment. ``labels``
    name the two models in errors (e.g. their files). A model without nodes is an InputError:
    there is no tensor to compare.
    """
    for label, model in zip(labels, (a, b)):
        if not model.graph.node:
            raise InputError(f"{label} has no nodes: localize compares the tensors that nodes produce")
    atol = DEFAULT_ATOL if atol is None else float(atol)
    rtol = DEFAULT_RTOL if rtol is None else float(rtol)
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    chunk_bytes = DEFAULT_CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes)
    if chunk_size < 1:
        raise InputError(f"chunk_size must be at least 1, got {chunk_size}")
    if diff is None:
        diff = diff_models(a, b)
    pairs, skipped, unpaired = _pair_tensors(a, b, diff, feeds)
    if not pairs:
        raise InputError(
            f"nothing to compare: none of the {unpaired + len(skipped)} tensors of {labels[1]} has a typed "
            f"counterpart in {labels[0]} ({unpaired} unpaired, {len(skipped)} without an element type)"
        )
    result = LocalizeResult(
        first_divergent=None,
        compared=[],
        skipped=skipped,
        unpaired=unpaired,
        candidates=len(pairs) + len(skipped),
        runs=0,
        atol=atol,
        rtol=rtol,
        inputs={name: list(np.shape(value)) for name, value in feeds.items()},
    )
    _check_feeds(a, feeds, "A")
    _check_feeds(b, feeds, "B")
    chunks = list(_chunks(pairs, chunk_size, chunk_bytes))
    producer_a = {t: i for i, n in enumerate(a.graph.node) for t in n.output if t}
    last_chunk_of_a: dict[str, int] = {}  # the last chunk that compares against each A tensor
    for index, chunk in enumerate(chunks):
        for pair in chunk:
            for name, _ in pair.candidates_a:
                last_chunk_of_a[name] = index
    stepper_a = Stepper(a, feeds, threads, "A")
    stepper_b = Stepper(b, feeds, threads, "B")
    held_a: dict[str, np.ndarray] = {}  # A values produced already and still to be compared
    for index, chunk in enumerate(progress(chunks, desc="localize", unit="segment")):
        needed_a = {name for pair in chunk for name, _ in pair.candidates_a}
        end_a = max([stepper_a.position, *(producer_a[n] + 1 for n in needed_a if n not in held_a)])
        wanted_a = {n for n, last in last_chunk_of_a.items() if last >= index and n not in held_a}
        held_a.update(stepper_a.advance(end_a, wanted_a))
        values_b = stepper_b.advance(chunk[-1].position + 1, {p.tensor_b for p in chunk})
        result.runs += 1
        for pair in chunk:
            got = values_b.pop(pair.tensor_b)
            # Among A's candidates, the first with B's shape at run time (else the preferred one).
            names = [name for name, _ in pair.candidates_a]
            name_a = next((n for n in names if held_a[n].shape == got.shape), names[0])
            comparison = _compare(pair, name_a, held_a[name_a], got, atol, rtol)
            result.compared.append(comparison)
            if not comparison.passed:
                result.first_divergent = comparison
                break
        for name in [n for n in held_a if last_chunk_of_a[n] <= index]:
            del held_a[name]
        result.nodes_run = {"a": stepper_a.position, "b": stepper_b.position}
        result.peak_live_tensors = max(
            result.peak_live_tensors, len(stepper_a.live) + len(stepper_b.live) + len(held_a)
        )
        if result.first_divergent is not None:
            break
    if result.first_divergent is not None:  # which pass made that node, when B carries provenance
        result.made_by = provenance_of(b.graph.node[result.first_divergent.position])
    return result


def _compare(pair: _Pair, tensor_a: str, a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> TensorComparison:
    """Error figures of ``b`` against reference ``a``."""
    base = dict(
        tensor=pair.tensor_b,
        tensor_a=tensor_a,
        node=pair.node,
        op_type=pair.op_type,
        position=pair.position,
        shape_a=tuple(a.shape),
        shape_b=tuple(b.shape),
    )
    if a.shape != b.shape:
        note = f"shape differs: A {tuple(a.shape)} vs B {tuple(b.shape)}"
        return TensorComparison(**base, max_abs=None, max_rel=None, mismatch_fraction=None, passed=False, note=note)
    if a.size == 0:
        return TensorComparison(**base, max_abs=0.0, max_rel=0.0, mismatch_fraction=0.0, passed=True)
    if a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":  # strings etc.: equality only
        fraction = float(np.mean(a != b))
        return TensorComparison(**base, max_abs=None, max_rel=None, mismatch_fraction=fraction, passed=fraction == 0.0)
    max_abs = max_rel = 0.0
    mismatched = 0
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    for begin in range(0, flat_a.size, _COMPARE_BLOCK):  # blocks: float64 copies stay small
        ref = flat_a[begin : begin + _COMPARE_BLOCK].astype(np.float64)
        got = flat_b[begin : begin + _COMPARE_BLOCK].astype(np.float64)
        error = np.abs(got - ref)
        both_nan = np.isnan(ref) & np.isnan(got)
        error[both_nan] = 0.0
        magnitude = np.abs(ref)
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.where(error == 0, 0.0, error / magnitude)
        within = (error <= atol + rtol * magnitude) | both_nan  # NaN matches only NaN
        mismatched += int(np.count_nonzero(~within))
        max_abs, max_rel = _nan_max(max_abs, _finite_max(error)), _nan_max(max_rel, _finite_max(relative))
    fraction = mismatched / flat_a.size
    return TensorComparison(
        **base,
        max_abs=max_abs,
        max_rel=max_rel,
        mismatch_fraction=fraction,
        passed=mismatched == 0,
    )


_COMPARE_BLOCK = 1 << 20  # elements compared at a time


def _nan_max(x: float, y: float) -> float:
    return float("nan") if math.isnan(x) or math.isnan(y) else max(x, y)


def _finite_max(values: np.ndarray) -> float:
    if np.isnan(values).any():
        return float("nan")
    return float(values.max())


def _inferred_types(model: onnx.ModelProto) -> tuple[dict[str, int], dict[str, list]]:
    """Element type and dims (None where not static) of every tensor with a declared or inferred type.

    From :func:`graphkit.ir.shapes.known_value_types` (shape inference without the large weights;
    the declared types when it fails).
    """
    elems, shapes = {}, {}
    for name, vtype in known_value_types(model).items():
        if vtype.elem_type:
            elems[name] = vtype.elem_type
        if vtype.dims is not None:
            shapes[name] = [d if isinstance(d, int) else None for d in vtype.dims]
    return elems, shapes


def _pair_tensors(a, b, diff: ModelDiff, feeds) -> tuple[list[_Pair], list[SkippedTensor], int]:
    """B's produced tensors in topological order, each with the A tensor it is compared with.

    Candidates, in order: the same name in A; the diff's tensor correspondence; the A tensor read
    by the same input slot of a matched consumer. Candidates whose inferred shape agrees with B's
    come first; all are exposed, and the comparison takes the first whose actual shape agrees (so
    a layout change around a kept name compares the tensor the consumer reads).
    """
    produced_a = {t for n in a.graph.node for t in n.output if t}
    a_of_b = {tb: ta for ta, tb in diff.tensor_map.items() if ta in produced_a}
    a_index_of_b = {ib: ia for ia, ib, _ in diff.node_pairs}
    consumers_b: dict[str, list[tuple[int, int]]] = {}
    for ib, node in enumerate(b.graph.node):
        for slot, tensor in enumerate(node.input):
            consumers_b.setdefault(tensor, []).append((ib, slot))
    types_a, shapes_a = _inferred_types(a)
    types_b, shapes_b = _inferred_types(b)
    batch = max((np.shape(v)[0] for v in feeds.values() if np.ndim(v) > 0), default=1)
    pairs, skipped, unpaired = [], [], 0
    seen = set()
    for position, node in enumerate(b.graph.node):
        for tb in node.output:
            if not tb or tb in seen:
                continue
            seen.add(tb)
            candidates = [tb] if tb in produced_a else []
            candidates += [a_of_b[tb]] if tb in a_of_b else []
            for ib, slot in consumers_b.get(tb, ()):
                if ib in a_index_of_b and slot < len(a.graph.node[a_index_of_b[ib]].input):
                    read = a.graph.node[a_index_of_b[ib]].input[slot]
                    if read in produced_a:
                        candidates.append(read)
            if not candidates:
                unpaired += 1
                continue
            candidates = list(dict.fromkeys(candidates))
            candidates.sort(key=lambda c: not (tb in shapes_b and shapes_a.get(c) == shapes_b[tb]))
            elem_b = types_b.get(tb) or types_a.get(candidates[0])
            typed_a = tuple((c, types_a.get(c) or elem_b) for c in candidates if types_a.get(c) or elem_b)
            if not elem_b or not typed_a:
                skipped.append(SkippedTensor(tb, "no inferred element type"))
                continue
            nbytes = _estimate_bytes(shapes_b.get(tb), elem_b, batch)
            pairs.append(_Pair(tb, typed_a, node.name, node.op_type, position, elem_b, nbytes))
    return pairs, skipped, unpaired


def _estimate_bytes(shape, elem: int, batch: int) -> int:
    if shape is None:
        return 0
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(elem).itemsize
    except (KeyError, TypeError, ValueError):
        itemsize = 4
    dims = [d if d else (batch if axis == 0 else 1) for axis, d in enumerate(shape)]
    return int(math.prod(dims)) * itemsize


def _chunks(pairs: list[_Pair], size: int, max_bytes: int) -> Iterator[list[_Pair]]:
    chunk, used = [], 0
    for pair in pairs:
        if chunk and (len(chunk) >= size or used + pair.nbytes > max_bytes):
            yield chunk
            chunk, used = [], 0
        chunk.append(pair)
        used += pair.nbytes
    if chunk:
        yield chunk


def _check_feeds(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], label: str) -> None:
    """The feeds are the model's inputs with its declared element types and dims: rank, static
    sizes, and one size per symbolic dim name across all inputs (else an InputError naming both)."""
    expected = {v.name for v in graph_inputs(model)}
    if set(feeds) != expected:
        raise InputError(f"inputs {sorted(feeds)} do not match the model's inputs {sorted(expected)} (model {label})")
    bound: dict[str, tuple[int, str]] = {}  # symbolic dim -> (size, the input that set it)
    for value in model.graph.input:
        if value.name not in expected:
            continue
        array = np.asarray(feeds[value.name])
        where = f"input '{value.name}' of model {label}"
        elem = value.type.tensor_type.elem_type
        want = onnx.helper.tensor_dtype_to_np_dtype(elem) if elem else None
        if want is not None and array.dtype != want:
            raise InputError(f"{where} is {np.dtype(want)} in the model, the array is {array.dtype}")
        declared = dims_of(value)
        if declared is None:
            continue
        if len(declared) != array.ndim:
            raise InputError(f"{where} has rank {len(declared)} {format_dims(declared)}, the array {list(array.shape)}")
        for axis, (dim, size) in enumerate(zip(declared, array.shape)):
            if isinstance(dim, int) and dim > 0 and dim != size:
                raise InputError(f"{where}: axis {axis} is {dim} in the model, {size} in the array")
            if isinstance(dim, str):
                size_before, first = bound.setdefault(dim, (size, value.name))
                if size_before != size:
                    raise InputError(
                        f"{where}: dim '{dim}' (axis {axis}) is {size}, but {size_before} in input '{first}'"
                    )


def _reads(node: onnx.NodeProto) -> set[str]:
    """Names a node reads: its inputs and the outer-scope names its subgraphs (If, Loop, Scan) use."""
    names = {t for t in node.input if t}
    for attr in node.attribute:
        for graph in [attr.g] if attr.HasField("g") else list(attr.graphs):
            names |= _outer_names(graph)
    return names


def _outer_names(graph: onnx.GraphProto) -> set[str]:
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used = set()
    for node in graph.node:
        used |= _reads(node) - defined
        defined.update(node.output)
    return used


class Stepper:
    """Runs one model forward a segment at a time, holding only the tensors live at the boundary.

    ``advance(end, expose)`` runs nodes ``[position, end)`` (topological order) as a sub-model
    whose inputs are the live tensors and whose outputs are the tensors read after ``end`` (or
    graph outputs) plus ``expose``; it returns the exposed values. Each node runs exactly once, so
    a full pass over the model costs one forward plus a session per segment.
    """

    def __init__(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], threads: int | None, label: str):
        self.model, self.threads, self.label = model, threads, label
        self.nodes = list(model.graph.node)
        self.reads = [_reads(node) for node in self.nodes]
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.last_use: dict[str, int] = {}
        for index, names in enumerate(self.reads):
            for name in names:
                self.last_use[name] = index
        for output in model.graph.output:
            self.last_use[output.name] = len(self.nodes)
        self.live: dict[str, np.ndarray] = {
            name: np.asarray(feeds[name]) for name in (v.name for v in graph_inputs(model))
        }
        self.position = 0

    def advance(self, end: int, expose: set[str]) -> dict[str, np.ndarray]:
        start, end = self.position, min(end, len(self.nodes))
        if end <= start:
            return {}
        segment = self.nodes[start:end]
        produced, outer = set(), set()
        for node, reads in zip(segment, self.reads[start:end]):
            outer |= reads - produced
            produced.update(t for t in node.output if t)
        inputs = sorted(n for n in outer if n in self.live)
        outputs = [t for node in segment for t in node.output if t and (t in expose or self.last_use.get(t, -1) >= end)]
        outputs = list(dict.fromkeys(outputs))
        sub = onnx.ModelProto()
        sub.ir_version = self.model.ir_version
        sub.opset_import.extend(self.model.opset_import)
        sub.functions.extend(self.model.functions)
        graph = sub.graph
        graph.name = f"{self.model.graph.name}[{start}:{end}]"
        graph.node.extend(segment)
        graph.initializer.extend(
            self.initializers[n] for n in sorted(outer) if n in self.initializers and n not in self.live
        )
        for name in inputs:
            value = self.live[name]
            if not isinstance(value, np.ndarray) or value.dtype.kind not in "biufc?":
                raise InputError(
                    f"model {self.label}: localize cannot carry '{name}' across a segment boundary "
                    f"(a {type(value).__name__}, not a numeric tensor)"
                )
            elem = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
            graph.input.append(onnx.helper.make_tensor_value_info(name, elem, value.shape))
        graph.output.extend(onnx.ValueInfoProto(name=name) for name in outputs)
        try:
            backend = open_validation_backend(sub, threads=self.threads)
        except RuntimeLoadError as exc:
            what = f"model {self.label} (nodes {start}-{end - 1})"
            raise RuntimeLoadError(cannot_load_message(sub, exc.__cause__ or exc, what)) from exc
        del sub, graph
        try:
            values = backend.run({n: self.live[n] for n in inputs}, outputs)
        finally:
            backend.close()
        self.position = end
        self.live.update((t, values[t]) for t in outputs if self.last_use.get(t, -1) >= end)
        for name in [n for n in self.live if self.last_use.get(n, -1) < end]:
            del self.live[name]
        return {t: values[t] for t in outputs if t in expose}
