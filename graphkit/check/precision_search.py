"""The fp32 keep-list, searched: the fewest nodes to keep in fp32 so that every output meets its tolerance.

:func:`search_keep_list` takes the candidate nodes in the order :mod:`graphkit.check.precision_analysis`
ranks them and runs the emulated model (one *forward* = every case once):

1. bisection for the shortest ranked prefix whose keeping passes (``log2(n) + 1`` forwards; the
   whole candidate list is tried first, and no keep-list exists when even that fails);
2. reduction of that prefix to a 1-minimal set, delta-debugging style: chunks of it are dropped
   while the rest still passes, halving the chunk size down to single nodes, so no single node
   of the answer can be dropped (a few forwards when the answer is small);
3. one final forward that verifies the answer (its figures are the ones reported).

Passing is assumed monotone in the kept set for the bisection only; the reduction and the final
check do not rely on it. :func:`exhaustive_keep_list` (every subset, smallest first) is the
reference the tests compare against on small models, and the naive baseline of the benchmark is
:func:`one_run_per_node_ranking`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Verdict = Callable[[frozenset[int]], bool]  # kept node indices -> every output within tolerance


@dataclass
class KeepListSearch:
    """The answer and what it cost."""

    keep: list[int]  # node indices, in rank order
    found: bool
    forwards: int
    seconds: float
    steps: list[dict] = field(default_factory=list)  # {"kept": n, "passed": bool, "phase": str}


class _Counter:
    def __init__(self, verdict: Verdict):
        self.verdict, self.forwards, self.steps = verdict, 0, []
        self.memo: dict[frozenset[int], bool] = {}

    def __call__(self, kept: frozenset[int], phase: str) -> bool:
        if kept not in self.memo:
            self.forwards += 1
            self.memo[kept] = bool(self.verdict(kept))
            self.steps.append({"phase": phase, "kept": len(kept), "passed": self.memo[kept]})
        return self.memo[kept]


def search_keep_list(ranked: Sequence[int], verdict: Verdict, passes_without: bool | None = None) -> KeepListSearch:
    """The smallest keep-list found by bisection over ``ranked`` then 1-minimal reduction (module docstring).

    ``passes_without``: whether the model already passes with nothing kept, when the caller knows
    (then that forward is not repeated).
    """
    start = time.perf_counter()
    run = _Counter(verdict)
    if passes_without is not None:
        run.memo[frozenset()] = passes_without
    ranked = list(dict.fromkeys(ranked))
    if run(frozenset(), "none kept"):
        return KeepListSearch([], True, run.forwards, time.perf_counter() - start, run.steps)
    if not ranked or not run(frozenset(ranked), "all kept"):
        return KeepListSearch([], False, run.forwards, time.perf_counter() - start, run.steps)
    low, high = 0, len(ranked)  # prefix of length low fails, of length high passes
    while high - low > 1:
        middle = (low + high) // 2
        if run(frozenset(ranked[:middle]), "bisect"):
            high = middle
        else:
            low = middle
    keep = ranked[:high]
    keep = _reduce(keep, run)
    passed = run(frozenset(keep), "verify")
    return KeepListSearch(keep, passed, run.forwards, time.perf_counter() - start, run.steps)


def _reduce(keep: list[int], run: _Counter) -> list[int]:
    """Drop chunks of ``keep`` (halving the chunk size) while what is left still passes."""
    chunk = max(1, len(keep) // 2)
    while keep:
        dropped = False
        begin = 0
        while begin < len(keep):
            rest = keep[:begin] + keep[begin + chunk :]
            if rest != keep and run(frozenset(rest), "reduce"):
                keep, dropped = rest, True
            else:
                begin += chunk
        if chunk == 1 and not dropped:
            break
        if not dropped:
            chunk = max(1, chunk // 2)
    return keep


def exhaustive_keep_list(candidates: Sequence[int], verdict: Verdict, limit: int = 16) -> list[int] | None:
    """A smallest passing subset of ``candidates`` by trying every subset, smallest first (None: none passes).

    Refuses more than ``limit`` candidates (2**limit forwards).
    """
    if len(candidates) > limit:
        raise ValueError(f"exhaustive search over {len(candidates)} candidates (limit {limit})")
    for size in range(len(candidates) + 1):
        for subset in itertools.combinations(candidates, size):
            if verdict(frozenset(subset)):
                return list(subset)
    return None


def one_run_per_node_ranking(candidates: Sequence[int], score: Callable[[frozenset[int]], float]) -> list[int]:
    """The naive ranking: one emulated forward per candidate kept alone, ordered by the output error it leaves."""
    scores = {index: score(frozenset([index])) for index in candidates}
    return sorted(candidates, key=lambda index: scores[index])
