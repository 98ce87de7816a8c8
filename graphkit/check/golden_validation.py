"""Validating a model against a golden set: every case run with onnxruntime and compared.

:func:`validate_against_golden` never skips a case: a case that cannot run on the candidate model
(onnxruntime error, input names, dtypes or static dims that do not fit, a missing output) is a
failed :class:`CaseResult` whose error is in the :class:`GoldenValidation`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from graphkit.check.compare import Comparison, OutputComparison, compare_outputs
from graphkit.check.golden import GoldenSet
from graphkit.runtime.backend import TensorInfo, open_validation_backend
from graphkit.runtime.ort import ValidationRuntime, forward_purpose, ort_error_text
from graphkit.util.errors import GoldenError, RuntimeLoadError
from graphkit.util.tolerance import Tolerances
from graphkit.util.typed_config import to_mapping


def level_note(golden: GoldenSet, runtime: ValidationRuntime) -> str:
    """A note when ``golden`` was recorded by onnxruntime at another optimization level, else ''.

    Sets made before levels were recorded were made with optimizations off (``none``).
    """
    if "onnxruntime" not in str(golden.manifest.get("producer", "")):
        return ""
    made = golden.manifest.get("optimization") or "none"
    if made == runtime.optimization:
        return ""
    return (
        f"golden outputs were recorded at optimization '{made}', validated at '{runtime.optimization}' "
        "(float rounding may differ within the tolerances)"
    )


@dataclass
class CaseResult:
    """Validation of one golden case: its comparison, or the error that kept it from running.

    A case with an error failed; there are no skipped cases.
    """

    label: str
    comparison: Comparison | None = None
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and self.comparison is not None and self.comparison.passed


@dataclass
class GoldenValidation:
    """The result of validating a model against a golden set; it passes only when every case
    ran and matched (and there was at least one case)."""

    cases: list[CaseResult]
    note: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    def max_abs(self) -> dict[str, float]:
        """Worst max abs error per output over all compared cases."""
        worst: dict[str, float] = {}
        for case in self.cases:
            for out in case.comparison.outputs if case.comparison else []:
                worst[out.name] = max(worst.get(out.name, 0.0), out.max_abs)
        return worst

    def first_failure(self) -> str:
        """'case b2, output mask: MISMATCH max_abs=...' for the first failing case, or ''."""
        if not self.cases:
            return "no golden case was checked"
        if all(c.error for c in self.cases) and len(self.cases) > 1:
            if len({c.error for c in self.cases}) == 1:
                return f"no golden case runs on the model (cases {', '.join(c.label for c in self.cases)}): {self.cases[0].error}"
            return "no golden case runs on the model: " + "; ".join(f"case {c.label}: {c.error}" for c in self.cases)
        for case in self.cases:
            if case.error:
                return f"case {case.label}: {case.error}"
            if case.comparison is not None and not case.comparison.passed:
                failures = case.comparison.failures()
                return f"case {case.label}, {failures[0].describe()}" if failures else f"case {case.label}: no outputs"
        return ""

    @classmethod
    def from_dict(cls, data: dict) -> GoldenValidation:
        """The validation :meth:`to_dict` wrote (a cached result)."""
        cases = []
        for case in data["cases"]:
            outputs = case.get("outputs")
            comparison = None
            if outputs is not None:
                comparison = Comparison([OutputComparison(**{**o, "shape": tuple(o["shape"])}) for o in outputs])
            cases.append(CaseResult(case["label"], comparison, case.get("error") or ""))
        return cls(cases, data.get("note", ""))

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            **({"note": self.note} if self.note else {}),
            "cases": [
                {
                    "label": c.label,
                    "passed": c.passed,
                    "error": c.error or None,
                    "outputs": to_mapping(c.comparison.outputs) if c.comparison else None,
                }
                for c in self.cases
            ],
        }


def validate_against_golden(
    model: onnx.ModelProto | str | os.PathLike,
    golden: GoldenSet,
    tolerances: Tolerances | None = None,
    labels: list[str] | None = None,
    runtime: ValidationRuntime | None = None,
    purpose: str = "validate",
    model_hash: str = "",
) -> GoldenValidation:
    """Run ``model`` on each golden case (ORT at ``runtime``'s level) and compare outputs.

    Each forward is recorded in the active ForwardLog under ``purpose`` and ``model_hash``;
    ``note`` says when the golden set was recorded at another optimization level.

    Every case runs; ``labels`` restricts the cases (an unknown label is a GoldenError). A case
    that cannot run (the model does not load in onnxruntime, input names, dtypes or static dims
    do not fit, onnxruntime fails) is a failed case with its error; a tolerance naming an output
    the golden set lacks is a SpecError.
    """
    tolerances = tolerances or golden.tolerances
    tolerances.check_outputs(golden.output_ranks())
    known = [case.label for case in golden.cases]
    if labels is not None:
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise GoldenError(f"{golden.directory}: no golden case {', '.join(unknown)} (cases: {', '.join(known)})")
    cases = [case for case in golden.cases if labels is None or case.label in labels]
    runtime = runtime or ValidationRuntime()
    note = level_note(golden, runtime)
    try:
        backend = open_validation_backend(model, runtime.optimization, runtime.threads)
    except Exception as exc:  # onnxruntime raises its own exception types
        error = (
            ort_error_text(exc)
            if isinstance(exc, RuntimeLoadError)
            else f"onnxruntime cannot load the model: {ort_error_text(exc)}"
        )
        return GoldenValidation([CaseResult(case.label, error=error) for case in cases], note)
    model_inputs = {info.name: info for info in backend.inputs}
    results = []
    for case in cases:
        misfit = _misfit(model_inputs, case.inputs)
        if misfit:
            results.append(CaseResult(case.label, error=f"does not fit the model: {misfit}"))
            continue
        try:
            with forward_purpose(purpose, model_hash):
                actual = backend.run(case.inputs, case=case.label)
        except Exception as exc:  # InputError, or any onnxruntime failure while running
            results.append(CaseResult(case.label, error=f"the model failed to run: {ort_error_text(exc)}"))
            continue
        results.append(CaseResult(case.label, compare_outputs(actual, case.outputs, tolerances)))
        del actual
    backend.close()
    return GoldenValidation(results, note)


def _misfit(model_inputs: Mapping[str, TensorInfo], feeds: Mapping[str, np.ndarray]) -> str:
    """Why the golden inputs cannot feed the model (names, dtype, rank, static dims), or ''."""
    if set(feeds) != set(model_inputs):
        return f"golden inputs {sorted(feeds)} are not the model's inputs {sorted(model_inputs)}"
    for name, info in model_inputs.items():
        array = feeds[name]
        if array.dtype != info.dtype:
            return f"input '{name}' is {info.dtype} in the model, {array.dtype} in the golden case"
        declared = info.shape
        if len(declared) != array.ndim:
            return f"input '{name}' has rank {len(declared)}, the golden case has rank {array.ndim} {list(array.shape)}"
        for axis, (want, got) in enumerate(zip(declared, array.shape)):
            if isinstance(want, int) and want > 0 and want != got:
                hint = " (record the golden set with batch sizes the model accepts)" if axis == 0 else ""
                return f"input '{name}' axis {axis} is static {want} in the model, {got} in the golden case{hint}"
    return ""
