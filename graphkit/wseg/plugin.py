"""wseg's plug-ins to :mod:`graphkit.pipeline.plugins`: the ``source.export`` kind and the
``eval`` stage, declared as entry points in ``pyproject.toml`` (groups ``graphkit.sources``
and ``graphkit.stages``). torch and the eval modules are imported only when a pipeline uses them.
"""

from __future__ import annotations

import dataclasses
import logging

from graphkit.pipeline.plugins import Source, SourceKind, Stage, StageContext
from graphkit.util.typed_config import from_mapping

logger = logging.getLogger(__name__)


def parse_export(options: dict | None, where: str, weights: str | None):
    """The typed ``source.export`` section (``weights``, from ``--weights``, overrides its weights)."""
    from graphkit.wseg.export import ExportSpec

    options = dict(options or {})
    if weights:
        options["weights"] = weights
    return from_mapping(ExportSpec, options, where)


def load_export(export_spec) -> Source:
    """Build and export the model; its torch forward is the reference."""
    from graphkit.wseg.export import export_from_spec

    logger.info(f"exporting {export_spec.model} ({export_spec.exporter} exporter, opset {export_spec.opset}) ...")
    model, reference, weights_description = export_from_spec(export_spec)
    return Source(model, "export", f"export of {export_spec.model}", weights_description, reference, vars(export_spec))


def parse_eval(raw, where: str):
    """The typed ``eval`` section."""
    from graphkit.wseg.eval.spec import eval_spec_from_mapping

    return eval_spec_from_mapping(raw, where)


def run_eval_stage(eval_spec, context: StageContext) -> dict:
    """VOC accuracy of the written model; the weights description defaults to the source's."""
    from graphkit.wseg.eval.runner import run_eval

    if not eval_spec.weights_description:
        eval_spec = dataclasses.replace(eval_spec, weights_description=context.source.weights)
    return run_eval(eval_spec, context.model_path, context.run_dir / "eval")


EXPORT_SOURCE = SourceKind(parse_export, load_export, takes_weights=True)
EVAL_STAGE = Stage(parse_eval, run_eval_stage, report_key="eval", order=20, message="evaluating accuracy on VOC ...")
