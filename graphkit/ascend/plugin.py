"""The ``handoff.atc`` pipeline stage: Ascend's plug-in to :mod:`graphkit.pipeline.plugins`.

Declared as the entry point ``"handoff.atc"`` of the group ``graphkit.stages`` in
``pyproject.toml``. The section is typed (and every option checked) before any pass runs;
after the model is written, the hand-off (pre-check, command lines, manifest, optional build)
goes to ``<run>/atc`` and its summary to ``report.json`` under ``handoff``.
"""

from __future__ import annotations

from graphkit.pipeline.plugins import Stage, StageContext
from graphkit.util.typed_config import from_mapping


def parse_atc(raw, where: str):
    """The typed ``handoff.atc`` section (SpecError names the key)."""
    from graphkit.ascend.spec import AtcSpec

    spec = from_mapping(AtcSpec, raw or {}, where)
    spec.validate(where)  # every option checked before any pass runs
    return spec


def run_atc(spec, context: StageContext) -> dict:
    """Write the ATC hand-off for the run's model."""
    from graphkit.ascend.handoff import run_handoff
    from graphkit.ascend.precision_stage import atc_spec_with_precision

    spec, notes = atc_spec_with_precision(spec, context.earlier)  # the precision stage's keep-list, if any
    summary = run_handoff(spec, context.model_path, context.run_dir / "atc")
    if notes:
        summary["precision"] = notes
    return summary


ATC_STAGE = Stage(parse_atc, run_atc, report_key="handoff", order=10, message="writing the ATC hand-off ...")
