"""Time of graphkit's validated one-command run against onnxslim's and onnxsim's unvalidated runs
on the corpus exports (issue 23's time target), all tools in the same run.

Usage: python -m benchmarks.corpus_speed [--models bert@13 gpt2@17 ...] [--batch dynamic|static]
                                         [--rounds 3] [--tools graphkit onnxslim onnxsim]
                                         [--dir DIR]

Each model is exported once with ``benchmarks.models.export`` (to ``--dir``, default
``.cache/corpus_speed``; an export already there is reused). Then, per round and model, each tool
runs as a user runs it, in its own process, in an order that alternates between rounds; the
time is what the user waits for (process start and imports included), measured from the parent
with ``os.wait4`` (wall, user and system CPU; peak RSS = the child's own VmHWM, written by
the child at exit):

- ``graphkit``: ``graphkit apply IN OUT`` (the generic preset, every changed pass validated
  against onnxruntime, the final model on every golden case), with a fresh empty
  ``GRAPHKIT_CACHE`` per run (no golden set and no validation result from an earlier run);
- ``onnxslim``: ``onnxslim IN OUT`` (its defaults, no ``--model-check``);
- ``onnxsim``: ``onnxsim IN OUT 0 --no-certify`` (no output check).

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
import statistics
import sys
import tempfile
from pathlib import Path

import onnx

from benchmarks.large_models import _measured

BIN = Path(sys.executable).parent
TOOLS = ("graphkit", "onnxslim", "onnxsim")
MODELS = ("bert@13", "bert@17", "gpt2@13", "gpt2@17", "vit@13", "vit@17", "swin@13", "swin@17")


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
    if tool == "graphkit":
        args = ["apply", str(model), str(out)]
    elif tool == "onnxslim":
        args = [str(model), str(out)]
    elif tool == "onnxsim":
        args = [str(model), str(out), "0", "--no-certify"]
    else:
        raise ValueError(tool)
    return [sys.executable, "-c", LAUNCH, str(BIN / tool), *args]


def _run(tool: str, model: Path, work: Path, env: dict) -> dict:
    """One timed run of ``tool`` on ``model``; graphkit with a fresh cache."""
    out_dir = Path(tempfile.mkdtemp(dir=work, prefix=f"{tool}-"))
    out = out_dir / model.name
    peak = out_dir / "peak_kb"
    run_env = dict(env, GRAPHKIT_CACHE=str(out_dir / "cache"), CORPUS_SPEED_PEAK=str(peak))
    result = _measured(_command(tool, model, out), run_env)
    result["cpu_s"] = round(result["user_s"] + result["system_s"], 2)
    result["peak_rss_mb"] = round(int(peak.read_text()) / 1024) if peak.exists() else None
    if out.exists():
        result["nodes"] = len(onnx.load(str(out), load_external_data=False).graph.node)
    if tool == "graphkit":
        report = out_dir / f"{model.stem}.graphkit" / "report.json"
        final = json.loads(report.read_text()).get("final") or {} if report.exists() else {}
        result["validated"] = bool((final.get("validation") or {}).get("passed"))
    return result


def _median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 2)


def _summary(per_model: dict, key: str) -> dict:
    ratios = [m["ratios"][key] for m in per_model.values() if m["ratios"].get(key) is not None]
    if not ratios:
        return {}
    worst = max(per_model, key=lambda name: per_model[name]["ratios"].get(key) or 0.0)
    return {"median": round(statistics.median(ratios), 2), "worst": round(max(ratios), 2), "worst_model": worst}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="NAME@OPSET (benchmarks.models)")
    parser.add_argument("--batch", choices=("dynamic", "static"), default="dynamic")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--dir", type=Path, default=Path(".cache/corpus_speed"))
    args = parser.parse_args(argv)
    if "graphkit" not in args.tools or "onnxslim" not in args.tools:
        parser.error("--tools must include graphkit and onnxslim (the ratios are graphkit / onnxslim)")
    args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=args.dir, prefix="runs-"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str((args.dir / "pycache").resolve())
    models = {}
    for spec in args.models:
        name, _, opset = spec.partition("@")
        models[spec] = _export(name, int(opset or 17), args.batch == "dynamic", args.dir)
    load_before = [round(x, 2) for x in os.getloadavg()]
    first = next(iter(models.values()))
    for tool in args.tools:  # untimed: compiles each tool's modules once
        _run(tool, first, work, env)
    runs: dict[str, dict[str, list[dict]]] = {spec: {tool: [] for tool in args.tools} for spec in models}
    for round_ in range(args.rounds):
        order = list(args.tools) if round_ % 2 == 0 else list(reversed(args.tools))
        for spec, path in models.items():
            for tool in order:
                runs[spec][tool].append(_run(tool, path, work, env))
    per_model = {}
    for spec, by_tool in runs.items():
        entry: dict = {}
        for tool, tool_runs in by_tool.items():
            entry[tool] = {
                "wall_s": _median(tool_runs, "wall_s"),
                "cpu_s": _median(tool_runs, "cpu_s"),
                "peak_rss_mb": _median(tool_runs, "peak_rss_mb"),
                "nodes": tool_runs[-1].get("nodes"),
                "rc": sorted({r["rc"] for r in tool_runs}),
            }
        entry["graphkit"]["validated"] = all(r.get("validated") for r in by_tool["graphkit"])
        gk, slim = entry["graphkit"], entry["onnxslim"]
        entry["ratios"] = {
            key: (round(gk[key] / slim[key], 2) if slim[key] else None) for key in ("wall_s", "cpu_s", "peak_rss_mb")
        }
        per_model[spec] = entry
    result = {
        "what": "graphkit apply IN OUT (validated) vs onnxslim IN OUT and onnxsim IN OUT 0 (unvalidated)",
        "batch": args.batch,
        "rounds": args.rounds,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "models": per_model,
        "graphkit_over_onnxslim": {key: _summary(per_model, key) for key in ("wall_s", "cpu_s", "peak_rss_mb")},
        "targets": "median wall ratio <= 1.0, worst <= 1.5, peak RSS ratio <= 1.0 on every model",
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
