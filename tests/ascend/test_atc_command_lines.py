"""graphkit.ascend.command_lines: command lines, profile rules, script and manifest."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from onnx import TensorProto, helper

from graphkit.ascend.command_lines import check_command, check_dynamic_profiles, plan_commands, write_plan
from graphkit.ascend.spec import AtcSpec
from graphkit.ir.model_io import load_model, save_model
from graphkit.testing import make_model
from graphkit.util.errors import SpecError
from graphkit.util.typed_config import from_mapping


def test_static_and_dynamic_commands_follow_the_facts_form(clean_export, tmp_path):
    spec = AtcSpec(batch_sizes=[1, 4], dynamic_batch_sizes=[1, 4, 8, 16], output_prefix="wseg")
    plan = write_plan(plan_commands(load_model(clean_export), spec, clean_export), tmp_path)
    lines = [c.line() for c in plan.commands]
    model = str(clean_export.resolve())
    assert lines[0] == (
        f"atc --model={model} --framework=5 --output=wseg_bs1 --input_format=NCHW "
        "--input_shape=image:1,3,8,8 --soc_version=Ascend310P3 --log=error"
    )
    assert "--output=wseg_bs4" in lines[1] and "--input_shape=image:4,3,8,8" in lines[1]
    dynamic = plan.commands[2]
    assert dynamic.kind == "dynamic" and dynamic.output == "wseg_dynbs"
    assert "--input_shape=image:-1,3,8,8" in dynamic.args
    assert "--dynamic_batch_size=1,4,8,16" in dynamic.args

    manifest = json.loads(plan.manifest.read_text())
    assert manifest["inputs"] == [
        {"name": "image", "dtype": "float32", "graph_shape": ["batch", 3, 8, 8], "atc_shape": ["batch", 3, 8, 8]}
    ]
    assert manifest["output_order"] == ["mask"]
    assert manifest["oms"][2]["extra_inputs"] == ["ascend_mbatch_shape_data"]
    assert manifest["oms"][0]["om_names"] == ["wseg_bs1.om", "wseg_bs1_<os>_<arch>.om"]
    assert manifest["dynamic_batch_sizes"] == [1, 4, 8, 16]

    script = plan.script.read_text()
    assert plan.script.stat().st_mode & 0o111
    assert script.startswith("#!/usr/bin/env bash") and 'ATC="${ATC:-atc}"' in script
    ran = subprocess.run(["bash", "-n", str(plan.script)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    commands = [shlex.split(line)[1:] for line in script.splitlines() if line.startswith('"$ATC"')]
    assert commands == [c.args for c in plan.commands]


def test_optional_options_appear(clean_export, tmp_path):
    switch = tmp_path / "fusion.cfg"
    switch.write_text("SoftmaxFusionPass:off\n")  # the older Wseg guide's fusion_swith.cfg
    spec = AtcSpec(
        batch_sizes=[2],
        precision_mode="allow_fp32_to_fp16",
        op_select_implmode="high_precision",
        fusion_switch_file=str(switch),
        out_nodes=["/Resize:0"],
        log="info",
        soc_version="Ascend310P1",
    )
    args = plan_commands(load_model(clean_export), spec, clean_export).commands[0].args
    assert "--precision_mode=allow_fp32_to_fp16" in args
    assert "--op_select_implmode=high_precision" in args
    assert f"--fusion_switch_file={switch.resolve()}" in args
    assert "--out_nodes=/Resize:0" in args and "--log=info" in args and "--soc_version=Ascend310P1" in args


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ([4], "2 to 100.*E10035"),
        (list(range(1, 103)), "2 to 100.*E10036"),
        ([1, 4, 4], "unique.*E10039"),
        ([0, 2], "> 0.*E10038"),
    ],
)
def test_dynamic_profile_rules(sizes, message):
    with pytest.raises(SpecError, match=message):
        check_dynamic_profiles(sizes)


def test_profiles_over_2048_are_a_warning_not_an_error(clean_export, tmp_path):
    # 1..2048 is ATC's recommendation (hiascend "--dynamic_batch_size"), not a limit.
    assert check_dynamic_profiles([1, 4096]) == [
        "dynamic_batch_sizes: profiles [4096] are above 2048, ATC's recommended maximum per profile"
    ]
    assert check_dynamic_profiles([1, 2048]) == []
    plan = write_plan(
        plan_commands(load_model(clean_export), AtcSpec(batch_sizes=[], dynamic_batch_sizes=[1, 4096]), clean_export),
        tmp_path,
    )
    manifest = json.loads(plan.manifest.read_text())
    assert manifest["warnings"] == plan.warnings and "4096" in plan.warnings[0]


@pytest.mark.parametrize("option", ["--dynamic_image_size=8,8;16,16", "--input_shape_range=image:[1~4],3,8,8"])
def test_dynamic_batch_excludes_other_dynamic_options(clean_export, option):
    spec = AtcSpec(dynamic_batch_sizes=[1, 2], extra_args=[option])
    with pytest.raises(SpecError, match=option.split("=")[0]):
        plan_commands(load_model(clean_export), spec, clean_export)


def test_dynamic_dims_field_is_owned_and_excludes_dynamic_batch(clean_export):
    with pytest.raises(SpecError, match="set by graphkit"):
        AtcSpec(dynamic_batch_sizes=[1, 2], extra_args=["--dynamic_dims=1,2"]).validate()
    spec = AtcSpec(
        batch_sizes=[],
        dynamic_batch_sizes=[1, 2],
        dynamic_dims=[[1], [2]],
        input_format="ND",
        input_shape="image:-1,3,8,8",
    )
    with pytest.raises(SpecError, match="cannot be combined"):
        spec.validate()


def test_symbolic_spatial_dims_need_input_shape(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y])
    path = save_model(model, tmp_path / "sym.onnx")
    with pytest.raises(SpecError, match="axis 2 is symbolic"):
        plan_commands(model, AtcSpec(batch_sizes=[1]), path)
    plan = plan_commands(model, AtcSpec(batch_sizes=[2], input_shape="x:1,3,32,48"), path)
    assert "--input_shape=x:2,3,32,48" in plan.commands[0].args


def test_check_command_uses_mode_3_without_output(clean_export):
    plan = plan_commands(load_model(clean_export), AtcSpec(batch_sizes=[1]), clean_export)
    check = check_command(plan, "report.json")
    assert "--mode=3" in check.args and "--check_report=report.json" in check.args
    assert not any(a.startswith("--output=") for a in check.args)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"batch_sizes": [1, "4"]}, r"batch_sizes\[1\]"),
        ({"log": "verbose"}, "log"),
        ({"batch_sizes": [0]}, "outside 1..2048"),
        ({"batch_sizes": [], "dynamic_batch_sizes": None}, "no OM"),
        ({"extra_args": ["--output=x"]}, "set by graphkit"),
        ({"out_nodes": ["dets", "node:0"]}, "one form at a time"),
        ({"out_nodes": [":0"]}, "neither"),
        ({"output_type": "INT8"}, "INT8 needs CANN 8.0 or later"),
        ({"dynamic_image_size": [[8, 8]]}, "2 to 100 profiles"),
        ({"dynamic_image_size": [[8, 8], [8, 8]]}, "unique"),
        ({"dynamic_image_size": [[8, 8], [16, 16]], "dynamic_batch_sizes": [1, 2]}, "cannot be combined"),
        ({"input_shape_range": "image:[1~8,3,0~4,4]"}, "low~high"),
        ({"input_shape_range": "image:1,3"}, r"input_name:\[d0"),
        ({"input_shape": "image:1,3,a,b"}, "not integers"),
        ({"cann": "x"}, "CANN version"),
        ({"batchsizes": [1]}, "did you mean"),
    ],
)
def test_spec_errors_name_the_field(mapping, message):
    with pytest.raises(SpecError, match=message):
        from_mapping(AtcSpec, mapping, "handoff.atc").validate("handoff.atc")


def test_spec_from_yaml_like_mapping():
    spec = from_mapping(
        AtcSpec,
        {"soc_version": "Ascend310P3", "cann": "6.0", "batch_sizes": [1, 4, 8, 16], "dynamic_batch_sizes": None},
        "handoff.atc",
    )
    spec.validate()
    assert spec.batch_sizes == [1, 4, 8, 16] and spec.build is False and spec.log == "error"


def test_cli_commands_writes_script_and_manifest(clean_export, tmp_path):
    out = tmp_path / "atc"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphkit",
            "atc",
            "commands",
            str(clean_export),
            "--output",
            str(out),
            "--batch-sizes",
            "1,4",
            "--dynamic-batch-sizes",
            "1,4,8",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["commands"]) == 3
    assert (out / "atc_commands.sh").exists() and (out / "atc_manifest.json").exists()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphkit",
            "atc",
            "commands",
            str(clean_export),
            "--output",
            str(out),
            "--dynamic-batch-sizes",
            "4",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "2 to 100" in bad.stderr


@pytest.mark.parametrize("flag", ["--batch-sizes", "--dynamic-batch-sizes"])
@pytest.mark.parametrize("value", ["", ",", " , "])
def test_empty_batch_size_lists_are_one_line_exit_2(tmp_path, clean_export, flag, value):
    """Found by the fuzz harness (seed 2): --batch-sizes '' was accepted and planned nothing."""
    args = [sys.executable, "-m", "graphkit", "atc", "commands", str(clean_export), "-o", str(tmp_path / "o")]
    result = subprocess.run([*args, flag, value], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("holds no batch size")
    assert not (tmp_path / "o").exists()
