"""The keep-list search (lockstep ranking + bisection) against a one-run-per-node search, same model, same run.

Builds a transformer in code (``--layers`` blocks of written-out LayerNorm, single-head attention
and an MLP: 34 nodes a block, 1,360 nodes at the default 40 blocks, 2,720 at 80), with one block whose
MLP activation passes 65,504 before a Div (the break fp16 must be fixed), then measures:

- graphkit: ``preview_precision`` (one emulated forward, the lockstep walk, the search and the
  verifying forward): forwards, lockstep segments, seconds, the keep-list;
- naive: one emulated forward per candidate node kept alone in fp32 (Polygraphy-style per-layer
  runs), then prefixes of that ranking until the outputs pass. On a model of thousands of nodes
  this takes long, so by default it runs on ``--baseline-nodes`` candidates (those of the broken
  block included) and extrapolates the time of the rest from the measured time per forward; the
  JSON says which figures are measured and which extrapolated (``--baseline-nodes 0``: all).

Prints JSON. Run: ``.venv/bin/python benchmarks/precision_search.py [--layers 40]`` (about 3 minutes here; 80 layers about 8).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphkit.check.fp16_emulation import candidate_nodes
from graphkit.check.precision import EmulatedRunner, preview_precision, reference_cases
from graphkit.check.precision_analysis import fp16_tolerances

SEQ, HIDDEN = 8, 16


def transformer(layers: int, broken: int, seed: int = 0) -> onnx.ModelProto:
    """``layers`` pre-norm blocks; block ``broken`` scales its MLP activation past fp16's range then back."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], {}

    def weight(name, shape, scale):
        inits[name] = (scale * rng.standard_normal(shape)).astype(np.float32)
        return name

    def const(name, value):
        inits[name] = np.array(value, np.float32)
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def layer_norm(x, p):
        mean = node("ReduceMean", [x], f"{p}_mean", axes=[-1], keepdims=1)
        centered = node("Sub", [x, mean], f"{p}_sub")
        square = node("Mul", [centered, centered], f"{p}_sq")
        var = node("ReduceMean", [square], f"{p}_var", axes=[-1], keepdims=1)
        std = node("Sqrt", [node("Add", [var, const(f"{p}_eps", 1e-5)], f"{p}_add_eps")], f"{p}_sqrt")
        normed = node("Div", [centered, std], f"{p}_div")
        scaled = node("Mul", [normed, weight(f"{p}_g", [HIDDEN], 0.1)], f"{p}_scale")
        return node("Add", [scaled, weight(f"{p}_b", [HIDDEN], 0.1)], f"{p}_shift")

    x = "x"
    for i in range(layers):
        p = f"l{i}"
        h = layer_norm(x, f"{p}_ln1")
        q = node("MatMul", [h, weight(f"{p}_wq", [HIDDEN, HIDDEN], 0.25)], f"{p}_q")
        k = node("MatMul", [h, weight(f"{p}_wk", [HIDDEN, HIDDEN], 0.25)], f"{p}_k")
        v = node("MatMul", [h, weight(f"{p}_wv", [HIDDEN, HIDDEN], 0.25)], f"{p}_v")
        kt = node("Transpose", [k], f"{p}_kt", perm=[1, 0])
        scores = node("Div", [node("MatMul", [q, kt], f"{p}_qk"), const(f"{p}_sqrt_d", 4.0)], f"{p}_scores")
        attn = node("Softmax", [scores], f"{p}_softmax", axis=-1)
        ctx = node("MatMul", [attn, v], f"{p}_ctx")
        x = node("Add", [x, node("MatMul", [ctx, weight(f"{p}_wo", [HIDDEN, HIDDEN], 0.25)], f"{p}_o")], f"{p}_res1")
        h = layer_norm(x, f"{p}_ln2")
        gain = 2e5 if i == broken else 1.0
        up = node("MatMul", [h, weight(f"{p}_w1", [HIDDEN, 4 * HIDDEN], 0.25)], f"{p}_up")
        big = node("Mul", [up, const(f"{p}_gain", gain)], f"{p}_gain_mul")
        act = node("Div", [node("Relu", [big], f"{p}_relu"), const(f"{p}_ungain", gain)], f"{p}_ungain_div")
        down = node("MatMul", [act, weight(f"{p}_w2", [4 * HIDDEN, HIDDEN], 0.125)], f"{p}_down")
        x = node("Add", [x, down], f"{p}_res2")
    graph = helper.make_graph(
        nodes,
        "transformer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [SEQ, HIDDEN])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [SEQ, HIDDEN])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def naive(model, cases, tolerances, sample: list[int]) -> dict:
    """One forward per sampled candidate kept alone, ranked by the output error left; then prefixes until passing."""
    runner = EmulatedRunner(model, cases, tolerances)
    fp16 = set(range(len(model.graph.node)))
    start = time.perf_counter()
    error = {}
    for index in sample:
        outputs = runner.outputs(fp16 - {index})
        error[index] = max(o.comparison.max_abs for case in outputs for o in case)
    ranked = sorted(sample, key=lambda i: error[i])
    per_node_seconds = time.perf_counter() - start
    found = None
    for size in range(1, len(ranked) + 1):
        if runner.passes(fp16 - set(ranked[:size])):
            found = [model.graph.node[i].name for i in ranked[:size]]
            break
    return {
        "forwards": runner.forwards,
        "seconds": round(time.perf_counter() - start, 2),
        "per_node_seconds": round(per_node_seconds, 2),
        "seconds_per_forward": round(per_node_seconds / max(1, len(sample)), 4),
        "keep_list": found,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=40)
    parser.add_argument("--baseline-nodes", type=int, default=24, help="candidates the naive search runs (0: all)")
    args = parser.parse_args()
    broken = args.layers // 2
    model = transformer(args.layers, broken)
    feeds = {"x": np.random.default_rng(1).standard_normal((SEQ, HIDDEN)).astype(np.float32)}
    cases = reference_cases(model, [feeds])
    tolerances = fp16_tolerances(None, 1e-2, 1e-2)
    start = time.perf_counter()
    preview = preview_precision(model, cases, set(range(len(model.graph.node))), tolerances)
    ours = {
        "forwards": preview.forwards,
        "lockstep_segments": preview.lockstep.segments,
        "seconds": round(time.perf_counter() - start, 2),
        "keep_list": preview.keep_nodes,
        "first_nonfinite": preview.lockstep.first_nonfinite and preview.lockstep.first_nonfinite.node,
    }
    candidates = candidate_nodes(model)
    if args.baseline_nodes and args.baseline_nodes < len(candidates):
        must = [i for i in candidates if model.graph.node[i].name.startswith(f"l{broken}_")]
        rest = [i for i in candidates if i not in set(must)]
        step = max(1, len(rest) // max(1, args.baseline_nodes - len(must)))
        sample = sorted(set(must) | set(rest[::step][: max(0, args.baseline_nodes - len(must))]))
    else:
        sample = candidates
    baseline = naive(model, cases, tolerances, sample)
    baseline["candidates_run"] = len(sample)
    baseline["measured"] = len(sample) == len(candidates)
    baseline["extrapolated_seconds_all_candidates"] = round(baseline["seconds_per_forward"] * len(candidates), 1)
    print(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
                "model": {"layers": args.layers, "nodes": len(model.graph.node), "candidates": len(candidates)},
                "graphkit": ours,
                "one_run_per_node": baseline,
                "forwards_ratio": round(
                    (len(candidates) + 1) / max(1, ours["forwards"]), 1
                ),  # naive needs at least one forward per candidate
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
