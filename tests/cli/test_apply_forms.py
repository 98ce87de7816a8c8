"""`graphkit apply IN OUT` (the onnxsim/onnxslim form), `-o FILE.onnx`, and `-o DIR` (issue 25)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.cli.apply import model_target, place_model


def relu_model(path):
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Identity", ["m"], ["i"]),
        helper.make_node("Relu", ["i"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("form", [["{out}"], ["-o", "{out}"]])
def test_in_out_writes_the_model_at_out_and_the_run_folder_beside_it(tmp_path, cli, form):
    source = relu_model(tmp_path / "m.onnx")
    out = tmp_path / "m.opt.onnx"
    result = cli("apply", source, *[a.format(out=out) for a in form], "--passes", "eliminate-noops", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "m.opt.graphkit"
    assert (run_dir / "report.json").is_file()
    assert out.read_bytes() == (run_dir / "m.opt.onnx").read_bytes()
    assert [n.op_type for n in onnx.load(out).graph.node] == ["MatMul", "Relu"]
    assert f"wrote {out}" in result.stdout


def test_out_with_an_explicit_run_folder(tmp_path, cli):
    source = relu_model(tmp_path / "m.onnx")
    result = cli("apply", source, tmp_path / "o.onnx", "-o", tmp_path / "runs", "--passes", "eliminate-noops")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o.onnx").is_file() and (tmp_path / "runs" / "report.json").is_file()


def test_o_naming_an_existing_folder_keeps_folder_semantics(tmp_path, cli):
    source = relu_model(tmp_path / "m.onnx")
    folder = tmp_path / "looks.onnx"
    folder.mkdir()
    result = cli("apply", source, "-o", folder, "--passes", "eliminate-noops")
    assert result.returncode == 0, result.stderr
    assert (folder / "model.onnx").is_file()


def test_failed_run_writes_no_model_at_out(tmp_path, cli, user_pass_dir):
    source = relu_model(tmp_path / "m.onnx")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("passes: [break-relu]\non_failure: stop\n")
    out = tmp_path / "bad.onnx"
    result = cli("apply", pipeline, out, "--input", source, "--passes-dir", user_pass_dir)
    assert result.returncode == 1
    assert not out.exists()
    assert (tmp_path / "bad.graphkit" / "report.json").is_file()


@pytest.mark.parametrize("name", ["folder/", "bad\nname.onnx", ".hidden.onnx"])
def test_bad_out_is_one_line_exit_2(tmp_path, cli, name):
    source = relu_model(tmp_path / "m.onnx")
    (tmp_path / "folder").mkdir()
    result = cli("apply", source, str(tmp_path / name), "--passes", "eliminate-noops")
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("graphkit: error:") and result.stderr.count("\n") == 1
    assert not any(p.suffix == ".graphkit" for p in tmp_path.iterdir())


def test_model_target_rules(tmp_path):
    assert model_target(None, "runs/x") == (None, "runs/x")
    target, run_dir = model_target(str(tmp_path / "a.onnx"), None)
    assert target == tmp_path / "a.onnx" and run_dir == str(tmp_path / "a.graphkit")
    assert model_target(None, str(tmp_path / "b.onnx"))[0] == tmp_path / "b.onnx"


def test_place_model_carries_the_external_data_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "x.onnx").write_bytes(b"model")
    (run / "x.onnx.data").write_bytes(b"weights")
    place_model(run / "x.onnx", tmp_path / "x.onnx")
    assert (tmp_path / "x.onnx.data").read_bytes() == b"weights"
    assert (tmp_path / "x.onnx").read_bytes() == b"model"
    # moved, not linked: onnx refuses a data file with a second hard link
    assert (tmp_path / "x.onnx.data").stat().st_nlink == 1 and not (run / "x.onnx.data").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_atol_rtol_are_polygraphys_spelling_of_the_golden_tolerance(tmp_path, cli):
    source = relu_model(tmp_path / "m.onnx")
    result = cli("apply", source, tmp_path / "o.onnx", "--passes", "eliminate-noops", "--atol", "0.001", "--rtol", "0")
    assert result.returncode == 0, result.stderr
    pipeline = (tmp_path / "o.graphkit" / "pipeline.yaml").read_text()
    assert "atol: 0.001" in pipeline and "rtol: 0.0" in pipeline
    refused = cli("apply", source, tmp_path / "p.onnx", "--atol", "nan")
    assert refused.returncode == 2 and "golden.tolerance.atol: must be a finite number >= 0" in refused.stderr
