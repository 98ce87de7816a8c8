"""Peak memory of one onnxruntime session over a model's weights, per way of handing them over.

Usage: python -m benchmarks.session_memory [--blocks 16] [--hidden 4096] [--model M.onnx]
                                           [--optimization all|none] [--dir DIR]

Builds (or takes) an external-data model of ``benchmarks.large_models`` (16 blocks of 4096:
1.07 GB of float32 weights) and, each in its own process, creates one session at
``--optimization`` and runs one forward, recording the process's peak RSS (VmHWM) and a hash
of the output:

- ``proto``: weights loaded into the proto, handed over by ``create_session`` as in-memory
  OrtValues (``add_external_initializers``; the way before mapped loading; the baseline);
- ``mapped``: ``load_model(mapped=True)`` + ``create_session``: onnxruntime maps the files;
- ``memmap-ortvalues``: OrtValues over read-only ``np.memmap`` views + ``add_external_initializers``;
- ``mapped-no-prepacking``: ``mapped`` with ``session.disable_prepacking=1``.

Outputs whose hash differs from ``proto``'s are marked: a way that changes the numbers is no
candidate. Prints JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ["proto", "mapped", "memmap-ortvalues", "mapped-no-prepacking"]


def _peak_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return -1


def child(mode: str, path: Path, optimization: str) -> dict:
    """One session of ``path`` handed over the ``mode`` way, one forward: peak RSS and output hash."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from graphkit.ir.external_data import mapped_span
    from graphkit.ir.model_io import load_model
    from graphkit.runtime.ort import FOLDER_CONFIG, OPTIMIZATION_LEVELS, create_session

    start = time.perf_counter()
    if mode == "proto":
        session = create_session(load_model(path), optimization=optimization)
    elif mode == "mapped":
        session = create_session(load_model(path, mapped=True), optimization=optimization)
    else:
        model = load_model(path, mapped=True)
        options = ort.SessionOptions()
        options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
        options.enable_cpu_mem_arena = False
        if mode == "mapped-no-prepacking":
            options.add_session_config_entry("session.disable_prepacking", "1")
            options.add_session_config_entry(FOLDER_CONFIG, "/")
            for tensor in model.graph.initializer:
                for entry in tensor.external_data:
                    if entry.key == "location":
                        entry.value = entry.value.lstrip("/")
        else:
            names, values, views = [], [], []
            for tensor in model.graph.initializer:
                if tensor.data_location != onnx.TensorProto.EXTERNAL:
                    continue
                file, offset, _ = mapped_span(tensor)
                view = np.memmap(file, dtype=np.float32, mode="r", offset=offset, shape=tuple(tensor.dims))
                views.append(view)
                names.append(tensor.name)
                values.append(ort.OrtValue.ortvalue_from_numpy(view))
                del tensor.external_data[:]
                tensor.external_data.add(key="location", value="in-memory")
            options.add_external_initializers(names, values)
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 4, session.get_inputs()[0].shape[2]), dtype=np.float32)}
    output = session.run(None, feeds)[0]
    return {
        "peak_rss_mb": _peak_mb(),
        "seconds": round(time.perf_counter() - start, 2),
        "output_sha1": hashlib.sha1(output.tobytes()).hexdigest()[:16],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--optimization", choices=["all", "none"], default="all")
    parser.add_argument("--dir", type=Path, default=Path(".cache/session_memory"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.model, args.optimization)))
        return {}
    if args.model is None:
        from benchmarks.large_models import build_model

        args.dir.mkdir(parents=True, exist_ok=True)
        args.model = args.dir / f"session_{args.blocks}x{args.hidden}.onnx"
        if not args.model.exists():
            build_model(args.model, args.blocks, args.hidden)
    weights = (args.model.parent / (args.model.name + ".data")).stat().st_size
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "load": [round(x, 2) for x in os.getloadavg()],
        "weights_mb": weights >> 20,
    }
    result["optimization"] = args.optimization
    runs = {}
    for mode in MODES:
        command = [sys.executable, "-m", "benchmarks.session_memory", "--child", mode, "--model", str(args.model)]
        command += ["--optimization", args.optimization]
        with tempfile.TemporaryFile() as err:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, check=False)
            if done.returncode:
                err.seek(0)
                runs[mode] = {"rc": done.returncode, "error": err.read().decode(errors="replace")[-400:]}
                continue
        runs[mode] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        runs[mode]["peak_over_weights"] = round(runs[mode]["peak_rss_mb"] / (weights / 2**20), 2)
    baseline = runs.get("proto", {}).get("output_sha1")
    for run in runs.values():
        if "output_sha1" in run:
            run["same_output_as_proto"] = run["output_sha1"] == baseline
    result["runs"] = runs
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
