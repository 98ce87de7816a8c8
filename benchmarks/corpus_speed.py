"""Time of graphkit's validated one-command run against onnxslim's and onnxsim's unvalidated runs
on the corpus exports (issue 23's time target), all tools in the same run.

Usage: python -m benchmarks.corpus_speed [--models all | bert@13 gpt2@17 ...] [--opsets 13 17]
                                         [--batch dynamic static] [--shard K/N] [--rounds 3]
                                         [--tools graphkit onnxslim onnxsim] [--baseline-src DIR]
                                         [--dir DIR] [--out FILE]
       python -m benchmarks.corpus_speed --merge RUN.json ...

A row is one export: ``NAME@OPSET`` at one batch kind (``--batch``, dynamic and/or static);
``--models all`` takes every architecture of ``benchmarks.models.ARCHS`` at each of ``--opsets``
(21 x 2 x 2 = 84 rows: the whole corpus of issue 23). ``--shard K/N`` runs every N-th row from
the K-th, so a long series splits into runs of a few minutes; ``--merge`` joins the JSON of such
runs (``--out``) into one table with the median and worst over all their rows.

Each model is exported once with ``benchmarks.models.export`` (to ``--dir``, default
``.cache/corpus_speed``; an export already there is reused; ``--export-only`` stops there). Then,
per round and row, each tool runs as a user runs it, in its own process, in an order that
alternates between rounds; the
time is what the user waits for (process start and imports included), measured from the parent
with ``os.wait4`` (wall, user and system CPU; peak RSS = the child's own VmHWM, written by
the child at exit):

- ``graphkit``: ``graphkit apply IN OUT`` (the generic preset, every changed pass validated
  against onnxruntime, the final model on every golden case), with a fresh empty
  ``GRAPHKIT_CACHE`` per run (no golden set and no validation result from an earlier run);
- ``onnxslim``: ``onnxslim IN OUT`` (its defaults, no ``--model-check``);
- ``onnxsim``: ``onnxsim IN OUT 0 --no-certify`` (no output check);
- ``graphkit-baseline`` (with ``--baseline-src DIR``, a checkout such as ``git worktree add DIR
  REF``): the same ``graphkit apply`` from that source tree, for a same-run A/B of a change.

Every child gets the same Python settings: bytecode caching on, in one folder under ``--dir``
(``PYTHONPYCACHEPREFIX``; ``PYTHONDONTWRITEBYTECODE`` removed), and one untimed warm-up run of
each tool first, so that no tool pays for compiling its modules (an installed package has its
``.pyc`` files).

Per model: each tool's median wall, CPU (user + system) and peak RSS over the rounds, graphkit's
exit code, whether its final check passed (``report.json``) and the ratios graphkit / onnxslim of
wall time, CPU time and peak RSS; over the models: the median and the worst ratio. The load
average is recorded before and after. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnx

from benchmarks.baseline_checkout import PYTHON_FLAGS, baseline_env
from benchmarks.large_models import _measured

BIN = Path(sys.executable).parent
TOOLS = ("graphkit", "onnxslim", "onnxsim", "graphkit-baseline")
MODELS = ("bert@13", "bert@17", "gpt2@13", "gpt2@17", "vit@13", "vit@17", "swin@13", "swin@17")
BATCHES = ("dynamic", "static")


def rows(models: list[str], opsets: list[int], batches: list[str]) -> list[tuple[str, int, str]]:
    """(architecture, opset, batch) per row: ``all`` is every architecture at every opset."""
    from benchmarks.models import ARCHS

    specs = [f"{arch}@{opset}" for arch in ARCHS for opset in opsets] if models == ["all"] else models
    out = []
    for batch in batches:
        for spec in specs:
            name, _, opset = spec.partition("@")
            if name not in ARCHS:
                raise SystemExit(f"corpus_speed: error: unknown model {name!r} (one of: {', '.join(ARCHS)})")
            out.append((name, int(opset or 17), batch))
    return out


def shard(items: list, spec: str | None) -> list:
    """Every N-th item from the K-th (``K/N``, K from 1): disjoint shards that cover ``items``."""
    if not spec:
        return items
    k, _, n = spec.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise SystemExit(f"corpus_speed: error: --shard {spec!r} is not K/N with 1 <= K <= N")
    return items[int(k) - 1 :: int(n)]


def _export(name: str, opset: int, dynamic: bool, folder: Path) -> Path:
    from benchmarks.models import export

    path = folder / f"{name}-{opset}-{'dynamic' if dynamic else 'static'}.onnx"
    if not path.exists():
        export(name, opset, dynamic, str(path))
    return path


# Runs a console script in this fresh interpreter and writes its VmHWM (this process image's own
# peak RSS) to $CORPUS_SPEED_PEAK at exit: the child's ru_maxrss would include the parent's peak
# (the exports' torch) from before the exec.
LAUNCH = """import atexit, os, runpy, sys
def _peak():
    with open('/proc/self/status') as status, open(os.environ['CORPUS_SPEED_PEAK'], 'w') as out:
        out.write(next(line.split()[1] for line in status if line.startswith('VmHWM')))
atexit.register(_peak)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def _command(tool: str, model: Path, out: Path) -> list[str]:
    if tool in ("graphkit", "graphkit-baseline"):
        script, args = BIN / "graphkit", ["apply", str(model), str(out)]
    elif tool == "onnxslim":
        script, args = BIN / "onnxslim", [str(model), str(out)]
    elif tool == "onnxsim":
        script, args = BIN / "onnxsim", [str(model), str(out), "0", "--no-certify"]
    else:
        raise ValueError(tool)
    return [sys.executable, *PYTHON_FLAGS, "-c", LAUNCH, str(script), *args]


def _run(tool: str, model: Path, work: Path, env: dict, baseline_src: Path | None = None) -> dict:
    """One timed run of ``tool`` on ``model``; graphkit with a fresh cache."""
    out_dir = Path(tempfile.mkdtemp(dir=work, prefix=f"{tool}-"))
    out = out_dir / model.name
    peak = out_dir / "peak_kb"
    run_env = dict(env, GRAPHKIT_CACHE=str(out_dir / "cache"), CORPUS_SPEED_PEAK=str(peak))
    if tool == "graphkit-baseline":
        run_env = baseline_env(run_env, baseline_src)
    result = _measured(_command(tool, model, out), run_env)
    result["cpu_s"] = round(result["user_s"] + result["system_s"], 2)
    result["peak_rss_mb"] = round(int(peak.read_text()) / 1024) if peak.exists() else None
    if out.exists():
        result["nodes"] = len(onnx.load(str(out), load_external_data=False).graph.node)
    if tool.startswith("graphkit"):
        report = out_dir / f"{model.stem}.graphkit" / "report.json"
        final = json.loads(report.read_text()).get("final") or {} if report.exists() else {}
        result["validated"] = bool((final.get("validation") or {}).get("passed"))
    shutil.rmtree(out_dir, ignore_errors=True)
    return result


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def _summary(per_model: dict, key: str, ratio: str = "ratios") -> dict:
    ratios = {name: m[ratio][key] for name, m in per_model.items() if m.get(ratio, {}).get(key) is not None}
    if not ratios:
        return {}
    worst = max(ratios, key=ratios.get)
    over = sorted((name for name, r in ratios.items() if r > 1.0), key=ratios.get, reverse=True)
    return {
        "rows": len(ratios),
        "median": round(statistics.median(ratios.values()), 2),
        "worst": ratios[worst],
        "worst_model": worst,
        "over_1.0": {name: ratios[name] for name in over},
    }


def _row_entry(by_tool: dict[str, list[dict]]) -> dict:
    """Per tool: the medians over the rounds; graphkit / onnxslim (and / graphkit-baseline) ratios."""
    entry: dict = {}
    for tool, tool_runs in by_tool.items():
        entry[tool] = {
            "wall_s": _median(tool_runs, "wall_s"),
            "cpu_s": _median(tool_runs, "cpu_s"),
            "peak_rss_mb": _median(tool_runs, "peak_rss_mb"),
            "nodes": tool_runs[-1].get("nodes"),
            "rc": sorted({r["rc"] for r in tool_runs}),
        }
        if tool.startswith("graphkit"):
            entry[tool]["validated"] = all(r.get("validated") for r in tool_runs)
    entry["ratios"] = _ratios(entry["graphkit"], entry["onnxslim"])
    if "graphkit-baseline" in entry:
        entry["over_baseline"] = _ratios(entry["graphkit"], entry["graphkit-baseline"])
    return entry


def _ratios(tool: dict, other: dict) -> dict:
    """``tool`` / ``other`` for wall, CPU and peak RSS (None where either is missing)."""
    keys = ("wall_s", "cpu_s", "peak_rss_mb")
    return {key: (round(tool[key] / other[key], 2) if tool[key] and other[key] else None) for key in keys}


def summarize(per_model: dict) -> dict:
    """Median, worst and every row over 1.0 of each ratio, over all rows."""
    keys = ("wall_s", "cpu_s", "peak_rss_mb")
    result = {"graphkit_over_onnxslim": {key: _summary(per_model, key) for key in keys}}
    if any("over_baseline" in m for m in per_model.values()):
        result["graphkit_over_baseline"] = {key: _summary(per_model, key, "over_baseline") for key in keys}
    result["failures"] = sorted(
        name
        for name, m in per_model.items()
        if m["graphkit"]["rc"] != [0] or not m["graphkit"]["validated"] or m["onnxslim"]["rc"] != [0]
    )
    result["targets"] = "median wall ratio <= 1.0, worst <= 1.5, peak RSS ratio <= 1.0 on every row"
    return result


def merge(paths: list[Path]) -> dict:
    """One result from the JSON of several runs (shards): their rows, loads and summaries over all rows."""
    runs = [json.loads(path.read_text()) for path in paths]
    per_model: dict = {}
    for run in runs:
        per_model.update(run["models"])
    return {
        "what": runs[0]["what"],
        "merged": [
            {k: run.get(k) for k in ("started", "shard", "rounds", "load_before", "load_after")} for run in runs
        ],
        "models": per_model,
        **summarize(per_model),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="NAME@OPSET (benchmarks.models), or all")
    parser.add_argument("--opsets", nargs="+", type=int, default=[13, 17], help="with --models all")
    parser.add_argument("--batch", nargs="+", choices=BATCHES, default=["dynamic"])
    parser.add_argument("--shard", help="K/N: every N-th row from the K-th")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tools", nargs="+", default=["graphkit", "onnxslim", "onnxsim"], choices=TOOLS)
    parser.add_argument("--baseline-src", type=Path, help="a graphkit checkout, run as tool graphkit-baseline")
    parser.add_argument("--dir", type=Path, default=Path(".cache/corpus_speed"))
    parser.add_argument("--export-only", action="store_true", help="export the rows' models, time nothing")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--merge", nargs="+", type=Path, help="join the --out JSON of several runs")
    args = parser.parse_args(argv)
    if args.merge:
        result = merge(args.merge)
        print(json.dumps(result, indent=2))
        if args.out:
            args.out.write_text(json.dumps(result, indent=2))
        return result
    if "graphkit" not in args.tools or "onnxslim" not in args.tools:
        parser.error("--tools must include graphkit and onnxslim (the ratios are graphkit / onnxslim)")
    if args.baseline_src and "graphkit-baseline" not in args.tools:
        args.tools.append("graphkit-baseline")
    if "graphkit-baseline" in args.tools and not args.baseline_src:
        parser.error("graphkit-baseline needs --baseline-src DIR")
    args.dir.mkdir(parents=True, exist_ok=True)
    models = {
        f"{name}@{opset} {batch}": _export(name, opset, batch == "dynamic", args.dir)
        for name, opset, batch in shard(rows(args.models, args.opsets, args.batch), args.shard)
    }
    if args.export_only:
        return {"exported": {spec: str(path) for spec, path in models.items()}}
    baseline_src = args.baseline_src.resolve() if args.baseline_src else None
    work = Path(tempfile.mkdtemp(dir=args.dir, prefix="runs-"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env["PYTHONPYCACHEPREFIX"] = str((args.dir / "pycache").resolve())
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = [round(x, 2) for x in os.getloadavg()]
    first = next(iter(models.values()))
    for tool in args.tools:  # untimed: compiles each tool's modules once
        _run(tool, first, work, env, baseline_src)
    runs: dict[str, dict[str, list[dict]]] = {spec: {tool: [] for tool in args.tools} for spec in models}
    for round_ in range(args.rounds):
        order = list(args.tools) if round_ % 2 == 0 else list(reversed(args.tools))
        for spec, path in models.items():
            for tool in order:
                runs[spec][tool].append(_run(tool, path, work, env, baseline_src))
    shutil.rmtree(work, ignore_errors=True)
    per_model = {spec: _row_entry(by_tool) for spec, by_tool in runs.items()}
    result = {
        "what": "graphkit apply IN OUT (validated) vs onnxslim IN OUT and onnxsim IN OUT 0 (unvalidated)",
        "started": started,
        "shard": args.shard,
        "rounds": args.rounds,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "models": per_model,
        **summarize(per_model),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
