"""The checks of a pipeline run outside the passes: the golden set (made or reused), the export
against its reference model, the final model on every golden case, and localizing the
divergence of a failed pass.

Progress messages go to the ``graphkit.pipeline.checks`` logger.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from graphkit.check.compare import compare_outputs
from graphkit.check.golden import GoldenSet, make_or_load_golden
from graphkit.check.golden_defaults import GoldenDefaults, golden_defaults
from graphkit.check.golden_inputs import load_user_cases
from graphkit.check.golden_validation import CaseResult, GoldenValidation
from graphkit.check.validation_cache import ValidationCache, cached_golden_validation
from graphkit.ir.model_io import load_model
from graphkit.pipeline.plugins import Source
from graphkit.pipeline.spec import PipelineSpec
from graphkit.runtime.ort import ValidationRuntime, forward_purpose, record_forward
from graphkit.transform.record import PassRecord
from graphkit.util.errors import GoldenError, GraphkitError, PipelineSpecError, one_line
from graphkit.util.typed_config import to_mapping
from graphkit.util.user_cache import prepare_cache_dir

logger = logging.getLogger(__name__)


def golden_dir(
    spec: PipelineSpec, source_hash: str, defaults: GoldenDefaults | None = None, user_cases: list | None = None
) -> Path:
    """The pipeline's golden folder, or a cache folder keyed by the source model's hash and by
    the golden request (seed, batch sizes, dims, integer ranges, the user's cases and the
    distributions): another ``--dim`` or ``--inputs`` gets its own folder instead of a mismatch."""
    if spec.golden.dir:
        return Path(spec.golden.dir)
    name = f"{spec.name}-{source_hash[:16]}-{spec.golden.producer}"
    if defaults is not None:
        parts = [spec.golden.seed, defaults.batch_sizes, defaults.dims, defaults.input_ranges]
        if user_cases or spec.golden.distributions:  # only then: earlier cache folders keep their names
            parts += [[c.digest for c in user_cases or []], to_mapping(spec.golden.distributions)]
        request = json.dumps(parts, sort_keys=True)
        name += "-" + hashlib.sha256(request.encode()).hexdigest()[:8]
    return prepare_cache_dir("golden") / name


def make_golden(
    spec: PipelineSpec, source: Source, source_hash: str, regenerate: bool
) -> tuple[GoldenSet, bool, GoldenDefaults]:
    if spec.golden.producer == "reference" and source.reference is None:
        raise PipelineSpecError("golden.producer: 'reference' needs an export source (a torch reference model)")
    defaults = golden_defaults(source.model, spec.golden.batch_sizes, spec.golden.dims, spec.golden.input_ranges)
    user_cases = load_user_cases(source.model, spec.golden.inputs)
    directory = golden_dir(spec, source_hash, defaults, user_cases)
    producer = _recorded(source.reference, source_hash) if spec.golden.producer == "reference" else None
    producer_name = f"reference: {source.description}, {source.weights}" if producer else "onnxruntime"
    for note in defaults.notes:
        logger.info(f"golden: {note}")
    try:
        golden, reused = make_or_load_golden(
            source.model,
            directory,
            batch_sizes=defaults.batch_sizes,
            seed=spec.golden.seed,
            dims=defaults.dims,
            producer=producer,
            producer_name=producer_name,
            tolerances=spec.golden.tolerances(),
            regenerate=regenerate,
            model_hash=source_hash,
            input_ranges=defaults.input_ranges,
            runtime=spec.validate.runtime,
            user_cases=user_cases,
            distributions=spec.golden.distributions,
            recompute_untrusted=not spec.golden.dir,  # graphkit's cache: a set that does not verify is re-recorded
        )
    except GoldenError as exc:
        if producer is None and _SOURCE_FAILED.search(str(exc)):  # the source itself does not run
            raise GoldenError(f"{source.description}: {one_line(exc, 1000)}") from exc
        raise
    if reused:
        logger.info(f"golden: reusing {directory} (manifest matches)")
    return golden, reused, defaults


_SOURCE_FAILED = re.compile(r"onnxruntime cannot load the source model|the source model failed to run")


def check_final_model(
    model,
    model_hash: str,
    golden: GoldenSet,
    golden_key: str,
    tolerances,
    runtime: ValidationRuntime,
    cache: ValidationCache,
    checked_hash: str | None = None,
) -> tuple[GoldenValidation, dict | None]:
    """Validate the final model on every golden case, reusing the cases already passed on it.

    A case passed in this run by an end-to-end check of a model with the same content hash, at
    the pipeline's own tolerances, stands (the validation cache's in-memory layer); only the
    remaining cases run, through the validation cache (returns the validation and, for a cached
    result, where it came from). Region checks are never reused (random data, not the golden inputs).
    ``checked_hash`` is the hash the passes' checks knew the model by, when it differs from
    ``model_hash`` only by what never changes numerics (node provenance stripped after the passes).
    """
    done = cache.passed_cases(checked_hash or model_hash, golden, golden_key, tolerances, runtime)
    todo = [c.label for c in golden.cases if c.label not in done]
    fresh: dict[str, CaseResult] = {}
    note, source = "", None
    if todo:
        logger.info(f"validating the final model on golden case(s) {', '.join(todo)} ...")
        validation, source = cached_golden_validation(
            cache, model, model_hash, golden, golden_key, tolerances, todo, runtime, "final check"
        )
        fresh, note = {c.label: c for c in validation.cases}, validation.note
    results = {c.label: done.get(c.label) or fresh[c.label] for c in golden.cases}
    second = [c.label for c in golden.cases if _at_second_sizes(c, golden.cases[0]) and results[c.label].passed]
    if second and runtime.optimization != "none":
        # onnxruntime's graph rewrites can hide a baked dim (a Reshape target Concat(batch, 16 * d)
        # becomes [0, -1] from level basic up): the cases at the second sizes run once more
        # unoptimized, where every node computes what it says (one forward per such case).
        strict = replace(runtime, optimization="none")
        logger.info(f"checking the final model at optimization none on {', '.join(second)} (second dim sizes) ...")
        checked, _ = cached_golden_validation(
            cache, model, model_hash, golden, golden_key, tolerances, second, strict, "final check, unoptimized"
        )
        for case in checked.cases:
            if not case.passed:
                error = case.error or "outputs differ"
                results[case.label] = CaseResult(
                    case.label, case.comparison, f"at optimization none (second dim sizes): {error}"
                )
    return GoldenValidation([results[c.label] for c in golden.cases], note), source


def _at_second_sizes(case, first) -> bool:
    """Whether golden ``case`` exercises a symbolic dim other than the batch at another size than ``first``."""
    return any(name != "batch" and first.dims.get(name) != size for name, size in case.dims.items())


def _recorded(reference: Callable | None, model_hash: str) -> Callable | None:
    """``reference`` (a torch model's forward) with each call listed in the run's forwards."""
    if reference is None:
        return None

    def run(feeds):
        start = time.perf_counter()
        outputs = reference(feeds)
        first = next(iter(feeds.values()), None)
        batch = int(first.shape[0]) if first is not None and first.ndim else 1
        record_forward(f"b{batch}", batch, time.perf_counter() - start, "n/a", backend="torch")
        return outputs

    return run


def localize_failure(record: PassRecord, golden: GoldenSet, tolerances) -> None:
    """Find the first tensor where the rejected model diverges from the pass's input, on the first
    golden case the pass failed (the first case when no case failed: a failed check of another kind)."""
    from graphkit.check.localize import localize

    rejected = record.artifacts.get("rejected_model")
    if not rejected or "input_model" not in record.artifacts or not golden.cases:
        record.notes.append("localize: no rejected model to compare")
        return
    logger.info(f"localizing the divergence of pass '{record.name}' ...")
    failed = [c.get("label") for c in (record.validation or {}).get("cases", []) if not c.get("passed", True)]
    case = next((c for c in golden.cases if c.label in failed), golden.cases[0])  # the first case that failed
    tol = tolerances.default
    try:
        result = localize(
            load_model(record.artifacts["input_model"], mapped=True),  # weights stay in the files
            load_model(rejected, mapped=True),
            case.inputs,
            atol=tol.atol,
            rtol=tol.rtol,
        )
    except GraphkitError as exc:  # the rejected model does not run on this case: that is the answer
        answer = f"the rejected model fails to run: {one_line(exc, 600)}"
        record.artifacts["localize"] = {"case": case.label, "error": answer}
        record.notes.append(f"localize (case {case.label}): {answer}")
        return
    record.artifacts["localize"] = result.to_dict()
    record.notes.append(f"localize (case {case.label}): {result.summary_line()}")


def check_export_against_reference(
    spec: PipelineSpec,
    source: Source,
    golden: GoldenSet,
    source_hash: str,
    golden_key: str,
    cache: ValidationCache,
) -> GoldenValidation:
    """The exported model against its reference, before any pass runs.

    With a reference-made golden set, the export runs on every case; with an onnxruntime-made
    one (the export's own outputs), the reference runs on ``validate.reference_batch_sizes``.
    """
    tolerances = spec.golden.tolerances()
    if spec.golden.producer == "reference":
        logger.info("validating the export against the reference outputs ...")
        validation, _ = cached_golden_validation(
            cache,
            source.model,
            source_hash,
            golden,
            golden_key,
            tolerances,
            None,
            spec.validate.runtime,
            "export vs reference",
        )
        return validation
    import torch

    labels = [c.label for c in golden.cases if c.dims.get("batch") in spec.validate.reference_batch_sizes]
    key = ValidationCache.key(
        "reference",
        model=source_hash,
        golden=golden_key,
        tolerances=to_mapping(tolerances),
        labels=labels,
        reference=source.description,
        weights=source.weights,
        details=source.details,
        torch=torch.__version__,
    )
    stored = cache.get(key, "export vs reference (torch)", GoldenValidation.from_dict)
    if stored is not None:
        logger.info("export vs reference: passed in an earlier run (validation cache)")
        return stored
    results = []
    for case in golden.cases:
        if case.dims.get("batch") not in spec.validate.reference_batch_sizes:
            continue
        logger.info(f"validating the export against the reference model on case {case.label} ...")
        with forward_purpose("export vs reference (torch)", source_hash):
            expected = _recorded(source.reference, source_hash)(case.inputs)
        results.append(CaseResult(case.label, compare_outputs(case.outputs, expected, tolerances)))
        del expected
    validation = GoldenValidation(results)
    if validation.passed:
        cache.put(key, validation.to_dict())
    return validation


def source_error(first_failure: str) -> GraphkitError:
    return GraphkitError(f"the exported model does not match the reference model: {first_failure}")
