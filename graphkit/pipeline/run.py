"""Run a pipeline: source -> golden -> passes (instrumented) -> validated output -> hand-off.

:func:`apply_pipeline` writes a run folder::

    model.onnx       the final model (only when every check passed)
    report.json      source, golden, per-pass records, final validation, stage times, peak RSS
    summary.txt      the one-screen summary printed at the end
    pipeline.yaml    the resolved pipeline (overrides applied)
    diffs/           one diff per pass that changed the model (when graphkit.diff.model_diff is present)
    repro-*/         a reproducer for a failed pass

A run folder holds one run: a rerun removes the earlier run's files first (see
:mod:`graphkit.pipeline.run_folder`), so ``report.json`` always describes the files beside it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from graphkit import __version__
from graphkit.check.batch_proof import BatchStacking
from graphkit.check.compare import compare_outputs
from graphkit.check.golden import (
    CaseResult,
    GoldenDefaults,
    GoldenSet,
    GoldenValidation,
    golden_defaults,
    make_or_load_golden,
)
from graphkit.check.golden import level_note as golden_level_note
from graphkit.check.validation_cache import ValidationCache, cached_golden_validation, golden_hash
from graphkit.ir.model_io import content_hash, default_opset, load_model, load_user_model, save_model
from graphkit.pipeline.plugins import (
    HANDOFF,
    SOURCES,
    STAGES,
    Source,
    SourceKind,
    StageContext,
    handoff_names,
    ordered_stages,
)
from graphkit.pipeline.run_folder import check_run_folder
from graphkit.pipeline.spec import PipelineSpec, build_passes, spec_to_yaml
from graphkit.runtime.ort import (
    ForwardLog,
    ValidationRuntime,
    active_forward_log,
    forward_purpose,
    record_forward,
    recording_forwards,
)
from graphkit.transform.instruments import (
    Honesty,
    Instrument,
    OpCounts,
    PassDiff,
    PassRecord,
    RegionValidate,
    Reproducer,
    Timing,
    Validate,
    Verify,
)
from graphkit.transform.manager import PassManager
from graphkit.transform.pass_base import Pass
from graphkit.util.console import json_default, progress
from graphkit.util.errors import GoldenError, GraphkitError, PipelineSpecError, SpecError, one_line
from graphkit.util.files import make_folder, write_text_atomic
from graphkit.util.typed_config import to_mapping
from graphkit.util.user_cache import cache_dir

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    """A progress line on stderr that does not break an active progress bar."""
    tqdm.write(message, file=sys.stderr)


@dataclass
class ApplyResult:
    """What a pipeline run produced."""

    ok: bool
    run_dir: Path
    report: dict
    summary: str
    model_path: Path | None = None
    error: GraphkitError | None = None


def load_source(spec: PipelineSpec, origin: str, input_path: str | None, weights: str | None, log: Log) -> Source:
    """Load, build or export the source model named by the pipeline (or ``input_path``).

    ``onnx`` and ``builtin`` are the core's own kinds; any other ``source.<kind>`` is loaded by
    the plugin registered for it (:data:`graphkit.pipeline.plugins.SOURCES`).
    """
    if input_path:
        return Source(load_user_model(input_path), "onnx", str(input_path))
    if spec.source.onnx:
        return Source(load_user_model(spec.source.onnx), "onnx", spec.source.onnx)
    if spec.source.builtin == "demo":
        from graphkit.pipeline.demo_model import demo_model

        return Source(demo_model(), "builtin", "demo model", weights="random (seed 0)")
    name, options = plugin_source(spec)
    kind = source_kind(name)
    try:
        typed = kind.parse(options, f"source.{name}", weights)
    except SpecError as exc:
        raise PipelineSpecError(f"{origin}: {exc}") from exc
    return kind.load(typed, log)


def plugin_source(spec: PipelineSpec) -> tuple[str, dict | None]:
    """The ``source.<kind>`` a plugin loads, and its options: the one key besides onnx/builtin."""
    if spec.source.export is not None:
        return "export", spec.source.export
    for name, options in spec.source.plugin.items():
        return name, options
    raise PipelineSpecError("source: no source kind is set")


def source_kind(name: str) -> SourceKind:
    """The registered plugin for ``source.<name>``; a GraphkitError when none is installed."""
    if name not in SOURCES:
        raise PipelineSpecError(
            f"source.{name}: no plugin provides this source kind (entry point group graphkit.sources; "
            "is graphkit installed with 'pip install -e .'?)"
        )
    return SOURCES[name]


def _source_words(spec: PipelineSpec) -> str:
    if spec.source.onnx:
        return "an ONNX file"
    if spec.source.builtin:
        return "the built-in demo"
    return f"source.{plugin_source(spec)[0]}"


def _takes_weights(spec: PipelineSpec) -> bool:
    if spec.source.onnx or spec.source.builtin:
        return False
    return source_kind(plugin_source(spec)[0]).takes_weights


def golden_dir(spec: PipelineSpec, source_hash: str, defaults: GoldenDefaults | None = None) -> Path:
    """The pipeline's golden folder, or a cache folder keyed by the source model's hash and by
    the golden request (seed, batch sizes, dims, integer ranges): another ``--dim`` gets its own
    folder instead of a mismatch."""
    if spec.golden.dir:
        return Path(spec.golden.dir)
    name = f"{spec.name}-{source_hash[:16]}-{spec.golden.producer}"
    if defaults is not None:
        request = json.dumps(
            [spec.golden.seed, defaults.batch_sizes, defaults.dims, defaults.input_ranges], sort_keys=True
        )
        name += "-" + hashlib.sha256(request.encode()).hexdigest()[:8]
    return cache_dir("golden") / name


def apply_pipeline(
    spec: PipelineSpec,
    origin: str = "<pipeline>",
    *,
    input_path: str | None = None,
    output_dir: str | None = None,
    weights: str | None = None,
    localize: bool | None = None,
    extra_pass_dirs: list[str] | None = None,
    regenerate_golden: bool = False,
    overwrite: bool = False,
    log: Log = _stderr,
    use_cache: bool = True,
) -> ApplyResult:
    """Run the pipeline; see the module docstring for what it writes.

    The run folder follows :mod:`graphkit.pipeline.run_folder`: a rerun of the same pipeline replaces
    its earlier files, any other non-empty folder needs ``overwrite``. Every full-model forward
    is listed in the report (``forwards``: purpose, model hash, case, batch, time). Passed
    checks are taken from and stored in the validation cache (:mod:`graphkit.check.validation_cache`)
    unless ``use_cache`` is false; the report lists what came from it (``cache``).
    """
    with recording_forwards(ForwardLog()):
        return _apply_pipeline(
            spec,
            origin,
            input_path=input_path,
            output_dir=output_dir,
            weights=weights,
            localize=localize,
            extra_pass_dirs=extra_pass_dirs,
            regenerate_golden=regenerate_golden,
            overwrite=overwrite,
            log=log,
            use_cache=use_cache,
        )


def _apply_pipeline(
    spec: PipelineSpec,
    origin: str,
    *,
    input_path: str | None,
    output_dir: str | None,
    weights: str | None,
    localize: bool | None,
    extra_pass_dirs: list[str] | None,
    regenerate_golden: bool,
    overwrite: bool,
    log: Log,
    use_cache: bool,
) -> ApplyResult:
    stages: dict[str, float] = {}
    started = time.perf_counter()
    passes = build_passes(spec, origin, extra_pass_dirs)  # fail on bad specs before heavy work
    sections = type_sections(spec, origin)
    if weights and not input_path and not _takes_weights(spec):
        kinds = ", ".join(f"source.{name}" for name in SOURCES if SOURCES[name].takes_weights)
        raise PipelineSpecError(
            f"--weights: the source of {origin} is {_source_words(spec)}, not an export; weights only apply to {kinds}"
        )
    if weights and input_path:
        raise PipelineSpecError("--weights: with --input the source is an ONNX file, not an export")
    if output_dir is not None and not str(output_dir).strip():
        raise PipelineSpecError("--output: must not be empty (give a folder)")
    run_dir = Path(output_dir) if output_dir is not None else spec.run_dir()
    pipeline_file = origin if Path(origin).is_file() else None
    inputs = (pipeline_file, input_path, spec.source.onnx, spec.golden.dir, *spec.pass_dirs, *(extra_pass_dirs or []))
    folder = check_run_folder(run_dir, spec.name, spec.output.model, overwrite, tuple(p for p in inputs if p))
    clock = time.perf_counter()
    source = load_source(spec, origin, input_path, weights, log)
    source_hash = content_hash(source.model)
    stages["source"] = time.perf_counter() - clock

    clock = time.perf_counter()
    golden, golden_reused, defaults = _golden(spec, source, source_hash, regenerate_golden, log)
    stages["golden"] = time.perf_counter() - clock

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cache = ValidationCache(enabled=use_cache, run=f"{run_dir} ({spec.name}, {stamp})")
    golden_key = golden_hash(golden.directory) if use_cache else ""

    # the run folder appears (and an earlier run's files go) only once the inputs proved usable
    folder.clear()
    make_folder(run_dir)
    write_text_atomic(run_dir / "pipeline.yaml", spec_to_yaml(spec))

    report: dict[str, Any] = {
        "graphkit_version": __version__,
        "pipeline": spec.name,
        "pipeline_file": origin,
        "weights": source.weights,
        "source": {
            "kind": source.kind,
            "description": source.description,
            "hash": source_hash,
            "nodes": len(source.model.graph.node),
            "opset": default_opset(source.model),
            **({"export": source.details} if source.details else {}),
        },
        "golden": {
            "dir": str(golden.directory),
            "producer": golden.manifest["producer"],
            "cases": [c.label for c in golden.cases],
            "reused": golden_reused,
            "notes": defaults.notes,
            "optimization": golden.manifest.get("optimization"),
        },
        "validation_runtime": to_mapping(spec.validate.runtime),
        "cache": cache,  # its hits and counts at the end of the run (see _finish)
    }
    level_note = golden_level_note(golden, spec.validate.runtime)
    if level_note:
        report["golden"]["note"] = level_note
        log(f"note: {level_note}")
    if source.reference is not None:
        clock = time.perf_counter()
        check = _check_against_reference(spec, source, golden, source_hash, golden_key, cache, log)
        source.reference = None  # free the torch model: its outputs are recorded
        gc.collect()
        stages["source_validation"] = time.perf_counter() - clock
        report["source_validation"] = check.to_dict()
        if not check.passed:
            return _finish(run_dir, report, stages, started, None, error=_source_error(check.first_failure()), log=log)

    clock = time.perf_counter()

    def log_pass(index: int, pass_: Pass) -> None:
        log(f"[{index + 1}/{len(passes)}] {pass_.name} ...")

    instruments = _instruments(spec, golden, run_dir, cache)
    validator = _end_to_end_validator(instruments)
    manager = PassManager(
        passes,
        instruments,
        on_failure=spec.on_failure,
    )
    with progress(total=len(passes), desc="passes", unit="pass") as bar:
        manager.on_pass_start = lambda i, p: (bar.update(i - bar.n), bar.set_postfix_str(p.name), log_pass(i, p))
        run = manager.run(source.model)
        bar.update(len(passes) - bar.n)
    stages["passes"] = time.perf_counter() - clock
    report["passes"] = [r.to_dict() for r in run.records]
    if not run.ok:
        do_localize = spec.validate.localize if localize is None else localize
        if do_localize and run.failed is not None:
            _localize_failure(run.failed, golden, spec.golden.tolerances(), log)
            report["passes"][-1] = run.failed.to_dict()
        return _finish(run_dir, report, stages, started, None, error=run.error, log=log)

    clock = time.perf_counter()
    final_hash = content_hash(run.model)
    final_check, final_cache = _final_validation(
        run.model,
        final_hash,
        golden,
        golden_key,
        spec.golden.tolerances(),
        validator,
        spec.validate.runtime,
        cache,
        log,
    )
    stages["final_validation"] = time.perf_counter() - clock
    report["final"] = {
        "hash": final_hash,
        "nodes": len(run.model.graph.node),
        "opset": default_opset(run.model),
        "validation": {**final_check.to_dict(), **({"cache": final_cache} if final_cache else {})},
        "max_abs": final_check.max_abs(),
    }
    if not final_check.passed:
        error = GraphkitError(f"final model failed validation: {final_check.first_failure()}")
        return _finish(run_dir, report, stages, started, None, error=error, log=log)

    clock = time.perf_counter()
    model_path = save_model(run.model, run_dir / spec.output.model, external_data=spec.output.external_data)
    stages["save"] = time.perf_counter() - clock
    report["final"]["path"] = str(model_path)
    _run_stages(sections, StageContext(model_path, run_dir, source, log), report, stages)
    return _finish(run_dir, report, stages, started, model_path, error=None, log=log)


def _golden(
    spec: PipelineSpec, source: Source, source_hash: str, regenerate: bool, log: Log
) -> tuple[GoldenSet, bool, GoldenDefaults]:
    if spec.golden.producer == "reference" and source.reference is None:
        raise PipelineSpecError("golden.producer: 'reference' needs an export source (a torch reference model)")
    defaults = golden_defaults(source.model, spec.golden.batch_sizes, spec.golden.dims, spec.golden.input_ranges)
    directory = golden_dir(spec, source_hash, defaults)
    producer = _recorded(source.reference, source_hash) if spec.golden.producer == "reference" else None
    producer_name = f"reference: {source.description}, {source.weights}" if producer else "onnxruntime"
    for note in defaults.notes:
        log(f"golden: {note}")
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
            on_case=lambda label: log(f"golden: recording case {label} with {producer_name} ..."),
            input_ranges=defaults.input_ranges,
            runtime=spec.validate.runtime,
        )
    except GoldenError as exc:
        if producer is None and _SOURCE_FAILED.search(str(exc)):  # the source itself does not run
            raise GoldenError(f"{source.description}: {one_line(exc, 1000)}") from exc
        raise
    if reused:
        log(f"golden: reusing {directory} (manifest matches)")
    return golden, reused, defaults


_SOURCE_FAILED = re.compile(r"onnxruntime cannot load the source model|the source model failed to run")


def _instruments(spec: PipelineSpec, golden: GoldenSet, run_dir: Path, cache: ValidationCache) -> list[Instrument]:
    instruments: list[Instrument] = [Timing(), Honesty(), OpCounts()]
    if spec.validate.verify_each:
        instruments.append(Verify())
    if spec.validate.validate_each:
        labels = [f"b{b}" for b in spec.validate.each_batch_sizes] if spec.validate.each_batch_sizes else None
        validate = RegionValidate if spec.validate.mode == "region" else Validate
        instruments.append(
            validate(golden, spec.golden.tolerances(), labels, runtime=spec.validate.runtime, cache=cache)
        )
        instruments.append(BatchStacking(golden, spec.golden.tolerances()))  # a batch made dynamic
    instruments += [PassDiff(run_dir / "diffs"), Reproducer(run_dir)]
    return instruments


def _end_to_end_validator(instruments: list[Instrument]) -> Validate | None:
    """The instrument whose end-to-end results the final check may reuse.

    In region mode that is the fallback validator of RegionValidate: its ``last`` is set only
    by a pass it validated end to end, and is reused only when that very model is the final one.
    Region checks themselves are never reused (random data, not the golden inputs).
    """
    for instrument in instruments:
        if isinstance(instrument, Validate):
            return instrument
        if isinstance(instrument, RegionValidate):
            return instrument.full
    return None


def _final_validation(
    model,
    model_hash: str,
    golden: GoldenSet,
    golden_key: str,
    tolerances,
    validator: Validate | None,
    runtime: ValidationRuntime,
    cache: ValidationCache,
    log: Log,
) -> tuple[GoldenValidation, dict | None]:
    """Validate the final model on every golden case, reusing the cases already checked on it.

    A case passed by an end-to-end check of a model with the same content hash (the last model
    a pass validated end to end, at the pipeline's own tolerances) stands; only the remaining
    cases run, through the validation cache (returns the validation and, for a cached result,
    where it came from). Region checks are never reused (random data, not the golden inputs).
    """
    done: dict[str, CaseResult] = {}
    if validator is not None and validator.last is not None:
        last_model, last_validation = validator.last
        if last_model is model or content_hash(last_model) == model_hash:
            done = {c.label: c for c in last_validation.cases if c.comparison is not None}
    todo = [c.label for c in golden.cases if c.label not in done]
    fresh: dict[str, CaseResult] = {}
    note, source = "", None
    if todo:
        log(f"validating the final model on golden case(s) {', '.join(todo)} ...")
        validation, source = cached_golden_validation(
            cache, model, model_hash, golden, golden_key, tolerances, todo, runtime, "final check"
        )
        fresh, note = {c.label: c for c in validation.cases}, validation.note
    return GoldenValidation([done.get(c.label) or fresh[c.label] for c in golden.cases], note), source


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


def _localize_failure(record: PassRecord, golden: GoldenSet, tolerances, log: Log) -> None:
    """Find the first tensor where the rejected model diverges from the pass's input."""
    from graphkit.check.localize import localize

    rejected = record.artifacts.get("rejected_model")
    if not rejected or not golden.cases:
        record.notes.append("localize: no rejected model to compare")
        return
    log(f"localizing the divergence of pass '{record.name}' ...")
    case = golden.cases[0]
    tol = tolerances.default
    result = localize(
        load_model(record.artifacts["input_model"]), load_model(rejected), case.inputs, atol=tol.atol, rtol=tol.rtol
    )
    record.artifacts["localize"] = result.to_dict()
    record.notes.append(f"localize (case {case.label}): {result.summary_line()}")


def _check_against_reference(
    spec: PipelineSpec,
    source: Source,
    golden: GoldenSet,
    source_hash: str,
    golden_key: str,
    cache: ValidationCache,
    log: Log,
) -> GoldenValidation:
    """The exported model against its reference, before any pass runs.

    With a reference-made golden set, the export runs on every case; with an onnxruntime-made
    one (the export's own outputs), the reference runs on ``validate.reference_batch_sizes``.
    """
    tolerances = spec.golden.tolerances()
    if spec.golden.producer == "reference":
        log("validating the export against the reference outputs ...")
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
        log("export vs reference: passed in an earlier run (validation cache)")
        return stored
    results = []
    for case in golden.cases:
        if case.dims.get("batch") not in spec.validate.reference_batch_sizes:
            continue
        log(f"validating the export against the reference model on case {case.label} ...")
        with forward_purpose("export vs reference (torch)", source_hash):
            expected = _recorded(source.reference, source_hash)(case.inputs)
        results.append(CaseResult(case.label, compare_outputs(case.outputs, expected, tolerances)))
        del expected
    validation = GoldenValidation(results)
    if validation.passed:
        cache.put(key, validation.to_dict())
    return validation


def _source_error(first_failure: str) -> GraphkitError:
    return GraphkitError(f"the exported model does not match the reference model: {first_failure}")


def type_sections(spec: PipelineSpec, origin: str) -> dict[str, Any]:
    """Type every stage's section up front (errors name the key), by section path.

    The ``handoff`` mapping holds one key per registered ``handoff.<name>`` stage; ``eval`` and
    ``perf`` are stage sections themselves (:mod:`graphkit.pipeline.plugins`).
    """
    sections: dict[str, Any] = {}
    try:
        if spec.handoff:
            known = handoff_names()
            unknown = sorted(set(spec.handoff) - set(known))
            if unknown:
                raise SpecError(f"handoff: unknown key '{unknown[0]}'; known keys: {', '.join(known)}")
        for name, stage in ordered_stages():
            raw = _section(spec, name)
            if raw is not None:
                sections[name] = stage.parse(raw, name)
        if spec.eval and "eval" not in STAGES:  # (perf: accepted, run only by a plugin that registers it)
            raise SpecError("eval: no installed plugin runs this section (entry point group graphkit.stages)")
    except SpecError as exc:
        raise PipelineSpecError(f"{origin}: {exc}") from exc
    return sections


def _section(spec: PipelineSpec, name: str) -> Any:
    """The raw value of section ``name`` (``eval``, ``handoff.atc``), None when absent."""
    if name.startswith(HANDOFF):
        if not spec.handoff or name[len(HANDOFF) :] not in spec.handoff:
            return None
        return spec.handoff[name[len(HANDOFF) :]] or {}
    value = getattr(spec, name, None) if name in ("eval", "perf") else None
    return value or None


def _run_stages(sections: dict[str, Any], context: StageContext, report: dict, stages: dict) -> None:
    """Run the typed stages in their declared order; each fills its report key (None if unused)."""
    for name, stage in ordered_stages():
        report[stage.report_key] = None
        if name not in sections:
            continue
        clock = time.perf_counter()
        if stage.message:
            context.log(stage.message)
        report[stage.report_key] = stage.run(sections[name], context)
        stages[stage.report_key] = time.perf_counter() - clock


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB."""
    try:  # this process image's own peak; ru_maxrss would include a parent's peak before exec
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _finish(run_dir, report, stages, started, model_path, error, log) -> ApplyResult:
    from graphkit.pipeline.summary import render_summary

    stages["total"] = time.perf_counter() - started
    report["stages"] = {k: round(v, 3) for k, v in stages.items()}
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if isinstance(report.get("cache"), ValidationCache):
        report["cache"] = report["cache"].to_dict()
    forwards = active_forward_log()
    if forwards is not None:
        report["forwards"] = to_mapping(forwards.forwards)
        report["forwards_summary"] = forwards.summary_line()
    report["status"] = "ok" if error is None else "failed"
    report["error"] = str(error) if error else None
    report["run_dir"] = str(run_dir)
    write_text_atomic(run_dir / "report.json", json.dumps(report, indent=2, default=json_default))
    summary = render_summary(report)
    write_text_atomic(run_dir / "summary.txt", summary)
    return ApplyResult(error is None, run_dir, report, summary, model_path, error)
