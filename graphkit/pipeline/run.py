"""Run a pipeline: source -> golden -> passes (instrumented) -> validated output -> hand-off.

:func:`apply_pipeline` writes a run folder::

    model.onnx       the final model (only when every check passed)
    report.json      source, golden, per-pass records, final validation, stage times, peak RSS
    summary.txt      the one-screen summary printed at the end
    pipeline.yaml    the resolved pipeline (overrides applied)
    diffs/           one diff per pass that changed the model
    repro-*/         a reproducer for a failed pass (see :mod:`graphkit.pipeline.reproducer`)

A run folder holds one run: a rerun removes the earlier run's files first (see
:mod:`graphkit.pipeline.run_folder`), so ``report.json`` always describes the files beside it.
The report is a :class:`~graphkit.pipeline.report.RunReport`; the checks outside the passes
are in :mod:`graphkit.pipeline.checks`, the source and the stages after the save in
:mod:`graphkit.pipeline.stages`. Progress goes to the ``graphkit.pipeline.run`` logger.
"""

from __future__ import annotations

import gc
import logging
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from graphkit import __version__
from graphkit.check.batch_proof import BatchStacking
from graphkit.check.golden import GoldenSet
from graphkit.check.golden_cases import unexercised_dims
from graphkit.check.golden_validation import level_note as golden_level_note
from graphkit.check.instruments import EndToEndCheck, PassDiffs, PassDiffWriter, RegionCheck, ShapeEditCheck
from graphkit.check.validation_cache import ValidationCache, golden_hash
from graphkit.ir.model_io import content_hash, default_opset, save_model
from graphkit.ir.model_summary import summarize
from graphkit.ir.provenance import strip_provenance
from graphkit.pipeline.checks import (
    check_export_against_reference,
    check_final_model,
    localize_failure,
    make_golden,
    source_error,
)
from graphkit.pipeline.plugins import StageContext
from graphkit.pipeline.report import (
    FinalModel,
    GoldenInfo,
    RunReport,
    RunStatus,
    SourceInfo,
    claim_text,
    dims_exercised,
    input_sources,
)
from graphkit.pipeline.reproducer import ReproducerWriter
from graphkit.pipeline.run_folder import check_run_folder
from graphkit.pipeline.spec import PipelineSpec, build_passes, spec_to_yaml
from graphkit.pipeline.stages import check_weights_flag, load_source, run_stages, type_sections
from graphkit.runtime.ort import ForwardLog, active_forward_log, recording_forwards
from graphkit.transform.group import flat_passes
from graphkit.transform.instruments import Honesty, Instrument, OpCounts, Timing, Verify
from graphkit.transform.manager import PassManager
from graphkit.transform.record import PassStatus
from graphkit.util.console import dumps_json, progress
from graphkit.util.errors import GraphkitError, PipelineSpecError
from graphkit.util.files import make_folder, write_text_atomic
from graphkit.util.typed_config import to_mapping

logger = logging.getLogger(__name__)


@dataclass
class ApplyResult:
    """What a pipeline run produced."""

    ok: bool
    run_dir: Path
    report: RunReport
    summary: str
    model_path: Path | None = None
    error: GraphkitError | None = None


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
    use_cache: bool = True,
    strict: bool = False,
) -> ApplyResult:
    """Run the pipeline; see the module docstring for what it writes.

    The run folder follows :mod:`graphkit.pipeline.run_folder`: a rerun of the same pipeline replaces
    its earlier files, any other non-empty folder needs ``overwrite``. Every full-model forward
    is listed in the report (``forwards``: purpose, model hash, case, batch, time). Passed
    checks are taken from and stored in the validation cache (:mod:`graphkit.check.validation_cache`)
    unless ``use_cache`` is false; the report lists what came from it (``cache``). With
    ``strict``, a pass rolled back (``on_failure: skip``) fails the run: no model is written.
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
            use_cache=use_cache,
            strict=strict,
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
    use_cache: bool,
    strict: bool,
) -> ApplyResult:
    stages: dict[str, float] = {}
    started = time.perf_counter()
    passes = build_passes(spec, origin, extra_pass_dirs)  # fail on bad specs before heavy work
    sections = type_sections(spec, origin)
    check_weights_flag(spec, origin, weights, input_path)
    if output_dir is not None and not str(output_dir).strip():
        raise PipelineSpecError("--output: must not be empty (give a folder)")
    run_dir = Path(output_dir) if output_dir is not None else spec.run_dir()
    pipeline_file = origin if Path(origin).is_file() else None
    pass_dirs = [*spec.pass_dirs, *(extra_pass_dirs or [])]
    inputs = (pipeline_file, input_path, spec.source.onnx, spec.golden.dir, *pass_dirs)
    folder = check_run_folder(run_dir, spec.name, spec.output.model, overwrite, tuple(p for p in inputs if p))
    clock = time.perf_counter()
    source = load_source(spec, origin, input_path, weights)
    source_hash = content_hash(source.model)
    stages["source"] = time.perf_counter() - clock

    clock = time.perf_counter()
    golden, golden_reused, defaults = make_golden(spec, source, source_hash, regenerate_golden)
    stages["golden"] = time.perf_counter() - clock

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cache = ValidationCache(enabled=use_cache, run=f"{run_dir} ({spec.name}, {stamp})")
    golden_key = golden_hash(golden.directory) if use_cache else ""

    # the run folder appears (and an earlier run's files go) only once the inputs proved usable
    folder.clear()
    make_folder(run_dir)
    write_text_atomic(run_dir / "pipeline.yaml", spec_to_yaml(spec))

    report = RunReport(
        graphkit_version=__version__,
        pipeline=spec.name,
        pipeline_file=origin,
        weights=source.weights,
        source=SourceInfo(
            source.kind,
            source.description,
            source_hash,
            len(source.model.graph.node),
            default_opset(source.model),
            source.details or None,
        ),
        golden=GoldenInfo(
            str(golden.directory),
            golden.manifest["producer"],
            [c.label for c in golden.cases],
            golden_reused,
            defaults.notes,
            golden.manifest.get("optimization"),
            golden_level_note(golden, spec.validate.runtime) or "",
            dims_exercised(golden.manifest["cases"]),
            unexercised_dims(golden.manifest),
            input_sources(golden.manifest["cases"]),
        ),
        validation_runtime=to_mapping(spec.validate.runtime),
        run_dir=str(run_dir),
    )
    if report.golden.note:
        logger.info("note: %s", report.golden.note)
    if source.reference is not None:
        clock = time.perf_counter()
        check = check_export_against_reference(spec, source, golden, source_hash, golden_key, cache)
        source.reference = None  # free the torch model: its outputs are recorded
        gc.collect()
        stages["source_validation"] = time.perf_counter() - clock
        report.source_validation = check.to_dict()
        if not check.passed:
            return _finish(report, cache, stages, started, None, source_error(check.first_failure()))

    clock = time.perf_counter()
    instruments = _instruments(spec, golden, run_dir, cache, pass_dirs)
    manager = PassManager(passes, instruments, on_failure=spec.on_failure)
    planned = len(flat_passes(passes))  # a fixed-point group may run its passes more than once
    with progress(total=planned, desc="passes", unit="pass") as bar:

        def on_pass_start(index, pass_) -> None:
            bar.total = max(bar.total, index + 1)
            bar.update(index - bar.n)
            bar.set_label(pass_.name)
            logger.info("[%d/%d] %s ...", index + 1, max(planned, index + 1), pass_.name)

        manager.on_pass_start = on_pass_start
        run = manager.run(source.model)
        bar.update(bar.total - bar.n)
    stages["passes"] = time.perf_counter() - clock
    report.passes = run.records
    for record in run.records:  # the summary groups them by reason; -v lists every site
        for entry in record.declined:
            logger.debug("%s declined %s: %s", record.name, entry.get("site"), entry.get("reason"))
    dropped = [r for r in run.records if r.status in (PassStatus.FAILED, PassStatus.ROLLED_BACK)]
    if spec.validate.localize if localize is None else localize:
        for record in dropped:  # the failed pass (on_failure: stop) or every rolled-back one (skip)
            localize_failure(record, golden, spec.golden.tolerances())
    if not run.ok:
        return _finish(report, cache, stages, started, None, run.error)

    clock = time.perf_counter()
    final_hash = checked_hash = content_hash(run.model)  # checked_hash: what the passes' checks knew it by
    if not spec.output.provenance:  # provenance never changes numerics: the cases passed before still stand
        strip_provenance(run.model)
        final_hash = content_hash(run.model)
    final_check, final_cache = check_final_model(
        run.model,
        final_hash,
        golden,
        golden_key,
        spec.golden.tolerances(),
        spec.validate.runtime,
        cache,
        checked_hash=checked_hash,
    )
    stages["final_validation"] = time.perf_counter() - clock
    report.final = FinalModel(
        final_hash,
        len(run.model.graph.node),
        default_opset(run.model),
        {**final_check.to_dict(), **({"cache": final_cache} if final_cache else {})},
        final_check.max_abs(),
    )
    if not final_check.passed:
        error = GraphkitError(f"final model failed validation: {final_check.first_failure()}")
        return _finish(report, cache, stages, started, None, error)
    report.figures = model_figures(source.model, run.model, golden.manifest.get("dims") or {})
    report.claim = claim_text(
        golden.manifest["cases"],
        spec.golden.tolerances(),
        golden.manifest["producer"],
        report.golden.inputs,
        report.golden.unexercised_dims,
    )
    if strict and dropped:
        names = ", ".join(r.name for r in dropped)
        error = GraphkitError(f"strict: pass(es) rolled back: {names}; no model written")
        return _finish(report, cache, stages, started, None, error)

    clock = time.perf_counter()
    model_path = save_model(run.model, run_dir / spec.output.model, external_data=spec.output.external_data)
    stages["save"] = time.perf_counter() - clock
    report.final.path = str(model_path)
    try:
        run_stages(
            sections,
            StageContext(model_path, run_dir, source, golden_dir=golden.directory),
            stages,
            report.stage_results,
        )
    except GraphkitError as exc:  # the report records the failed stage; no model beside a failed report
        for written in (model_path, model_path.with_name(model_path.name + ".data")):
            written.unlink(missing_ok=True)
        report.final.path = None
        _finish(report, cache, stages, started, None, exc)
        raise
    return _finish(report, cache, stages, started, model_path, None)


def model_figures(source: onnx.ModelProto, final: onnx.ModelProto, dims: dict) -> dict[str, dict]:
    """The ``graphkit inspect`` figures of the source and the final model, MACs at batch 1 and the golden dims."""
    at = {"batch": 1, **{name: size for name, size in dims.items() if isinstance(size, int)}}
    return {
        name: summarize(model, at, thorough=False).to_dict() for name, model in (("source", source), ("final", final))
    }


def _instruments(
    spec: PipelineSpec, golden: GoldenSet, run_dir: Path, cache: ValidationCache, pass_dirs: list[str]
) -> list[Instrument]:
    instruments: list[Instrument] = [Timing(), Honesty(), OpCounts()]
    diffs = PassDiffs()  # each pass's diff made once, for the region check and the diff writer
    if spec.validate.verify_each:
        instruments.append(Verify())
    if spec.validate.validate_each:
        each = spec.validate.each_batch_sizes or []
        batches = {c.dims.get("batch") for c in golden.cases}  # a batch with no case: named by the check
        labels = [c.label for c in golden.cases if c.dims.get("batch") in each] + [
            f"b{b}" for b in each if b not in batches
        ]
        labels = labels if each else None
        args = (golden, spec.golden.tolerances(), labels)
        threshold = spec.validate.shape_edit_region_mb
        if spec.validate.mode == "region":
            check = RegionCheck(*args, runtime=spec.validate.runtime, cache=cache, diffs=diffs)
        elif threshold is not None:  # shape edits on a model with large weights: their region
            check = ShapeEditCheck(
                *args, runtime=spec.validate.runtime, cache=cache, diffs=diffs, min_weight_bytes=threshold * 1e6
            )
        else:
            check = EndToEndCheck(*args, runtime=spec.validate.runtime, cache=cache)
        instruments.append(check)
        instruments.append(BatchStacking(golden, spec.golden.tolerances()))  # a batch made dynamic
    instruments += [PassDiffWriter(run_dir / "diffs", diffs), ReproducerWriter(run_dir, spec, golden, pass_dirs)]
    return instruments


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB."""
    try:  # this process image's own peak; ru_maxrss would include a parent's peak before exec
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _finish(
    report: RunReport,
    cache: ValidationCache,
    stages: dict[str, float],
    started: float,
    model_path: Path | None,
    error: GraphkitError | None,
) -> ApplyResult:
    """Complete the report (stages, memory, cache, forwards, status), write report.json and summary.txt."""
    from graphkit.pipeline.summary import render_summary

    stages["total"] = time.perf_counter() - started
    report.stages = {k: round(v, 3) for k, v in stages.items()}
    report.peak_rss_mb = round(peak_rss_mb(), 1)
    report.cache = cache.to_dict()
    forwards = active_forward_log()
    if forwards is not None:
        report.forwards = to_mapping(forwards.forwards)
        report.forwards_summary = forwards.summary_line()
    report.status = RunStatus.OK if error is None else RunStatus.FAILED
    report.error = str(error) if error else None
    run_dir = Path(report.run_dir)
    write_text_atomic(run_dir / "report.json", dumps_json(report.to_dict()))
    summary = render_summary(report)
    write_text_atomic(run_dir / "summary.txt", summary)
    return ApplyResult(error is None, run_dir, report, summary, model_path, error)
