"""fold-shapes vs onnxsim on the same model: time, peak RSS, nodes, Shape ops, symbolic output dims.

Usage: python -m benchmarks.fold_shapes_vs_onnxsim [--model PATH] [--size 1024] [--width 1.0]

Without --model, exports the wseg model (seeded random weights) with the legacy exporter at
opset 11 and dynamic batch. Each tool runs in its own subprocess so that its peak RSS
(the child's own VmHWM, model loading included) is measured separately. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import onnx
from graphkit.ir.model_io import load_model, save_model
tool, src, dst = sys.argv[1:4]
model = load_model(src)
start = time.perf_counter()
if tool == "onnxsim":
    import onnxsim
    out, ok = onnxsim.simplify(model)
else:
    from graphkit.transform.registry import get_pass
    out = get_pass("fold-shapes")()(model).model
elapsed = time.perf_counter() - start
save_model(out, dst)
# VmHWM is this process image's own peak (ru_maxrss would inherit the exporting parent's)
peak_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({"time_s": elapsed, "peak_rss_mb": peak_kb / 1024}))
"""


def _summary(path: Path) -> dict:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    from graphkit.ir.shapes import dims_of

    symbolic = {o.name: [d for d in (dims_of(o) or ()) if not isinstance(d, int)] for o in model.graph.output}
    return {
        "nodes": len(model.graph.node),
        "shape_ops": sum(1 for n in model.graph.node if n.op_type == "Shape"),
        "output_dims": {o.name: list(dims_of(o) or ()) for o in model.graph.output},
        "symbolic_output_dims": sum(len(v) for v in symbolic.values()),
    }


def _run_tool(tool: str, src: Path, dst: Path) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, tool, str(src), str(dst)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])  # time_s and the child's own peak RSS
    result["wall_s"] = wall
    result.update(_summary(dst))
    return result


def _export(size: int, width: float, path: Path) -> None:
    from graphkit.ir.model_io import save_model

    try:
        from graphkit.wseg.export import export_onnx
        from graphkit.wseg.network import WsegModel

        model = WsegModel(width=width, seed=0)
        save_model(export_onnx(model, input_size=(size, size), opset=11, dynamic_batch=True), path)
    except ImportError:
        raise SystemExit("graphkit.wseg.network is not importable; pass --model PATH") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="ONNX model to simplify (default: export wseg)")
    parser.add_argument("--size", type=int, default=1024, help="input H=W when exporting wseg (default 1024)")
    parser.add_argument("--width", type=float, default=1.0, help="wseg channel width when exporting (1.0 = full)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = Path(args.model) if args.model else tmp / "wseg.onnx"
        if not args.model:
            _export(args.size, args.width, src)
        report = {"model": str(args.model or f"wseg legacy opset 11, {args.size}x{args.size}, width {args.width}")}
        report["before"] = _summary(src)
        report["onnxsim"] = _run_tool("onnxsim", src, tmp / "onnxsim.onnx")
        report["fold_shapes"] = _run_tool("fold-shapes", src, tmp / "fold.onnx")
        a, b = report["onnxsim"], report["fold_shapes"]
        if "error" not in a and "error" not in b:
            report["ratios"] = {
                "time_fold_over_onnxsim": b["time_s"] / a["time_s"],
                "peak_rss_fold_over_onnxsim": b["peak_rss_mb"] / a["peak_rss_mb"],
            }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
