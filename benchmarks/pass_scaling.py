"""Generic passes and the manager's instruments vs node count; the large-graph pipeline vs onnxsim.

Usage: python -m benchmarks.pass_scaling [--factors 1 2 4] [--pipeline-model vit60] [--models-dir DIR]
                                        [--baseline-ref GIT_REF]

The model is a public architecture, Swin Transformer (``transformers`` SwinForImageClassification,
embed_dim 48, code-defined config, seeded random weights), exported at 224x224 with the legacy
exporter (opset 17, dynamic batch). Factor k stacks k times the blocks of each stage (depths
[2k, 2k, 6k, 2k]); k=1 is Swin-T's layout (4,097 nodes, 205 Shape ops).

Per factor, in its own subprocess: each generic pass in pipeline order (eliminate-noops,
fold-shapes, softmax-transpose, fold-batchnorm, dynamic-batch) on the previous pass's output,
and the manager's instruments on each pass's before/after pair (content hash, verify = checker
plus shape inference, diff, op counts). The slope between the smallest and largest factor is
log(time ratio) / log(node ratio): 1 is linear. A rewrite-dense graph (Relu -> Identity pairs,
4,000 to 16,000 nodes, one eliminate-noops rewrite per pair) shows per-rewrite O(n) work.

Then ``graphkit apply`` of that pipeline (every pass validated against onnxruntime goldens at
batch 1) and onnxsim on the same file, each in its own subprocess (time, peak RSS, nodes,
Shape ops left). That file is a ViT (``transformers`` ViTForImageClassification with ViT-Tiny
dims, 60 layers: about 5,900 nodes) by default: on the Swin export fold-shapes folds a Gather
of a scalar index to a 1-D constant and the pipeline stops there (a fold-shapes bug, reported). Needs ``transformers`` (``pip install -e '.[bench]'``). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.models import identity_chain

PASSES = ["eliminate-noops", "fold-shapes", "softmax-transpose", "fold-batchnorm", "dynamic-batch"]

# The tail of both build scripts: export the classifier's logits (legacy exporter, opset 17) to ``path``.
EXPORT_LOGITS = r"""
class Logits(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
    def forward(self, x):
        return self.inner(pixel_values=x).logits
onnx.save(export_legacy(Logits(model), (torch.randn(1, 3, 224, 224),), ["pixel_values"], ["logits"], opset=17), path)
"""

BUILD = (
    r"""
import sys, torch, onnx
from transformers import SwinConfig, SwinForImageClassification
from graphkit.testing import export_legacy
k, path = int(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
config = SwinConfig(image_size=224, embed_dim=48, depths=[2 * k, 2 * k, 6 * k, 2 * k], num_heads=[3, 6, 12, 24])
model = SwinForImageClassification(config).eval()
"""
    + EXPORT_LOGITS
)

PASS_TIMES = r"""
import json, sys, time
from graphkit.diff.model_diff import diff_models
from graphkit.util.errors import GraphkitError
from graphkit.ir.model_io import check_model, content_hash, infer_shapes, load_model, op_counts
from graphkit.transform.registry import get_pass
model = load_model(sys.argv[1])
report = {"nodes": len(model.graph.node), "passes": {}, "instruments": {}}
def timed(what, fn):
    start = time.perf_counter()
    try:
        value = fn()
    except GraphkitError as exc:
        value = exc
    report["instruments"][what] = report["instruments"].get(what, 0.0) + time.perf_counter() - start
    return value
for name in sys.argv[2].split(","):
    start = time.perf_counter()
    result = get_pass(name)()(model)
    report["passes"][name] = {"time_s": time.perf_counter() - start, "nodes_after": len(result.model.graph.node)}
    timed("content_hash", lambda: (content_hash(model), content_hash(result.model)))
    timed("verify", lambda: (check_model(result.model, name), infer_shapes(result.model, name)))
    timed("diff", lambda: diff_models(model, result.model))
    timed("op_counts", lambda: (op_counts(model), op_counts(result.model)))
    model = result.model
print(json.dumps(report))
"""

BUILD_VIT = (
    r"""
import sys, torch, onnx
from transformers import ViTConfig, ViTForImageClassification
from graphkit.testing import export_legacy
layers, path = int(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
config = ViTConfig(hidden_size=192, num_hidden_layers=layers, num_attention_heads=3, intermediate_size=768)
model = ViTForImageClassification(config).eval()
"""
    + EXPORT_LOGITS
)

ONNXSIM = r"""
import json, sys, time, onnxsim
from graphkit.ir.model_io import load_model, save_model
model = load_model(sys.argv[1])
start = time.perf_counter()
out, ok = onnxsim.simplify(model)
elapsed = time.perf_counter() - start
save_model(out, sys.argv[2])
peak_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({"time_s": elapsed, "peak_rss_mb": peak_kb / 1024, "check_ok": bool(ok)}))
"""


def _python(code: str, *args, timeout: int = 3600, source: Path | None = None) -> str:
    """Run ``code`` in a child; ``source``: a graphkit source tree to import instead of the installed one."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    command = [sys.executable, "-c", code, *map(str, args)]
    # cwd: ``python -c`` puts it first on sys.path, ahead of PYTHONPATH
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=source)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _checkout(ref: str, into: Path) -> Path:
    """The graphkit sources of git ``ref`` (this repository) unpacked into ``into``, importable."""
    into.mkdir(parents=True)
    root = Path(__file__).resolve().parent.parent  # git archive in a subfolder would archive only that folder
    archive = subprocess.run(["git", "archive", ref], capture_output=True, check=True, cwd=root).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "graphkit_passes").symlink_to(into / "passes")  # as the editable install maps it
    return into


def _counts(path: Path) -> dict:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {"nodes": len(model.graph.node), "shape_ops": sum(n.op_type == "Shape" for n in model.graph.node)}


def _slope(points: list[tuple[int, float]]) -> float | None:
    (n0, t0), (n1, t1) = points[0], points[-1]
    if n1 == n0 or t0 <= 0 or t1 <= 0:
        return None
    return math.log(t1 / t0) / math.log(n1 / n0)


def _slopes(per_factor: dict) -> dict:
    names = [*PASSES, "instruments:content_hash", "instruments:verify", "instruments:diff", "instruments:op_counts"]
    slopes = {}
    for name in names:
        kind, _, key = name.rpartition(":")
        points = [
            (r["nodes"], (r["instruments"][key] if kind else r["passes"][key]["time_s"])) for r in per_factor.values()
        ]
        slopes[name] = {"time_s": [t for _, t in points], "slope": _slope(points)}
    return slopes


def _dense_summary(dense: dict) -> dict:
    points = [(r["nodes"], r["passes"]["eliminate-noops"]["time_s"]) for r in dense.values()]
    return {
        "nodes": [n for n, _ in points],
        "time_s": [t for _, t in points],
        "slope": _slope(points) if points else None,
    }


def _apply(model: Path, run_dir: Path) -> dict:
    """``graphkit apply`` of the generic pipeline in a child (wall time; peak RSS from its report)."""
    pipeline = run_dir / "generic.yaml"
    pipeline.write_text(
        "name: generic\n"
        f"source: {{onnx: {json.dumps(str(model))}}}\n"
        "golden: {batch_sizes: [1], tolerance: {atol: 1.0e-4, rtol: 1.0e-3}}\n"
        f"passes: {json.dumps(PASSES)}\n"
        f"output: {{dir: {json.dumps(str(run_dir / 'run'))}}}\n"
    )
    command = [str(Path(sys.executable).parent / "graphkit"), "apply", str(pipeline), "--json"]
    env = {**os.environ, "XDG_CACHE_HOME": str(run_dir / "cache")}
    start = time.perf_counter()
    # cwd: the golden cache lives under ./.cache; a fresh folder makes the golden set part of the time
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=run_dir)
    wall = time.perf_counter() - start
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"exit_code": proc.returncode, "time_s": wall, "error": proc.stderr.strip().splitlines()[-1:]}
    out = run_dir / "run" / "model.onnx"
    return {
        "exit_code": proc.returncode,
        "time_s": wall,
        "stages_s": report.get("stages"),
        "passes": [{k: p.get(k) for k in ("name", "status", "times", "error")} for p in report.get("passes", [])],
        "peak_rss_mb": report.get("peak_rss_mb"),
        **(_counts(out) if out.exists() else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4], help="block multipliers (default 1 2 4)")
    parser.add_argument(
        "--pipeline-model",
        default="vit60",
        help="model for apply vs onnxsim: vitN (ViT-Tiny dims, N layers; default vit60, ~5,900 nodes) or swinK "
        "(the Swin model at factor K)",
    )
    parser.add_argument("--models-dir", type=Path, help="keep/reuse the exported models here (default: temporary)")
    parser.add_argument(
        "--baseline-ref", help="also time the passes with graphkit at this git ref (e.g. the commit before a change)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = args.models_dir or Path(tmp)
        models.mkdir(parents=True, exist_ok=True)
        paths = {}
        for k in sorted(args.factors):
            paths[k] = models / f"swin_x{k}.onnx"
            if not paths[k].exists():
                _python(BUILD, k, paths[k])
        arch = "swin" if args.pipeline_model.startswith("swin") else "vit"
        if not args.pipeline_model[len(arch) :].isdigit():
            parser.error(f"--pipeline-model: expected vitN or swinK, got '{args.pipeline_model}'")
        size = int(args.pipeline_model[len(arch) :])
        large = models / (f"swin_x{size}.onnx" if arch == "swin" else f"vit_{size}.onnx")
        if not large.exists():
            _python(BUILD if arch == "swin" else BUILD_VIT, size, large)
        base = _checkout(args.baseline_ref, Path(tmp) / "baseline") if args.baseline_ref else None
        per_factor, baseline = {}, {}
        for k in args.factors:  # baseline and current interleaved, so both see the same machine load
            if base is not None:
                baseline[k] = {
                    **_counts(paths[k]),
                    **json.loads(_python(PASS_TIMES, paths[k], ",".join(PASSES), source=base)),
                }
            per_factor[k] = {**_counts(paths[k]), **json.loads(_python(PASS_TIMES, paths[k], ",".join(PASSES)))}
        slopes = _slopes(per_factor)
        # Rewrite-dense: one removal per two nodes, where per-rewrite O(n) work shows as O(n^2).
        dense, dense_baseline = {}, {}
        for pairs in (2000, 4000, 8000):
            chain = identity_chain(pairs, Path(tmp) / f"identity_chain_{pairs}.onnx")
            if base is not None:
                dense_baseline[pairs] = json.loads(_python(PASS_TIMES, chain, "eliminate-noops", source=base))
            dense[pairs] = json.loads(_python(PASS_TIMES, chain, "eliminate-noops"))
        run_dir = Path(tmp) / "apply"
        run_dir.mkdir()
        pipeline = _apply(large, run_dir)
        onnxsim_out = Path(tmp) / "onnxsim.onnx"
        onnxsim = {**json.loads(_python(ONNXSIM, large, onnxsim_out)), **_counts(onnxsim_out)}
        report = {
            "model": "Swin (transformers SwinForImageClassification, embed_dim 48, 224x224, opset 17, seeded)",
            "pipeline_model": "vitN: transformers ViTForImageClassification, hidden 192, 3 heads, N layers, 224x224",
            "factors": {str(k): v for k, v in per_factor.items()},
            "slopes": slopes,
            "rewrite_dense_eliminate_noops": _dense_summary(dense),
            **(
                {
                    "baseline": {
                        "ref": args.baseline_ref,
                        "factors": {str(k): v for k, v in baseline.items()},
                        "slopes": _slopes(baseline),
                        "rewrite_dense_eliminate_noops": _dense_summary(dense_baseline),
                    }
                }
                if baseline
                else {}
            ),
            "pipeline_vs_onnxsim": {
                "model": args.pipeline_model,
                "source": _counts(large),
                "graphkit_apply_validated": pipeline,
                "onnxsim_unvalidated": onnxsim,
                "ratio": pipeline["time_s"] / onnxsim["time_s"],
            },
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
