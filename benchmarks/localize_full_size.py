"""Full-size localize: the wseg export vs the ModelZoo opset-11 softmax fix (526 MB, 1024x1024).

Usage: python -m benchmarks.localize_full_size [--size 1024] [--width 1.0] [--threads N]

Exports the wseg model (seeded random weights, legacy exporter, opset 11, dynamic batch), writes
the ModelZoo-style fix next to it, then in separate subprocesses (each reports its own peak RSS,
VmHWM, model loading included):

- ``localize``: today's ``graphkit.check.localize.localize`` (segments run in lockstep) on batch 1;
- ``forward A`` and ``forward B``: one plain onnxruntime forward of each model (session creation
  included, graph optimizations off as localize runs them): the unit of cost.

The previous algorithm (every chunk of 32 exposed tensors, about 1 GiB, reran both whole models)
is not rerun (it took 24 min and 9.0 GiB here, issue 15): its cost is estimated as its chunk
count up to the divergent tensor times the measured forwards of A and B. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOCALIZE = r"""
import json, sys, time
from graphkit.check.localize import localize
from graphkit.check.localize_feeds import feeds_for
from graphkit.ir.model_io import load_model
a_path, b_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]) or None
start = time.perf_counter()
a, b = load_model(a_path), load_model(b_path)
feeds = feeds_for(a, b, seed=0, dims={"batch": 1})
result = localize(a, b, feeds, threads=threads)
elapsed = time.perf_counter() - start
first = result.first_divergent
peak_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({
    "time_s": elapsed, "peak_rss_mb": peak_kb / 1024, "summary": result.summary_line(),
    "node": first.node if first else None, "tensor": first.tensor if first else None,
    "segments_per_model": result.runs, "nodes_run": result.nodes_run,
    "nodes": {"a": len(a.graph.node), "b": len(b.graph.node)},
    "compared": len(result.compared), "peak_live_tensors": result.peak_live_tensors,
}))
"""

FORWARD = r"""
import json, sys, time
from graphkit.check.localize_feeds import feeds_for
from graphkit.ir.model_io import load_model
from graphkit.runtime.ort import create_session, run_session
path, threads = sys.argv[1], int(sys.argv[2]) or None
model = load_model(path)
feeds = feeds_for(model, model, seed=0, dims={"batch": 1})
start = time.perf_counter()
session = create_session(model, threads=threads)
del model
run_session(session, feeds)
elapsed = time.perf_counter() - start
peak_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({"time_s": elapsed, "peak_rss_mb": peak_kb / 1024}))
"""


def _child(code: str, *args) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _old_chunk_count(a_path: Path, b_path: Path, divergent_tensor: str | None) -> int:
    """Chunks the previous algorithm ran (32 tensors, about 1 GiB each) up to the divergent tensor."""
    from graphkit.check.localize import _chunks, _pair_tensors
    from graphkit.check.localize_feeds import feeds_for
    from graphkit.diff.model_diff import diff_models
    from graphkit.ir.model_io import load_model

    a, b = load_model(a_path), load_model(b_path)
    feeds = feeds_for(a, b, seed=0, dims={"batch": 1})
    pairs, _, _ = _pair_tensors(a, b, diff_models(a, b), feeds)
    for count, chunk in enumerate(_chunks(pairs, 32, 1 << 30), start=1):
        if any(p.tensor_b == divergent_tensor for p in chunk):
            return count
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="input height and width (default 1024)")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1.0)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: its own)")
    args = parser.parse_args()
    import onnx

    from graphkit.testing import modelzoo_softmax_fix

    with tempfile.TemporaryDirectory() as tmp:
        a_path, b_path = Path(tmp) / "wseg.onnx", Path(tmp) / "wseg_modelzoo_fix.onnx"
        start = time.perf_counter()
        cli = [sys.executable, "-m", "graphkit.cli.main", "export", "-o", str(a_path)]
        cli += ["--input-size", str(args.size), str(args.size), "--width", str(args.width)]
        subprocess.run(cli, check=True, capture_output=True)
        export_s = time.perf_counter() - start
        fixed = modelzoo_softmax_fix(onnx.load(str(a_path)))
        onnx.save(fixed, str(b_path))
        del fixed
        new = _child(LOCALIZE, a_path, b_path, args.threads)
        forward_a = _child(FORWARD, a_path, args.threads)
        forward_b = _child(FORWARD, b_path, args.threads)
        old_chunks = _old_chunk_count(a_path, b_path, new["tensor"])
        model_mb = a_path.stat().st_size / 1e6
    forward_pair_s = forward_a["time_s"] + forward_b["time_s"]
    report = {
        "model": {"size": args.size, "width": args.width, "file_mb": round(model_mb, 1), "export_s": export_s},
        "forward_s": {"a": forward_a["time_s"], "b": forward_b["time_s"]},
        "forward_peak_rss_mb": {"a": forward_a["peak_rss_mb"], "b": forward_b["peak_rss_mb"]},
        "new": {**new, "forward_equivalents_per_model": new["time_s"] / forward_pair_s},
        "old_estimate": {
            "chunks": old_chunks,
            "forwards_per_model": old_chunks,
            "time_s": old_chunks * forward_pair_s,
            "how": "chunk count of the previous algorithm x (forward A + forward B) measured in this run",
        },
        "speedup": old_chunks * forward_pair_s / new["time_s"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
