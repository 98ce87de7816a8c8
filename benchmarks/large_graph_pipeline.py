"""The validated generic pipeline vs onnxsim on large transformer graphs, repeated, with the ratio per round.

Usage: python -m benchmarks.large_graph_pipeline [--layers 15 30 60] [--ratio-layers 60] [--repeats 3]
                                                 [--models-dir DIR] [--baseline-ref GIT_REF]

Models: ViT (``transformers`` ViTForImageClassification, ViT-Tiny dims: hidden 192, 3 heads, MLP 768,
seeded random weights) with N layers, exported at 224x224 (legacy exporter, opset 17, dynamic
batch); 60 layers is about 6,000 nodes / 300 Shape ops. Needs ``transformers`` (``pip install -e '.[bench]'``).

Per round, each in its own process, one after the other so that they see the same machine load:

- ``graphkit apply`` of eliminate-noops, fold-shapes, softmax-transpose, fold-batchnorm,
  dynamic-batch with every changed pass validated against onnxruntime goldens at batch 1 (a
  fresh run folder and cache: the golden set is recorded in the run, nothing comes from a cache);
- the same at ``--baseline-ref`` (a git ref of this repository), when given;
- onnxsim in a script process: load, ``onnxsim.simplify`` (no output check: unvalidated), save;
  the process is timed like ``graphkit apply`` (imports, loading and saving included), and the
  ``simplify`` call alone too. (The ``onnxsim`` command line is not used: on this model it also
  runs a cost analysis that took 126-149 s here, so it would flatter graphkit.)

Each process is timed as wall time and as CPU time (user + system of the child, from
``getrusage``): on a shared machine the wall time swings with the load, the CPU time much less.
Ratios are taken within a round and their median reported. For every model size in ``--layers``
the current pipeline's time is recorded too, with the slope log(t_max/t_min) / log(n_max/n_min)
(1 = linear in the node count). The load average is recorded before and after. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.pass_scaling import BUILD_VIT, PASSES, _checkout, _counts, _python, _slope

BIN = Path(sys.executable).parent

# onnxsim alone (no graphkit import): load, simplify without an output check, save.
ONNXSIM = r"""
import json, sys, time, onnx, onnxsim
model = onnx.load(sys.argv[1])
start = time.perf_counter()
out, ok = onnxsim.simplify(model)
elapsed = time.perf_counter() - start
onnx.save(out, sys.argv[2])
peak_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({"time_s": elapsed, "peak_rss_mb": peak_kb / 1024, "check_ok": bool(ok)}))
"""


def _timed(command: list[str], cwd: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``command``; its wall time and its CPU time (children's user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def _apply(model: Path, work: Path, source: Path | None = None) -> dict:
    """``graphkit apply`` of the generic pipeline (from ``source`` when given) in a fresh folder."""
    work.mkdir(parents=True)
    pipeline = work / "generic.yaml"
    pipeline.write_text(
        "name: generic\n"
        f"source: {{onnx: {json.dumps(str(model))}}}\n"
        "golden: {batch_sizes: [1], tolerance: {atol: 1.0e-4, rtol: 1.0e-3}}\n"
        f"passes: {json.dumps(PASSES)}\n"
        f"output: {{dir: {json.dumps(str(work / 'run'))}}}\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    if source is None:
        command = [str(BIN / "graphkit"), "apply", str(pipeline), "--json"]
    else:
        env["PYTHONPATH"] = str(source)
        command = [sys.executable, "-c", "import sys; from graphkit.cli.main import console_main; "
                   "sys.exit(console_main())", "apply", str(pipeline), "--json"]  # fmt: skip
    proc, times = _timed(command, work if source is None else source, env)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"graphkit apply failed ({proc.returncode}):\n{proc.stderr[-3000:]}") from None
    if proc.returncode != 0:
        raise SystemExit(f"graphkit apply failed ({proc.returncode}): {report.get('error')}")
    validated = [p["name"] for p in report["passes"] if p.get("validation")]
    return {
        **times,
        "stages_s": report.get("stages"),
        "validated_passes": validated,
        "pass_times_s": _times_by_pass(report["passes"]),
        "forwards": len(report.get("forwards") or []),
        "peak_rss_mb": report.get("peak_rss_mb"),
        **_counts(work / "run" / "model.onnx"),
    }


def _times_by_pass(records: list[dict]) -> dict:
    """Seconds per pass name and timer, summed over the runs of a pass (a fixed-point group repeats it)."""
    totals: dict[str, dict[str, float]] = {}
    for record in records:
        mine = totals.setdefault(record["name"], {})
        for key, seconds in (record.get("times") or {}).items():
            mine[key] = round(mine.get(key, 0.0) + seconds, 3)
    return totals


def _onnxsim(model: Path, work: Path) -> dict:
    """onnxsim in a script process: load, ``onnxsim.simplify`` (no output check), save.

    ``wall_s``/``cpu_s`` time the whole process (imports, loading and saving included, as for
    ``graphkit apply``); ``simplify_s`` the call alone.
    """
    out = work / "onnxsim.onnx"
    proc, times = _timed([sys.executable, "-c", ONNXSIM, str(model), str(out)], work)
    if proc.returncode != 0:
        raise SystemExit(f"onnxsim failed:\n{proc.stderr[-3000:]}")
    inner = json.loads(proc.stdout)
    return {
        **times,
        "simplify_s": round(inner["time_s"], 3),
        "peak_rss_mb": round(inner["peak_rss_mb"], 1),
        **_counts(out),
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[15, 30, 60], help="ViT depths for the slope")
    parser.add_argument("--ratio-layers", type=int, default=60, help="the ViT depth compared with onnxsim")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the comparison (default 3)")
    parser.add_argument("--models-dir", type=Path, help="keep/reuse the exported models here (default: temporary)")
    parser.add_argument("--baseline-ref", help="also run graphkit at this git ref in every round")
    args = parser.parse_args()
    if args.repeats < 1 or any(n < 1 for n in args.layers) or args.ratio_layers < 1:
        parser.error("--repeats, --layers and --ratio-layers must be >= 1")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = args.models_dir or tmp
        models.mkdir(parents=True, exist_ok=True)
        paths = {}
        for layers in sorted({*args.layers, args.ratio_layers}):
            paths[layers] = models / f"vit_{layers}.onnx"
            if not paths[layers].exists():
                _python(BUILD_VIT, layers, paths[layers])
        base = _checkout(args.baseline_ref, tmp / "baseline") if args.baseline_ref else None
        rounds = []
        for index in range(args.repeats):
            work = tmp / f"round{index}"
            work.mkdir()
            entry = {"graphkit": _apply(paths[args.ratio_layers], work / "graphkit")}
            if base is not None:
                entry["baseline"] = _apply(paths[args.ratio_layers], work / "baseline", source=base)
            entry["onnxsim"] = _onnxsim(paths[args.ratio_layers], work)
            entry["loadavg"] = [round(v, 2) for v in os.getloadavg()]
            rounds.append(entry)
        scaling = {}
        for layers in sorted(args.layers):
            runs = [_apply(paths[layers], tmp / f"scale{layers}_{i}") for i in range(args.repeats)]
            scaling[layers] = {
                **_counts(paths[layers]),
                "wall_s": _median([r["wall_s"] for r in runs]),
                "cpu_s": _median([r["cpu_s"] for r in runs]),
                "passes_stage_s": _median([r["stages_s"]["passes"] for r in runs]),
                "per_pass_s": {
                    name: {
                        what: _median([r["pass_times_s"][name].get(what, 0.0) for r in runs])
                        for what in runs[0]["pass_times_s"][name]
                    }
                    for name in runs[0]["pass_times_s"]
                },
            }

    def ratios(key: str, other: str, field: str, other_field: str = "") -> list[float]:
        return [round(r[key][field] / r[other][other_field or field], 2) for r in rounds]

    summary = {
        "graphkit_wall_s": _median([r["graphkit"]["wall_s"] for r in rounds]),
        "graphkit_cpu_s": _median([r["graphkit"]["cpu_s"] for r in rounds]),
        "onnxsim_wall_s": _median([r["onnxsim"]["wall_s"] for r in rounds]),
        "onnxsim_cpu_s": _median([r["onnxsim"]["cpu_s"] for r in rounds]),
        "onnxsim_simplify_s": _median([r["onnxsim"]["simplify_s"] for r in rounds]),
        "ratio_wall_vs_onnxsim_process": ratios("graphkit", "onnxsim", "wall_s"),
        "ratio_cpu_vs_onnxsim_process": ratios("graphkit", "onnxsim", "cpu_s"),
        "ratio_wall_vs_onnxsim_simplify_call": ratios("graphkit", "onnxsim", "wall_s", "simplify_s"),
    }
    for key in [k for k in summary if k.startswith("ratio_")]:
        summary[key + "_median"] = _median(summary[key])
    if base is not None:
        summary["baseline_wall_s"] = _median([r["baseline"]["wall_s"] for r in rounds])
        summary["baseline_cpu_s"] = _median([r["baseline"]["cpu_s"] for r in rounds])
        summary["ratio_baseline_wall_vs_onnxsim_process"] = ratios("baseline", "onnxsim", "wall_s")
        summary["ratio_baseline_cpu_vs_onnxsim_process"] = ratios("baseline", "onnxsim", "cpu_s")
        summary["speedup_cpu_vs_baseline"] = ratios("baseline", "graphkit", "cpu_s")
    points = sorted((v["nodes"], v["cpu_s"], v["passes_stage_s"]) for v in scaling.values())
    per_pass_slopes = {}
    if len(scaling) > 1:
        small, large = scaling[min(scaling)], scaling[max(scaling)]
        for name, parts in large["per_pass_s"].items():
            for what in parts:
                pair = [(small["nodes"], small["per_pass_s"][name].get(what, 0.0)), (large["nodes"], parts[what])]
                per_pass_slopes[f"{name}:{what}"] = _slope(pair)
    report = {
        "model": "ViT (transformers ViTForImageClassification, hidden 192, 3 heads, MLP 768, 224x224, opset 17)",
        "pipeline": PASSES,
        "ratio_model": {"layers": args.ratio_layers, **_counts(paths[args.ratio_layers])},
        "baseline_ref": args.baseline_ref,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(v, 2) for v in load_before]},
        "summary": summary,
        "rounds": rounds,
        "scaling": {str(k): v for k, v in scaling.items()},
        "slope_cpu": _slope([(n, c) for n, c, _ in points]) if len(points) > 1 else None,
        "slope_passes_stage": _slope([(n, p) for n, _, p in points]) if len(points) > 1 else None,
        "slope_per_pass": per_pass_slopes,
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
