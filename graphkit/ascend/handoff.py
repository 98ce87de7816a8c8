"""The whole ATC hand-off in one call: pre-check, commands (script + manifest), build if asked.

Used by ``graphkit apply`` for the pipeline's ``handoff.atc`` section::

    summary = run_handoff(AtcSpec(batch_sizes=[1, 4]), "out/model.onnx", "out/atc")

The summary is JSON-able: pre-check counts and findings, script and manifest paths, commands,
and per-OM build results (``None`` when ``spec.build`` is false). Written files:
``precheck.json``, ``atc_commands.sh``, ``atc_manifest.json`` and, after a build,
``build.json``, ``<output>.log`` and the OMs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from graphkit.ascend.build import build_plan
from graphkit.ascend.command_lines import _write_atomic as write_text
from graphkit.ascend.command_lines import plan_commands, write_plan
from graphkit.ascend.precheck import precheck
from graphkit.ascend.spec import AtcSpec
from graphkit.ir.model_io import load_model
from graphkit.util.errors import GraphkitError
from graphkit.util.files import make_folder


class HandoffError(GraphkitError):
    """The pre-check found errors or an ATC build failed, and the spec says to fail on that."""


def run_handoff(
    spec: AtcSpec,
    model_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    on_line: Callable[[str], None] | None = None,
) -> dict:
    """Pre-check ``model_path``, write the ATC script + manifest into ``out_dir``, build when asked.

    Raises GraphkitError for bad specs/models, ToolNotFoundError when ``spec.build`` and ATC is
    missing, and HandoffError on pre-check errors or failed builds when ``spec.fail_on_error``.
    ``on_line`` receives ATC's log lines as they come.
    """
    spec.validate("handoff.atc")
    out = Path(out_dir)
    make_folder(out)
    model = load_model(model_path, load_external_data=False)
    report = precheck(
        model,
        cann=spec.cann,
        soc_version=spec.soc_version,
        input_shape=spec.input_shape,
        batch_sizes=spec.batch_sizes,
        dynamic_batch_sizes=spec.dynamic_batch_sizes,
        name=str(model_path),
        precision_mode=spec.precision_mode,
        precision_mode_v2=spec.precision_mode_v2,
        fusion_switch_file=spec.fusion_switch_file,
    )
    plan = plan_commands(model, spec, model_path)  # every option is checked before anything is written
    out.mkdir(parents=True, exist_ok=True)
    precheck_path = write_text(out / "precheck.json", json.dumps(report.to_dict(), indent=2) + "\n")
    plan = write_plan(plan, out)
    summary = {
        "precheck": {
            "counts": report.counts,
            "path": str(precheck_path),
            "findings": report.to_dict()["findings"],
            "notes": report.notes,
        },
        "warnings": plan.warnings,
        "script": str(plan.script),
        "manifest": str(plan.manifest),
        "commands": [c.line() for c in plan.commands],
        "build": None,
    }
    if spec.fail_on_error and report.has_errors:
        first = next(f for f in report.findings if f.level == "error")
        raise HandoffError(
            f"{model_path}: ATC pre-check found {report.counts['error']} error(s), first: [{first.rule}] "
            f"{first.node}: {first.message} (details in {precheck_path})"
        )
    if spec.build:
        results = build_plan(plan, on_line=on_line)
        build = [r.to_dict() for r in results]
        write_text(out / "build.json", json.dumps(build, indent=2) + "\n")
        summary["build"] = build
        failed = [r for r in results if not r.success]
        if spec.fail_on_error and failed:
            raise HandoffError(f"ATC failed for {failed[0].output}: {failed[0].reason} (log: {failed[0].log})")
    return summary
