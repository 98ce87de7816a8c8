"""The ais_bench (device) backend through the real code path, with a fake ais_bench package.

``graphkit infer``/``perf --backend ais_bench`` run in a subprocess with the fake of
tests/ascend/fake_ais_bench.py importable (an ONNX file stands in for the OM; onnxruntime
computes the outputs, the fake records every session call and adds fixed device times:
2.0 ms compute, 0.25 ms H2D, 0.5 ms D2H per run). Sources for the behaviour: Ascend/tools
ais-bench_workload/tool/ais_bench/ais_bench/infer/{__main__,interface,miscellaneous}.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest


def _bins(folder, count, shape=(1, 3, 8, 8)):
    folder.mkdir()
    rng = np.random.default_rng(3)
    arrays = {}
    for i in range(count):
        arrays[f"img_{i}"] = rng.standard_normal(shape).astype(np.float32)
        arrays[f"img_{i}"].tofile(folder / f"img_{i}.bin")
    return arrays


def _reference(model, image):
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"image": image})[0]


def test_perf_reports_copy_times_with_current_and_old_api_names(classifier, fake_ais_bench_apis, tmp_path):
    classifier(tmp_path / "m_bs2.onnx", [2, 3, 8, 8])
    result, calls = fake_ais_bench_apis("perf", ["--model", "m_bs2.onnx", "--loop", "5", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)["results"][0]
    # 5 timed runs; the warm-up copies are dropped, as ais_bench resets MemorySummary after warm-up.
    assert run["H2D_latency"]["count"] == 5 and run["H2D_latency"]["mean"] == pytest.approx(0.25)
    assert run["D2H_latency"]["count"] == 5 and run["D2H_latency"]["mean"] == pytest.approx(0.5)
    assert run["NPU_compute_time"]["mean"] == pytest.approx(2.0)
    assert run["throughput"] == pytest.approx(1000 * 2 / 2.0)  # the model's batch 2, ais_bench's formula
    assert [c["event"] for c in calls][:2] == ["init", "set_staticbatch"]


def test_infer_reports_copy_times_and_the_model_batch(classifier, fake_ais_bench_apis, tmp_path):
    model = classifier(tmp_path / "m_bs2.onnx", [2, 3, 8, 8])
    arrays = _bins(tmp_path / "prep", 5)  # 3 batches of 2, the last padded
    args = ["--model", "m_bs2.onnx", "--input", "./prep", "--output", "out", "--output_dirname", "d", "--loop", "2"]
    result, _ = fake_ais_bench_apis("infer", args, tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "d_summary.json").read_text())
    assert summary["H2D_latency"]["count"] == 6 and summary["H2D_latency"]["mean"] == pytest.approx(0.25)
    assert summary["D2H_latency"]["count"] == 6 and summary["D2H_latency"]["mean"] == pytest.approx(0.5)
    assert summary["batchsize"] == 2 and summary["throughput"] == pytest.approx(1000.0)
    assert summary["filesinfo"]["0"] == {"infiles": ["./prep/img_0.bin"], "outfiles": ["out/d/img_0_0.bin"]}
    pair = np.concatenate([arrays["img_0"], arrays["img_1"]])
    got = np.fromfile(tmp_path / "out" / "d" / "img_1_0.bin", dtype=np.float32)
    np.testing.assert_allclose(got, _reference(model, pair)[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("dims", "flags", "expected_call", "fed"),
    [
        (["n", 3, 8, 8], ["--dymBatch", "2"], ("set_dynamic_batchsize", 2), [2, 3, 8, 8]),
        ([1, 3, "h", "w"], ["--dymHW", "8,8"], ("set_dynamic_hw", [8, 8]), [1, 3, 8, 8]),
        (["n", 3, "h", "w"], ["--dymDims", "image:1,3,8,8"], ("set_dynamic_dims", "image:1,3,8,8"), [1, 3, 8, 8]),
        (
            ["n", 3, "h", "w"],
            ["--dym-shape", "image:1,3,8,8", "--output-size", "10000"],  # msit's spellings
            ("set_custom_outsize", [10000]),
            [1, 3, 8, 8],
        ),
    ],
)
def test_dynamic_options_reach_the_device_session(
    classifier, fake_ais_bench, tmp_path, dims, flags, expected_call, fed
):
    model = classifier(tmp_path / "dyn.onnx", dims)
    arrays = _bins(tmp_path / "prep", 4)
    args = ["--om-model", "dyn.onnx", "--input", "prep", "--output", "out", "--output_dirname", "r", *flags]
    result, calls = fake_ais_bench("infer", args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert {"event": expected_call[0], "value": expected_call[1]} in calls
    assert {c["shapes"][0] == fed for c in calls if c["event"] == "infer"} == {True}
    files_per_batch = fed[0]
    batch = np.concatenate([arrays[f"img_{i}"] for i in range(files_per_batch)])
    got = np.fromfile(tmp_path / "out" / "r" / "img_0_0.bin", dtype=np.float32)
    np.testing.assert_allclose(got, _reference(model, batch)[0], rtol=1e-5, atol=1e-6)
    summary = json.loads((tmp_path / "out" / "r_summary.json").read_text())
    assert summary["batchsize"] == fed[0]  # ais_bench's get_batchsize: the option's dim 0


@pytest.mark.parametrize("mode", ["--auto_set_dymshape_mode", "--auto-set-dymdims-mode"])
def test_auto_modes_set_each_runs_shape_instead_of_running_static(classifier, fake_ais_bench, tmp_path, mode):
    classifier(tmp_path / "dyn.onnx", ["n", 3, "h", "w"])
    prep = tmp_path / "prep"
    prep.mkdir()
    shapes = [(1, 3, 8, 8), (3, 3, 6, 10)]
    for i, shape in enumerate(shapes):
        np.save(prep / f"s{i}.npy", np.ones(shape, np.float32))
    result, calls = fake_ais_bench("infer", ["--model", "dyn.onnx", "--input", "prep", mode, "1", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    setter = "set_dynamic_shape" if "shape" in mode else "set_dynamic_dims"
    assert [c["value"] for c in calls if c["event"] == setter][-2:] == ["image:1,3,8,8", "image:3,3,6,10"]
    assert json.loads(result.stdout)["batchsize"] == 2  # ais_bench: the mean of dim 0 over the runs


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dymBatch", "2", "--dymHW", "8,8"], "give at most one of --dymBatch"),
        (["--dymDims", "nope:1,3,8,8"], "--dymDims: 'nope' is not a model input"),
        (["--dymShape", "image:1,3,8"], "'image' has 4 dims in the model, 3 given"),
        (["--outputSize", "10,abc"], "--outputSize '10,abc': expected sizes like"),
        (["--dymHW", "8"], "--dymHW '8': expected two positive sizes"),
        (["--dymShape", "image:1,x,8,8"], "--dymShape 'image:1,x,8,8': dims '1,x,8,8' are not integers"),
        (["--dymDims", "image:1,3,8,8", "--auto_set_dymdims_mode", "1"], "take each file's own shape"),
    ],
)
def test_dynamic_option_errors_read_the_same_on_ort_and_the_device(
    classifier, fake_ais_bench, tmp_path, flags, message
):
    classifier(tmp_path / "dyn.onnx", ["n", 3, "h", "w"])
    _bins(tmp_path / "prep", 2)
    lines = []
    for backend in ("ort", "ais_bench"):
        result, _ = fake_ais_bench("infer", ["dyn.onnx", "--input", "prep", *flags], tmp_path, backend=backend)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        lines.append(result.stderr)
    assert lines[0] == lines[1] and message in lines[0]


def test_dump_writes_acl_json_and_passes_it_to_the_session(classifier, fake_ais_bench, tmp_path):
    classifier(tmp_path / "m_bs1.onnx", [1, 3, 8, 8])
    result, calls = fake_ais_bench("infer", ["--model", "m_bs1.onnx", "--output", "out", "--dump", "1"], tmp_path)
    assert result.returncode == 0, result.stderr
    acl = json.loads((tmp_path / "out" / "acl.json").read_text())
    assert acl["dump"]["dump_list"] == [{"model_name": "m_bs1"}] and acl["dump"]["dump_mode"] == "all"
    assert acl["dump"]["dump_path"].endswith("dump") and (tmp_path / "out" / "dump").is_dir()
    assert calls[0]["acl_json_path"].endswith("acl.json")
    refused, _ = fake_ais_bench("infer", ["m_bs1.onnx", "--output", "o2", "--dump", "1"], tmp_path, backend="ort")
    assert refused.returncode == 2 and "--dump (device tensor dumps) needs a device" in refused.stderr
    assert not (tmp_path / "o2").exists()
    # Without ais_bench the run is one error line and writes no acl.json.
    unavailable = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphkit",
            "infer",
            "m_bs1.onnx",
            "--output",
            "o3",
            "--dump",
            "1",
            "--backend",
            "ais_bench",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert unavailable.returncode == 2 and "ais_bench.infer.interface does not import" in unavailable.stderr
    assert not (tmp_path / "o3").exists()
    missing, _ = fake_ais_bench("infer", ["m_bs1.onnx", "--acl_json_path", "nope.json"], tmp_path)
    assert missing.returncode == 2 and "--acl_json_path nope.json: no such file" in missing.stderr


def test_several_devices_write_ais_bench_per_device_folders(classifier, fake_ais_bench, tmp_path):
    classifier(tmp_path / "m_bs1.onnx", [1, 3, 8, 8])
    _bins(tmp_path / "prep", 5)
    args = ["--model", "m_bs1.onnx", "--input", "prep", "--output", "out", "--output_dirname", "d", "--device", "0,1"]
    result, calls = fake_ais_bench("infer", args, tmp_path)
    assert result.returncode == 0, result.stderr
    # ais_bench: ceil(5 / 2) = 3 files on the first device, 2 on the second.
    assert sorted(p.name for p in (tmp_path / "out" / "d" / "device0_0").iterdir()) == [
        f"img_{i}_0.bin" for i in range(3)
    ]
    assert sorted(p.name for p in (tmp_path / "out" / "d" / "device1_1").iterdir()) == ["img_3_0.bin", "img_4_0.bin"]
    assert (tmp_path / "out" / "d" / "device1_1_summary.json").is_file()
    assert [c["device_id"] for c in calls if c["event"] == "init"][-2:] == [0, 1]
    assert "summary throughput (sum over devices [0, 1])" in result.stdout
    refused, _ = fake_ais_bench("infer", ["m_bs1.onnx", "--device", "0,1"], tmp_path, backend="ort")
    assert refused.returncode == 2 and "--device 0,1: the ort backend runs on this host" in refused.stderr
