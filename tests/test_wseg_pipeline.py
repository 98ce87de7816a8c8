"""The wseg pipeline end to end on the tiny variant, against the committed torch golden set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from graphkit.ir.model_io import load_model, op_counts
from graphkit.testing import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Run pipelines/wseg_tiny.yaml once (CLI, as a user would) into a temp folder."""
    out = tmp_path_factory.mktemp("wseg_tiny")
    golden = out / "golden"
    shutil.copytree(REPO / "golden" / "wseg_tiny", golden)  # never touch the committed set
    result = run_cli(
        "apply", REPO / "pipelines" / "wseg_tiny.yaml", "--output", out / "run", "--set", f"golden.dir={golden}"
    )
    return result, out / "run"


def test_tiny_pipeline_reuses_committed_torch_golden(tiny_run):
    result, run = tiny_run
    assert result.returncode == 0, result.stderr
    report = json.loads((run / "report.json").read_text())
    # the export is deterministic, so the committed golden set (made by torch) matches it
    assert report["golden"]["reused"] is True
    assert report["golden"]["producer"].startswith("reference: export of wseg, random (seed 0)")
    assert report["weights"] == "random (seed 0)"
    assert [p["status"] for p in report["passes"]][:3] == ["applied", "applied", "applied"]
    # the hand-off: ATC precheck clean on the final model, command script and manifest written
    handoff = report["handoff"]
    assert handoff["precheck"]["counts"]["error"] == 0
    assert Path(handoff["script"]).exists() and Path(handoff["manifest"]).exists()
    assert any("--dynamic_batch_size" in c for c in map(str, handoff["commands"]))


def test_tiny_final_model_has_the_ascend_form(tiny_run):
    _, run = tiny_run
    model = load_model(run / "model.onnx")
    onnx.checker.check_model(model)
    counts = op_counts(model)
    assert "Shape" not in counts
    assert model.opset_import[0].version == 13
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == "Softmax":
            assert producers[node.input[0]].op_type != "Transpose"
            assert all(n.op_type != "Transpose" for n in model.graph.node if node.output[0] in n.input)
    dims = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert dims == {"cls": ["batch", 20], "mask": ["batch", 21, 32, 32]}


def test_tiny_final_model_equals_torch_outputs(tiny_run, cli):
    _, run = tiny_run
    result = cli("validate", run / "model.onnx", "--golden", REPO / "golden" / "wseg_tiny", "--json")
    assert result.returncode == 0, result.stdout
    data = json.loads(result.stdout)
    assert [c["label"] for c in data["cases"]] == ["b1", "b2"]  # dynamic batch at two sizes
    for case in data["cases"]:
        for output in case["outputs"]:
            assert output["passed"] and output["max_abs"] < 1e-5
            if output["name"] == "mask":
                assert output["argmax_agreement"] == 1.0


def test_diff_of_export_and_pipeline_output_names_only_the_intended_changes(tiny_run, tmp_path):
    _, run = tiny_run
    export = run_cli("export", "-o", tmp_path / "export.onnx", "--width", "0.03125", "--input-size", "32", "32")
    assert export.returncode == 0, export.stderr
    result = run_cli("diff", tmp_path / "export.onnx", run / "model.onnx", "--json")
    assert result.returncode == 0, result.stderr
    diff = json.loads(result.stdout)
    deltas = {row["op"]: row["delta"] for row in diff["op_counts"] if row["delta"]}
    assert deltas["Transpose"] == -2 and deltas["Shape"] < 0  # softmax fold; folded shape nodes
    assert deltas.pop("Add") == 1 and deltas["Pad"] == 1  # cat([ones, x]) -> Pad(x, 0) + border mask (pad_with_zero)
    compute_ops = {"Conv", "Relu", "BatchNormalization", "Add", "Mul", "Softmax", "Resize", "Sigmoid"}
    assert not compute_ops & set(deltas), deltas  # nothing spurious in the compute graph
    assert "opset 11->13" in diff["summary"]
    assert "output mask shape" in diff["summary"]  # symbolic H/W dims became static
