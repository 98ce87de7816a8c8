"""The one-screen human summary of a pipeline run, rendered from its typed report."""

from __future__ import annotations

from graphkit.pipeline.report import PassRecord, PassStatus, RunReport
from graphkit.util.console import format_table

_DROPPED = (PassStatus.FAILED, PassStatus.ROLLED_BACK)  # the model stays as before the pass


def _errors(max_abs: dict) -> str:
    if len(max_abs) > 3:  # region checks compare many inner tensors: show the worst
        name, value = max(max_abs.items(), key=lambda item: item[1])
        return f"{value:.2g} (worst of {len(max_abs)} region tensors: {name})"
    return ", ".join(f"{name} {value:.2g}" for name, value in max_abs.items()) or "-"


def _changes(record: PassRecord) -> str:
    if record.status in _DROPPED:
        return record.error
    if record.status == PassStatus.UNCHANGED and record.declined:
        first = record.declined[0]
        more = f" (+{len(record.declined) - 1} more)" if len(record.declined) > 1 else ""
        return f"declined {first.get('site')}: {first.get('reason')}{more}"
    if record.diff_summary:
        return record.diff_summary
    parts = [f"{after - before:+d} {op}" for op, (before, after) in record.op_delta.items()]
    counts = ", ".join(f"{k}={v}" for k, v in record.counts.items() if v)
    return "; ".join(p for p in (", ".join(parts), counts) if p) or "-"


def _clip(text: str, width: int = 72) -> str:
    """Shortened for the table only (the report keeps the whole text), at a word, with an ellipsis."""
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    if " " in cut[width // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "…"


def render_summary(report: RunReport) -> str:
    """Passes applied, nodes before and after, max error per output per pass, stage times, files."""
    status = "OK" if report.ok else "FAILED"
    source = report.source
    lines = [
        f"graphkit apply: {report.pipeline} - {status}",
        f"weights: {report.weights}",
        f"source:  {source.description} ({source.nodes} nodes, opset {source.opset}, hash {source.hash[:12]})",
    ]
    golden = report.golden
    reused = "reused" if golden.reused else "recorded"
    lines.append(f"golden:  {golden.dir} ({reused}; cases {', '.join(golden.cases)})")
    lines += [f"note:    {note}" for note in golden.notes]
    if report.source_validation is not None:
        worst = {}
        for case in report.source_validation["cases"]:
            for out in case.get("outputs") or []:
                worst[out["name"]] = max(worst.get(out["name"], 0.0), float(out["max_abs"]))
        lines.append(f"export vs reference: max abs {_errors(worst)}")
    records = report.passes or []
    rows = []
    for record in records:
        checks = sum(v for k, v in record.times.items() if k != "pass")
        if not record.nodes_before:
            nodes = "-"
        elif record.status in _DROPPED:
            nodes = f"{record.nodes_before} kept"
        else:
            nodes = f"{record.nodes_before}->{record.nodes_after}"
        rows.append(
            [
                record.index + 1,
                record.name,
                record.status.value,
                nodes,
                f"{record.times.get('pass', 0):.2f}s",
                f"{checks:.2f}s",
                _errors(record.max_abs),
                _clip(_changes(record)),
            ]
        )
    stacking = [
        f"note:    pass '{record.name}': {note}"
        for record in records
        for note in record.notes
        if note.startswith("batch stacking")
    ]
    if rows:
        lines += ["", format_table(["#", "pass", "status", "nodes", "time", "checks", "max abs err", "changes"], rows)]
    lines += stacking
    final = report.final
    if final:
        cases = [c["label"] for c in final.validation["cases"] if not c.get("skipped")]
        lines += [
            "",
            f"final:   {final.nodes} nodes, opset {final.opset}; validated on {', '.join(cases)}: "
            f"max abs {_errors(final.max_abs)}",
        ]
    handoff = report.stage_results.get("handoff")
    if handoff and "error" not in handoff:  # a failed stage is the run's error line
        counts = handoff.get("precheck", {}).get("counts", {})
        built = handoff.get("build")
        lines.append(
            f"ATC:     precheck {counts.get('error', 0)} errors, {counts.get('warning', 0)} warnings, "
            f"{counts.get('perf', 0)} perf findings; {len(handoff.get('commands', []))} commands in "
            f"{handoff.get('script')}" + (f"; built {len(built)} OM(s)" if built else "; not built (atc not run)")
        )
    evaluation = report.stage_results.get("eval")
    if evaluation and "error" not in evaluation:
        lines.append(
            f"eval:    mIoU (21 classes) {evaluation.get('miou_21_with_background')}, with CRF "
            f"{evaluation.get('miou_21_with_background_crf')}"
            + (f" - {evaluation['note']}" if evaluation.get("note") else "")
        )
    stages = report.stages
    lines.append(
        "stages:  "
        + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items() if k != "total")
        + f"; total {stages.get('total', 0):.1f}s; peak RSS {report.peak_rss_mb / 1024:.2f} GiB"
    )
    if report.forwards_summary:
        lines.append(f"{report.forwards_summary} at optimization {report.validation_runtime.get('optimization', '?')}")
    cache = report.cache
    if cache.get("hits"):
        runs = sorted({str(hit.get("run")) for hit in cache["hits"]})
        lines.append(f"cache:   {len(cache['hits'])} check(s) passed in an earlier run: {'; '.join(runs)}")
    elif cache and not cache.get("enabled", True):
        lines.append("cache:   off (--no-cache): every check ran")
    if golden.note:
        lines.append(f"note:    {golden.note}")
    files = [final.path] if final and final.path else []
    files.append(f"{report.run_dir}/report.json")
    lines.append(f"files:   {', '.join(files)}")
    if report.error:
        lines.append(f"error:   {report.error}")
    return "\n".join(lines)
