"""One rule pass vs the same rewrite as an imperative pass, and onnxscript's engine, on the wseg export.

Usage: python -m benchmarks.rules_vs_imperative [--model PATH] [--size 1024] [--width 1.0] [--sites N]

The rewrite: remove Identity nodes and same-type Casts. Without --model, the wseg model (seeded
random weights, legacy exporter, opset 11, 526 MB at full width) is exported with
``graphkit export``; then an Identity is put after each of the first N Convs and a same-type
Cast after each of the first N Relus, so the rewrite has 2N sites. Each variant runs in its own
subprocess (peak RSS = the child's own VmHWM, model loading included):

- ``load``: load the model only (the baseline every variant pays);
- ``imperative``: a hand-written graphsurgeon pass with the IR helpers (graphkit.ir.graph);
- ``rules``: the same rewrite as graphkit rules (graphkit.transform.rules, the engine built-in passes use);
- ``onnxscript``: the same rules written for onnxscript, run through graphkit's onnxscript
  adapter (proto -> onnx-ir -> rules -> proto), with the two conversions timed on their own.

Every variant must produce the same op counts. Prints JSON; no assertions on time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PREPARE = r"""
import sys
import onnx
from onnx import helper
from graphkit.ir.model_io import load_model, save_model
src, dst, sites = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = load_model(src)
types = {t.name: t.data_type for t in model.graph.initializer}
nodes, convs, relus = [], 0, 0
for node in model.graph.node:
    nodes.append(node)
    if node.op_type == "Conv" and convs < sites:
        old = node.output[0]; node.output[0] = old + "__pre_identity"; convs += 1
        nodes.append(helper.make_node("Identity", [node.output[0]], [old], name=old + "/Identity"))
    elif node.op_type == "Relu" and relus < sites:
        old = node.output[0]; node.output[0] = old + "__pre_cast"; relus += 1
        nodes.append(helper.make_node("Cast", [node.output[0]], [old], to=onnx.TensorProto.FLOAT, name=old + "/Cast"))
del model.graph.node[:]
model.graph.node.extend(nodes)
save_model(model, dst)
print(convs + relus)
"""

CHILD = r"""
import json, sys, time
import onnx
from graphkit.ir.model_io import load_model, op_counts
variant, src = sys.argv[1:3]
model = load_model(src)
extra = {}
start = time.perf_counter()
if variant == "load":
    out = model
elif variant == "imperative":
    from graphkit.ir.graph import ValueTypes, bypass_node, is_default_domain, to_graph, to_model
    from graphkit.transform.pass_base import Pass, PassResult

    class DropIdentityCast(Pass):
        name = "drop-identity-cast"

        def run(self, model):
            types, graph, removed = ValueTypes(model), to_graph(model), 0
            for node in list(graph.nodes):
                if not is_default_domain(node):
                    continue
                same_cast = node.op == "Cast" and types.dtype(node.inputs[0]) == node.attrs.get("to")
                if (node.op == "Identity" or same_cast) and bypass_node(graph, node) is None:
                    removed += 1
            return PassResult(to_model(graph, model), removed > 0, counts={"removed": removed})

    out = DropIdentityCast()(model).model
elif variant == "rules":
    from graphkit.transform.rules import Rule, RulePass
    from graphkit_passes.eliminate_noops import NOOP_RULES

    cls = type("Rules", (RulePass,), {"name": "rules", "rules": NOOP_RULES["identity"] + NOOP_RULES["cast"]})
    out = cls()(model).model
else:
    import onnx_ir as ir
    from onnxscript.rewriter import RewriteRule, RewriteRuleSet
    from onnxscript.rewriter.rules.common import no_op_cast_rule
    from graphkit.transform.onnxscript_rules import OnnxscriptRulePass

    rules = RewriteRuleSet([RewriteRule(lambda op, x: op.Identity(x), lambda op, x: x), no_op_cast_rule])
    cls = type("Onnxscript", (OnnxscriptRulePass,), {"name": "onnxscript", "rule_set": rules})
    out = cls()(model).model
elapsed = time.perf_counter() - start
# the peak of load + pass, before anything else allocates
peak_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
counts, nodes = dict(op_counts(out)), len(out.graph.node)
if variant == "onnxscript":  # the two conversions the adapter pays, timed on their own (after the peak)
    del out
    t0 = time.perf_counter(); ir_model = ir.serde.deserialize_model(model); t1 = time.perf_counter()
    again = ir.serde.serialize_model(ir_model); t2 = time.perf_counter()
    extra = {"proto_to_onnx_ir_s": t1 - t0, "onnx_ir_to_proto_s": t2 - t1}
print(json.dumps({"time_s": elapsed, "peak_rss_mb": peak_kb / 1024, "nodes": nodes, "op_counts": counts, **extra}))
"""


def _child(code: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="ONNX model to rewrite (default: export wseg with 'graphkit export')")
    parser.add_argument("--size", type=int, default=1024, help="input H=W when exporting wseg (default 1024)")
    parser.add_argument("--width", type=float, default=1.0, help="wseg channel width when exporting (1.0 = full)")
    parser.add_argument("--sites", type=int, default=40, help="Identity sites after Convs and Cast sites after Relus")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = Path(args.model) if args.model else tmp / "wseg.onnx"
        report: dict = {}
        if not args.model:
            start = time.perf_counter()
            export = [sys.executable, "-m", "graphkit", "export", "-o", str(src), "--width", str(args.width)]
            export += ["--input-size", str(args.size), str(args.size)]
            proc = subprocess.run(export, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"export failed: {proc.stderr.strip()[-2000:]}")
            report["export_s"] = time.perf_counter() - start
        prepared = tmp / "prepared.onnx"
        report["model"] = str(args.model or f"wseg legacy opset 11, {args.size}x{args.size}, width {args.width}")
        report["model_mb"] = src.stat().st_size / 2**20
        report["sites"] = int(_child(PREPARE, str(src), str(prepared), str(args.sites)))
        for variant in ("load", "imperative", "rules", "onnxscript") * 2:  # twice, alternating; the best counts
            result = json.loads(_child(CHILD, variant, str(prepared)))
            runs = report.setdefault(variant, [])
            runs.append(result)
        best = {
            v: dict(min(report[v], key=lambda r: r["time_s"])) for v in ("load", "imperative", "rules", "onnxscript")
        }
        counts = {v: best[v].pop("op_counts") for v in best}
        for v in report:
            if isinstance(report[v], list):
                for run in report[v]:
                    run.pop("op_counts", None)
        report["same_result"] = counts["imperative"] == counts["rules"] == counts["onnxscript"]
        report["removed"] = best["load"]["nodes"] - best["rules"]["nodes"]
        report["summary"] = {
            v: {"time_s": round(best[v]["time_s"], 3), "peak_rss_mb": round(best[v]["peak_rss_mb"])} for v in best
        }
        report["ratios"] = {
            "time_rules_over_imperative": best["rules"]["time_s"] / best["imperative"]["time_s"],
            "time_onnxscript_over_rules": best["onnxscript"]["time_s"] / best["rules"]["time_s"],
            "rss_over_load": {v: best[v]["peak_rss_mb"] / best["load"]["peak_rss_mb"] for v in best},
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
