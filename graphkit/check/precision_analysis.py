"""What fp16 storage does to a model: output errors, the first inf/NaN, the nodes that add error.

:func:`node_errors` runs the fp32 model and its fp16 emulation (:mod:`graphkit.check.fp16_emulation`)
in lockstep, a segment at a time, the way :func:`graphkit.check.localize.localize` does: every node
of either model runs once, and only the tensors live at a segment boundary are held. For every
node it records the error of each float output against the fp32 value, as a scalar:
``max |e - r| / (|r| + tiny)`` over the finite elements (``tiny`` = 1e-30: a value that fp16 flushes to
0 counts as relative error 1), and whether it holds a NaN/inf where fp32 is finite. A node's
*added error* is its output error minus the largest error among the float tensors it reads
(initializers excluded: rounding a weight is the reading node's own error). The ranking puts
first the nodes whose outputs turn non-finite while every tensor they read is finite, then the
largest added error: a heuristic order for the keep-list search, which checks every answer by
running the model (:mod:`graphkit.check.precision_search`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from graphkit.check.compare import OutputComparison, compare_array
from graphkit.check.fp16_emulation import emulated_positions
from graphkit.check.localize import Stepper  # the lockstep runner localize uses
from graphkit.util.console import progress
from graphkit.util.tolerance import Tolerance, Tolerances

TINY = 1e-30
SEGMENT_NODES = 32  # original nodes per lockstep segment


@dataclass
class NodeError:
    """The fp16 error at one node's outputs, against fp32."""

    position: int
    node: str
    op_type: str
    error: float  # largest scalar error of its float outputs (inf when one holds a new NaN/inf)
    added: float  # error minus the largest error it reads
    new_nonfinite: bool  # a NaN/inf where fp32 is finite, while what it reads is finite where fp32 is
    nonfinite: bool  # any NaN/inf where fp32 is finite
    reads_nonfinite: bool = False  # reads a tensor holding NaN/inf where fp32 is finite

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass
class OutputError:
    """One output's comparison under the fp16 tolerance, plus top-1 agreement for [N, C] outputs."""

    comparison: OutputComparison
    top1_agreement: float | None = None

    def to_dict(self) -> dict:
        c = self.comparison
        finite = lambda x: x if math.isfinite(x) else None  # noqa: E731
        return {
            "name": c.name,
            "passed": c.passed,
            "max_abs": finite(c.max_abs),
            "max_rel": finite(c.max_rel),
            "mismatch_fraction": c.mismatch_fraction,
            "nonfinite_mismatches": c.nonfinite_mismatches,
            "atol": c.atol,
            "rtol": c.rtol,
            "argmax_agreement": c.argmax_agreement,
            "top1_agreement": self.top1_agreement,
            "problem": c.problem,
        }


@dataclass
class LockstepResult:
    """Per-node errors in topological order, and the first node whose outputs turn non-finite."""

    nodes: list[NodeError] = field(default_factory=list)
    first_nonfinite: NodeError | None = None
    segments: int = 0
    unavailable: str = ""  # why the walk could not run (the preview then ranks nothing)

    def ranked(self, candidates: Sequence[int]) -> list[NodeError]:
        """The candidate nodes: those that turn finite values into NaN/inf first; then the nodes that
        read NaN/inf, in topological order (keeping an overflow in fp32 needs its readers kept too);
        then by added error and by error (largest first)."""
        allowed = set(candidates)
        chosen = [n for n in self.nodes if n.position in allowed]

        def key(n: NodeError):
            downstream = n.reads_nonfinite and not n.new_nonfinite
            return (
                not n.new_nonfinite,
                not downstream,
                n.position if downstream else 0,
                -_key(n.added),
                -_key(n.error),
            )

        return sorted(chosen, key=lambda n: (*key(n), n.position))


def _key(value: float) -> float:
    return 1e300 if math.isnan(value) or value == math.inf else value


def compare_outputs_fp16(
    got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray], tolerances: Tolerances
) -> list[OutputError]:
    """Each output of ``want`` against ``got`` (missing outputs fail), with top-1 agreement for rank-2 float outputs."""
    results = []
    for name, expected in want.items():
        tol = tolerances.for_output(name)
        actual = got.get(name)
        if actual is None:
            from graphkit.check.compare import not_compared

            results.append(OutputError(not_compared(name, np.shape(expected), tol, "output missing")))
            continue
        comparison = compare_array(name, actual, expected, tol)
        top1 = None
        if np.ndim(expected) == 2 and np.shape(expected)[1] > 1 and np.asarray(expected).dtype.kind == "f":
            top1 = float(np.mean(np.argmax(actual, axis=1) == np.argmax(expected, axis=1)))
        results.append(OutputError(comparison, top1))
    return results


def fp16_tolerances(base: Tolerances | None, atol: float, rtol: float) -> Tolerances:
    """``base``'s argmax checks with the fp16 atol/rtol (a golden set's fp32 atol/rtol are far too tight for fp16)."""
    base = base or Tolerances()

    def widen(tol: Tolerance) -> Tolerance:
        return Tolerance(atol, rtol, tol.argmax_axis, tol.min_argmax_agreement)

    return Tolerances(widen(base.default), {name: widen(t) for name, t in base.outputs.items()})


def tensor_error(emulated: np.ndarray, reference: np.ndarray) -> tuple[float, bool, bool]:
    """(scalar relative error over finite pairs, NaN/inf where reference is finite, reference all finite)."""
    e = np.asarray(emulated, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if e.shape != r.shape or e.size == 0:
        return (0.0 if e.shape == r.shape else math.inf), False, True
    ref_finite = np.isfinite(r)
    new_bad = bool(np.any(~np.isfinite(e) & ref_finite))
    both = ref_finite & np.isfinite(e)
    if not both.any():
        return (math.inf if new_bad else 0.0), new_bad, bool(ref_finite.all())
    diff = np.abs(e[both] - r[both]) / (np.abs(r[both]) + TINY)
    error = math.inf if new_bad else float(diff.max())
    return error, new_bad, bool(ref_finite.all())


def node_errors(
    model: onnx.ModelProto,
    emulated: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    floats: set[str],
    threads: int | None = None,
    segment_nodes: int = SEGMENT_NODES,
) -> LockstepResult:
    """Per-node fp16 errors of ``emulated`` (made from ``model`` by emulate_fp16) against ``model``, in lockstep."""
    positions = emulated_positions(model, emulated)
    reference = Stepper(model, feeds, threads, "fp32")
    fp16 = Stepper(emulated, feeds, threads, "fp16")
    initializers = {t.name for t in model.graph.initializer}
    error_of: dict[str, float] = {}  # float tensor -> scalar error (graph inputs: their rounding)
    bad_of: dict[str, bool] = {}  # float tensor -> holds NaN/inf where fp32 is finite
    for value in model.graph.input:
        if value.name in floats and value.name in feeds:
            error_of[value.name], bad_of[value.name], _ = tensor_error(
                np.asarray(feeds[value.name], np.float32).astype(np.float16), feeds[value.name]
            )
    result = LockstepResult()
    nodes = list(model.graph.node)
    starts = list(range(0, len(nodes), max(1, segment_nodes)))
    for start in progress(starts, desc="precision", unit="segment"):
        segment = range(start, min(start + segment_nodes, len(nodes)))
        wanted = {t for i in segment for t in nodes[i].output if t in floats}
        ref_values = reference.advance(segment[-1] + 1, wanted)
        emu_values = fp16.advance(positions[segment[-1]] + 1, wanted)
        result.segments += 1
        for index in segment:
            node = nodes[index]
            outs = [t for t in node.output if t in ref_values and t in emu_values]
            if not outs:
                continue
            errors, bads = [], []
            for name in outs:
                err, bad, _ = tensor_error(emu_values.pop(name), ref_values.pop(name))
                error_of[name], bad_of[name] = err, bad
                errors.append(err)
                bads.append(bad)
            reads = [t for t in node.input if t in error_of and t not in initializers]
            read_error = max((error_of[t] for t in reads), default=0.0)
            read_bad = any(bad_of[t] for t in reads)
            error = max(errors)
            added = 0.0 if math.isinf(read_error) else (math.inf if math.isinf(error) else max(0.0, error - read_error))
            entry = NodeError(
                index, node.name, node.op_type, error, added, any(bads) and not read_bad, any(bads), read_bad
            )
            result.nodes.append(entry)
            if entry.nonfinite and result.first_nonfinite is None:
                result.first_nonfinite = entry
    return result
