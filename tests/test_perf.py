"""graphkit.perf and ``graphkit perf``: schema, static batch handling, files, overhead figure."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

from graphkit.errors import InputError
from graphkit.model import save_model
from graphkit.perf import STAT_KEYS, latency_stats, measure_perf, write_perf_report
from graphkit.testing import make_model


def conv_model(path, batch="N", size=("H", "W")):
    rng = np.random.default_rng(0)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], rng.standard_normal(108).astype(np.float32))
    node = helper.make_node("Conv", ["image", "w"], ["out"], pads=[1, 1, 1, 1])
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, *size])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 4, *size])
    return save_model(make_model([node], [x], [y], [weight]), path)


def test_latency_stats_match_numpy():
    values = [3.0, 1.0, 2.0, 10.0]
    stats = latency_stats(values)
    assert tuple(stats) == STAT_KEYS
    assert stats["min"] == 1.0 and stats["max"] == 10.0 and stats["mean"] == 4.0 and stats["median"] == 2.5
    assert stats["percentile(99%)"] == pytest.approx(np.percentile(values, 99), rel=1e-12)
    assert stats["count"] == 4
    assert latency_stats([])["count"] == 0


def test_measure_perf_schema(tmp_path):
    model = conv_model(tmp_path / "conv.onnx")
    report = measure_perf(
        model, batch_sizes=[1, 2], loop=5, warmup=1, input_size=[16, 16], backend_options={"threads": 1}
    )
    assert report["session_creation_s"] > 0 and report["skipped"] == []
    for result, batch in zip(report["results"], [1, 2]):
        assert result["batchsize"] == batch
        assert result["input_shapes"] == {"image": [batch, 3, 16, 16]}
        stats = result["NPU_compute_time"]
        assert stats["count"] == 5 and stats["min"] <= stats["median"] <= stats["max"]
        assert result["throughput"] == pytest.approx(1000 * batch / stats["mean"], rel=1e-12)
        assert result["H2D_latency"]["count"] == 0
        assert result["overhead"]["mean_ms"] >= 0 and result["overhead"]["percent"] >= 0
    paths = write_perf_report(report, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["results"][0]["batchsize"] == 1
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_static_batch_runs_only_its_size(tmp_path):
    model = conv_model(tmp_path / "static.onnx", batch=2, size=(8, 8))
    report = measure_perf(model, batch_sizes=[1, 2, 4], loop=2, warmup=0)
    assert [r["batchsize"] for r in report["results"]] == [2]
    assert [s["batchsize"] for s in report["skipped"]] == [1, 4]
    assert "static batch of 2" in report["skipped"][0]["reason"]
    with pytest.raises(InputError, match="static batch of 2"):
        measure_perf(model, batch_sizes=[1], loop=1)


def test_symbolic_dims_need_input_size(tmp_path):
    with pytest.raises(InputError, match="--input-size"):
        measure_perf(conv_model(tmp_path / "conv.onnx"), loop=1)


def test_torch_backend_perf_needs_full_dims():
    import torch

    module = torch.nn.Conv2d(3, 2, 1)
    report = measure_perf(module, batch_sizes=[2], loop=2, warmup=0, backend="torch", input_size=[1, 3, 8, 8])
    assert report["results"][0]["input_shapes"] == {"image": [2, 3, 8, 8]}


def test_cli_perf_writes_table_json_plot(tmp_path):
    model = conv_model(tmp_path / "conv.onnx")
    out = tmp_path / "perf"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphkit",
            "perf",
            str(model),
            "--batch-sizes",
            "1,2",
            "--loop",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--input-size",
            "16",
            "16",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "FPS" in result.stdout and "overhead" in result.stdout and "session creation" in result.stdout
    assert (out / "perf_summary.json").exists() and (out / "perf.png").exists()
    as_json = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphkit",
            "perf",
            str(model),
            "--loop",
            "2",
            "--input-size",
            "8",
            "8",
            "--output",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["results"][0]["NPU_compute_time"]["count"] == 2


def test_cli_perf_bad_batch_is_one_line(tmp_path):
    model = conv_model(tmp_path / "static.onnx", batch=1, size=(8, 8))
    result = subprocess.run(
        [sys.executable, "-m", "graphkit", "perf", str(model), "--batch-sizes", "4", "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "static batch of 1" in result.stderr
    assert result.stderr.strip().count("\n") == 0
