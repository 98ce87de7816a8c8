"""The precision preview: a model under fp16 storage against its fp32 outputs, and the keep-list that fixes it.

:func:`preview_precision` emulates the model (:mod:`graphkit.check.fp16_emulation`) with the nodes
``fp16_nodes`` in fp16, compares every output on every case with the fp16 tolerances
(:mod:`graphkit.check.precision_analysis`), walks the first case in lockstep for the per-node
errors and the first NaN/inf, and, when an output fails, searches the keep-list
(:mod:`graphkit.check.precision_search`) and verifies it with one more emulated forward.

Device-specific knowledge (which nodes a precision mode runs in fp16, the ATC file formats)
lives with the application (graphkit.ascend.precision_modes); this module takes node indices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from graphkit.check.fp16_emulation import candidate_nodes, emulate_fp16, float_tensors
from graphkit.check.precision_analysis import (
    LockstepResult,
    NodeError,
    OutputError,
    compare_outputs_fp16,
    node_errors,
)
from graphkit.check.precision_search import KeepListSearch, search_keep_list
from graphkit.runtime.backend import open_validation_backend
from graphkit.util.errors import InputError, RuntimeLoadError
from graphkit.util.tolerance import Tolerances

logger = logging.getLogger(__name__)

DEFAULT_FP16_ATOL = 1e-2
DEFAULT_FP16_RTOL = 1e-2
RANKED_SHOWN = 10


@dataclass
class PrecisionCase:
    """Inputs and the fp32 outputs they give."""

    label: str
    feeds: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


@dataclass
class PrecisionPreview:
    """What fp16 does to the model, and the keep-list."""

    outputs: list[OutputError]  # first failing case's figures (else the first case's)
    lockstep: LockstepResult
    ranked: list[NodeError]
    search: KeepListSearch | None
    keep_nodes: list[str]
    keep_outputs: list[OutputError] = field(default_factory=list)  # with the keep-list, verified
    forwards: int = 0
    seconds: float = 0.0
    fp16_nodes: int = 0
    candidates: int = 0
    unnamed_skipped: int = 0
    cases: int = 0

    @property
    def passed(self) -> bool:
        return all(o.comparison.passed for o in self.outputs)

    @property
    def fixed(self) -> bool:
        return self.passed or (bool(self.keep_outputs) and all(o.comparison.passed for o in self.keep_outputs))

    def verdict(self) -> str:
        if self.passed:
            return f"fp16 ok: every output within tolerance on {self.cases} case(s); keep-list empty"
        if self.fixed:
            return f"fp16 breaks the model; keeping {len(self.keep_nodes)} node(s) in fp32 fixes it on {self.cases} case(s)"
        return "fp16 breaks the model and no keep-list of named nodes fixes it"

    def to_dict(self) -> dict:
        first = self.lockstep.first_nonfinite
        return {
            "verdict": self.verdict(),
            "passed": self.passed,
            "fixed": self.fixed,
            "cases": self.cases,
            "fp16_nodes": self.fp16_nodes,
            "candidates": self.candidates,
            "unnamed_skipped": self.unnamed_skipped,
            "outputs": [o.to_dict() for o in self.outputs],
            "first_nonfinite": first.to_dict() if first else None,
            "ranked": [n.to_dict() for n in self.ranked[:RANKED_SHOWN]],
            "keep_list": list(self.keep_nodes),
            "keep_outputs": [o.to_dict() for o in self.keep_outputs],
            "search": None
            if self.search is None
            else {
                "forwards": self.search.forwards,
                "seconds": round(self.search.seconds, 3),
                "steps": self.search.steps,
            },
            "forwards": self.forwards,
            "lockstep_segments": self.lockstep.segments,
            "lockstep_unavailable": self.lockstep.unavailable or None,
            "seconds": round(self.seconds, 3),
        }

    def to_text(self) -> str:
        lines = [self.verdict()]
        for output in self.outputs:
            lines.append("  " + output.comparison.describe() + _top1(output))
        first = self.lockstep.first_nonfinite
        if self.lockstep.unavailable:
            lines.append(f"no per-node errors: {self.lockstep.unavailable}")
        if first is not None:
            lines.append(f"first NaN/inf: node '{first.node}' ({first.op_type}, #{first.position})")
        if self.ranked and not self.passed:
            lines.append("nodes adding most error (lockstep, first case):")
            for node in self.ranked[:RANKED_SHOWN]:
                what = "new NaN/inf" if node.new_nonfinite else f"added rel error {node.added:.3g}"
                lines.append(f"  {node.node} ({node.op_type}): {what}")
        if self.search is not None:
            lines.append(
                f"keep-list search: {len(self.keep_nodes)} node(s) in {self.search.forwards} emulated forward(s), "
                f"{self.search.seconds:.2f} s: {', '.join(self.keep_nodes) or '(none)'}"
            )
            for output in self.keep_outputs:
                lines.append("  with the keep-list: " + output.comparison.describe() + _top1(output))
        return "\n".join(lines)


def _top1(output: OutputError) -> str:
    return "" if output.top1_agreement is None else f" top1_agreement={output.top1_agreement:.4%}"


class EmulatedRunner:
    """Runs the model with a given set of fp16 nodes on every case; counts forwards."""

    def __init__(self, model: onnx.ModelProto, cases: Sequence[PrecisionCase], tolerances: Tolerances, threads=None):
        self.model, self.cases, self.tolerances, self.threads = model, list(cases), tolerances, threads
        self.floats = float_tensors(model)
        self.forwards = 0

    def outputs(self, fp16_nodes: Collection[int]) -> list[list[OutputError]]:
        """Per case, the output errors of the emulation with ``fp16_nodes`` in fp16."""
        emulated = emulate_fp16(self.model, fp16_nodes, self.floats)
        self.forwards += 1
        results = []
        with open_validation_backend(emulated, optimization="all", threads=self.threads) as backend:
            for case in self.cases:
                got = backend.run(case.feeds, list(case.outputs))
                results.append(compare_outputs_fp16(got, case.outputs, self.tolerances))
        return results

    def passes(self, fp16_nodes: Collection[int]) -> bool:
        return all(o.comparison.passed for case in self.outputs(fp16_nodes) for o in case)


def preview_precision(
    model: onnx.ModelProto,
    cases: Sequence[PrecisionCase],
    fp16_nodes: Collection[int],
    tolerances: Tolerances,
    search: bool = True,
    threads: int | None = None,
) -> PrecisionPreview:
    """Emulate, compare, rank and (when an output fails and ``search``) find and verify the keep-list."""
    if not cases:
        raise InputError("no cases to compare: give golden outputs or inputs")
    start = time.perf_counter()
    runner = EmulatedRunner(model, cases, tolerances, threads)
    fp16 = set(fp16_nodes)
    per_case = runner.outputs(fp16)
    failing = next((c for c in per_case if not all(o.comparison.passed for o in c)), per_case[0])
    emulated = emulate_fp16(model, fp16, runner.floats)
    try:
        lockstep = node_errors(model, emulated, cases[0].feeds, runner.floats, threads)
    except (RuntimeLoadError, InputError) as exc:  # a model the segment runner cannot split
        lockstep = LockstepResult(unavailable=str(exc))
        logger.warning("precision: no per-node errors (%s); the search takes the nodes in graph order", exc)
    names = [node.name for node in model.graph.node]
    candidates = [i for i in candidate_nodes(model, runner.floats) if i in fp16]
    named = [i for i in candidates if names[i]]
    ranked = lockstep.ranked(named)
    preview = PrecisionPreview(
        outputs=failing,
        lockstep=lockstep,
        ranked=ranked,
        search=None,
        keep_nodes=[],
        fp16_nodes=len(fp16),
        candidates=len(named),
        unnamed_skipped=len(candidates) - len(named),
        cases=len(cases),
    )
    passed = all(o.comparison.passed for c in per_case for o in c)
    if not passed and search:
        order = [n.position for n in ranked]
        order += [i for i in named if i not in set(order)]
        result = search_keep_list(order, lambda kept: runner.passes(fp16 - kept), passes_without=False)
        preview.search = result
        preview.keep_nodes = [names[i] for i in result.keep] if result.found else []
        if result.found:
            verified = runner.outputs(fp16 - set(result.keep))
            preview.keep_outputs = next((c for c in verified if not all(o.comparison.passed for o in c)), verified[0])
    preview.forwards = runner.forwards
    preview.seconds = time.perf_counter() - start
    return preview


def reference_cases(
    model: onnx.ModelProto, inputs: Sequence[Mapping[str, np.ndarray]], threads: int | None = None
) -> list[PrecisionCase]:
    """Cases whose fp32 outputs come from onnxruntime on ``model`` itself."""
    cases = []
    with open_validation_backend(model, optimization="all", threads=threads) as backend:
        for index, feeds in enumerate(inputs):
            feeds = dict(feeds)
            cases.append(PrecisionCase(f"case{index}", feeds, backend.run(feeds)))
    return cases


def check_finite_references(cases: Sequence[PrecisionCase]) -> None:
    """InputError when an fp32 reference output already holds NaN/inf (fp16 cannot be judged against it)."""
    for case in cases:
        for name, value in case.outputs.items():
            array = np.asarray(value)
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                bad = int(np.count_nonzero(~np.isfinite(array)))
                raise InputError(f"the fp32 output '{name}' of case {case.label} holds {bad} NaN/inf value(s)")
