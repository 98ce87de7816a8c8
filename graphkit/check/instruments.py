"""The instruments that run the model after each pass: the end-to-end golden check, the region
check, and the per-pass diff writer (batch stacking is in :mod:`graphkit.check.batch_proof`).

They follow :class:`graphkit.transform.instruments.Instrument`: each returns an
:class:`~graphkit.transform.record.Observation` (figures for the pass's record) and rejects a
pass whose model does not match by returning the observation with a ``rejection`` (a
:class:`~graphkit.util.errors.ValidationError`), so the failed check's figures stay on the
record. They live here, not in ``transform/``, so that the pass manager imports neither
onnxruntime nor the diff nor the golden sets.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from graphkit.check.golden import GoldenSet
from graphkit.check.validation_cache import ValidationCache, cached_golden_validation, golden_hash
from graphkit.ir.model_io import content_hash
from graphkit.runtime.ort import ValidationRuntime
from graphkit.transform.instruments import Instrument
from graphkit.transform.record import Observation
from graphkit.util.errors import GoldenError, GraphkitError, ValidationError
from graphkit.util.files import write_text_atomic
from graphkit.util.tolerance import Tolerances
from graphkit.util.typed_config import to_mapping


class EndToEndCheck(Instrument):
    """Compares every changed model with the golden set (ORT at ``runtime``'s level).

    Exact passes use ``tolerances``; an approximate pass uses its declared tolerance when
    that is looser. ``labels`` restricts the golden cases checked after each pass. Results go
    through ``cache`` (:mod:`graphkit.check.validation_cache`), whose in-memory layer is where
    the final check finds the cases already passed on the model it checks.
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

    def after_pass(self, index, pass_, before, result):
        if not result.modified:
            return None
        start = time.perf_counter()
        tolerances = self.tolerances
        if not pass_.exact and pass_.tolerance is not None:
            tolerances = _loosen(tolerances, pass_.tolerance.atol, pass_.tolerance.rtol)
        validation, source = cached_golden_validation(
            self.cache,
            result.model,
            result.content_hash or content_hash(result.model),
            self.golden,
            self.golden_key,
            tolerances,
            self.labels,
            self.runtime,
            f"validate pass '{pass_.name}'",
        )
        figures = validation.to_dict()
        if source:
            figures["cache"] = source
        rejection = None
        if not validation.passed:
            rejection = ValidationError(
                f"pass '{pass_.name}' failed validation: {validation.first_failure()}", comparison=validation
            )
        return Observation(
            times={"validate": time.perf_counter() - start},
            validation=figures,
            max_abs=validation.max_abs(),
            rejection=rejection,
        )


class RegionCheck(Instrument):
    """Checks each changed model on the region the pass rewrote, not end to end.

    The region before and after the pass (see :mod:`graphkit.check.region`) is extracted as two small
    models, fed the same seeded random boundary data with the input shapes of each golden case
    checked after a pass (``labels``; all when None), and compared with the default tolerance
    (an approximate pass's declared tolerance when looser). A change of the default opset is
    checked on the region plus a one-node region for every node whose schema version changed
    (``validation["schema_nodes"]``). When the region cannot decide
    (other opset or graph I/O change, nothing to compare, integer boundary, region larger than
    ``max_fraction`` of the graph, extraction failure), the pass is checked end to end by
    :attr:`full` (an :class:`EndToEndCheck` this instrument owns) and the reason goes on the
    record (``notes`` and ``validation["fallback_reason"]``). A region mismatch rejects the
    pass with a ValidationError naming the pass and the region output. Region checks use random
    data: check the final model end to end on the golden set.
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
        diffs: PassDiffs | None = None,
    ):
        self.golden = golden
        self.tolerances = tolerances
        self.labels = labels
        self.diffs = diffs or PassDiffs()
        self._hash: tuple[object, str] | None = None  # the last checked model and its content hash
        self.max_fraction = max_fraction
        self.seed = seed
        self.runtime = runtime or ValidationRuntime()
        self.cache = cache
        self.full = EndToEndCheck(golden, tolerances, labels, self.runtime, cache)
        self.scope = None  # every region (ShapeEditCheck: shape edits only)

    def _cases(self) -> list[tuple[str, dict[str, tuple[int, ...]]]]:
        return [
            (case.label, {name: array.shape for name, array in case.inputs.items()})
            for case in self.golden.cases
            if self.labels is None or case.label in self.labels
        ]

    def after_pass(self, index, pass_, before, result):
        from graphkit.check.compare import Comparison
        from graphkit.check.region import RegionOutOfScope, RegionUnavailable, check_region
        from graphkit.check.region_find import NothingToCompare

        if not result.modified:
            return None
        start = time.perf_counter()
        tolerance = self.tolerances.default
        if not pass_.exact and pass_.tolerance is not None:
            tolerance = _loosen(Tolerances(tolerance), pass_.tolerance.atol, pass_.tolerance.rtol).default
        hash_before = self._hash[1] if self._hash is not None and self._hash[0] is before else content_hash(before)
        hash_after = result.content_hash or content_hash(result.model)
        self._hash = (result.model, hash_after)
        key = ValidationCache.key(
            "region",
            before=hash_before,
            after=hash_after,
            cases=self._cases(),
            tolerance=to_mapping(tolerance),
            seed=self.seed,
            max_fraction=self.max_fraction,
            optimization=self.runtime.optimization,
            **({"scope": self.scope.__name__} if self.scope is not None else {}),
        )
        stored = None
        if self.cache is not None:
            stored = self.cache.get(key, f"region check of pass '{pass_.name}'", _stored_region)
        if stored is not None:
            return Observation(
                times={"validate": time.perf_counter() - start},
                validation={**stored["validation"], "cache": self.cache.source_of(self.cache.hits[-1])},
                max_abs=stored["max_abs"],
            )
        try:
            diff, infos_before, infos_after = self.diffs.diff(before, result.model)
            hashes = ({k: v.hash for k, v in infos_before.items()}, {k: v.hash for k, v in infos_after.items()})
            check = check_region(
                before,
                result.model,
                self._cases(),
                tolerance,
                self.seed,
                self.max_fraction,
                diff=diff,
                runtime=self.runtime,
                scope=self.scope,
                hashes=hashes,
            )
        except RegionOutOfScope as exc:  # not a region this instrument checks: end to end, as usual
            return self._end_to_end(index, pass_, before, result, str(exc))
        except NothingToCompare as exc:
            if self.scope is not None and _same_outside_the_graph(diff, before, result.model):
                return _identical(str(exc), start)
            return self._fall_back(index, pass_, before, result, str(exc), start)
        except RegionUnavailable as exc:
            return self._fall_back(index, pass_, before, result, str(exc), start)
        region = check.region
        failure = check.first_failure()
        validation = {
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
        max_abs = check.max_abs()
        if not failure and self.cache is not None:
            self.cache.put(key, {"validation": validation, "max_abs": max_abs})
        rejection = None
        if failure:
            comparison = Comparison([o for _, c in check.cases for o in c.outputs])
            rejection = ValidationError(
                f"pass '{pass_.name}' failed region validation: {failure}", comparison=comparison
            )
        return Observation(
            times={"validate": time.perf_counter() - start}, validation=validation, max_abs=max_abs, rejection=rejection
        )

    def pass_failed(self, index, pass_, before, error, rejected=None):
        self._hash = None  # never keep a rejected model alive

    def _end_to_end(self, index, pass_, before, result, because: str) -> Observation | None:
        full = self.full.after_pass(index, pass_, before, result)
        if full is not None and full.validation is not None:
            full.validation["end_to_end_because"] = because
        return full

    def _fall_back(self, index, pass_, before, result, reason: str, start: float) -> Observation:
        note = f"region validation not applicable ({reason}); validated end to end"
        try:
            full = self.full.after_pass(index, pass_, before, result) or Observation()
        except GraphkitError as exc:  # the end-to-end check could not run the model: keep the note
            return Observation(times={"validate": time.perf_counter() - start}, notes=[note], rejection=exc)
        validation = {**full.validation, "mode": "full", "fallback_reason": reason} if full.validation else None
        return Observation(
            times={"validate": time.perf_counter() - start},
            notes=[note, *full.notes],
            validation=validation,
            max_abs=full.max_abs,
            rejection=full.rejection,
        )


class ShapeEditCheck(RegionCheck):
    """``full`` mode's check on a model with at least ``min_weight_bytes`` of weights: a pass that
    edited only shape arithmetic and data movement (:mod:`graphkit.check.region_scope`) is checked
    on its region at every golden case's shapes, any other pass end to end (:class:`EndToEndCheck`).

    On a large model an end-to-end forward costs the weights (seconds to minutes); a shape edit's
    region holds none. The final end-to-end check on every golden case stays the backstop, and a
    region the check cannot decide falls back to end to end with the reason on the record.
    """

    def __init__(self, *args, min_weight_bytes: int, **kwargs):
        # a shape edit's region holds shape chains and the data movement they feed, not the
        # weights: its size is no measure of its cost, so no size limit
        super().__init__(*args, max_fraction=1.0, **kwargs)
        from graphkit.check.region_scope import not_shape_edit

        self.scope = not_shape_edit
        self.min_weight_bytes = min_weight_bytes

    def after_pass(self, index, pass_, before, result):
        if not result.modified:
            return None
        if weight_bytes(before) < self.min_weight_bytes:
            return self.full.after_pass(index, pass_, before, result)
        from graphkit.check.region_scope import changed_node_not_shape_edit

        # a rewritten node that computes on floats by its declared types: end to end at once,
        # without inferring types or finding the region (the region check would refuse it)
        diff = self.diffs.diff(before, result.model)[0]
        reason = changed_node_not_shape_edit(before, result.model, diff)
        if reason:
            return self._end_to_end(index, pass_, before, result, reason)
        return super().after_pass(index, pass_, before, result)


def _same_outside_the_graph(diff, before, after) -> bool:
    """Whether only nodes and initializers differ (same IR version, opsets, graph inputs and
    outputs, local functions): then equal tensors at every read prove equal outputs."""
    if diff.ir_version or diff.opsets or not diff.inputs.is_empty() or not diff.outputs.is_empty():
        return False
    return [f.SerializeToString(deterministic=True) for f in before.functions] == [
        f.SerializeToString(deterministic=True) for f in after.functions
    ]


def _identical(reason: str, start: float) -> Observation:
    """The record of a pass whose outputs are equal by construction (no model run)."""
    validation = {"mode": "identical", "passed": True, "reason": reason, "fallback_reason": None}
    return Observation(
        times={"validate": time.perf_counter() - start},
        validation=validation,
        notes=[f"validated by construction ({reason}): every tensor read after the pass is one read before it"],
    )


def weight_bytes(model) -> int:
    """Bytes of the initializers' values (from their dims: no weight is read)."""
    import onnx

    total = 0
    for tensor in model.graph.initializer:
        count = 1
        for dim in tensor.dims:
            count *= dim
        try:
            total += count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, TypeError, ValueError):  # string or unknown types: not weights that cost
            continue
    return total


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


class PassDiffs:
    """The diff of each pass's (before, after) models, made once for every instrument that reads
    it (the region check, the per-pass diff), with each model's weights hashed once: the previous
    pass's "after" initializer infos are this pass's "before" ones (Honesty has checked that no
    pass mutated its input). Only the last pair is held, and :meth:`release` lets it go.
    """

    def __init__(self):
        self._latest: tuple[object, dict] | None = None  # (model, its initializer infos)
        self._pair: tuple[object, object, object, dict, dict] | None = None  # before, after, diff, infos

    def diff(self, before, after):
        """(diff, infos before, infos after) of ``before`` -> ``after``."""
        from graphkit.diff.model_diff import diff_models, initializer_infos

        pair = self._pair
        if pair is not None and pair[0] is before and pair[1] is after:
            return pair[2], pair[3], pair[4]
        known = self._latest[1] if self._latest is not None and self._latest[0] is before else None
        infos_before = known if known is not None else initializer_infos(before)
        infos_after = initializer_infos(after)
        self._latest = (after, infos_after)
        diff = diff_models(before, after, infos_before, infos_after)
        self._pair = (before, after, diff, infos_before, infos_after)
        return diff, infos_before, infos_after

    def release(self, keep_latest: bool = True) -> None:
        """Forget the last pair (and, unless ``keep_latest``, the last model's infos too)."""
        self._pair = None
        if not keep_latest:
            self._latest = None


class PassDiffWriter(Instrument):
    """Writes the diff of each pass that changed the model to ``DIR/NN-<pass>.json``.

    The diff's one-line summary goes on the record (and into the run summary). ``diffs`` is the
    run's :class:`PassDiffs`, shared with the region check (a new one when None).
    """

    def __init__(self, directory: Path, diffs: PassDiffs | None = None):
        self.directory = Path(directory)
        self.diffs = diffs or PassDiffs()

    def after_pass(self, index, pass_, before, result):
        if not result.modified:
            return None
        start = time.perf_counter()
        diff = self.diffs.diff(before, result.model)[0]
        self.diffs.release()  # the last reader of this pass's diff: do not keep its models alive
        path = self.directory / f"{index + 1:02d}-{pass_.name}.json"
        # compact: json's C encoder runs only without indent (5-10x faster on a large diff);
        # `python -m json.tool FILE` or `graphkit diff` shows it indented
        write_text_atomic(path, json.dumps(diff.to_dict(), separators=(",", ":")))
        return Observation(
            times={"diff": time.perf_counter() - start},
            diff_summary=diff.summary_line(),
            artifacts={"diff": str(path)},
        )

    def pass_failed(self, index, pass_, before, error, rejected=None):
        self.diffs.release(keep_latest=False)  # never keep a rejected model (and its weights) alive
        return None
