"""The ``precision:`` pipeline stage: the fp16 preview of the written model, and its keep-list for ATC.

Declared as the entry point ``precision`` of the group ``graphkit.stages``; it runs before
``handoff.atc`` (order 5 < 10). On the pipeline's golden set it emulates the section's
``precision_mode`` (:mod:`graphkit.ascend.precision_preview`), writes ``<run>/precision/``
(``precision.json``, ``keep_dtype.cfg`` when a keep-list is needed, ``modify_mixlist.json`` for the
mixed modes) and reports the verdict under ``precision``. :func:`atc_spec_with_precision` is how
``handoff.atc`` picks the files up: the generated ATC command lines then carry
``--keep_dtype=<file>`` (and ``--modify_mixlist=<file>``, and the emulated ``--precision_mode``
when the atc section names none).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from graphkit.pipeline.plugins import Stage, StageContext, plugin_logger
from graphkit.util.errors import GraphkitError, SpecError
from graphkit.util.typed_config import from_mapping

REPORT_KEY = "precision"


class PrecisionBreakError(GraphkitError):
    """fp16 breaks the model and no keep-list fixes it, and the section says to fail on that."""

    exit_code = 1


@dataclass
class PrecisionStageSpec:
    """The ``precision:`` section.

    - ``precision_mode``: the ATC ``--precision_mode`` to emulate (ATC's default force_fp16).
    - ``keep_dtype`` / ``modify_mixlist``: ATC files already decided on (kept fp32 in the emulation,
      carried into the answer).
    - ``atol`` / ``rtol``: the fp16 tolerance of every output (the golden set's argmax checks apply too).
    - ``search``: search a keep-list when an output fails; ``cases``: golden cases used (None: all).
    - ``fail_on_break``: stop the run (exit 1) when fp16 breaks the model and no keep-list fixes it.
    """

    precision_mode: str = "force_fp16"
    keep_dtype: str | None = None
    modify_mixlist: str | None = None
    atol: float = 1e-2
    rtol: float = 1e-2
    search: bool = True
    cases: int | None = None
    fail_on_break: bool = False


def parse_precision(raw, where: str) -> PrecisionStageSpec:
    """The typed section; SpecError names the key (mode, tolerances, files parsed back)."""
    from graphkit.ascend.precision_modes import check_mode, parse_mixlist
    from graphkit.ascend.spec import _existing_file, read_keep_dtype_file
    from graphkit.util.tolerance import check_tolerance_value

    spec = from_mapping(PrecisionStageSpec, raw if isinstance(raw, dict) else (raw or {}), where)
    try:
        check_mode(spec.precision_mode)
    except GraphkitError as exc:
        raise SpecError(f"{where}.precision_mode: {exc}".replace("--precision-mode: ", "")) from exc
    for key in ("atol", "rtol"):
        try:
            setattr(spec, key, check_tolerance_value(f"{where}.{key}", getattr(spec, key)))
        except GraphkitError as exc:
            raise SpecError(str(exc)) from exc
    if spec.cases is not None and spec.cases < 1:
        raise SpecError(f"{where}.cases: must be at least 1, got {spec.cases}")
    if spec.keep_dtype is not None:
        spec.keep_dtype = _existing_file(spec.keep_dtype, f"{where}.keep_dtype")
        read_keep_dtype_file(spec.keep_dtype, f"{where}.keep_dtype")
    if spec.modify_mixlist is not None:
        spec.modify_mixlist = _existing_file(spec.modify_mixlist, f"{where}.modify_mixlist")
        with open(spec.modify_mixlist, encoding="utf-8", errors="replace") as handle:
            try:
                parse_mixlist(handle.read(), spec.modify_mixlist)
            except GraphkitError as exc:
                raise SpecError(f"{where}.modify_mixlist: {exc}") from exc
    return spec


def run_precision(spec: PrecisionStageSpec, context: StageContext) -> dict:
    """The preview of the written model on the golden set; files under ``<run>/precision``."""
    from graphkit.ascend.precision_modes import parse_mixlist, read_keep_dtype
    from graphkit.ascend.precision_preview import atc_precision_preview
    from graphkit.check.golden import load_golden
    from graphkit.check.precision import PrecisionCase
    from graphkit.check.precision_analysis import fp16_tolerances
    from graphkit.ir.model_io import load_model

    if context.golden_dir is None:
        raise SpecError("precision: needs the pipeline's golden set (none was made)")
    golden = load_golden(context.golden_dir)
    chosen = golden.cases[: spec.cases] if spec.cases else golden.cases
    cases = [PrecisionCase(c.label, c.inputs, c.outputs) for c in chosen]
    keep = read_keep_dtype(spec.keep_dtype) if spec.keep_dtype else None
    black = []
    if spec.modify_mixlist:
        with open(spec.modify_mixlist, encoding="utf-8") as handle:
            black = parse_mixlist(handle.read(), spec.modify_mixlist)
    result = atc_precision_preview(
        load_model(context.model_path),
        cases,
        fp16_tolerances(golden.tolerances, spec.atol, spec.rtol),
        spec.precision_mode,
        keep=keep,
        black_types=black,
        out_dir=context.run_dir / "precision",
        search=spec.search,
        where="precision.keep_dtype",
    )
    plugin_logger("precision").info("precision: %s", result.preview.verdict())
    report = result.to_dict()
    report["search"] = report["search"] and {k: v for k, v in report["search"].items() if k != "steps"}
    if spec.fail_on_break and not result.preview.fixed:
        raise PrecisionBreakError(f"precision: {result.preview.verdict()} (details in {result.files.get('report')})")
    return report


def atc_spec_with_precision(spec, earlier) -> tuple[object, list[str]]:
    """``spec`` (an AtcSpec) with the precision stage's files, and notes on what was taken or left.

    The keep-list goes into ``keep_dtype`` unless the atc section names its own file; the mixlist
    into ``modify_mixlist`` (or ``--modify_mixlist`` in ``extra_args`` where the spec has no such
    field); the emulated mode into ``precision_mode`` when the section names no mode.
    """
    entry = (earlier or {}).get(REPORT_KEY)
    if not entry:
        return spec, []
    files, notes, changes = entry.get("files", {}), [], {}
    if files.get("keep_dtype"):
        if spec.keep_dtype is None:
            changes["keep_dtype"] = files["keep_dtype"]
            notes.append(f"keep_dtype from the precision stage: {files['keep_dtype']}")
        else:
            notes.append(
                f"keep_dtype: the atc section's {spec.keep_dtype} kept; the precision stage wrote {files['keep_dtype']}"
            )
    if files.get("modify_mixlist"):
        if hasattr(spec, "modify_mixlist"):
            if spec.modify_mixlist is None:
                changes["modify_mixlist"] = files["modify_mixlist"]
        elif not any(a.startswith("--modify_mixlist") for a in spec.extra_args):
            changes["extra_args"] = [*spec.extra_args, f"--modify_mixlist={files['modify_mixlist']}"]
        notes.append(f"modify_mixlist from the precision stage: {files['modify_mixlist']}")
    mode = entry.get("precision_mode")
    if mode and not spec.precision_mode and not spec.precision_mode_v2 and mode != "force_fp16":
        changes["precision_mode"] = mode
        notes.append(f"precision_mode {mode}, as emulated")
    return (dataclasses.replace(spec, **changes) if changes else spec), notes


PRECISION_STAGE = Stage(
    parse_precision, run_precision, report_key=REPORT_KEY, order=5, message="emulating fp16 (precision preview) ..."
)
