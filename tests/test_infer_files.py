"""graphkit.runtime.file_inference / ``graphkit infer``: ais_bench's file conventions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

from graphkit.ir.model_io import save_model
from graphkit.runtime.file_inference import infer_files
from graphkit.runtime.tensor_files import natural_key
from graphkit.testing import make_model
from graphkit.util.errors import InputError


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


@pytest.mark.parametrize("damage", ["truncated", "pickled", "not-npy", "header-unbalanced"])
def test_a_damaged_npy_input_is_one_line(tmp_path, damage):
    """Found by the fuzz harness (seed 2): a truncated .npy raised EOFError from numpy; (seed 9) a
    header with an unclosed bracket raised tokenize.TokenError from numpy's header parser."""
    model = two_output_model(tmp_path / "m.onnx")
    folder = tmp_path / "npys"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((1, 2, 3), np.float32))
    bad = folder / "b.npy"
    if damage == "truncated":
        bad.write_bytes((folder / "a.npy").read_bytes()[:70])
    elif damage == "pickled":
        np.save(bad, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    elif damage == "header-unbalanced":
        data = bytearray((folder / "a.npy").read_bytes())
        end = data.index(b"\n")
        data[end - 1 : end] = b"("  # the header's last padding space: an unclosed bracket, same length
        bad.write_bytes(bytes(data))
    else:
        bad.write_bytes(b"not a numpy file at all")
    for auto in (False, True):
        with pytest.raises(InputError, match=r"input .*b\.npy: not a readable \.npy file"):
            infer_files(model, [folder], tmp_path / "out", "r", "NPY", batchsize=1, auto_set_dymshape_mode=auto)
    assert not (tmp_path / "out" / "r").exists()


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
    assert saved["batchsize"] == 4 and saved["batches"] == 3 and saved["host_run_time"]["count"] == 3
    assert set(saved["host_run_time"]) == {"min", "max", "mean", "median", "percentile(99%)", "count"}
    assert "NPU_compute_time" not in saved and "H2D_latency" not in saved  # no device on onnxruntime
    assert saved["throughput"] == pytest.approx(4000 / saved["host_run_time"]["mean"], rel=1e-12)
    # ais_bench's filesinfo: per sample, its input files and output files, as paths a script can open.
    assert saved["filesinfo"]["9"] == {
        "infiles": [str(tmp_path / "bins" / "img9.bin")],
        "outfiles": [str(out / "img9_0.bin"), str(out / "img9_1.bin")],
    }
    assert "10" not in saved["filesinfo"] and saved["pid"] > 0
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


def test_static_batch_model_batchsize_only_feeds_throughput(tmp_path):
    model = two_output_model(tmp_path / "m.onnx", batch=2)
    write_bins(tmp_path / "bins", 3)
    summary = infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r")
    # No --batchsize: ais_bench's get_batchsize takes dim 0 of the first input, the model's 2.
    assert summary["model_batch"] == 2 and summary["batchsize"] == 2 and summary["batches"] == 2
    assert summary["throughput"] == pytest.approx(2000 / summary["host_run_time"]["mean"])
    # ais_bench: the batch comes from tensor size / file size; --batchsize only feeds the throughput.
    other = infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r2", batchsize=4)
    assert other["model_batch"] == 2 and other["batches"] == 2
    assert other["throughput"] == pytest.approx(4000 / other["host_run_time"]["mean"])
    with pytest.raises(InputError, match="axis 0 is 2 in the model; 4 was asked for"):
        infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r3", dym_batch=4)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such folder"),
        ("badsize", "do not fit input 'image'"),
        ("firstsize", "do not divide input 'image'"),
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
    elif setup == "firstsize":
        write_bins(folder, 2)
        np.zeros(5, np.float32).tofile(folder / "a.bin")
    elif setup == "empty":
        folder.mkdir()
    elif setup == "twodirs":
        write_bins(folder, 2)
        inputs = [folder, folder]
    with pytest.raises(InputError, match=message):
        infer_files(model, inputs, tmp_path / "out", "r", batchsize=2)
    assert not (tmp_path / "out" / "r").exists()


def test_rerun_overwrites_like_ais_bench(tmp_path):
    model = two_output_model(tmp_path / "m.onnx")
    write_bins(tmp_path / "bins", 2, seed=0)
    infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r")
    (tmp_path / "out" / "r" / "keep.txt").write_text("x")
    arrays = write_bins(tmp_path / "bins", 2, seed=1)
    infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r")
    got = np.fromfile(tmp_path / "out" / "r" / "img0_0.bin", dtype=np.float32).reshape(1, 2, 3)
    np.testing.assert_array_equal(got, arrays["img0"] * 2)  # the new values, not the first run's
    assert (tmp_path / "out" / "r" / "keep.txt").read_text() == "x"  # other files stay
    assert not list((tmp_path / "out").glob(".r.partial-*"))


def test_padding_reuses_the_batch_first_file(tmp_path):
    """y = x - mean over the batch: the padding content shows in the real samples' outputs."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[0], keepdims=1),
        helper.make_node("Sub", ["x", "m"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    model = save_model(make_model(nodes, [x], [y], opset=13), tmp_path / "m.onnx")
    arrays = write_bins(tmp_path / "bins", 6, (1, 3))
    infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r", batchsize=4)
    f4, f5 = arrays["img4"][0], arrays["img5"][0]
    batch = np.stack([f4, f5, f4, f4])  # padded with the batch's first file, as ais_bench does
    expected = batch - batch.mean(axis=0)
    np.testing.assert_allclose(np.fromfile(tmp_path / "out" / "r" / "img4_0.bin", np.float32), expected[0], atol=1e-6)
    np.testing.assert_allclose(np.fromfile(tmp_path / "out" / "r" / "img5_0.bin", np.float32), expected[1], atol=1e-6)
    assert len(list((tmp_path / "out" / "r").iterdir())) == 6


def test_output_names_use_the_part_before_the_first_dot(tmp_path):
    model = two_output_model(tmp_path / "m.onnx")
    write_bins(tmp_path / "bins", 2, names=["a.part1", "b.x.y"])
    infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r", outfmt="NPY")
    assert sorted(p.name for p in (tmp_path / "out" / "r").iterdir()) == ["a_0.npy", "a_1.npy", "b_0.npy", "b_1.npy"]


def test_txt_output_matches_ais_bench_format(tmp_path):
    model = two_output_model(tmp_path / "m.onnx")
    arrays = write_bins(tmp_path / "bins", 1)
    infer_files(model, [tmp_path / "bins"], tmp_path / "out", "r", outfmt="TXT")
    text = (tmp_path / "out" / "r" / "img0_0.txt").read_text()
    rows = (arrays["img0"] * 2).reshape(-1, 3)
    assert text == "".join("".join(f"{v:f} " for v in row) + "\n" for row in rows)
    np.testing.assert_allclose(
        np.loadtxt(tmp_path / "out" / "r" / "img0_1.txt"), arrays["img0"].sum(axis=2)[0], atol=1e-5
    )


def test_sumary_json_compat_and_file_list_input(tmp_path):
    model = two_input_model(tmp_path / "m.onnx")
    a = write_bins(tmp_path / "a", 2, (1, 4), seed=1, names=["x1", "x2"])
    b = write_bins(tmp_path / "b", 2, (1, 4), seed=2, names=["y1", "y2"])
    files = [tmp_path / "a" / "x1.bin", tmp_path / "a" / "x2.bin", tmp_path / "b" / "y1.bin", tmp_path / "b" / "y2.bin"]
    summary = infer_files(model, files, tmp_path / "out", "r", sumary_json=True)
    legacy = json.loads((tmp_path / "out" / "r" / "sumary.json").read_text())
    current = json.loads((tmp_path / "out" / "r_summary.json").read_text())
    assert legacy["throughput"] == current["throughput"] == summary["throughput"]
    got = np.fromfile(tmp_path / "out" / "r" / "x2_0.bin", np.float32)
    np.testing.assert_array_equal(got, (a["x2"] - b["y2"]).ravel())


def test_pure_inference_and_loop(tmp_path):
    model = two_output_model(tmp_path / "m.onnx")
    summary = infer_files(model, None, tmp_path / "out", "p", batchsize=2, loop=3, warmup_count=0)
    assert summary["host_run_time"]["count"] == 3 and summary["model_batch"] == 2
    zeros = np.fromfile(tmp_path / "out" / "p" / "pure_infer_data_0.bin", np.float32)
    assert zeros.shape == (12,) and not zeros.any()
    nothing = infer_files(model, None, None, batchsize=1, loop=2)
    assert nothing["host_run_time"]["count"] == 2 and "summary_path" not in nothing


def test_dynamic_options(tmp_path):
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, "H", "W"])
    model = save_model(make_model([helper.make_node("Relu", ["image"], ["out"])], [x], [y]), tmp_path / "m.onnx")
    write_bins(tmp_path / "bins", 2, (1, 3, 4, 5))
    hw = infer_files(model, [tmp_path / "bins"], tmp_path / "o", "hw", dym_hw="4,5")
    assert hw["batches"] == 2
    dims = infer_files(model, [tmp_path / "bins"], tmp_path / "o", "d", dym_dims="image:2,3,4,5")
    assert dims["batches"] == 1 and dims["files_per_batch"] == 2
    with pytest.raises(InputError, match="axis 2 is symbolic"):
        infer_files(model, [tmp_path / "bins"], tmp_path / "o", "x")
    with pytest.raises(InputError, match="'img' is not a model input"):
        infer_files(model, [tmp_path / "bins"], tmp_path / "o", "x", dym_shape="img:1,3,4,5")
    with pytest.raises(InputError, match="at most one"):
        infer_files(model, [tmp_path / "bins"], tmp_path / "o", "x", dym_hw="4,5", dym_batch=2)
    npys = tmp_path / "npys"
    npys.mkdir()
    for i, (h, w) in enumerate([(4, 5), (6, 2)]):
        np.save(npys / f"s{i}.npy", np.full((1, 3, h, w), i, np.float32))
    auto = infer_files(model, [npys], tmp_path / "o", "auto", outfmt="NPY", auto_set_dymshape_mode=True)
    assert auto["batches"] == 2
    assert np.load(tmp_path / "o" / "auto" / "s1_0.npy").shape == (1, 3, 6, 2)


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
    # ais_bench's own spellings, --model=M included
    ais = _cli(
        f"--model={model}",
        "--input",
        str(tmp_path / "bins"),
        "--output",
        str(tmp_path / "out"),
        "--output_dirname=ais",
        "--outfmt=TXT",
        "--batchsize=4",
        "--loop=2",
        "--warmup_count=0",
        "--device=0",
        "--debug=1",
    )
    assert ais.returncode == 0, ais.stderr
    assert len(list((tmp_path / "out" / "ais").glob("*.txt"))) == 20
    assert "host_run_time (ms)" in ais.stdout and "wall-clock" in ais.stdout and "[debug] input image" in ais.stderr
    missing = _cli(str(model), "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "out"))
    assert missing.returncode == 2 and "nope" in missing.stderr
    assert missing.stderr.strip().count("\n") == 0
    badsize = tmp_path / "bad"
    badsize.mkdir()
    np.zeros(7, np.float32).tofile(badsize / "x.bin")
    wrong = _cli(str(model), "--input", str(badsize), "--output", str(tmp_path / "out"), "--output-dirname", "w")
    assert wrong.returncode == 2 and "x.bin" in wrong.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "1"], "--device 1: the ort backend runs on this host"),
        (["--profiler", "1"], "--profiler (msprof profiling) is not implemented"),
        (["--dump", "true"], "--dump (device tensor dumps) needs a device"),
        (["--acl_json_path", "acl.json"], "--acl_json_path"),
        (["--dymShape_range", "x:1~2"], "--dymShape_range"),
        (["--outputSize", "10,a"], "--outputSize"),
        (["--output_dirname", "d"], "--output_dirname needs --output"),
        (["--model", "other.onnx"], "two models given"),
        (["--outfmt", "XML"], "argument --outfmt: invalid choice"),
        (["--debug", "maybe"], "is not a boolean"),
    ],
)
def test_cli_flags_it_cannot_honour_are_one_line_exit_2(tmp_path, flags, message):
    model = two_output_model(tmp_path / "m.onnx")
    result = _cli(str(model), *flags)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("graphkit: error:") and result.stderr.strip().count("\n") == 0
    assert message in result.stderr


def test_pure_inference_that_cannot_fit_in_memory_is_one_line(tmp_path):
    """Found by the fuzz harness (seed 9): pure inference on a model with a huge static dim tried
    to allocate its zeros (96 GiB) and died with numpy's MemoryError."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 2**31 - 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 2**31 - 1])
    model = save_model(make_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y]), tmp_path / "huge.onnx")
    result = _cli(str(model), "--output", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the pure-inference inputs need 96.0 GiB" in lines[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_a_batch_that_cannot_fit_in_memory_is_one_line(tmp_path):
    """Found by the fuzz harness (seed 11): a huge last dim made each small file one of 2**31 per
    batch, and padding the batch's file list died with MemoryError."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 2**31 - 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16, 2**31 - 1])
    model = save_model(make_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y]), tmp_path / "huge.onnx")
    write_bins(tmp_path / "bins", 2, shape=(3, 16))
    result = _cli(str(model), "--input", str(tmp_path / "bins"), "--output", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "one batch of inputs need 384.0 GiB" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_huge_batchsize_on_few_files_reads_each_file_once(tmp_path, monkeypatch):
    """--batchsize 1e7 on 3 files took over 110 s: every padding slot was read from disk again and
    cut out of the outputs one by one. Padding is now one repeat of the first file's array, and
    only the real files' outputs are cut out; the model still runs the full padded batch (a
    batch-mixing model sees the padding, as on ais_bench)."""
    import graphkit.runtime.file_inference as file_inference
    from graphkit.runtime.backend import open_backend
    from graphkit.runtime.file_inference import plan_batches, resolve_shapes, run_batches

    model = two_output_model(tmp_path / "m.onnx")
    inputs = write_bins(tmp_path / "bins", 3)
    reads = []
    real_read = file_inference.read_input
    monkeypatch.setattr(file_inference, "read_input", lambda f, dtype: reads.append(f.name) or real_read(f, dtype))
    with open_backend("ort", model) as session:
        shapes = resolve_shapes(session.inputs, 1_000_000, False, None, None, None)
        plan = plan_batches(session.inputs, shapes, [sorted((tmp_path / "bins").iterdir())])
        assert plan.files_per_batch == 1_000_000 and len(plan.batches) == 1
        (tmp_path / "out").mkdir()
        run_batches(session, plan, tmp_path / "out")
    assert sorted(reads) == ["img0.bin", "img1.bin", "img2.bin"]  # the data, not the batch size
    for name, array in inputs.items():
        double = np.fromfile(tmp_path / "out" / f"{name}_0.bin", dtype=np.float32).reshape(1, 2, 3)
        np.testing.assert_array_equal(double, array * 2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"img{i}_{k}.bin" for i in range(3) for k in (0, 1)
    )


def test_a_static_batch_is_still_padded_with_the_first_file(tmp_path):
    """A model whose batch is fixed (as an OM is) runs the padded batch; the padding is the first file."""
    from graphkit.runtime.backend import open_backend
    from graphkit.runtime.file_inference import plan_batches, resolve_shapes, run_batches

    model = two_output_model(tmp_path / "m.onnx", batch=4)
    inputs = write_bins(tmp_path / "bins", 3)
    with open_backend("ort", model) as session:
        plan = plan_batches(
            session.inputs,
            resolve_shapes(session.inputs, 4, False, None, None, None),
            [sorted((tmp_path / "bins").iterdir())],
        )
        seen = []
        run = session.run
        session.run = lambda feeds: seen.append(feeds["image"].copy()) or run(feeds)
        (tmp_path / "out").mkdir()
        run_batches(session, plan, tmp_path / "out")
    (fed,) = seen
    np.testing.assert_array_equal(fed, np.concatenate([inputs["img0"], inputs["img1"], inputs["img2"], inputs["img0"]]))
    assert len(list((tmp_path / "out").iterdir())) == 6
