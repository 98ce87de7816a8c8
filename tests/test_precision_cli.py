"""``graphkit precision``, the ATC files it writes, their wiring into handoff.atc, and the ``precision:`` stage."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import precision_models as pm  # noqa: E402

from graphkit.ascend.precision_modes import (  # noqa: E402
    KeepDtype,
    fp16_node_indices,
    mixlist_json,
    parse_keep_dtype,
    parse_mixlist,
)
from graphkit.ascend.spec import AtcSpec  # noqa: E402
from graphkit.cli.main import main  # noqa: E402
from graphkit.util.errors import InputError, SpecError  # noqa: E402


def _save(tmp_path, builder, name="m"):
    model, feeds, responsible = builder()
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    np.savez(tmp_path / f"{name}.npz", **feeds)
    return path, tmp_path / f"{name}.npz", responsible


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("graphkit: error: "), err
    return err[0]


def test_cli_names_the_node_and_writes_the_keep_dtype_file(tmp_path, capsys):
    model, inputs, responsible = _save(tmp_path, pm.overflow_before_div)
    out = tmp_path / "out"
    assert main(["precision", str(model), "--inputs", str(inputs), "-o", str(out), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["precision_mode"] == "force_fp16" and report["fixed"] and not report["passed"]
    assert report["first_nonfinite"]["node"] == "big_matmul"
    assert set(report["keep_list"]) == responsible
    assert report["search"]["forwards"] >= 2 and report["forwards"] == report["search"]["forwards"] + 2
    lines = (out / "keep_dtype.cfg").read_text().splitlines()
    assert set(lines) == responsible  # one node name a line, as ATC's --keep_dtype reads it
    assert parse_keep_dtype((out / "keep_dtype.cfg").read_text(), "f").names == lines
    assert not (out / "modify_mixlist.json").exists()  # force_fp16 is not a mixed mode
    assert json.loads((out / "precision.json").read_text())["keep_list"] == report["keep_list"]


def test_cli_a_fine_model_exits_0_and_an_earlier_keep_list_is_removed(tmp_path, capsys):
    model, inputs, _ = _save(tmp_path, pm.fine_in_fp16)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep_dtype.cfg").write_text("stale\n")
    assert main(["precision", str(model), "--inputs", str(inputs), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "keep-list empty" in text
    assert not (out / "keep_dtype.cfg").exists()


def test_cli_a_given_keep_dtype_is_applied_and_kept_in_the_answer(tmp_path, capsys):
    model, inputs, _ = _save(tmp_path, pm.overflow_before_div)
    keep = tmp_path / "keep.cfg"
    keep.write_text("big_matmul\nscale_div\n")
    out = tmp_path / "out"
    assert main(["precision", str(model), "--inputs", str(inputs), "--keep-dtype", str(keep), "-o", str(out)]) == 0
    assert (out / "keep_dtype.cfg").read_text() == "big_matmul\nscale_div\n"
    capsys.readouterr()


def test_cli_mixed_mode_writes_the_mixlist_with_the_kept_op_types(tmp_path, capsys):
    model, inputs, _ = _save(tmp_path, pm.softmax_large_logits)
    out = tmp_path / "out"
    code = main(
        ["precision", str(model), "--inputs", str(inputs), "--precision-mode", "allow_mix_precision", "-o", str(out)]
    )
    assert code == 1
    assert json.loads((out / "modify_mixlist.json").read_text()) == {"black-list": {"to-add": ["Add", "Softmax"]}}
    capsys.readouterr()


def test_allow_fp32_to_fp16_rounds_only_matrix_ops():
    model, _, _ = pm.softmax_large_logits()
    assert fp16_node_indices(model, "allow_fp32_to_fp16") == {0}  # proj (MatMul); Add and Softmax stay fp32
    assert fp16_node_indices(model, "must_keep_origin_dtype") == set()
    assert fp16_node_indices(model, "force_fp16", KeepDtype(types=["Softmax"])) == {0, 1}
    assert fp16_node_indices(model, "allow_mix_precision", black_types=["MatMul"]) == {1, 2}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--precision-mode", "fp8_everything"], "unknown or not emulated precision mode 'fp8_everything'"),
        (["--keep-dtype", "KEEP"], "no node named 'big_matmull' in the model (did you mean: big_matmul?)"),
        (["--keep-dtype", "MISSING"], "cannot read the keep-dtype file"),
        (["--modify-mixlist", "MIX"], "'black-list'.'to-add' must be a list of op type names"),
        (["--atol", "nan"], "--atol"),
        (["--modify-mixlist", "MIXOK"], "--modify-mixlist: ATC reads it only with allow_mix_precision"),
        (["--dims", "batch=0"], "--dim: expected NAME=N"),
        (["--argmax", "y:5"], "--argmax: outputs.y.argmax_axis 5 is out of range for output 'y' of rank 2"),
        (["--argmax", "z:1"], "--argmax: per-output tolerance for 'z', but the model has no output of that name"),
        (["--argmax", "y:1:2"], "--argmax: expected NAME:AXIS[:MIN]"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    model, inputs, _ = _save(tmp_path, pm.overflow_before_div)
    (tmp_path / "keep.cfg").write_text("big_matmull\n")
    (tmp_path / "mix.json").write_text('{"black-list": {"to-add": "Softmax"}}')
    names = {
        "KEEP": str(tmp_path / "keep.cfg"),
        "MISSING": str(tmp_path / "nope.cfg"),
        "MIX": str(tmp_path / "mix.json"),
        "MIXOK": str(tmp_path / "mixok.json"),
    }
    (tmp_path / "mixok.json").write_text('{"black-list": {"to-add": ["Softmax"]}}')
    args = [names.get(a, a) for a in args]
    out = tmp_path / "out"
    assert main(["precision", str(model), "--inputs", str(inputs), "-o", str(out), *args]) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()  # nothing half-written


def test_cli_model_without_float_tensors_is_exit_2(tmp_path, capsys):
    from onnx import TensorProto, helper

    ins = [helper.make_tensor_value_info(n, TensorProto.INT64, [3]) for n in ("a", "b")]
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"], name="add")],
        "g",
        ins,
        [helper.make_tensor_value_info("c", TensorProto.INT64, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "int.onnx"
    onnx.save(model, path)
    assert main(["precision", str(path)]) == 2
    assert "no float32 tensor" in _one_error_line(capsys)


def test_mixlist_and_keep_dtype_formats_round_trip():
    assert parse_mixlist(mixlist_json(["Softmax", "Add", "Add"]), "f") == ["Add", "Softmax"]
    keep = parse_keep_dtype("a/b:0\n\nOpType::Softmax\n", "f")
    assert keep.names == ["a/b:0"] and keep.types == ["Softmax"]
    assert keep.to_text() == "a/b:0\nOpType::Softmax\n"
    with pytest.raises(InputError, match="'OpType::' without a type name"):
        parse_keep_dtype("OpType::\n", "f")
    with pytest.raises(InputError, match="not JSON"):
        parse_mixlist("{", "f")


def test_atc_spec_parses_the_keep_dtype_file_back(tmp_path):
    good = tmp_path / "keep.cfg"
    good.write_text("ln_square\nOpType::Softmax\n")
    spec = AtcSpec(keep_dtype=str(good))
    spec.validate()
    assert spec.keep_dtype == str(good.resolve())
    empty = tmp_path / "empty.cfg"
    empty.write_text("\n\n")
    with pytest.raises(SpecError, match="atc.keep_dtype: .*lists no operator"):
        AtcSpec(keep_dtype=str(empty)).validate()
    bad = tmp_path / "bad.cfg"
    bad.write_text("OpType::\n")
    with pytest.raises(SpecError, match="atc.keep_dtype: .*without a type name"):
        AtcSpec(keep_dtype=str(bad)).validate()


def _pipeline(tmp_path, model_path, precision: dict, atc: dict | None = None) -> Path:
    data = {
        "name": "prec",
        "source": {"onnx": str(model_path)},
        "golden": {"dir": str(tmp_path / "golden")},
        "output": {"dir": str(tmp_path / "run")},
        "precision": precision,
        "handoff": {"atc": {"batch_sizes": [4], "output_prefix": "prec", **(atc or {})}},
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_stage_puts_the_keep_list_into_the_atc_command_lines(tmp_path, capsys):
    model, _, responsible = _save(tmp_path, pm.amplified_layernorm)
    pipeline = _pipeline(tmp_path, model, {"precision_mode": "force_fp16"})
    assert main(["apply", str(pipeline), "-q"]) == 0
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    assert set(report["precision"]["keep_list"]) == responsible and report["precision"]["fixed"]
    keep_file = run / "precision" / "keep_dtype.cfg"
    assert set(keep_file.read_text().splitlines()) == responsible
    script = (run / "atc" / "atc_commands.sh").read_text()
    atc_line = next(line for line in script.splitlines() if line.startswith('"$ATC"'))
    assert f"--keep_dtype={keep_file.resolve()}" in shlex.split(atc_line)  # quoted, one argument
    assert report["handoff"]["precision"] == [f"keep_dtype from the precision stage: {keep_file}"]
    summary = (run / "summary.txt").read_text()
    assert "precision: force_fp16: fp16 breaks the model; keeping 2 node(s) in fp32 fixes it" in summary
    capsys.readouterr()


def test_stage_section_errors_name_the_key(tmp_path, capsys):
    model, _, _ = _save(tmp_path, pm.fine_in_fp16)
    pipeline = _pipeline(tmp_path, model, {"precision_mode": "force_fp61"})
    assert main(["apply", str(pipeline)]) == 2
    line = _one_error_line(capsys)
    assert "precision.precision_mode" in line and "force_fp61" in line
    assert not (tmp_path / "run" / "model.onnx").exists()
    pipeline = _pipeline(tmp_path, model, {"keep_dtype": str(tmp_path / "none.cfg")})
    assert main(["apply", str(pipeline)]) == 2
    assert "precision.keep_dtype" in _one_error_line(capsys)


def test_cli_argmax_agreement_is_reported_and_required(tmp_path, capsys):
    model, inputs, _ = _save(tmp_path, pm.softmax_large_logits)
    args = ["precision", str(model), "--inputs", str(inputs), "--no-search", "--json", "--argmax"]
    assert main([*args, "y:1:0"]) == 1  # the probabilities fail atol/rtol whatever the argmax
    output = json.loads(capsys.readouterr().out)["outputs"][0]
    assert output["argmax_agreement"] == output["top1_agreement"] == 0.25  # 1 of 4 rows keeps its class
