"""graphkit.infer_files / ``graphkit infer``: ais_bench's file conventions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

from graphkit.errors import InputError
from graphkit.infer_files import infer_files, natural_key
from graphkit.model import save_model
from graphkit.testing import make_model


def two_output_model(path, batch="N"):
    """image [N,2,3] -> (double [N,2,3], rowsum [N,2]); a second input variant adds 'bias' [N,3]."""
    nodes = [
        helper.make_node("Add", ["image", "image"], ["double"]),
        helper.make_node("ReduceSum", ["image", "axes"], ["rowsum"], keepdims=0),
    ]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [2])
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 2, 3])
    outs = [
        helper.make_tensor_value_info("double", TensorProto.FLOAT, [batch, 2, 3]),
        helper.make_tensor_value_info("rowsum", TensorProto.FLOAT, [batch, 2]),
    ]
    return save_model(make_model(nodes, [x], outs, [axes]), path)


def two_input_model(path):
    node = helper.make_node("Sub", ["a", "b"], ["diff"])
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 4])
    d = helper.make_tensor_value_info("diff", TensorProto.FLOAT, ["N", 4])
    return save_model(make_model([node], [a, b], [d]), path)


def write_bins(folder, count, shape=(1, 2, 3), seed=0, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for i in range(count):
        name = names[i] if names else f"img{i}"
        array = rng.standard_normal(shape).astype(np.float32)
        array.tofile(folder / f"{name}.bin")
        arrays[name] = array
    return arrays


def test_natural_sort():
    names = ["img10.bin", "img2.bin", "img1.bin", "Img3.bin"]
    assert sorted(names, key=natural_key) == ["img1.bin", "img2.bin", "Img3.bin", "img10.bin"]


def test_ten_bins_batch_four_drops_padding(tmp_path):
    model = two_output_model(tmp_path / "m.onnx")
    inputs = write_bins(tmp_path / "bins", 10)
    summary = infer_files(model, [tmp_path / "bins"], tmp_path / "out", "run", "BIN", batchsize=4)
    out = tmp_path / "out" / "run"
    expected = sorted(f"img{i}_{k}.bin" for i in range(10) for k in range(2))
    assert sorted(p.name for p in out.iterdir()) == expected  # 10 x 2 outputs, none for the 2 padding samples
    for name, array in inputs.items():
        double = np.fromfile(out / f"{name}_0.bin", dtype=np.float32).reshape(1, 2, 3)
        rowsum = np.fromfile(out / f"{name}_1.bin", dtype=np.float32).reshape(1, 2)
        np.testing.assert_allclose(double, array * 2, rtol=0, atol=0)
        np.testing.assert_allclose(rowsum, array.sum(axis=2), rtol=1e-6, atol=1e-6)
    saved = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert saved["batchsize"] == 4 and saved["batches"] == 3 and saved["NPU_compute_time"]["count"] == 3
    for key in ("NPU_compute_time", "H2D_latency", "D2H_latency"):
        assert set(saved[key]) == {"min", "max", "mean", "median", "percentile(99%)", "count"}
    assert saved["throughput"] == pytest.approx(4000 / saved["NPU_compute_time"]["mean"], rel=1e-12)
    assert summary["summary_path"] == str(tmp_path / "out" / "run_summary.json")
    assert not list((tmp_path / "out").glob(".*"))  # no staging left behind


def test_files_holding_several_samples_and_npy(tmp_path):
    model = two_output_model(tmp_path / "m.onnx")
    folder = tmp_path / "npys"
    folder.mkdir()
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((2, 2, 3)).astype(np.float32) for _ in range(3)]
    for i, array in enumerate(arrays):
        np.save(folder / f"s{i}.npy", array)
    infer_files(model, [folder], tmp_path / "out", "r", "NPY", batchsize=4)
    for i, array in enumerate(arrays):
        np.testing.assert_allclose(np.load(tmp_path / "out" / "r" / f"s{i}_0.npy"), array * 2, rtol=0, atol=0)


def test_multiple_input_dirs_map_to_inputs_in_order(tmp_path):
    model = two_input_model(tmp_path / "m.onnx")
    a = write_bins(tmp_path / "a", 3, (1, 4), seed=1, names=["x1", "x2", "x10"])
    b = write_bins(tmp_path / "b", 3, (1, 4), seed=2, names=["y1", "y2", "y10"])
    infer_files(model, [tmp_path / "a", tmp_path / "b"], tmp_path / "out", "r", batchsize=2)
    for na, nb in zip(["x1", "x2", "x10"], ["y1", "y2", "y10"]):
        got = np.fromfile(tmp_path / "out" / "r" / f"{na}_0.bin", dtype=np.float32)
        np.testing.assert_allclose(got, (a[na] - b[nb]).ravel(), rtol=0, atol=0)


def test_static_batch_model_and_conflicting_batchsize(tmp_path):
    model = two_output_model(tmp_path / "m.onnx", batch=2)
    write_bins(tmp_path / "bins", 3)
    summary = infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r")
    assert summary["batchsize"] == 2 and summary["batches"] == 2
    with pytest.raises(InputError, match="static batch of 2"):
        infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r2", batchsize=4)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such folder"),
        ("badsize", "do not fit input 'image'"),
        ("empty", "no .bin or .npy"),
        ("twodirs", "the model has 1 inputs"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, setup, message):
    model = two_output_model(tmp_path / "m.onnx")
    folder = tmp_path / "bins"
    inputs = [folder]
    if setup == "badsize":
        write_bins(folder, 2)
        np.zeros(5, np.float32).tofile(folder / "img9.bin")
    elif setup == "empty":
        folder.mkdir()
    elif setup == "twodirs":
        write_bins(folder, 2)
        inputs = [folder, folder]
    with pytest.raises(InputError, match=message):
        infer_files(model, inputs, tmp_path / "out", "r", batchsize=2)
    assert not (tmp_path / "out" / "r").exists()


def test_existing_output_folder_is_refused(tmp_path):
    model = two_output_model(tmp_path / "m.onnx")
    write_bins(tmp_path / "bins", 1)
    (tmp_path / "out" / "r").mkdir(parents=True)
    (tmp_path / "out" / "r" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "graphkit", "infer", *args], capture_output=True, text=True)


def test_cli_infer(tmp_path):
    model = two_output_model(tmp_path / "m.onnx")
    write_bins(tmp_path / "bins", 10)
    result = _cli(
        str(model),
        "--input",
        str(tmp_path / "bins"),
        "--output",
        str(tmp_path / "out"),
        "--output-dirname",
        "d",
        "--outfmt",
        "npy",
        "--batchsize",
        "4",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["batches"] == 3
    assert len(list((tmp_path / "out" / "d").glob("*.npy"))) == 20
    missing = _cli(str(model), "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "out"))
    assert missing.returncode == 2 and "nope" in missing.stderr
    assert missing.stderr.strip().count("\n") == 0
    badsize = tmp_path / "bad"
    badsize.mkdir()
    np.zeros(7, np.float32).tofile(badsize / "x.bin")
    wrong = _cli(str(model), "--input", str(badsize), "--output", str(tmp_path / "out"), "--output-dirname", "w")
    assert wrong.returncode == 2 and "x.bin" in wrong.stderr
