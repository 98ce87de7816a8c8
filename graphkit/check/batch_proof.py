"""Batch stacking: proof that a model made dynamic-batch computes each sample as before.

A golden set recorded on a static-batch source has cases at that one batch only, so it cannot
prove a pass that makes dim 0 symbolic (``dynamic-batch``): the new model might still hold
batch-specific constants (Split sizes, Reshape targets, output dims that are not the batch).
:class:`BatchStacking` proves it: the first pass whose result turns a static dim 0 of an input
into a symbolic one is checked on ``copies`` stacked samples (the golden inputs plus seeded
others, each of the old batch ``B``): the new model runs at batch ``copies * B`` and each block
of ``B`` rows of every output must equal the pass's input model run on that sample alone, within
the golden tolerances. Every later pass that changes the model is checked the same way.

Stacking is only meaningful when samples are independent rows: every output of the input model
must have dim 0 equal to ``B``. Otherwise, or when the stacked model fails to run or differs,
the pass is rejected (rolled back) with the reason.
"""

from __future__ import annotations

import time

import numpy as np
import onnx

from graphkit.check.compare import compare_outputs
from graphkit.check.golden import GoldenSet, make_inputs
from graphkit.ir.model_io import graph_inputs
from graphkit.ir.shapes import dims_of
from graphkit.runtime.backend import open_validation_backend
from graphkit.runtime.ort import ort_error_text
from graphkit.transform.instruments import Instrument
from graphkit.transform.record import Observation
from graphkit.util.errors import ValidationError
from graphkit.util.tolerance import Tolerances

COPIES = 3


def _dim0(value: onnx.ValueInfoProto) -> int | str | None:
    dims = dims_of(value)
    return dims[0] if dims else None


def made_dynamic(before: onnx.ModelProto, after: onnx.ModelProto) -> list[str]:
    """Inputs whose dim 0 is static in ``before`` and symbolic in ``after``."""
    old = {v.name: _dim0(v) for v in graph_inputs(before)}
    return [v.name for v in graph_inputs(after) if isinstance(old.get(v.name), int) and not isinstance(_dim0(v), int)]


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with open_validation_backend(model) as backend:
        return backend.run(feeds)


class BatchStacking(Instrument):
    """Reject a pass whose dynamic batch does not hold at ``copies`` stacked samples (see module)."""

    def __init__(self, golden: GoldenSet, tolerances: Tolerances, copies: int = COPIES):
        self.golden = golden
        self.tolerances = tolerances
        self.copies = copies
        self.batched: list[str] = []  # inputs stacked along dim 0
        self.samples: list[dict[str, np.ndarray]] = []
        self.expected: list[dict[str, np.ndarray]] = []

    def after_pass(self, index, pass_, before, result):
        if not result.modified:
            return None
        start = time.perf_counter()
        if not self.samples:
            batched = made_dynamic(before, result.model)
            if not batched:
                return None
            self._record_samples(before, batched)
        note = self._check(result.model)
        return Observation(times={"batch_stacking": time.perf_counter() - start}, notes=[note])

    def _record_samples(self, before: onnx.ModelProto, batched: list[str]) -> None:
        """The samples and the input model's outputs on each; ValidationError when rows are not samples."""
        case = self.golden.cases[0]
        batch = {v.name: _dim0(v) for v in graph_inputs(before)}[batched[0]]
        ranges = self.golden.manifest.get("input_ranges") or {}
        samples = [dict(case.inputs)]
        for copy in range(1, self.copies):
            seed = int(self.golden.manifest.get("seed", 0)) + 7919 * copy
            samples.append(make_inputs(before, case.dims, seed, "the inputs of a batch-stacking sample", ranges))
        expected = []
        for index, sample in enumerate(samples):
            try:
                outputs = case.outputs if index == 0 else _run(before, sample)
            except Exception as exc:  # onnxruntime's own types, InputError
                raise ValidationError(
                    f"dynamic batch not proven: the model before the pass fails on sample {index}: {ort_error_text(exc)}"
                ) from exc
            for name, array in outputs.items():
                if np.ndim(array) == 0 or np.shape(array)[0] != batch:
                    got = "a scalar" if np.ndim(array) == 0 else f"dim 0 of size {np.shape(array)[0]}"
                    raise ValidationError(
                        f"dynamic batch not proven: output '{name}' has {got}, not the batch {batch}; its rows are "
                        "not independent samples, so a batch of stacked samples cannot be checked and the batch "
                        "is not dynamic (declined: keep the static batch, or export the model with a dynamic batch)"
                    )
            expected.append(outputs)
        self.batched, self.samples, self.expected = batched, samples, expected

    def _check(self, model: onnx.ModelProto) -> str:
        """The note saying the stacked samples matched; ValidationError when they do not."""
        stacked = {
            name: np.concatenate([s[name] for s in self.samples]) if name in self.batched else self.samples[0][name]
            for name in self.samples[0]
        }
        rows = len(self.samples) * len(self.expected[0][next(iter(self.expected[0]))])
        try:
            actual = _run(model, stacked)
        except Exception as exc:  # onnxruntime's own types, InputError
            raise ValidationError(
                f"dynamic batch not proven: the model fails at batch {rows} ({len(self.samples)} stacked samples): "
                f"{ort_error_text(exc)}"
            ) from exc
        worst: dict[str, float] = {}
        for index, expected in enumerate(self.expected):
            size = len(next(iter(expected.values())))
            block = {name: np.asarray(value)[index * size : (index + 1) * size] for name, value in actual.items()}
            comparison = compare_outputs(block, expected, self.tolerances)
            if not comparison.passed:
                failure = comparison.failures()[0].describe() if comparison.failures() else "outputs differ"
                raise ValidationError(
                    f"dynamic batch not proven: at batch {rows} ({len(self.samples)} stacked samples), sample "
                    f"{index} differs from a run on that sample alone: {failure}",
                    comparison,
                )
            for out in comparison.outputs:
                worst[out.name] = max(worst.get(out.name, 0.0), out.max_abs)
        return (
            f"batch stacking: {len(self.samples)} stacked samples at batch {rows} equal the runs on each sample "
            f"alone (max abs {', '.join(f'{k} {v:.2g}' for k, v in worst.items())})"
        )
