"""The real-model corpus: a few small models through graphkit, onnxsim and onnxslim here; the whole corpus is slow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.corpus import steps
from benchmarks.corpus.table import full_table, summary_table, targets_met
from benchmarks.models import ARCHS, detector_model, export

ROOT = Path(__file__).resolve().parent.parent  # the corpus tool runs from here (python -m benchmarks.corpus)


def run_both(tmp_path: Path, path: Path, batch: str) -> tuple[dict, dict]:
    graphkit = steps.step_graphkit(str(path), batch, str(tmp_path / "gk"))
    onnxsim = steps.step_peer("onnxsim", str(path), str(tmp_path / "sim.onnx"))
    return graphkit, onnxsim


def assert_target(record: dict) -> None:
    gk = record["graphkit"]
    assert gk["status"] == "ok" and gk["validated"], gk
    assert not [p for p in gk["passes"] if p["status"] in ("failed", "rolled-back")], gk["passes"]
    for peer in ("onnxsim", "onnxslim"):
        if peer in record:
            theirs = record[peer]
            assert gk["nodes"] <= theirs["nodes"] and gk["shape_ops"] <= theirs["shape_ops"], (peer, gk, theirs)
    assert targets_met(record) == "yes"


@pytest.mark.parametrize("opset", [11, 17])
def test_detector_dynamic_keeps_batch_and_matches_onnxsim(tmp_path, opset):
    path = tmp_path / "detector.onnx"
    import onnx

    onnx.save(detector_model(opset, dynamic=True), path)
    assert path.stat().st_size < 5 * 2**20
    gk, sim = run_both(tmp_path, path, "dynamic")
    record = {"arch": "detector-nms", "opset": opset, "batch": "dynamic", "graphkit": gk, "onnxsim": sim}
    assert_target(record)
    assert gk["input_dim0"] == "batch" and gk["output_dim0"] == ["K", "batch"]
    # each tool's record carries the machine's load when it started (timings are read with it)
    assert all(isinstance(r["load_1m"], float) and r["load_1m"] >= 0 for r in (gk, sim))


def test_detector_exported_at_batch_1_is_not_made_dynamic(tmp_path):
    import onnx

    path = tmp_path / "detector.onnx"
    onnx.save(detector_model(13, dynamic=False), path)
    probe = steps.step_probe(str(path), str(tmp_path))
    assert probe["status"] == "declined"
    assert "cuts the batch axis into 1 fixed pieces" in probe["reason"] and "export without" in probe["reason"]
    # the generic preset alone reaches onnxsim here: the one-piece Split goes (eliminate-noops)
    gk, sim = run_both(tmp_path, path, "static")
    assert_target({"arch": "detector-nms", "opset": 13, "batch": "static", "graphkit": gk, "onnxsim": sim})


def test_swin_static_fold_shapes_is_applied_not_rolled_back(tmp_path):
    pytest.importorskip("transformers")
    path = tmp_path / "swin.onnx"
    model = export("swin", 13, dynamic=False, path=str(path))
    assert path.stat().st_size < 5 * 2**20 and sum(n.op_type == "Shape" for n in model.graph.node) > 0
    gk, sim = run_both(tmp_path, path, "static")
    statuses: dict[str, str] = {}  # a pass of the fixed-point group runs more than once: applied if any run was
    for record in gk["passes"]:
        if statuses.get(record["name"]) != "applied":
            statuses[record["name"]] = record["status"]
    assert statuses["fold-shapes"] == "applied", gk["passes"]
    assert gk["status"] == "ok" and gk["validated"] and gk["shape_ops"] == 0
    assert gk["nodes"] < len(model.graph.node) // 2
    # the generic preset alone (no onnxsim pass in the chain) leaves no more nodes than onnxsim
    assert_target({"arch": "swin", "opset": 13, "batch": "static", "graphkit": gk, "onnxsim": sim})
    assert statuses["fuse-reshapes"] == "applied" and statuses["eliminate-neutral"] == "applied", gk["passes"]


def test_bert_dynamic_batch_and_seq_stay_symbolic(tmp_path):
    pytest.importorskip("transformers")
    path = tmp_path / "bert.onnx"
    export("bert", 17, dynamic=True, path=str(path))
    gk, sim = run_both(tmp_path, path, "dynamic")
    slim = steps.step_peer("onnxslim", str(path), str(tmp_path / "slim.onnx"))
    record = {"arch": "bert", "opset": 17, "batch": "dynamic", "graphkit": gk, "onnxsim": sim}
    assert_target(record)
    assert slim["status"] == "ok" and gk["shape_ops"] <= slim["shape_ops"], (gk, slim)
    assert gk["input_dim0"] == "batch"
    diffs = steps.step_compare(str(path), "dynamic", [str(tmp_path / "gk" / "run" / "model.onnx")])
    assert all(isinstance(v, float) and v <= 1e-4 for v in diffs.values()), diffs


def test_tables_show_targets_and_reasons():
    record = {
        "arch": "m",
        "family": "f",
        "opset": 13,
        "batch": "dynamic",
        "export": {"nodes": 10},
        "graphkit": {
            "status": "ok",
            "nodes": 5,
            "shape_ops": 1,
            "input_dim0": "batch",
            "passes": [],
            "validated": True,
        },
        "onnxsim": {"status": "ok", "nodes": 4, "shape_ops": 2},
    }
    assert targets_met(record) == "no: nodes > onnxsim"
    record["graphkit"]["nodes"] = 4
    assert targets_met(record) == "yes"
    record["onnxslim"] = {"status": "ok", "nodes": 3, "shape_ops": 0}
    assert targets_met(record) == "no: nodes > onnxslim, Shape ops > onnxslim"
    record["onnxslim"] = {"status": "error", "reason": "x"}  # a failed peer is left out
    assert targets_met(record) == "yes"
    record["graphkit"]["input_dim0"] = 1
    assert targets_met(record) == "no: batch"
    table = full_table([record])
    assert "| m | 13 | dynamic | 10 | 4 / 1 | 4 / 2 |" in table
    assert "| m | 1 | 1 | 0 | 10 → 4 / 4 | 1 / 2 |" in summary_table([record])


# MobileViT's 128x128 export takes the longest (~10 s here): slow
NEW_ARCHS = ["llama", "qwen2", "bart", "t5", pytest.param("mobilevit", marks=pytest.mark.slow)]
NEW_ARCHS += ["maxvit", "shufflenetv2", "yolo-head"]


@pytest.mark.parametrize("name", NEW_ARCHS)
def test_new_builder_exports_a_valid_dynamic_model_at_opset_17_that_matches_torch(tmp_path, name):
    """Each builder of the larger corpus (issue 23) exports a checker-valid model whose batch (and
    seq) stay symbolic, and onnxruntime at batch 2 gives the torch module's output."""
    torch = pytest.importorskip("torch")
    import onnx

    from benchmarks.models import traced_module
    from graphkit.runtime.ort import run_ort

    arch = ARCHS[name]
    proto = export(name, 17, True, str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in proto.graph.input]
    if arch.text:
        assert dims == [["batch", "seq"], ["batch", "seq"]]
        ids = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(1))
        inputs = (ids, torch.ones_like(ids))
    else:
        assert dims == [["batch", 3, arch.image, arch.image]]
        inputs = (torch.randn(2, 3, arch.image, arch.image, generator=torch.Generator().manual_seed(1)),)
    with torch.no_grad():
        expected = traced_module(name)(*inputs).numpy()
    got = run_ort(proto, {v.name: t.numpy() for v, t in zip(proto.graph.input, inputs, strict=True)})["output"]
    assert got.shape == expected.shape and got.shape[0] == 2
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_unknown_architecture_is_one_line_error():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.corpus", "--archs", "bert,nope"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown architecture(s) nope" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_whole_corpus_no_crash_all_validated(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.corpus", "--out", str(out), "--table", "", "--readme", ""],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    records = json.loads(out.read_text())
    assert len({r["arch"] for r in records}) == len(ARCHS) >= 12
    # onnxruntime rejects the T5 opset-11 source itself (an int64 Min, invalid before opset 12): a
    # one-line error naming the source, never a crash; onnxsim writes a model onnxruntime rejects.
    crashes = {(r["arch"], r["opset"]) for r in records if (r.get("graphkit") or {}).get("status") == "crash"}
    assert not crashes, crashes
    assert result.returncode == 0, result.stdout[-2000:]
    # (the static exports fold the position buckets into constants: no int64 Min there)
    refused = {("t5-encoder", 11, "dynamic"), ("t5", 11, "dynamic")}
    for record in records:
        gk = record["graphkit"]
        if (record["arch"], record["opset"], record["batch"]) in refused:
            assert gk["status"] == "error" and "Min" in gk["reason"], gk
            continue
        assert gk["status"] == "ok" and gk["validated"], (record["arch"], record["opset"], gk.get("reason"))
        if record["batch"] == "dynamic":
            assert gk["input_dim0"] == "batch"
        probe = record.get("dynamic_batch_probe")
        if probe:
            assert probe["status"] in ("declined", "proven"), probe
