"""The diff page (``graphkit diff --html``) on real model diffs: size, render and load time.

For each case (tiny wseg export vs its wseg_310p passes; a tiny BERT and a tiny Swin from the
corpus builders vs ``graphkit apply --preset generic``; a generated 6,000-node graph vs a copy
with its Identity nodes removed and every 40th Relu made a Sigmoid) it writes the drawn page and,
as the baseline measured in the same run, the table page (the fallback without grandalf), and
reports per page: bytes, seconds to render in Python (diff excluded), and from headless
Chromium at 1280 px the ``load`` event time (an upper bound of first paint: the page is parsed,
laid out and its script has run), horizontal overflow, drawn regions and requests made.

    .venv/bin/python benchmarks/diff_page.py [--cases wseg,bert,swin,generated] [--keep DIR]

Prints one JSON object. Needs torch + transformers (the [corpus] extra) for bert/swin, grandalf
(the [diff] extra) and a chromium binary.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.browser_probe import probe_page  # noqa: E402
from graphkit.diff import html_view  # noqa: E402
from graphkit.diff.model_diff import diff_models  # noqa: E402


def _cli(*args) -> None:
    done = subprocess.run([sys.executable, "-m", "graphkit", *map(str, args), "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"graphkit {' '.join(map(str, args))} failed: {done.stderr[-800:]}")


def _wseg(work: Path) -> tuple[Path, Path]:
    _cli("export", "-o", work / "wseg.onnx", "--width", "0.03125", "--input-size", "32", "32")
    passes = "eliminate-noops,fold-shapes,softmax-transpose,dynamic-batch"
    _cli("apply", work / "wseg.onnx", work / "wseg_310p.onnx", "--passes", passes)
    return work / "wseg.onnx", work / "wseg_310p.onnx"


def _corpus(name: str, work: Path) -> tuple[Path, Path]:
    from corpus.models import export

    export(name, 17, True, str(work / f"{name}.onnx"))
    _cli("apply", work / f"{name}.onnx", work / f"{name}_generic.onnx", "--preset", "generic")
    return work / f"{name}.onnx", work / f"{name}_generic.onnx"


def generated_pair(blocks: int = 1500) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """A chain of ``blocks`` x (Add, Mul, Identity, Relu) = 4*blocks nodes, and B: Identities
    removed, every 40th Relu a Sigmoid."""

    def build(keep_identity: bool, swap: bool) -> onnx.ModelProto:
        nodes, prev = [], "x"
        for i in range(blocks):
            nodes.append(helper.make_node("Add", [prev, "one"], [f"a{i}"], name=f"/block{i}/Add"))
            nodes.append(helper.make_node("Mul", [f"a{i}", "half"], [f"m{i}"], name=f"/block{i}/Mul"))
            src = f"m{i}"
            if keep_identity:
                nodes.append(helper.make_node("Identity", [src], [f"i{i}"], name=f"/block{i}/Identity"))
                src = f"i{i}"
            op = "Sigmoid" if swap and i % 40 == 0 else "Relu"
            nodes.append(helper.make_node(op, [src], [f"r{i}"], name=f"/block{i}/Act"))
            prev = f"r{i}"
        nodes[-1].output[0] = "y"
        graph = helper.make_graph(
            nodes,
            "generated",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
            [
                helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
                helper.make_tensor("half", TensorProto.FLOAT, [1], [0.5]),
            ],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    return build(True, False), build(False, True)


def _measure(a: onnx.ModelProto, b: onnx.ModelProto, page: Path, draw: bool) -> dict:
    diff = diff_models(a, b)
    available = html_view.layout_available
    if not draw:
        html_view.layout_available = lambda: False
    try:
        start = time.perf_counter()
        text = html_view.render_html(diff, a, b)
        render_s = time.perf_counter() - start
    finally:
        html_view.layout_available = available
    page.write_text(text, encoding="utf-8")
    probe = probe_page(page, width=1280)
    drawn = [r for r in probe["regions"] if r["svgs"] == 2 and r["boxes"] == r["a"] + r["b"]]
    return {
        "bytes": len(text.encode()),
        "render_s": round(render_s, 3),
        "load_ms": round(probe["load_ms"], 1),
        "dom_content_loaded_ms": probe["dom_content_loaded_ms"] and round(probe["dom_content_loaded_ms"], 1),
        "overflow_px": probe["scroll_width"] - probe["client_width"],
        "regions": len(probe["regions"]),
        "regions_drawn": len(drawn),
        "requests": len(probe["resources"]),
        "script_errors": len(probe["errors"]) + len(probe["console_problems"]),
    }


def main() -> int:
    import logging

    logging.getLogger("graphkit.diff.html_view").setLevel(logging.ERROR)  # the baseline's "no grandalf" note
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="wseg,bert,swin,generated")
    parser.add_argument("--keep", metavar="DIR", help="keep the models and pages in DIR")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="gk-diff-page-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for case in args.cases.split(","):
            if case == "generated":
                a, b = generated_pair()
            else:
                path_a, path_b = _wseg(work) if case == "wseg" else _corpus(case, work)
                a, b = onnx.load(path_a), onnx.load(path_b)
            results[case] = {
                "nodes": [len(a.graph.node), len(b.graph.node)],
                "drawn": _measure(a, b, work / f"{case}.html", draw=True),
                "baseline_tables": _measure(a, b, work / f"{case}-tables.html", draw=False),
            }
            print(json.dumps({case: results[case]}), file=sys.stderr)
    print(json.dumps({"benchmark": "diff_page", "width_px": 1280, "cases": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
