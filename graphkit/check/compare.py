"""Compare model outputs with expected outputs under per-output tolerances.

The statistic is element-wise: an element passes when
``|actual - expected| <= atol + rtol * |expected|`` (numpy's ``allclose`` rule). Non-finite
values follow Polygraphy's comparator: a NaN must meet a NaN at the same position, +inf/-inf
must meet the same infinity, and anything else is a mismatch whatever the tolerance (a NaN or
inf where the expected value is finite, a finite value where it is NaN or inf, an inf of the
other sign). Outputs of a different shape or dtype, missing outputs, outputs without expected
values and a comparison of nothing are failures. Boolean outputs compare exactly.

Each output reports max abs and max rel error, the fraction of mismatching elements, the
number of non-finite mismatches, and the smallest atol (at the given rtol) and rtol (at the
given atol) that would have passed, as Polygraphy does (infinite when no finite tolerance
passes). Optionally an output also needs its argmax over an axis to agree (segmentation masks).

The tolerance types live in :mod:`graphkit.util.tolerance` (a pure value type that passes,
rules and the pipeline spec use without loading the comparison).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from graphkit.util.tolerance import Tolerance, Tolerances


@dataclass
class OutputComparison:
    """Error figures for one output.

    ``compared`` is False when the values could not be compared at all (missing output, shape
    or dtype mismatch...); ``problem`` then says why and the figures are infinite.
    """

    name: str
    shape: tuple[int, ...]
    atol: float
    rtol: float
    max_abs: float
    max_rel: float
    mean_abs: float
    mismatch_fraction: float
    needed_atol: float
    needed_rtol: float
    passed: bool
    argmax_agreement: float | None = None
    problem: str = ""
    nonfinite_mismatches: int = 0
    compared: bool = True

    def describe(self) -> str:
        """One line: name, verdict and the figures."""
        verdict = "ok" if self.passed else "MISMATCH"
        if not self.compared:
            return f"{self.name}: {verdict} [{self.problem}]"
        if math.isfinite(self.needed_atol) and math.isfinite(self.needed_rtol):
            would = f"would pass with atol>={self.needed_atol:.3g} or rtol>={self.needed_rtol:.3g}"
        elif math.isfinite(self.needed_atol):
            would = f"would pass with atol>={self.needed_atol:.3g}"
        elif self.nonfinite_mismatches:
            would = f"no tolerance passes: {self.nonfinite_mismatches} NaN/inf mismatch(es)"
        else:
            would = "no finite tolerance passes"
        text = (
            f"{self.name}: {verdict} max_abs={self.max_abs:.3g} max_rel={self.max_rel:.3g} "
            f"mismatch={self.mismatch_fraction:.3%} (atol={self.atol:g} rtol={self.rtol:g}; {would})"
        )
        if self.argmax_agreement is not None:
            text += f" argmax_agreement={self.argmax_agreement:.4%}"
        return text + (f" [{self.problem}]" if self.problem else "")


@dataclass
class Comparison:
    """The comparison of all outputs of one run; a comparison of no outputs does not pass."""

    outputs: list[OutputComparison]

    @property
    def passed(self) -> bool:
        return bool(self.outputs) and all(o.passed for o in self.outputs)

    def failures(self) -> list[OutputComparison]:
        return [o for o in self.outputs if not o.passed]

    def max_abs(self) -> dict[str, float]:
        return {o.name: o.max_abs for o in self.outputs}


def compare_outputs(
    actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], tolerances: Tolerances
) -> Comparison:
    """Compare every expected output with the actual one of the same name.

    An expected output that is missing, and an actual output that has no expected values, are
    failures (nothing is passed that was not checked).
    """
    results = []
    for name, want in expected.items():
        tol = tolerances.for_output(name)
        if name not in actual:
            results.append(not_compared(name, np.shape(want), tol, "output missing"))
            continue
        results.append(compare_array(name, np.asarray(actual[name]), np.asarray(want), tol))
    for name in actual:
        if name not in expected:
            got = np.asarray(actual[name])
            results.append(not_compared(name, got.shape, tolerances.for_output(name), "no expected values"))
    return Comparison(results)


def compare_array(name: str, got: np.ndarray, want: np.ndarray, tol: Tolerance) -> OutputComparison:
    """Figures for one output array (see the module docstring for the rules)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return not_compared(name, want.shape, tol, f"shape {got.shape} != expected {want.shape}")
    if got.dtype != want.dtype:
        return not_compared(name, want.shape, tol, f"dtype {got.dtype} != expected {want.dtype}")
    if want.dtype.kind not in "fiub":
        return not_compared(name, want.shape, tol, f"values of dtype {want.dtype} cannot be compared")
    axis = tol.argmax_axis
    if axis is not None and not -want.ndim <= axis < want.ndim:
        return not_compared(name, want.shape, tol, f"argmax_axis {axis} is out of range for rank {want.ndim}")
    if want.size == 0:  # nothing to disagree on: equal by shape and dtype
        agreement = None if axis is None else 1.0
        return OutputComparison(name, want.shape, tol.atol, tol.rtol, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, True, agreement)
    err, mag, special = _errors(got, want)
    with np.errstate(over="ignore"):
        bound = tol.atol + tol.rtol * mag
    bad = (err > bound) | np.isinf(err)
    if want.dtype.kind == "b":
        bad = err > 0  # booleans compare exactly
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rel = np.where(mag > 0, err / mag, np.where(err > 0, np.inf, 0.0))
        need_rtol = np.where(mag > 0, (err - tol.atol) / mag, np.where(err > tol.atol, np.inf, 0.0))
        need_atol = err - tol.rtol * mag
    comparison = OutputComparison(
        name=name,
        shape=tuple(want.shape),
        atol=tol.atol,
        rtol=tol.rtol,
        max_abs=float(err.max()),
        max_rel=float(rel.max()),
        mean_abs=float(err.mean()),
        mismatch_fraction=float(bad.mean()),
        needed_atol=float(max(0.0, need_atol.max())),
        needed_rtol=float(max(0.0, need_rtol.max())),
        passed=not bool(bad.any()),
        nonfinite_mismatches=int(special.sum()),
    )
    if want.dtype.kind == "b" and not comparison.passed:
        comparison.needed_atol = comparison.needed_rtol = math.inf  # no tolerance applies to booleans
    if axis is not None:
        agreement = float((got.argmax(axis=axis) == want.argmax(axis=axis)).mean())
        comparison.argmax_agreement = agreement
        if agreement < tol.min_argmax_agreement:
            comparison.passed = False
            comparison.problem = f"argmax agreement {agreement:.4%} < {tol.min_argmax_agreement:.4%}"
    return comparison


def _errors(got: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(absolute error, |expected| used by rtol, non-finite mismatch mask), all float64/bool.

    Matching non-finite values (NaN with NaN, inf with the same inf) have error 0; any other
    position where either side is not finite has error inf and counts as a non-finite mismatch.
    """
    if want.dtype.kind == "f":
        g = got.astype(np.float64, copy=False)
        w = want.astype(np.float64, copy=False)
        finite = np.isfinite(g) & np.isfinite(w)
        same_special = (np.isnan(g) & np.isnan(w)) | (np.isinf(w) & (g == w))
        special = ~(finite | same_special)
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.where(finite, np.abs(g - w), np.where(same_special, 0.0, np.inf))
        mag = np.where(finite, np.abs(w), 0.0)
        return err, mag, special
    equal = got == want
    special = np.zeros(want.shape, dtype=bool)
    if want.dtype.kind == "b":
        return (~equal).astype(np.float64), np.zeros(want.shape), special
    # integers: exact equality first (float64 loses precision past 2**53), then the distance
    with np.errstate(over="ignore"):
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    err = np.where(equal, 0.0, np.maximum(err, 1.0))
    return err, np.abs(want.astype(np.float64)), special


def not_compared(name: str, shape: tuple[int, ...], tol: Tolerance, problem: str) -> OutputComparison:
    """A failed comparison of an output whose values could not be compared at all."""
    inf = math.inf
    return OutputComparison(
        name, tuple(shape), tol.atol, tol.rtol, inf, inf, inf, 1.0, inf, inf, False, None, problem, 0, False
    )
