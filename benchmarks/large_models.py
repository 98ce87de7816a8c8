"""graphkit's validated generic preset vs onnxsim and onnxslim on models with gigabytes of weights.

Usage: python -m benchmarks.large_models [--size 2.5|6] [--blocks N] [--hidden 4096]
                                         [--tools graphkit onnxsim onnxsim-external onnxslim]
                                         [--dir DIR] [--keep]

The model (issue 24): ``--blocks`` blocks of ``MatMul[hidden x hidden] + Add + Relu`` followed by a
``Shape -> Gather -> Gather -> Concat -> Reshape`` chain that a simplifier folds to one constant
shape, on an input ``x[batch, seq, hidden]`` with symbolic batch and seq. ``--size 2.5`` is 38
blocks of 4096 (2.55 GB of float32 weights), ``--size 6`` 90 blocks (6.04 GB). The weights are
written by this script to one external data file, a block at a time from a seeded numpy
generator (never all in memory), in ``--dir`` (default ``.cache/large_models``; it needs the
weights' size free three times over: the model and two outputs at a time). Everything the run
wrote is deleted at the end unless ``--keep``.

Each tool runs in its own process, one after the other, measured from the parent with
``os.wait4``: wall time, user and system CPU, and peak RSS (``ru_maxrss``, the child's VmHWM):

- ``graphkit``: ``graphkit apply M.onnx OUT.onnx --preset generic`` (every changed pass
  validated against onnxruntime, a fresh cache);
- ``onnxsim``: the ``onnxsim`` command with no output check and no certification (unvalidated),
  saving inline; on a model over 2 GB onnxsim's own save may move weights out;
- ``onnxsim-external``: the same with ``--save-as-external-data``;
- ``onnxslim``: the ``onnxslim`` command (unvalidated), saving with ``--save-as-external-data``;
- ``graphkit-baseline``: ``graphkit apply`` from another checkout (``--baseline-src``);
- ``graphkit-diff``: ``graphkit diff`` of the model and a copy whose graph alone changed (one
  node renamed; its data file a symbolic link to the model's).

Per tool: exit code, node counts in and out (of the output file's graph, read without weights),
output bytes (model + data files), and the ratios the issue targets (time over onnxslim's,
peak RSS over the weights, system CPU share). The load average is recorded before and after.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from benchmarks.baseline_checkout import PYTHON_FLAGS, baseline_env

BIN = Path(sys.executable).parent
SIZES = {"2.5": 38, "6": 90}  # blocks of 4096x4096 float32 (64 MiB each)
SEED = 24
BASELINE_SRC: Path | None = None  # set by --baseline-src
TOOLS = ["onnxslim", "onnxsim", "onnxsim-external", "graphkit", "graphkit-baseline", "graphkit-diff"]


def build_model(path: Path, blocks: int, hidden: int = 4096, seed: int = SEED) -> dict:
    """Write the benchmark model to ``path`` and its weights to ``path.name + '.data'``, streaming.

    Returns the node count and the weights' bytes. Memory stays near one block's weights.
    """
    data_name = path.name + ".data"
    rng = np.random.default_rng(seed)
    nodes, initializers = [], []
    offset = 0

    def external(name: str, array: np.ndarray, handle) -> None:
        nonlocal offset
        handle.write(array.tobytes())
        stub = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=array.shape)
        stub.data_location = TensorProto.EXTERNAL
        for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(array.nbytes))):
            stub.external_data.add(key=key, value=value)
        initializers.append(stub)
        offset += array.nbytes

    scale = np.float32(1.0 / np.sqrt(hidden))
    with open(path.parent / data_name, "wb") as handle:
        previous = "x"
        for block in range(blocks):
            weight = rng.standard_normal((hidden, hidden), dtype=np.float32) * scale
            bias = rng.standard_normal(hidden, dtype=np.float32) * np.float32(0.1)
            external(f"w{block}", weight, handle)
            external(f"b{block}", bias, handle)
            del weight
            p = f"blk{block}_"
            initializers += [
                helper.make_tensor(p + "i0", TensorProto.INT64, [1], [0]),
                helper.make_tensor(p + "i1", TensorProto.INT64, [1], [1]),
                helper.make_tensor(p + "h", TensorProto.INT64, [1], [hidden]),
            ]
            nodes += [
                helper.make_node("MatMul", [previous, f"w{block}"], [p + "mm"]),
                helper.make_node("Add", [p + "mm", f"b{block}"], [p + "add"]),
                helper.make_node("Relu", [p + "add"], [p + "relu"]),
                helper.make_node("Shape", [p + "relu"], [p + "shape"]),
                helper.make_node("Gather", [p + "shape", p + "i0"], [p + "batch"], axis=0),
                helper.make_node("Gather", [p + "shape", p + "i1"], [p + "seq"], axis=0),
                helper.make_node("Concat", [p + "batch", p + "seq", p + "h"], [p + "target"], axis=0),
                helper.make_node("Reshape", [p + "relu", p + "target"], [p + "out"]),
            ]
            previous = p + "out"
    nodes.append(helper.make_node("Identity", [previous], ["y"]))
    graph = helper.make_graph(
        nodes,
        "large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", hidden])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="large_models")
    model.ir_version = 8
    onnx.save(model, str(path))
    return {"nodes": len(nodes), "weights_bytes": offset}


def _graph_counts(path: Path) -> dict:
    """Node count and Shape ops of an ONNX file, read without its external data."""
    if not path.exists():
        return {}
    model = onnx.load(str(path), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    return {"nodes": len(ops), "shape_ops": ops.count("Shape")}


def _files_bytes(path: Path) -> int:
    """Bytes of the output model and of every file beside it that it names (its external data)."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def _measured(command: list[str], env: dict) -> dict:
    """Run ``command`` in its own process: exit code, wall, user and system CPU, peak RSS."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "rc": process.returncode,
        "wall_s": round(wall, 2),
        "user_s": round(usage.ru_utime, 2),
        "system_s": round(usage.ru_stime, 2),
        "system_share": round(usage.ru_stime / cpu, 3) if cpu else None,
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 3),
        "tail": output.decode(errors="replace")[-600:] if process.returncode else "",
    }


def _commands(tool: str, model: Path, out: Path, cache: Path) -> tuple[list[str], dict]:
    env = dict(os.environ, GRAPHKIT_CACHE=str(cache))
    if tool == "graphkit":
        return [str(BIN / "graphkit"), "apply", str(model), str(out), "--preset", "generic"], env
    if tool == "graphkit-baseline":  # the same command from another source tree (--baseline-src)
        launch = "from graphkit.cli.main import console_main; console_main()"
        return [
            sys.executable,
            *PYTHON_FLAGS,
            "-c",
            launch,
            "apply",
            str(model),
            str(out),
            "--preset",
            "generic",
        ], baseline_env(env, BASELINE_SRC)
    if tool == "onnxsim":
        return [str(BIN / "onnxsim"), str(model), str(out), "0", "--no-certify"], env
    if tool == "onnxsim-external":
        return [str(BIN / "onnxsim"), str(model), str(out), "0", "--no-certify", "--save-as-external-data"], env
    if tool == "onnxslim":
        return [str(BIN / "onnxslim"), str(model), str(out), "--save-as-external-data"], env
    if tool == "graphkit-diff":  # the model against a copy whose graph alone changed (weights shared)
        return [str(BIN / "graphkit"), "diff", str(model), str(_graph_changed_copy(model, out.parent))], env
    raise ValueError(tool)


def _graph_changed_copy(model: Path, folder: Path) -> Path:
    """``model`` with one node renamed, in ``folder``, its external data a symbolic link to the original."""
    copy = onnx.load(str(model), load_external_data=False)
    copy.graph.node[0].name = "renamed_for_the_diff"
    target = folder / model.name
    onnx.save(copy, str(target))
    data = folder / (model.name + ".data")
    data.unlink(missing_ok=True)
    data.symlink_to(model.parent / (model.name + ".data"))
    return target


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="2.5")
    parser.add_argument("--blocks", type=int, default=None, help="overrides --size")
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--tools", nargs="+", default=TOOLS[:4], choices=TOOLS)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="a checkout of graphkit (e.g. `git worktree add DIR REF`) run as tool graphkit-baseline",
    )
    parser.add_argument("--model", type=Path, default=None, help="an existing model instead of building one")
    parser.add_argument("--dir", type=Path, default=Path(".cache/large_models"))
    parser.add_argument("--keep", action="store_true", help="keep the model and the outputs")
    args = parser.parse_args(argv)
    global BASELINE_SRC
    BASELINE_SRC = args.baseline_src.resolve() if args.baseline_src else None
    if BASELINE_SRC is not None and "graphkit-baseline" not in args.tools:
        args.tools.append("graphkit-baseline")
    blocks = args.blocks or SIZES[args.size]
    work = args.dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    model = args.model.resolve() if args.model else work / f"large_{blocks}x{args.hidden}.onnx"
    result: dict = {"date": time.strftime("%Y-%m-%d"), "load_before": _load(), "blocks": blocks, "hidden": args.hidden}
    try:
        start = time.perf_counter()
        if args.model:
            data = model.parent / (model.name + ".data")
            result["model"] = {**_graph_counts(model), "weights_bytes": data.stat().st_size if data.exists() else 0}
            result["blocks"] = result["hidden"] = None  # a given model: its counts above, not the flags
        else:
            result["model"] = build_model(model, blocks, args.hidden)
        result["model"]["build_s"] = round(time.perf_counter() - start, 1)
        weights = result["model"]["weights_bytes"]
        runs = {}
        for tool in args.tools:
            out_dir = work / f"out_{tool}"
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.mkdir()
            out = out_dir / "out.onnx"
            command, env = _commands(tool, model, out, out_dir / "cache")
            print(f"running {tool} ...", file=sys.stderr, flush=True)
            run = _measured(command, env)
            run.update(_graph_counts(out))
            run["output_bytes"] = _files_bytes(out) if out.exists() else 0
            run["peak_over_weights"] = round(run["peak_rss_gb"] * 1e9 / weights, 2)
            runs[tool] = run
            if not args.keep:
                shutil.rmtree(out_dir, ignore_errors=True)
        slim = runs.get("onnxslim")
        for run in runs.values():
            if slim and slim["rc"] == 0:
                run["wall_over_onnxslim"] = round(run["wall_s"] / slim["wall_s"], 2)
        result["runs"] = runs
    finally:
        if not args.keep and not args.model:
            for path in (model, model.parent / (model.name + ".data")):
                path.unlink(missing_ok=True)
    result["load_after"] = _load()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
