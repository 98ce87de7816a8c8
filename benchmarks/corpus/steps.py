"""One corpus step per subprocess: export, graphkit, onnxsim, dynamic-batch probe.

Each step prints one JSON object as its last stdout line, with ``seconds`` and ``peak_rss_mb``
(the step's own process). Errors that a tool reports (a declined or failed pass, an error line)
are results, not crashes: a step only exits non-zero on a bug, and the runner records it as a
crash with the stderr tail.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from graphkit.transform.presets import preset_passes

# graphkit's own passes: the generic preset, safe on any model (the one place it is defined);
# dynamic-batch runs last, only on a dynamic source, where it must keep the batch
GENERIC_PASSES = preset_passes("generic")
TOLERANCE = {"atol": 1.0e-4, "rtol": 1.0e-3}


PEERS = ("onnxsim", "onnxslim")  # the simplifiers each corpus model is also run through


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_1m() -> float:
    """The machine's 1-minute load average when a tool starts (timings on a shared machine are read with it)."""
    return round(os.getloadavg()[0], 2)


def model_stats(model: onnx.ModelProto) -> dict:
    ops = Counter(n.op_type for n in model.graph.node)
    first = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    dim0 = (first[0].dim_param or first[0].dim_value) if first else None
    out_dims = []
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        out_dims.append((dims[0].dim_param or dims[0].dim_value) if dims else None)
    return {
        "nodes": len(model.graph.node),
        "shape_ops": ops.get("Shape", 0),
        "constant_nodes": ops.get("Constant", 0),
        "input_dim0": dim0,
        "output_dim0": out_dims,
        "ops": dict(sorted(ops.items())),  # per op type: what `python -m benchmarks.corpus.gaps` compares
    }


def dims_for(model: onnx.ModelProto, batch: int) -> dict:
    from benchmarks.models import SEQ_LEN

    return {"batch": batch, "seq": SEQ_LEN}


def feeds_for(model: onnx.ModelProto, batch: int, seed: int = 0) -> dict:
    from graphkit.check.golden import make_inputs

    return make_inputs(model, dims_for(model, batch), seed)


def run_model(model: onnx.ModelProto, feeds: dict) -> dict:
    from graphkit.runtime.ort import run_ort

    return run_ort(model, feeds)


def max_abs(a: dict, b: dict) -> float | None:
    """Largest absolute difference over all outputs (None when shapes differ)."""
    worst = 0.0
    for name, expected in a.items():
        actual = b.get(name)
        if actual is None or actual.shape != expected.shape:
            return None
        if expected.size:
            diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
            worst = max(worst, float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0)
    return worst


def step_export(arch: str, opset: int, batch: str, out: str) -> dict:
    from benchmarks.models import export

    start = time.perf_counter()
    model = export(arch, opset, batch == "dynamic", out)
    return {
        "ok": True,
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(peak_rss_mb()),
        "bytes": Path(out).stat().st_size,
        **model_stats(model),
    }


def step_graphkit(path: str, batch: str, work: str) -> dict:
    """The generic preset (plus dynamic-batch on a dynamic source) with full validation through
    graphkit's library API (a pipeline file); no onnxsim pass: the counts are graphkit's own."""
    import yaml

    from graphkit.ir.model_io import load_model
    from graphkit.pipeline.run import apply_pipeline
    from graphkit.pipeline.spec import load_pipeline
    from graphkit.runtime.feeds import symbolic_dim_names
    from graphkit.util.errors import GraphkitError, one_line

    passes = list(GENERIC_PASSES) + (["dynamic-batch"] if batch == "dynamic" else [])
    work_dir = Path(work)
    work_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": "corpus",
        "source": {"onnx": path},
        "golden": {
            "dir": str(work_dir / "golden"),
            "batch_sizes": [1, 2] if batch == "dynamic" else [1],
            "dims": {"seq": dims_for(None, 1)["seq"]} if "seq" in symbolic_dim_names(load_model(path)) else {},
            "tolerance": TOLERANCE,
        },
        "output": {"dir": str(work_dir / "run")},
        "on_failure": "skip",
        "passes": passes,
    }
    pipeline = work_dir / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    result: dict = {"passes": [], "load_1m": load_1m()}
    start = time.perf_counter()
    try:
        applied = apply_pipeline(load_pipeline(pipeline), str(pipeline))  # its log messages: not configured, dropped
        report = applied.report.to_dict()
        result["status"] = "ok" if applied.ok else "failed"
        if applied.error is not None:
            result["reason"] = one_line(applied.error)
    except GraphkitError as exc:  # a one-line error a user would see
        report = {}
        result.update(status="error", reason=one_line(exc))
    result["seconds"] = round(time.perf_counter() - start, 2)
    result["peak_rss_mb"] = round(peak_rss_mb())
    for record in report.get("passes", []):
        item = {"name": record.get("name"), "status": record.get("status"), "counts": record.get("counts", {})}
        if record.get("status") not in ("applied", "unchanged"):
            item["reason"] = record.get("error") or "; ".join(d.get("reason", "") for d in record.get("declined", []))
        result["passes"].append(item)
    failed = [p for p in result["passes"] if p["status"] in ("failed", "rolled-back")]
    if failed:
        result["failing_pass"] = failed[0]["name"]
        result.setdefault("reason", failed[0].get("reason", ""))
    model_path = (report.get("final") or {}).get("path")
    if model_path:
        model = load_model(model_path)
        result.update(model_stats(model))
        result["nodes_own_passes"] = result["nodes"]  # graphkit's own passes only (no onnxsim pass in the chain)
        result["validated"] = bool(report["final"]["validation"].get("passed", False))
        result["model_path"] = model_path
    return result


def step_peer(tool: str, path: str, out: str) -> dict:
    """A peer simplifier (``onnxsim`` 0.8.1 or ``onnxslim`` 0.1.98, default options) on the source:
    its time, this process's peak RSS and the model it leaves."""
    from graphkit.util.errors import one_line

    model = onnx.load(path)
    load = load_1m()
    start = time.perf_counter()
    try:
        if tool == "onnxsim":
            import onnxsim

            simplified, check = onnxsim.simplify(model)
        else:
            import onnxslim

            simplified, check = onnxslim.slim(model), True
    except Exception as exc:  # noqa: BLE001 - the peer's own failure is a result
        return {
            "status": "error",
            "reason": one_line(exc, 300),
            "seconds": round(time.perf_counter() - start, 2),
            "peak_rss_mb": round(peak_rss_mb()),
            "load_1m": load,
        }
    seconds = round(time.perf_counter() - start, 2)
    onnx.save(simplified, out)
    return {
        "status": "ok" if check else "check-failed",
        "seconds": seconds,
        "load_1m": load,
        "peak_rss_mb": round(peak_rss_mb()),
        **model_stats(simplified),
        "model_path": out,
    }


def step_compare(source: str, batch: str, candidates: list[str]) -> dict:
    """Each candidate vs the source model (onnxruntime, optimizations off) on the same seeded inputs."""
    from graphkit.ir.model_io import load_model

    model = load_model(source)
    result = {}
    for size in [1, 2] if batch == "dynamic" else [1]:
        feeds = feeds_for(model, size, seed=123)
        try:
            expected = run_model(model, feeds)
        except Exception as exc:  # noqa: BLE001 - an invalid source is a result: nothing to compare with
            from graphkit.util.errors import one_line

            return {"source": f"error: the source model does not run: {one_line(exc, 200)}"}
        for path in candidates:
            key = Path(path).parent.name if Path(path).name == "model.onnx" else Path(path).stem
            try:
                got = run_model(load_model(path), feeds)
                diff = max_abs(expected, got)
            except Exception as exc:  # noqa: BLE001 - a model that does not run is a result
                from graphkit.util.errors import one_line

                result[f"{key}_b{size}"] = f"error: {one_line(exc, 160)}"
                continue
            result[f"{key}_b{size}"] = diff
    return result


def step_probe(path: str, work: str) -> dict:
    """dynamic-batch on a static source: declined with a reason, or proven at batch 3 against three batch-1 runs."""
    from graphkit.ir.model_io import load_model, save_model
    from graphkit.transform.registry import get_pass

    model = load_model(path)
    result = get_pass("dynamic-batch")()(model)
    if not result.modified:
        reasons = [f"{d.site}: {d.reason}" for d in result.declined] + list(result.notes)
        return {"status": "declined", "reason": "; ".join(reasons)}
    save_model(result.model, Path(work) / "dynamic.onnx")
    rows = [feeds_for(model, 1, seed=s) for s in range(3)]
    stacked = {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
    try:
        together = run_model(result.model, stacked)
    except Exception as exc:  # noqa: BLE001
        from graphkit.util.errors import one_line

        return {"status": "wrong", "reason": f"batch 3 does not run: {one_line(exc, 200)}"}
    worst = 0.0
    for i, row in enumerate(rows):
        alone = run_model(model, row)
        for name, value in alone.items():
            if together[name].shape[0] != 3 * value.shape[0]:
                return {"status": "wrong", "reason": f"output {name}: dim 0 is {together[name].shape[0]} at batch 3"}
            part = together[name][i * value.shape[0] : (i + 1) * value.shape[0]]
            worst = max(worst, float(np.max(np.abs(part.astype(np.float64) - value))) if value.size else 0.0)
    status = "proven" if worst <= TOLERANCE["atol"] else "wrong"
    return {"status": status, "max_abs_batch3_vs_batch1": worst}


def main(argv: list[str]) -> int:
    step, *args = argv
    if step == "export":
        result = step_export(args[0], int(args[1]), args[2], args[3])
    elif step == "graphkit":
        result = step_graphkit(*args)
    elif step in PEERS:
        result = step_peer(step, *args)
    elif step == "compare":
        result = step_compare(args[0], args[1], args[2:])
    elif step == "probe":
        result = step_probe(*args)
    else:
        raise SystemExit(f"unknown step {step}")
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        sys.exit(main(sys.argv[1:]))
