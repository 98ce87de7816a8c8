"""ATC options from issue 27: --output_type INT8, bare --out_nodes names, --op_precision_mode,
--modify_mixlist, --dynamic_image_size and --input_shape_range (sources: docs/ascend.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from graphkit.ascend.command_lines import plan_commands, write_plan
from graphkit.ascend.spec import AtcSpec
from graphkit.ir.model_io import load_model
from graphkit.util.errors import SpecError


def _plan(model_path, **fields):
    return plan_commands(load_model(model_path), AtcSpec(**fields), model_path)


def test_output_type_int8_needs_cann_8(clean_export):
    with pytest.raises(SpecError, match="INT8 needs CANN 8.0 or later"):
        _plan(clean_export, cann="7.0", output_type="mask:0:INT8")
    plan = _plan(clean_export, cann="8.0", output_type="INT8")
    assert "--output_type=INT8" in plan.commands[0].args


def test_out_nodes_take_bare_output_names_checked_against_the_graph(clean_export):
    plan = _plan(clean_export, out_nodes=["mask"])
    assert "--out_nodes=mask" in plan.commands[0].args
    with pytest.raises(SpecError, match="out_nodes: 'dets' is not an output of"):
        _plan(clean_export, out_nodes=["dets"])
    assert "--out_nodes=/Resize:0;/Conv:0" in _plan(clean_export, out_nodes=["/Resize:0", "/Conv:0"]).commands[0].args


def test_op_precision_mode_is_a_checked_absolute_file_that_overrides_implmode(clean_export, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "op_precision.ini").write_text(
        "[ByOpType]\n# comment\nSoftmaxV2=high_precision\nConv2D=high_performance\n"
    )
    plan = _plan(
        clean_export,
        op_precision_mode="op_precision.ini",
        op_select_implmode="high_precision",
        optypelist_for_implmode=["Pooling"],
    )
    args = plan.commands[0].args
    assert f"--op_precision_mode={tmp_path / 'op_precision.ini'}" in args
    assert not any(a.startswith(("--op_select_implmode", "--optypelist_for_implmode")) for a in args)
    assert any("only --op_precision_mode takes effect" in w for w in plan.warnings)
    (tmp_path / "bad.ini").write_text("SoftmaxV2 high_precision\n")
    with pytest.raises(
        SpecError, match=r"op_precision_mode: /.*/bad.ini line 1: 'SoftmaxV2 high_precision' is not 'OpType=mode'"
    ):
        _plan(clean_export, op_precision_mode="bad.ini")
    with pytest.raises(SpecError, match="op_precision_mode: missing.ini: no such file"):
        _plan(clean_export, op_precision_mode="missing.ini")


def test_modify_mixlist_needs_a_mixed_mode_and_atcs_json_form(clean_export, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mix.json").write_text(json.dumps({"black-list": {"to-add": ["SoftmaxV2"]}}))
    with pytest.raises(SpecError, match="modify_mixlist: needs a mixed precision mode"):
        _plan(clean_export, modify_mixlist="mix.json", precision_mode="force_fp16")
    plan = _plan(clean_export, modify_mixlist="mix.json", precision_mode_v2="mixed_float16")
    assert f"--modify_mixlist={tmp_path / 'mix.json'}" in plan.commands[0].args
    (tmp_path / "bad.json").write_text(json.dumps({"black-list": {"add": ["SoftmaxV2"]}}))
    with pytest.raises(SpecError, match="'black-list.add' is not one of to-add, to-remove"):
        _plan(clean_export, modify_mixlist="bad.json", precision_mode="allow_mix_precision")


def test_dynamic_image_size_om_and_its_ais_bench_dymhw(clean_export, tmp_path):
    plan = write_plan(_plan(clean_export, batch_sizes=[], dynamic_image_size=[[8, 8], [16, 16]]), tmp_path)
    (command,) = plan.commands
    assert command.output == "wseg_dynhw" and command.kind == "dynamic_image_size"
    assert "--input_shape=image:1,3,-1,-1" in command.args and "--dynamic_image_size=8,8;16,16" in command.args
    manifest = json.loads(plan.manifest.read_text())
    assert manifest["ais_bench_dymHW"] == ["8,8", "16,16"]


def test_input_shape_range_om_replaces_input_shape(clean_export):
    plan = _plan(clean_export, cann="7.0", batch_sizes=[], input_shape_range="image:[1~4,3,8~64,8~64]")
    (command,) = plan.commands
    assert command.output == "wseg_dynshape" and "--input_shape_range=image:[1~4,3,8~64,8~64]" in command.args
    assert not any(a.startswith("--input_shape=") for a in command.args) and not plan.warnings
    with pytest.raises(SpecError, match="input_shape_range: 'other' is not a graph input"):
        _plan(clean_export, cann="7.0", batch_sizes=[], input_shape_range="other:[1,3]")
    # CANN 6.0 reserves the option; 8.0 deprecates it (a warning).
    with pytest.raises(SpecError, match="CANN 6.0 reserves --input_shape_range"):
        _plan(clean_export, cann="6.0", batch_sizes=[], input_shape_range="image:[1,3,8,8]")
    newer = _plan(clean_export, cann="8.0", batch_sizes=[], input_shape_range="image:[1,3,8,8]")
    assert any("deprecated from CANN 8.0" in w for w in newer.warnings)


def test_cli_flags_reach_the_commands(clean_export, tmp_path):
    (tmp_path / "prec.ini").write_text("SoftmaxV2=high_precision\n")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "graphkit", "atc", "commands", str(clean_export), "-o", str(tmp_path / "atc")),
            *("--dynamic-image-size", "8,8;16,16", "--op-precision-mode", str(tmp_path / "prec.ini"), "--json"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (line,) = json.loads(result.stdout)["commands"]
    assert "--dynamic_image_size=8,8;16,16" in line and f"--op_precision_mode={tmp_path / 'prec.ini'}" in line
