"""graphkit.runtime.perf and ``graphkit perf``: schema, static batch handling, files, overhead figure."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

from graphkit.ir.model_io import save_model
from graphkit.runtime.perf import STAT_KEYS, latency_stats, measure_perf, write_perf_report
from graphkit.testing import make_model
from graphkit.util.errors import InputError


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
        # onnxruntime has no device: the figure is host wall-clock, under its own key.
        assert "NPU_compute_time" not in result and "H2D_latency" not in result and "D2H_latency" not in result
        stats = result["host_run_time"]
        assert stats["count"] == 5 and stats["min"] <= stats["median"] <= stats["max"]
        assert result["throughput"] == pytest.approx(1000 * batch / stats["mean"], rel=1e-12)
        assert (
            "wall-clock" in result["measures"]["host_run_time"]
            and "1000 * batchsize" in result["measures"]["throughput"]
        )
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
    with pytest.raises(InputError, match="give its size with --dim H=N"):
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
    assert json.loads(as_json.stdout)["results"][0]["host_run_time"]["count"] == 2


def test_cli_perf_bad_batch_is_one_line(tmp_path):
    model = conv_model(tmp_path / "static.onnx", batch=1, size=(8, 8))
    result = subprocess.run(
        [sys.executable, "-m", "graphkit", "perf", str(model), "--batch-sizes", "4", "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "static batch of 1" in result.stderr
    assert result.stderr.strip().count("\n") == 0


class _FakeDevice:
    """A device backend's interface (device time and copy times per run), for the summary keys only."""

    device = True

    def __init__(self):
        from graphkit.runtime.backend import TensorInfo

        self.inputs = [TensorInfo("x", (2, 3), np.dtype(np.float32))]
        self.outputs = [TensorInfo("y", (2, 3), np.dtype(np.float32))]
        self.runs = 0

    def run(self, feeds):
        self.runs += 1
        return {"y": feeds["x"]}

    def device_time_ms(self):
        return float(self.runs)

    def memcpy_times_ms(self):
        return [0.5] * self.runs, [0.25] * self.runs


def test_device_backend_keeps_ais_bench_keys():
    from graphkit.runtime.perf import measure_batch

    backend = _FakeDevice()
    result = measure_batch(backend, {"x": np.zeros((2, 3), np.float32)}, 2, loop=3, warmup=1)
    # NPU_compute_time comes from the device times (runs 2, 3, 4 after one warm-up), not host time.
    assert result["NPU_compute_time"]["mean"] == 3.0 and result["NPU_compute_time"]["count"] == 3
    assert result["H2D_latency"]["mean"] == 0.5 and result["D2H_latency"]["mean"] == 0.25
    assert result["throughput"] == pytest.approx(1000 * 2 / 3.0)
    assert "host_run_time" not in result and result["host_wall_time"]["count"] == 3


def test_ais_bench_batchsize_only_feeds_throughput_on_a_static_model(tmp_path):
    model = conv_model(tmp_path / "static.onnx", batch=1, size=(8, 8))
    report = measure_perf(model, loop=2, warmup=0, ais_batchsize=4)
    result = report["results"][0]
    assert result["model_batch"] == 1 and result["batchsize"] == 4
    assert result["input_shapes"] == {"image": [1, 3, 8, 8]}
    assert result["throughput"] == pytest.approx(4000 / result["host_run_time"]["mean"])
    dynamic = measure_perf(conv_model(tmp_path / "dyn.onnx"), loop=1, warmup=0, ais_batchsize=3, input_size=[8, 8])
    assert dynamic["results"][0]["input_shapes"] == {"image": [3, 3, 8, 8]}


def test_inputs_too_large_for_memory_are_refused_before_allocating(tmp_path):
    """Sized against MemAvailable and RLIMIT_AS before any array exists (found by the fuzz harness)."""
    import resource
    import subprocess
    import sys

    model = conv_model(tmp_path / "m.onnx")
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30));"
        "from graphkit.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    args = [sys.executable, "-c", code, "perf", str(model), "--batch-sizes", "4", "--input-size", "20000", "20000"]
    result = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("graphkit: error: the inputs at batch 4 need ") and "GiB" in lines[-1]
    assert resource.getrlimit(resource.RLIMIT_AS)  # the limit lived in the child only


def test_symbolic_dims_by_name_with_dim(tmp_path):
    """--dim NAME=N, the spelling every command shares (issue 25), sizes symbolic dims by name."""
    path = conv_model(tmp_path / "m.onnx")
    report = measure_perf(path, batch_sizes=[2], loop=1, warmup=0, dims={"H": 12, "W": 10})
    assert report["results"][0]["input_shapes"]["image"] == [2, 3, 12, 10]
    with pytest.raises(InputError, match="--dim W=N"):
        measure_perf(path, batch_sizes=[1], loop=1, warmup=0, dims={"H": 12})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphkit",
            "perf",
            str(path),
            "--dim",
            "H=8",
            "--dim",
            "W=8",
            "--loop",
            "1",
            "--output",
            str(tmp_path / "out"),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["input_shapes"]["image"] == [1, 3, 8, 8]
