"""The one-screen human summary of a pipeline run, rendered from its typed report."""

from __future__ import annotations

import re
import textwrap
from collections import Counter

from graphkit.ir.model_summary import human_bytes, human_count
from graphkit.pipeline.report import PassRecord, PassStatus, RunReport
from graphkit.util.console import format_table

_DROPPED = (PassStatus.FAILED, PassStatus.ROLLED_BACK)  # the model stays as before the pass


def _errors(max_abs: dict) -> str:
    if len(max_abs) > 3:  # region checks compare many inner tensors: show the worst
        name, value = max(max_abs.items(), key=lambda item: item[1])
        return f"{value:.2g} (worst of {len(max_abs)} region tensors: {name})"
    return ", ".join(f"{name} {value:.2g}" for name, value in max_abs.items()) or "-"


def _pass_errors(record: PassRecord) -> str:
    if (record.validation or {}).get("mode") == "identical":  # no model ran: equal by construction
        return "0 (identical by construction)"
    return _errors(record.max_abs)


WIDTH = 100  # the summary fits this many columns; report.json keeps every text whole


def _changes(record: PassRecord) -> str:
    if record.status in _DROPPED:
        return record.error
    if record.diff_summary:
        return record.diff_summary
    parts = [f"{after - before:+d} {op}" for op, (before, after) in record.op_delta.items()]
    counts = ", ".join(f"{k}={v}" for k, v in record.counts.items() if v)
    return "; ".join(p for p in (", ".join(parts), counts) if p)


def declines_line(declined: list[dict]) -> str:
    """``declined 7 sites: 5 "target element 0 is symbolic", 2 "..."`` (most frequent reason first)."""
    reasons = Counter(re.sub(r"'[^']*'", "'…'", str(entry.get("reason"))) for entry in declined)  # names apart
    shown = ", ".join(f'{count} "{reason}"' for reason, count in reasons.most_common())
    sites = "site" if len(declined) == 1 else "sites"
    return f"declined {len(declined)} {sites}: {shown}"


def _clip(text: str, width: int = WIDTH) -> str:
    """Shortened for the terminal only (the report keeps the whole text), at a word, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    if " " in cut[width // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "…"


def _pass_table(records: list[PassRecord]) -> list[str]:
    """One row per pass, then indented lines for what it changed and where it declined (each fits WIDTH)."""
    rows, details = [], []
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
                _clip(
                    record.name if record.group is None else f"{record.name} [g{record.group} i{record.iteration}]", 30
                ),
                record.status.value,
                nodes,
                f"{record.times.get('pass', 0):.2f}+{checks:.2f}s",
                _clip(_pass_errors(record), 34),
            ]
        )
        lines = [text for text in (_changes(record),) if text]
        if record.declined:
            lines.append(declines_line(record.declined))
        details.append(["    " + _clip(line, WIDTH - 4) for line in lines])
    table = format_table(["#", "pass", "status", "nodes", "pass+checks", "max abs err"], rows).splitlines()
    out = table[:2]
    for row_line, extra in zip(table[2:], details):
        out += [row_line, *extra]
    return out


def figures_table(figures: dict[str, dict]) -> list[str]:
    """The ``graphkit inspect`` figures of the source and the final model, side by side."""
    before, after = figures["source"], figures["final"]
    rows = []
    for label, key, fmt in (
        ("nodes", lambda f: f["nodes"], str),
        ("op types", lambda f: len(f["op_counts"]), str),
        ("Shape ops", lambda f: f["op_counts"].get("Shape", 0), str),
        ("parameters", lambda f: f["parameters"], human_count),
        ("weight bytes", lambda f: f["parameter_bytes"], human_bytes),
        ("MACs", lambda f: f["macs"]["total"], human_count),
    ):
        a, b = key(before), key(after)
        change = "=" if a == b else (f"{(b - a) / a:+.1%}" if a else f"+{fmt(b)}")
        cells = [fmt(a), fmt(b)]
        if label == "MACs":  # nodes whose shapes stayed unknown are not guessed
            unknown = [f["macs"]["unknown_nodes"] for f in (before, after)]
            cells = [cell + (f" (+{n} nodes unknown)" if n else "") for cell, n in zip(cells, unknown)]
            change = change if not any(unknown) else "?"
        rows.append([label, *cells, change])
    at = ", ".join(f"{name}={size}" for name, size in after.get("mac_dims", {}).items())
    return [
        f"model:   figures (graphkit inspect; MACs at {at or 'declared shapes'})",
        *format_table(["", "source", "final", "change"], rows).splitlines(),
    ]


def render_summary(report: RunReport) -> str:
    """Passes applied, nodes before and after, max error per output per pass, what the final check
    showed (the claim: cases, dims, tolerances, input source; the dims seen at one size only),
    stage times, files. The headline names the passes that were rolled back."""
    dropped = [r.name for r in report.passes or [] if r.status in _DROPPED]
    status = "OK" if report.ok else "FAILED"
    if report.ok and dropped:
        status += f" with {len(dropped)} pass{'es' if len(dropped) > 1 else ''} rolled back ({', '.join(dropped)})"
    source = report.source
    lines = [
        f"graphkit apply: {report.pipeline} - {status}",
        f"weights: {report.weights}",
        f"source:  {source.description} ({source.nodes} nodes, opset {source.opset}, hash {source.hash[:12]})",
    ]
    golden = report.golden
    reused = "reused" if golden.reused else "recorded"
    lines.append(f"golden:  {golden.dir} ({reused}; cases {', '.join(golden.cases)})")
    if not golden.inputs.startswith("seeded noise") or ";" in golden.inputs:
        lines.append(f"inputs:  {golden.inputs}")
    lines += [f"note:    {note}" for note in golden.notes]
    if report.source_validation is not None:
        worst = {}
        for case in report.source_validation["cases"]:
            for out in case.get("outputs") or []:
                worst[out["name"]] = max(worst.get(out["name"], 0.0), float(out["max_abs"]))
        lines.append(f"export vs reference: max abs {_errors(worst)}")
    records = report.passes or []
    stacking = [
        f"note:    pass '{record.name}': {note}"
        for record in records
        for note in record.notes
        if note.startswith(("batch stacking", "localize"))
    ]
    if records:
        lines += ["", *_pass_table(records)]
    lines += stacking
    final = report.final
    if final:
        cases = [c["label"] for c in final.validation["cases"] if not c.get("skipped")]
        lines += [
            "",
            f"final:   {final.nodes} nodes, opset {final.opset}; checked on {', '.join(cases)}: "
            f"max abs {_errors(final.max_abs)}",
        ]
    if report.claim:
        lines.append(f"shown:   {report.claim}")
    elif golden.unexercised_dims:
        lines.append(f"note:    not exercised at a second size: {', '.join(golden.unexercised_dims)}")
    if report.figures:
        lines += ["", *figures_table(report.figures), ""]
    handoff = report.stage_results.get("handoff")
    if handoff and "error" not in handoff:  # a failed stage is the run's error line
        counts = handoff.get("precheck", {}).get("counts", {})
        built = handoff.get("build")
        lines.append(
            f"ATC:     precheck {counts.get('error', 0)} errors, {counts.get('warning', 0)} warnings, "
            f"{counts.get('perf', 0)} perf findings; {len(handoff.get('commands', []))} commands in "
            f"{handoff.get('script')}" + (f"; built {len(built)} OM(s)" if built else "; not built (atc not run)")
        )
    precision = report.stage_results.get("precision")
    if precision:
        lines.append(
            f"precision: {precision.get('precision_mode')}: {precision.get('verdict')}"
            + (f"; keep-list {', '.join(precision['keep_list'])}" if precision.get("keep_list") else "")
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
    if report.run_dir:  # a run of graphkit.api.apply has no run folder: nothing was written
        files.append(f"{report.run_dir}/report.json")
    lines.append(f"files:   {', '.join(files) or 'none (in memory)'}")
    if report.error:
        lines.append(f"error:   {report.error}")
    return "\n".join(wrapped for line in lines for wrapped in _wrap(line))


def _wrap(line: str) -> list[str]:
    """``line`` folded at WIDTH under its 9-column label (a table line or a long path stays whole)."""
    if len(line) <= WIDTH or "  " in line[9:].strip():
        return [line]
    return textwrap.wrap(line, WIDTH, subsequent_indent=" " * 9, break_long_words=False, break_on_hyphens=False)
