"""graphkit's public Python API: everything a notebook or a pass author imports (docs/api.md).

Running passes: :func:`apply` (passes or a preset on a model, each pass validated against golden
outputs, all in memory: no run folder, no cache, no file written), :func:`record_golden`,
:func:`validate`, :func:`diff`, :func:`localize`, :func:`load` / :func:`save`.

Writing passes: :class:`Pass`, :class:`PassResult`, :class:`Declined`, :func:`option`,
:func:`register`, :class:`Rule`, :class:`Constant`, :func:`rule_pass`, :func:`apply_rules`,
:class:`PassGroup`, :class:`Tolerance`, the graph helpers of :mod:`graphkit.ir.graph`, and
:mod:`testing` (the pass-author test harness, imported on first use).

The names listed in ``__all__`` are the public API; every other module and name of graphkit is
private by convention and may change between versions. Heavy dependencies (onnxruntime, the diff,
the golden sets) are imported only when a function that needs them is called.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import onnx

from graphkit import __version__
from graphkit.ir.external_data import tensor_array
from graphkit.ir.graph import (
    ValueTypes,
    add_initializer,
    bypass_node,
    constant_value,
    fresh_name,
    is_default_domain,
    node_site,
    producer,
    remove_dead,
    remove_nodes,
    replace_all_uses,
    to_graph,
    to_model,
)
from graphkit.ir.model_check import invalid_reason
from graphkit.ir.model_io import clone, content_hash, default_opset, load_user_model, save_model
from graphkit.transform.group import PassGroup
from graphkit.transform.pass_base import Declined, NoOptions, Pass, PassResult, option
from graphkit.transform.record import PassRecord, PassStatus
from graphkit.transform.registry import register
from graphkit.transform.rules import Constant, Rule, RuleContext, apply_rules, rule_pass
from graphkit.util.errors import GraphkitError, InputError, ModelLoadError
from graphkit.util.tolerance import Tolerance, Tolerances

if TYPE_CHECKING:
    from graphkit.check.golden import GoldenSet
    from graphkit.check.golden_validation import GoldenValidation
    from graphkit.check.localize_result import LocalizeResult
    from graphkit.diff.records import ModelDiff
    from graphkit.pipeline.report import RunReport

__all__ = [
    # running passes
    "apply",
    "Result",
    "record_golden",
    "validate",
    "diff",
    "localize",
    "load",
    "save",
    # writing passes
    "Pass",
    "PassResult",
    "Declined",
    "NoOptions",
    "option",
    "register",
    "Rule",
    "Constant",
    "RuleContext",
    "rule_pass",
    "apply_rules",
    "PassGroup",
    "PassRecord",
    "PassStatus",
    "Tolerance",
    "Tolerances",
    # graph helpers (graphkit.ir.graph)
    "to_graph",
    "to_model",
    "ValueTypes",
    "replace_all_uses",
    "bypass_node",
    "remove_nodes",
    "remove_dead",
    "constant_value",
    "producer",
    "node_site",
    "is_default_domain",
    "fresh_name",
    "add_initializer",
    "tensor_array",
    # the pass-author test harness (graphkit.testing)
    "testing",  # noqa: F822 - a lazy attribute (module __getattr__)
]

ModelLike = onnx.ModelProto | str | os.PathLike


def __getattr__(name: str) -> Any:
    if name == "testing":  # imports onnxruntime: only when asked for
        return importlib.import_module("graphkit.testing")
    raise AttributeError(f"module 'graphkit.api' has no attribute {name!r}")


def load(path: str | os.PathLike) -> onnx.ModelProto:
    """The model in ``path`` (external data loaded), checked for validity (ModelLoadError names the file)."""
    return load_user_model(path)


def save(model: onnx.ModelProto, path: str | os.PathLike, external_data: bool | None = None) -> Path:
    """Write ``model`` to ``path`` atomically (weights beside it only when over 2 GB, unless
    ``external_data`` says); returns the path."""
    return save_model(model, path, external_data=external_data)


@dataclass
class Result:
    """What :func:`apply` returns: the model (the last one every check accepted), the typed report
    (``report.passes``: one :class:`PassRecord` per pass run, with status, counts, declined sites,
    node counts and validation figures; ``report.final``: the final check), the golden set used
    (pass it as ``golden=`` to the next call to skip recording it again) and the error, if any."""

    model: onnx.ModelProto
    report: RunReport
    golden: GoldenSet | None = None
    error: GraphkitError | None = None

    @property
    def ok(self) -> bool:
        """True when every pass ran (or was rolled back under ``on_failure="skip"``) and the final check passed."""
        return self.report.ok

    @property
    def records(self) -> list[PassRecord]:
        """The pass records (``report.passes``), in the order the passes ran."""
        return list(self.report.passes or [])

    def summary(self) -> str:
        """The one-screen summary ``graphkit apply`` prints."""
        from graphkit.pipeline.summary import render_summary

        return render_summary(self.report)


def apply(
    model: ModelLike,
    passes: Sequence[str | dict | Pass | PassGroup] | None = None,
    *,
    preset: str | None = None,
    golden: GoldenSet | str | os.PathLike | None = None,
    validate: bool = True,
    tolerance: Tolerance | Tolerances | None = None,
    batch_sizes: list[int] | None = None,
    dims: Mapping[str, int] | None = None,
    input_ranges: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    on_failure: Literal["stop", "skip"] = "stop",
    optimization: str = "all",
    provenance: bool = True,
    pass_dirs: Sequence[str | os.PathLike] = (),
) -> Result:
    """Apply ``passes`` (or the passes of ``preset``; neither: the generic preset) to ``model``,
    in memory, the way ``graphkit apply`` does: each pass checked (honesty, op counts, checker and
    shape inference) and, with ``validate``, compared with golden outputs and rolled back when it
    fails; then the final model on every golden case.

    ``passes`` items are pipeline items (``"cse"``, ``{"fold-constants": {...}}``,
    ``{"group": {...}}``) or :class:`Pass`/:class:`PassGroup` instances. ``golden``: None records
    the golden outputs in memory with onnxruntime on ``model`` (batch sizes, dims, integer ranges
    and seed as for ``graphkit apply``; the set comes back as ``Result.golden``); a
    :class:`GoldenSet` (such as an earlier ``Result.golden``) is reused as it is; a path loads the
    set in that folder (read only; a set made for another model is a GoldenError). Nothing is
    written, and no cache is read or written. Bad arguments raise a GraphkitError (a SpecError
    for a bad pass list); a pass or a check that fails does not raise: ``Result.ok`` is False and
    ``Result.error`` says why.
    """
    from graphkit.runtime.ort import ForwardLog, recording_forwards

    if passes is not None and preset is not None:
        raise InputError("apply: give passes or a preset, not both")
    source = _model(model, "model")
    with recording_forwards(ForwardLog()):
        items = _items(passes, preset, pass_dirs)
        golden_set, reused, notes = (
            (None, False, [])
            if not validate
            else _golden(source, golden, _tolerances(tolerance), batch_sizes, dims, input_ranges, seed, optimization)
        )
        return _apply(
            source,
            _description(model),
            items,
            golden_set,
            reused,
            notes,
            tolerance,
            on_failure,
            optimization,
            provenance,
        )


def _apply(
    source, description, items, golden_set, reused, notes, tolerance, on_failure, optimization, provenance
) -> Result:
    """The run itself (see :func:`apply`), inside a forward log."""
    from graphkit.check.batch_proof import BatchStacking
    from graphkit.check.golden import IN_MEMORY
    from graphkit.check.golden_validation import level_note
    from graphkit.check.instruments import EndToEndCheck
    from graphkit.check.validation_cache import ValidationCache
    from graphkit.ir.provenance import strip_provenance
    from graphkit.pipeline.checks import check_final_model
    from graphkit.pipeline.report import FinalModel, GoldenInfo, RunReport, RunStatus, SourceInfo
    from graphkit.pipeline.run import peak_rss_mb
    from graphkit.runtime.ort import ValidationRuntime, active_forward_log
    from graphkit.transform.instruments import Honesty, OpCounts, Timing, Verify
    from graphkit.transform.manager import PassManager
    from graphkit.util.typed_config import to_mapping

    started = time.perf_counter()
    runtime = ValidationRuntime(optimization=optimization)
    tolerances = _tolerances(tolerance)
    source_hash = content_hash(source)
    report = RunReport(
        graphkit_version=__version__,
        pipeline="api",
        pipeline_file="<python>",
        weights="(none: an ONNX model)",
        source=SourceInfo("onnx", description, source_hash, len(source.graph.node), default_opset(source)),
        golden=GoldenInfo(
            str(golden_set.directory) if golden_set else "",
            golden_set.manifest["producer"] if golden_set else "not validated (validate=False)",
            [c.label for c in golden_set.cases] if golden_set else [],
            reused,
            notes,
            golden_set.manifest.get("optimization") if golden_set else None,
            level_note(golden_set, runtime) if golden_set else "",
        ),
        validation_runtime=to_mapping(runtime),
        run_dir="",
    )
    cache = ValidationCache(Path(IN_MEMORY), enabled=False)  # neither reads nor writes
    instruments = [Timing(), Honesty(), OpCounts(), Verify()]
    check = None
    if golden_set is not None:
        check = EndToEndCheck(golden_set, tolerances, runtime=runtime, cache=cache)
        instruments += [check, BatchStacking(golden_set, tolerances)]
    clock = time.perf_counter()
    run = PassManager(items, instruments, on_failure=on_failure).run(source)
    report.stages["passes"] = round(time.perf_counter() - clock, 3)
    report.passes = run.records
    model, error = run.model, run.error
    if error is None:
        checked_hash = content_hash(model)  # what the passes' checks knew the model by
        if not provenance:
            model = clone(model) if model is source else model
            strip_provenance(model)
        final_hash = content_hash(model)
        if golden_set is not None:
            clock = time.perf_counter()
            final, _ = check_final_model(
                model, final_hash, golden_set, "", tolerances, runtime, cache, checked_hash=checked_hash
            )
            report.stages["final_validation"] = round(time.perf_counter() - clock, 3)
            report.final = FinalModel(
                final_hash, len(model.graph.node), default_opset(model), final.to_dict(), final.max_abs()
            )
            if not final.passed:
                error = GraphkitError(f"final model failed validation: {final.first_failure()}")
        else:
            report.final = FinalModel(final_hash, len(model.graph.node), default_opset(model), {}, {})
    report.stages["total"] = round(time.perf_counter() - started, 3)
    report.peak_rss_mb = round(peak_rss_mb(), 1)
    forwards = active_forward_log()
    if forwards is not None:
        report.forwards, report.forwards_summary = to_mapping(forwards.forwards), forwards.summary_line()
    report.status = RunStatus.OK if error is None else RunStatus.FAILED
    report.error = str(error) if error else None
    return Result(model, report, golden_set, error)


def record_golden(
    model: ModelLike,
    *,
    batch_sizes: list[int] | None = None,
    dims: Mapping[str, int] | None = None,
    input_ranges: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    tolerance: Tolerance | Tolerances | None = None,
    optimization: str = "all",
) -> GoldenSet:
    """Golden outputs of ``model`` recorded with onnxruntime, in memory (nothing written); the
    defaults (batch sizes, sequence dims, integer input ranges) are those of ``graphkit apply``."""
    source = _model(model, "model")
    golden, _, _ = _golden(source, None, _tolerances(tolerance), batch_sizes, dims, input_ranges, seed, optimization)
    return golden


def validate(
    model: ModelLike, golden: GoldenSet | str | os.PathLike, tolerance: Tolerance | Tolerances | None = None
) -> GoldenValidation:
    """``model`` on every case of ``golden`` (a set or its folder): ``.passed``, ``.max_abs()``,
    ``.first_failure()`` and per-case, per-output figures; tolerances default to the set's own."""
    from graphkit.check.golden import GoldenSet, load_golden
    from graphkit.check.golden_validation import validate_against_golden

    golden = golden if isinstance(golden, GoldenSet) else load_golden(golden)
    return validate_against_golden(
        _model(model, "model"), golden, None if tolerance is None else _tolerances(tolerance)
    )


def diff(a: ModelLike, b: ModelLike) -> ModelDiff:
    """What changed from ``a`` to ``b``: nodes, initializers, inputs/outputs, opsets, op counts
    (``.to_dict()`` is ``graphkit diff --json``)."""
    from graphkit.diff.model_diff import diff_models

    return diff_models(_model(a, "a"), _model(b, "b"))


def localize(
    a: ModelLike,
    b: ModelLike,
    feeds: Mapping[str, Any] | None = None,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
    dims: Mapping[str, int] | None = None,
) -> LocalizeResult:
    """The first tensor, in ``b``'s order, whose values differ from ``a``'s beyond atol/rtol, on
    ``feeds`` (default: seeded inputs that fit both models, symbolic dims from ``dims``)."""
    from graphkit.check.localize import localize as run_localize
    from graphkit.check.localize_feeds import feeds_for

    model_a, model_b = _model(a, "a"), _model(b, "b")
    feeds = dict(feeds) if feeds is not None else feeds_for(model_a, model_b, seed, dims)
    return run_localize(model_a, model_b, feeds, atol=atol, rtol=rtol, labels=(_description(a), _description(b)))


# --- helpers ----------------------------------------------------------------------------------------


def _model(model: ModelLike, what: str) -> onnx.ModelProto:
    """A checked model from a ModelProto or a path; InputError/ModelLoadError for anything else."""
    if isinstance(model, (str, os.PathLike)):
        return load_user_model(model)
    if not isinstance(model, onnx.ModelProto):
        raise InputError(f"{what}: expected an onnx.ModelProto or a path, got {type(model).__name__}")
    problem = invalid_reason(model)
    if problem:
        raise ModelLoadError(f"{what}: invalid model: {problem}")
    return model


def _description(model: ModelLike) -> str:
    return str(model) if isinstance(model, (str, os.PathLike)) else f"in-memory model '{model.graph.name}'"


def _items(passes, preset: str | None, pass_dirs) -> list[Pass | PassGroup]:
    """Pass and group instances from ``passes`` (pipeline items or instances) or a preset."""
    from graphkit.pipeline.spec import build_pass_items
    from graphkit.transform.presets import DEFAULT_PRESET, preset_passes
    from graphkit.transform.registry import load_pass_dir

    for directory in pass_dirs:
        load_pass_dir(directory)
    if passes is None:
        return build_pass_items(preset_passes(preset or DEFAULT_PRESET), f"preset {preset or DEFAULT_PRESET}")
    if isinstance(passes, (str, Pass, PassGroup)) or not isinstance(passes, Sequence):
        raise InputError(f"apply: passes must be a list, got {type(passes).__name__}")
    items: list[Pass | PassGroup] = []
    for index, item in enumerate(passes):
        if isinstance(item, (Pass, PassGroup)):
            items.append(item)
        else:
            items += build_pass_items([item], f"passes[{index}]")
    return items


def _tolerances(tolerance: Tolerance | Tolerances | None) -> Tolerances:
    if tolerance is None:
        return Tolerances()
    if isinstance(tolerance, Tolerance):
        return Tolerances(default=tolerance)
    if isinstance(tolerance, Tolerances):
        return tolerance
    raise InputError(f"tolerance: expected a Tolerance or Tolerances, got {type(tolerance).__name__}")


def _golden(source, golden, tolerances, batch_sizes, dims, input_ranges, seed, optimization) -> tuple[Any, bool, list]:
    """The golden set to validate against: (set, reused, notes)."""
    from graphkit.check.golden import GoldenSet, load_golden, make_or_load_golden
    from graphkit.check.golden_defaults import golden_defaults
    from graphkit.runtime.ort import ValidationRuntime

    if isinstance(golden, GoldenSet):
        return golden, True, []
    if golden is not None:
        loaded = load_golden(golden)
        if loaded.manifest.get("model_hash") != content_hash(source):
            from graphkit.util.errors import GoldenError

            raise GoldenError(f"{golden}: the golden set was made for another model (its model_hash differs)")
        return loaded, True, []
    defaults = golden_defaults(source, batch_sizes, dims, input_ranges)
    made, _ = make_or_load_golden(
        source,
        None,  # in memory: nothing read or written
        batch_sizes=defaults.batch_sizes,
        seed=seed,
        dims=defaults.dims,
        tolerances=tolerances,
        input_ranges=defaults.input_ranges,
        runtime=ValidationRuntime(optimization=optimization),
    )
    return made, False, list(defaults.notes)
