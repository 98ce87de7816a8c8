"""Compare model outputs with expected outputs under per-output tolerances.

The statistic is element-wise: an element passes when
``|actual - expected| <= atol + rtol * |expected|`` (numpy's ``allclose`` rule). Each output
reports max abs and max rel error, the fraction of mismatching elements, and the smallest
atol (at the given rtol) and rtol (at the given atol) that would have passed, as Polygraphy
does. Optionally an output also needs its argmax over an axis to agree (segmentation masks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Tolerance:
    """Tolerance for one output. ``argmax_axis`` adds a task-level check on that axis."""

    atol: float = 1e-5
    rtol: float = 1e-4
    argmax_axis: int | None = None
    min_argmax_agreement: float = 1.0


@dataclass
class Tolerances:
    """A default tolerance plus per-output overrides."""

    default: Tolerance = field(default_factory=Tolerance)
    outputs: dict[str, Tolerance] = field(default_factory=dict)

    def for_output(self, name: str) -> Tolerance:
        """The tolerance that applies to output ``name``."""
        return self.outputs.get(name, self.default)


@dataclass
class OutputComparison:
    """Error figures for one output."""

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

    def describe(self) -> str:
        """One line: name, verdict and the figures."""
        verdict = "ok" if self.passed else "MISMATCH"
        text = (
            f"{self.name}: {verdict} max_abs={self.max_abs:.3g} max_rel={self.max_rel:.3g} "
            f"mismatch={self.mismatch_fraction:.3%} (atol={self.atol:g} rtol={self.rtol:g}; "
            f"would pass with atol>={self.needed_atol:.3g} or rtol>={self.needed_rtol:.3g})"
        )
        if self.argmax_agreement is not None:
            text += f" argmax_agreement={self.argmax_agreement:.4%}"
        return text + (f" [{self.problem}]" if self.problem else "")


@dataclass
class Comparison:
    """The comparison of all outputs of one run."""

    outputs: list[OutputComparison]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def failures(self) -> list[OutputComparison]:
        return [o for o in self.outputs if not o.passed]

    def max_abs(self) -> dict[str, float]:
        return {o.name: o.max_abs for o in self.outputs}


def compare_outputs(
    actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], tolerances: Tolerances
) -> Comparison:
    """Compare every expected output with the actual one of the same name."""
    results = []
    for name, want in expected.items():
        tol = tolerances.for_output(name)
        if name not in actual:
            results.append(_failed(name, want, tol, "output missing"))
            continue
        results.append(compare_array(name, np.asarray(actual[name]), np.asarray(want), tol))
    return Comparison(results)


def compare_array(name: str, got: np.ndarray, want: np.ndarray, tol: Tolerance) -> OutputComparison:
    """Figures for one output array."""
    if got.shape != want.shape:
        return _failed(name, want, tol, f"shape {got.shape} != expected {want.shape}")
    if got.dtype.kind != want.dtype.kind:
        return _failed(name, want, tol, f"dtype {got.dtype} != expected {want.dtype}")
    if want.size == 0:
        return OutputComparison(name, want.shape, tol.atol, tol.rtol, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, True)
    got64 = got.astype(np.float64, copy=False)
    want64 = want.astype(np.float64, copy=False)
    nan_mismatch = np.isnan(got64) != np.isnan(want64)
    with np.errstate(invalid="ignore"):
        err = np.abs(got64 - want64)
    err = np.where(np.isnan(got64) & np.isnan(want64), 0.0, err)
    err = np.where(nan_mismatch, np.inf, err)
    mag = np.abs(want64)
    bad = err > tol.atol + tol.rtol * mag
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(mag > 0, err / mag, np.where(err > 0, np.inf, 0.0))
        need_rtol_elem = np.where(mag > 0, (err - tol.atol) / mag, np.where(err > tol.atol, np.inf, 0.0))
    max_abs = float(err.max())
    passed = not bool(bad.any())
    comparison = OutputComparison(
        name=name,
        shape=tuple(want.shape),
        atol=tol.atol,
        rtol=tol.rtol,
        max_abs=max_abs,
        max_rel=float(rel.max()),
        mean_abs=float(err.mean()) if math.isfinite(max_abs) else math.inf,
        mismatch_fraction=float(bad.mean()),
        needed_atol=float(max(0.0, (err - tol.rtol * mag).max())),
        needed_rtol=float(max(0.0, need_rtol_elem.max())),
        passed=passed,
    )
    if tol.argmax_axis is not None and want.ndim > tol.argmax_axis:
        agreement = float((got.argmax(axis=tol.argmax_axis) == want.argmax(axis=tol.argmax_axis)).mean())
        comparison.argmax_agreement = agreement
        if agreement < tol.min_argmax_agreement:
            comparison.passed = False
            comparison.problem = f"argmax agreement {agreement:.4%} < {tol.min_argmax_agreement:.4%}"
    return comparison


def _failed(name: str, want: np.ndarray, tol: Tolerance, problem: str) -> OutputComparison:
    inf = math.inf
    return OutputComparison(
        name, tuple(want.shape), tol.atol, tol.rtol, inf, inf, inf, 1.0, inf, inf, False, None, problem
    )
