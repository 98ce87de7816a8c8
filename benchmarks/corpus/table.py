"""The corpus results as JSON and Markdown tables (a full one in docs/corpus.md, a summary in the README)."""

from __future__ import annotations

import json
from pathlib import Path

from graphkit.util.files import write_text_atomic

START, END = "<!-- corpus-table:start -->", "<!-- corpus-table:end -->"


def _cell(record: dict, side: str, key: str):
    return (record.get(side) or {}).get(key, "")


def graphkit_status(record: dict) -> str:
    gk = record.get("graphkit") or {}
    status = gk.get("status", "")
    rolled = [p["name"] for p in gk.get("passes", []) if p.get("status") in ("rolled-back", "failed")]
    return status + (f" ({', '.join(rolled)} rolled back)" if rolled else "")


def targets_met(record: dict) -> str:
    """ "yes" when graphkit leaves at most each peer's nodes and Shape ops with the batch still
    symbolic (a peer that failed is left out of the comparison), else what it missed."""
    gk = record.get("graphkit") or {}
    if gk.get("status") != "ok" or "nodes" not in gk:
        return "no"
    misses = []
    finished = [peer for peer in ("onnxsim", "onnxslim") if "nodes" in (record.get(peer) or {})]
    for peer in finished:
        theirs = record[peer]
        if gk["nodes"] > theirs["nodes"]:
            misses.append(f"nodes > {peer}")
        if gk["shape_ops"] > theirs["shape_ops"]:
            misses.append(f"Shape ops > {peer}")
    if record["batch"] != "static" and gk.get("input_dim0") != "batch":
        misses.append("batch")
    if misses:
        return "no: " + ", ".join(misses)
    return "yes" if finished else "yes (no peer finished)"


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.1e}"
    return str(value)


def full_table(records: list[dict]) -> str:
    head = (
        "| model | opset | batch | nodes | graphkit (own passes) nodes / Shape | "
        "onnxsim nodes / Shape | onnxslim nodes / Shape | graphkit s / MB | onnxsim s / MB | onnxslim s / MB | "
        "max abs vs source (gk, sim, slim) | graphkit status | dynamic-batch on static | target |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in records:
        diffs = r.get("max_abs_vs_source") or {}
        gk_diff = diffs.get("run_b1", "")
        sim_diff = diffs.get("onnxsim_b1", "")
        slim_diff = diffs.get("onnxslim_b1", "")
        probe = r.get("dynamic_batch_probe") or {}
        probe_text = probe.get("status", "n/a (dynamic source)")
        if probe.get("reason"):
            probe_text += f": {_short(probe['reason'], 70)}"
        status = graphkit_status(r)
        if (r.get("graphkit") or {}).get("reason"):
            status += f": {_short(r['graphkit']['reason'], 70)}"
        rows.append(
            f"| {r['arch']} | {r['opset']} | {r['batch']} | {_cell(r, 'export', 'nodes')} | "
            f"{_cell(r, 'graphkit', 'nodes')} / {_cell(r, 'graphkit', 'shape_ops')} | "
            f"{_cell(r, 'onnxsim', 'nodes')} / {_cell(r, 'onnxsim', 'shape_ops')} | "
            f"{_cell(r, 'onnxslim', 'nodes')} / {_cell(r, 'onnxslim', 'shape_ops')} | "
            f"{_cell(r, 'graphkit', 'seconds')} / {_cell(r, 'graphkit', 'peak_rss_mb')} | "
            f"{_cell(r, 'onnxsim', 'seconds')} / {_cell(r, 'onnxsim', 'peak_rss_mb')} | "
            f"{_cell(r, 'onnxslim', 'seconds')} / {_cell(r, 'onnxslim', 'peak_rss_mb')} | "
            f"{_fmt(gk_diff)}, {_fmt(sim_diff)}, {_fmt(slim_diff)} | {status} | {probe_text} | {targets_met(r)} |"
        )
    return head + "\n".join(rows) + "\n"


def summary_table(records: list[dict]) -> str:
    """One row per architecture: nodes left by graphkit's own passes vs onnxsim, summed over its runs."""
    by_arch: dict[str, list[dict]] = {}
    for r in records:
        by_arch.setdefault(r["arch"], []).append(r)
    head = (
        "| model | runs | validated | targets met | nodes (runs both tools finished): source → graphkit "
        "(own passes) / onnxsim | "
        "Shape ops left (graphkit / onnxsim) |\n|---|---|---|---|---|---|\n"
    )
    rows = []
    for arch, runs in by_arch.items():
        total = len(runs)
        ok = sum(1 for r in runs if (r.get("graphkit") or {}).get("validated"))
        met = sum(1 for r in runs if targets_met(r).startswith("yes"))
        runs = [r for r in runs if "nodes" in (r.get("graphkit") or {}) and "nodes" in (r.get("onnxsim") or {})]
        src = sum(int(_cell(r, "export", "nodes") or 0) for r in runs)
        gk = sum(int(_cell(r, "graphkit", "nodes") or 0) for r in runs)
        sim = sum(int(_cell(r, "onnxsim", "nodes") or 0) for r in runs)
        gks = sum(int(_cell(r, "graphkit", "shape_ops") or 0) for r in runs)
        sims = sum(int(_cell(r, "onnxsim", "shape_ops") or 0) for r in runs)
        rows.append(f"| {arch} | {total} | {ok} | {met} | {src} → {gk} / {sim} | {gks} / {sims} |")
    return head + "\n".join(rows) + "\n"


def _replace_between(path: Path, table: str) -> None:
    if not path.exists():
        return
    text = path.read_text()
    if START not in text or END not in text:
        return
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    write_text_atomic(path, f"{before}{START}\n{table}{END}{after}")


def write_tables(records: list[dict], out: Path, page: Path | None, readme: Path | None) -> None:
    """Write the results JSON and rewrite the tables between the corpus markers of ``page`` and ``readme``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(records, indent=1, default=str) + "\n")
    if page is not None:
        _replace_between(page, full_table(records))
    if readme is not None:
        _replace_between(readme, summary_table(records))
