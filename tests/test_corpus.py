"""The real-model corpus: a few small models through graphkit, onnxsim and onnxslim here; the whole corpus is slow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    refused = {("t5-encoder", 11)}
    for record in records:
        gk = record["graphkit"]
        if (record["arch"], record["opset"]) in refused:
            assert gk["status"] == "error" and "Min" in gk["reason"], gk
            continue
        assert gk["status"] == "ok" and gk["validated"], (record["arch"], record["opset"], gk.get("reason"))
        if record["batch"] == "dynamic":
            assert gk["input_dim0"] == "batch"
        probe = record.get("dynamic_batch_probe")
        if probe:
            assert probe["status"] in ("declined", "proven"), probe
