"""Instruments run around every pass (after TVM's PassContext instruments).

An instrument sees each pass before and after it runs. ``after_pass`` may raise a
:class:`~graphkit.util.errors.GraphkitError` to reject the pass's result; the manager then rolls the
model back to what it was before the pass. Instruments record their figures on the
:class:`PassRecord`, which becomes one entry of ``report.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from graphkit.check.compare import Tolerances
from graphkit.check.golden import GoldenSet, GoldenValidation
from graphkit.check.validation_cache import ValidationCache, cached_golden_validation, golden_hash
from graphkit.diff.model_diff import diff_models
from graphkit.ir.model_io import check_model, check_tensor_sizes, content_hash, infer_shapes, op_counts
from graphkit.ir.shapes import skeleton
from graphkit.runtime.ort import ValidationRuntime
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.util.errors import GoldenError, PassError, ValidationError
from graphkit.util.files import write_text_atomic
from graphkit.util.typed_config import to_mapping


@dataclass
class PassRecord:
    """Everything the report says about one pass."""

    index: int
    name: str
    options: dict
    exact: bool
    status: str = "pending"  # applied | unchanged | failed | rolled-back
    modified: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    declined: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nodes_before: int = 0
    nodes_after: int = 0
    op_delta: dict[str, list[int]] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)
    validation: dict | None = None
    max_abs: dict[str, float] = field(default_factory=dict)
    diff_summary: str = ""
    error: str = ""
    artifacts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)


class Instrument:
    """Hooks around each pass; the default implementations do nothing."""

    def before_pass(self, record: PassRecord, pass_: Pass, model: onnx.ModelProto) -> None:
        """Called before the pass runs."""

    def after_pass(self, record: PassRecord, pass_: Pass, before: onnx.ModelProto, result: PassResult) -> None:
        """Called after a pass returned; raise a GraphkitError to reject (roll back) its result."""

    def pass_failed(
        self,
        record: PassRecord,
        pass_: Pass,
        before: onnx.ModelProto,
        error: Exception,
        rejected: onnx.ModelProto | None = None,
    ) -> None:
        """Called after a pass was rejected; the model is back to ``before``.

        ``rejected`` is the model the pass returned, when it returned one.
        """


class Timing(Instrument):
    """Wall time of the pass itself (``times.pass``); instruments time their own work."""

    def before_pass(self, record, pass_, model):
        self._start = time.perf_counter()

    def after_pass(self, record, pass_, before, result):
        record.times["pass"] = time.perf_counter() - self._start


class InputMutatedError(PassError):
    """A pass changed its input model in place: the model cannot be rolled back, the run stops."""


class Honesty(Instrument):
    """Checks that ``modified`` tells the truth, and that no pass mutates its input in place.

    The input's content hash is taken before every pass, the first included (reusing the hash
    of the previous pass's result when that very object is the input).
    """

    def __init__(self):
        self._latest: tuple[onnx.ModelProto, str] | None = None  # (model object, its hash)
        self._before = ""

    def before_pass(self, record, pass_, model):
        start = time.perf_counter()
        if self._latest is None or self._latest[0] is not model:
            self._latest = (model, content_hash(model))
        self._before = self._latest[1]
        record.times["honesty"] = time.perf_counter() - start

    def after_pass(self, record, pass_, before, result):
        start = time.perf_counter()
        hash_before = self._before
        if content_hash(before) != hash_before:
            self._latest = None
            raise InputMutatedError(
                f"pass '{pass_.name}' mutated its input model in place (cannot roll back; the run stops)", pass_.name
            )
        if result.model is before:
            changed = False
        else:
            hash_after = content_hash(result.model)
            changed = hash_after != hash_before
            self._latest = (result.model, hash_after)
        if changed != result.modified:
            said = "changed nothing" if not result.modified else "changed the model"
            raise PassError(f"pass '{pass_.name}' said it {said}, but the content hash says otherwise", pass_.name)
        record.times["honesty"] = record.times.get("honesty", 0.0) + time.perf_counter() - start


class OpCounts(Instrument):
    """Node counts before/after and the op-count delta."""

    def after_pass(self, record, pass_, before, result):
        old, new = op_counts(before), op_counts(result.model)
        record.nodes_before = sum(old.values())
        record.nodes_after = sum(new.values())
        record.op_delta = {
            op: [old.get(op, 0), new.get(op, 0)]
            for op in sorted(set(old) | set(new))
            if old.get(op, 0) != new.get(op, 0)
        }


class Verify(Instrument):
    """ONNX checker and strict shape inference on every changed model.

    Both run on the graph with its large initializers turned into typed inputs
    (:func:`graphkit.ir.shapes.skeleton`), whose data is checked for size separately.
    """

    def after_pass(self, record, pass_, before, result):
        if not result.modified:
            return
        start = time.perf_counter()
        what = f"output of pass '{pass_.name}'"
        # the graph without its large weights: no 500 MB serialization per pass; the weights
        # themselves are checked for size against their declared dims
        check_tensor_sizes(result.model, what)
        light = skeleton(result.model)
        check_model(light, what)
        infer_shapes(light, what)
        record.times["verify"] = time.perf_counter() - start


class Validate(Instrument):
    """Compares every changed model with the golden set (ORT at ``runtime``'s level).

    Exact passes use ``tolerances``; an approximate pass uses its declared tolerance when
    that is looser. ``labels`` restricts the golden cases checked after each pass.
    """

    def __init__(
        self,
        golden: GoldenSet,
        tolerances: Tolerances,
        labels: list[str] | None = None,
        runtime: ValidationRuntime | None = None,
        cache: ValidationCache | None = None,
    ):
        known = [case.label for case in golden.cases]
        unknown = [label for label in labels or [] if label not in known]
        if unknown or labels == []:
            raise GoldenError(
                f"validate.each_batch_sizes: golden case(s) {', '.join(unknown) or '(none)'} to check each pass on "
                f"are not in the golden set {golden.directory} (cases: {', '.join(known)})"
            )
        self.golden = golden
        self.tolerances = tolerances
        self.labels = labels
        self.runtime = runtime or ValidationRuntime()
        self.cache = cache
        self.golden_key = golden_hash(golden.directory) if cache is not None and cache.enabled else ""
        self.last: tuple[onnx.ModelProto, GoldenValidation] | None = None

    def after_pass(self, record, pass_, before, result):
        if not result.modified:
            return
        start = time.perf_counter()
        tolerances = self.tolerances
        if not pass_.exact and pass_.tolerance is not None:
            tolerances = _loosen(tolerances, pass_.tolerance.atol, pass_.tolerance.rtol)
        validation, source = cached_golden_validation(
            self.cache,
            result.model,
            content_hash(result.model),
            self.golden,
            self.golden_key,
            tolerances,
            self.labels,
            self.runtime,
            f"validate pass '{pass_.name}'",
        )
        record.times["validate"] = time.perf_counter() - start
        record.validation = validation.to_dict()
        if source:
            record.validation["cache"] = source
        record.max_abs = validation.max_abs()
        # the final check may reuse these cases only if they ran at the pipeline's own tolerances
        self.last = (result.model, validation) if tolerances is self.tolerances else None
        if not validation.passed:
            raise ValidationError(
                f"pass '{pass_.name}' failed validation: {validation.first_failure()}", comparison=validation
            )


class RegionValidate(Instrument):
    """Validates each changed model on the region the pass rewrote, not end to end.

    The region before and after the pass (see :mod:`graphkit.check.region`) is extracted as two small
    models, fed the same seeded random boundary data with the input shapes of each golden case
    checked after a pass (``labels``; all when None), and compared with the default tolerance
    (an approximate pass's declared tolerance when looser). A change of the default opset is
    checked on the region plus a one-node region for every node whose schema version changed
    (``validation["schema_nodes"]``). When the region cannot decide
    (other opset or graph I/O change, nothing to compare, integer boundary, region larger than
    ``max_fraction`` of the graph, extraction failure), the pass is validated end to end by
    :attr:`full` (a :class:`Validate`) and the reason goes on the record (``notes`` and
    ``validation["fallback_reason"]``). A region mismatch raises ValidationError naming the
    pass and the region output. Region checks use random data: validate the final model end
    to end on the golden set.
    """

    def __init__(
        self,
        golden: GoldenSet,
        tolerances: Tolerances,
        labels: list[str] | None = None,
        max_fraction: float = 0.5,
        seed: int = 0,
        runtime: ValidationRuntime | None = None,
        cache: ValidationCache | None = None,
    ):
        self.golden = golden
        self.tolerances = tolerances
        self.labels = labels
        self.max_fraction = max_fraction
        self.seed = seed
        self.runtime = runtime or ValidationRuntime()
        self.cache = cache
        self.full = Validate(golden, tolerances, labels, self.runtime, cache)

    def _cases(self) -> list[tuple[str, dict[str, tuple[int, ...]]]]:
        return [
            (case.label, {name: array.shape for name, array in case.inputs.items()})
            for case in self.golden.cases
            if self.labels is None or case.label in self.labels
        ]

    def after_pass(self, record, pass_, before, result):
        from graphkit.check.compare import Comparison
        from graphkit.check.region import RegionUnavailable, check_region

        if not result.modified:
            return
        start = time.perf_counter()
        tolerance = self.tolerances.default
        if not pass_.exact and pass_.tolerance is not None:
            tolerance = _loosen(Tolerances(tolerance), pass_.tolerance.atol, pass_.tolerance.rtol).default
        key = ValidationCache.key(
            "region",
            before=content_hash(before),
            after=content_hash(result.model),
            cases=self._cases(),
            tolerance=to_mapping(tolerance),
            seed=self.seed,
            max_fraction=self.max_fraction,
            optimization=self.runtime.optimization,
        )
        stored = None
        if self.cache is not None:
            stored = self.cache.get(key, f"region check of pass '{pass_.name}'", _stored_region)
        if stored is not None:
            record.validation = {**stored["validation"], "cache": self.cache.source_of(self.cache.hits[-1])}
            record.max_abs = stored["max_abs"]
            record.times["validate"] = time.perf_counter() - start
            return
        try:
            check = check_region(
                before, result.model, self._cases(), tolerance, self.seed, self.max_fraction, runtime=self.runtime
            )
        except RegionUnavailable as exc:
            self._fall_back(record, pass_, before, result, str(exc), start)
            return
        region = check.region
        failure = check.first_failure()
        record.validation = {
            "mode": "region",
            "passed": check.passed,
            "region_nodes_a": len(region.a.nodes),
            "region_nodes_b": len(region.b.nodes),
            "boundary_inputs": sorted(region.inputs),
            "schema_nodes": check.schema_nodes,
            "outputs": [
                {"case": label, **to_mapping(out)} for label, comparison in check.cases for out in comparison.outputs
            ],
            "fallback_reason": None,
        }
        record.max_abs = check.max_abs()
        record.times["validate"] = time.perf_counter() - start
        if not failure and self.cache is not None:
            self.cache.put(key, {"validation": record.validation, "max_abs": record.max_abs})
        if failure:
            comparison = Comparison([o for _, c in check.cases for o in c.outputs])
            raise ValidationError(f"pass '{pass_.name}' failed region validation: {failure}", comparison=comparison)

    def _fall_back(self, record, pass_, before, result, reason: str, start: float) -> None:
        note = f"region validation not applicable ({reason}); validated end to end"
        record.notes.append(note)
        result.notes.append(note)  # the manager copies the result's notes onto the record on success
        try:
            self.full.after_pass(record, pass_, before, result)
        finally:
            if record.validation is not None:
                record.validation.update({"mode": "full", "fallback_reason": reason})
            record.times["validate"] = time.perf_counter() - start


def _stored_region(result: dict) -> dict:
    """A cached region result: a passed validation dict and max abs figures (else ValueError)."""
    validation, max_abs = result["validation"], result["max_abs"]
    if not isinstance(validation, dict) or validation.get("passed") is not True or not isinstance(max_abs, dict):
        raise ValueError("not a passed region result")
    return result


def _loosen(tolerances: Tolerances, atol: float, rtol: float) -> Tolerances:
    def widen(tol):
        return type(tol)(max(tol.atol, atol), max(tol.rtol, rtol), tol.argmax_axis, tol.min_argmax_agreement)

    return Tolerances(widen(tolerances.default), {k: widen(v) for k, v in tolerances.outputs.items()})


class PassDiff(Instrument):
    """Writes the diff of each pass that changed the model to ``DIR/NN-<pass>.json``.

    The diff's one-line summary goes on the record (and into the run summary).
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def after_pass(self, record, pass_, before, result):
        if not result.modified:
            return
        start = time.perf_counter()
        diff = diff_models(before, result.model)
        record.diff_summary = diff.summary_line()
        path = self.directory / f"{record.index + 1:02d}-{record.name}.json"
        write_text_atomic(path, json.dumps(diff.to_dict(), indent=1))
        record.artifacts["diff"] = str(path)
        record.times["diff"] = time.perf_counter() - start


class Reproducer(Instrument):
    """On failure, writes the pass's input model, the rejected model (when there is one) and a
    one-pass pipeline that reproduces the failure."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def pass_failed(self, record, pass_, before, error, rejected=None):
        import yaml

        from graphkit.ir.model_io import save_model

        folder = self.directory / f"repro-{record.index + 1:02d}-{record.name}"
        model_path = save_model(before, folder / "input.onnx")
        if rejected is not None:
            record.artifacts["rejected_model"] = str(save_model(rejected, folder / "rejected.onnx"))
        spec = {
            "name": f"repro-{record.name}",
            "source": {"onnx": str(model_path)},
            "passes": [{record.name: record.options}],
            "output": {"dir": str(folder / "run")},
        }
        write_text_atomic(folder / "pipeline.yaml", yaml.safe_dump(spec, sort_keys=False))
        record.artifacts["reproducer"] = str(folder / "pipeline.yaml")
        record.artifacts["input_model"] = str(model_path)
