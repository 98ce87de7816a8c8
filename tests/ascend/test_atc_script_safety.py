"""The generated ATC script never runs what a field contains (issue 10 §2).

Hostile values are either refused with one line and exit 2 (control characters: they would end a
comment line or a command) or quoted so that bash passes them to ATC unchanged. The script is
really run with bash against a fake ``atc`` that records its argv; a marker file shows whether
anything else was executed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from graphkit.ascend.command_lines import plan_commands, write_plan
from graphkit.ascend.spec import AtcSpec
from graphkit.ir.model_io import load_model
from graphkit.util.errors import SpecError


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "graphkit", "atc", *args], capture_output=True, text=True, cwd=cwd)


def _one_line_exit_2(result, *needles):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("graphkit: error: ") and result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr


@pytest.mark.parametrize(
    "flags",
    [
        ["--soc", "Ascend310P3\ntouch {marker} #"],
        ["--soc", "Ascend310P3\rtouch {marker}"],
        ["--cann", "6.0\ntouch {marker}"],
        ["--input-shape", "image:1,3,8,8\ntouch {marker}"],
        ["--output-prefix", "wseg\ntouch {marker}"],
        ["--out-nodes", "node:0\ntouch {marker}"],
        ["--log", "error\ntouch {marker}"],
    ],
)
def test_control_characters_are_refused_before_anything_is_written(clean_export, tmp_path, flags):
    marker = tmp_path / "marker"
    out = tmp_path / "out"
    result = _cli(
        "commands", str(clean_export), "-o", str(out), "--batch-sizes", "1", *[f.format(marker=marker) for f in flags]
    )
    _one_line_exit_2(result)
    assert not out.exists() and not marker.exists()


def test_a_nul_in_an_extra_arg_is_refused():
    with pytest.raises(SpecError, match=r"extra_args\[0\].*control character '\\x00'"):
        AtcSpec(extra_args=["--op_debug_level=0\x00"]).validate()


def test_model_file_name_with_a_newline_is_refused(clean_export, tmp_path):
    marker = tmp_path / "marker"
    hostile = tmp_path / "m\ntouch marker #.onnx"  # relative marker: run from tmp_path
    shutil.copy(clean_export, hostile)
    result = _cli("commands", str(hostile), "-o", str(tmp_path / "out"), "--batch-sizes", "1", cwd=tmp_path)
    _one_line_exit_2(result, "model path")
    assert not (tmp_path / "out").exists() and not marker.exists()


def test_pipeline_handoff_soc_version_with_a_newline_is_refused_before_any_pass(tmp_path):
    marker = tmp_path / "marker"
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "name: demo\nsource: {builtin: demo}\npasses: [eliminate-noops]\n"
        f"output: {{dir: {tmp_path / 'run'}}}\n"
        f'handoff: {{atc: {{soc_version: "Ascend310P3\\ntouch {marker} #"}}}}\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "graphkit", "apply", str(pipeline)], capture_output=True, text=True, cwd=tmp_path
    )
    _one_line_exit_2(result, "handoff.atc.soc_version")
    assert not (tmp_path / "run" / "model.onnx").exists() and not marker.exists()


def _run_script(script, atc, calls, env_extra=None):
    env = dict(os.environ, ATC=str(atc), FAKE_ATC_CALLS=str(calls), FAKE_ATC_MODE="success", **(env_extra or {}))
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)


def test_shell_metacharacters_reach_atc_verbatim(clean_export, tmp_path, fake_atc):
    """Quotes, $(...), backticks, ';' and spaces in paths and options: bash passes them unchanged."""
    marker = tmp_path / "marker"
    # The folder name carries a relative marker: an absolute one repeated three times makes
    # the name longer than NAME_MAX under a deep (xdist) basetemp.
    evil = "$(touch pwned)`touch pwned`;touch pwned; 'q' \"d\" *"
    model_dir = tmp_path / evil
    model_dir.mkdir()
    model = model_dir / "model name.onnx"
    shutil.copy(clean_export, model)
    switch = model_dir / "fusion switch.cfg"
    switch.write_text("SoftmaxFusionPass:off\n")
    spec = AtcSpec(
        batch_sizes=[1, 4],
        dynamic_batch_sizes=[1, 4],
        fusion_switch_file=str(switch),
        extra_args=[f"--op_debug_level=0 $(touch {marker})", "--quoted='x;y'"],
    )
    out = tmp_path / "out dir"
    plan = write_plan(plan_commands(load_model(model), spec, model), out)
    calls = tmp_path / "calls.jsonl"
    ran = _run_script(plan.script, fake_atc.write(tmp_path / "bin"), calls)
    assert ran.returncode == 0, ran.stderr
    assert not marker.exists()
    assert not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    assert recorded == [c.args for c in plan.commands]
    first = recorded[0]
    assert first[0] == f"--model={model.resolve()}"
    assert f"--fusion_switch_file={switch.resolve()}" in first
    assert first[-2:] == [f"--op_debug_level=0 $(touch {marker})", "--quoted='x;y'"]
    # The OMs were written next to the script (the script cds into its folder).
    assert (out / "wseg_bs1.om").exists() and (out / "wseg_dynbs.om").exists()


def test_exact_command_lines_with_every_typed_option(clean_export, tmp_path, fake_atc):
    aipp = tmp_path / "aipp.cfg"
    aipp.write_text("aipp_op {\n  aipp_mode: static\n}\n")
    keep = tmp_path / "keep.cfg"
    keep.write_text("OpType::Softmax\n")
    dtypes = tmp_path / "dtypes.cfg"
    dtypes.write_text("Opname1::InputDtype:dt_float16\n")
    relative = os.path.relpath(aipp)
    spec = AtcSpec(
        batch_sizes=[2],
        soc_version="Ascend310P3",
        insert_op_conf=relative,
        enable_small_channel=True,
        op_select_implmode="high_precision",
        optypelist_for_implmode=["Pooling", "SoftmaxV2"],
        out_nodes=["/Resize:0"],
        output_type="FP16",
        precision_mode_v2="mixed_float16",
        keep_dtype=str(keep),
        customize_dtypes=str(dtypes),
    )
    plan = write_plan(plan_commands(load_model(clean_export), spec, clean_export), tmp_path / "atc")
    calls = tmp_path / "calls.jsonl"
    ran = _run_script(plan.script, fake_atc.write(tmp_path / "bin"), calls)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(calls.read_text()) == [
        f"--model={clean_export.resolve()}",
        "--framework=5",
        "--output=wseg_bs2",
        "--input_format=NCHW",
        "--input_shape=image:2,3,8,8",
        "--soc_version=Ascend310P3",
        "--log=error",
        "--precision_mode_v2=mixed_float16",
        "--op_select_implmode=high_precision",
        "--optypelist_for_implmode=Pooling,SoftmaxV2",
        f"--insert_op_conf={aipp.resolve()}",  # made absolute: the script cds into its own folder
        "--enable_small_channel=1",
        "--out_nodes=/Resize:0",
        "--output_type=FP16",
        f"--keep_dtype={keep.resolve()}",
        f"--customize_dtypes={dtypes.resolve()}",
    ]
    line = next(x for x in plan.script.read_text().splitlines() if x.startswith('"$ATC"'))
    assert shlex.split(line)[1:] == json.loads(calls.read_text())


def test_dynamic_dims_command_and_matching_ais_bench_dymdims(tmp_path, fake_atc):
    from onnx import TensorProto, helper

    from graphkit.ir.model_io import save_model
    from graphkit.testing import make_model

    a = helper.make_tensor_value_info("ids", TensorProto.FLOAT, [1, "T"])
    b = helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, "T"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T"])
    path = save_model(make_model([helper.make_node("Add", ["ids", "mask"], ["y"])], [a, b], [y]), tmp_path / "t.onnx")
    spec = AtcSpec(batch_sizes=[], input_format="ND", input_shape="ids:1,-1;mask:1,-1", dynamic_dims=[[8, 8], [16, 16]])
    plan = write_plan(plan_commands(load_model(path), spec, path), tmp_path / "atc")
    calls = tmp_path / "calls.jsonl"
    assert _run_script(plan.script, fake_atc.write(tmp_path / "bin"), calls).returncode == 0
    args = json.loads(calls.read_text())
    assert "--input_shape=ids:1,-1;mask:1,-1" in args and "--dynamic_dims=8,8;16,16" in args
    assert "--input_format=ND" in args and "--output=wseg_dyndims" in args
    manifest = json.loads(plan.manifest.read_text())
    assert manifest["ais_bench_dymDims"] == ["ids:1,8;mask:1,8", "ids:1,16;mask:1,16"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"precision_mode": "force_fp16", "precision_mode_v2": "fp16"}, "cannot be given together"),
        ({"precision_mode": "fp16"}, "precision_mode"),
        ({"op_select_implmode": "high_precision_for_all"}, None),
        ({"optypelist_for_implmode": ["Pooling"]}, "needs op_select_implmode"),
        ({"op_select_implmode": "high_precision_for_all", "optypelist_for_implmode": ["Pooling"]}, "already applies"),
        ({"input_format": "NHWC"}, "input_format"),
        ({"input_format": "NCDHW"}, None),
        ({"input_format": "ND", "insert_op_conf": __file__}, "AIPP\\) needs input_format NCHW"),
        ({"output_type": "INT8"}, "output_type"),
        ({"output_type": "conv:0:FP16;fc:1:UINT8"}, None),
        ({"output_type": "conv:x:FP16"}, "output_type"),
        ({"fusion_switch_file": "/nonexistent/fusion.cfg"}, "no such file"),
        ({"insert_op_conf": "missing-aipp.cfg"}, "insert_op_conf: missing-aipp.cfg: no such file"),
        ({"dynamic_dims": [[1], [2]], "input_shape": "image:-1,3,8,8"}, "needs input_format ND"),
        ({"dynamic_dims": [[1], [1]], "input_shape": "image:-1,3,8,8", "input_format": "ND"}, "E10039"),
        ({"dynamic_dims": [[1]], "input_shape": "image:-1,3,8,8", "input_format": "ND"}, "2 to 100"),
        ({"dynamic_dims": [[1], [2]], "input_format": "ND"}, "needs -1"),
        ({"input_shape": "image:1,-1,8,8"}, "only for the batch"),
        ({"input_shape": "image:1,3,8,8;image:1,3,8,8"}, "given twice"),
        ({"soc_version": "Ascend 310"}, "soc_version"),
        ({"cann": "6.0;rm"}, "CANN version"),
    ],
)
def test_typed_options_are_checked_before_any_run(mapping, message):
    from graphkit.util.typed_config import from_mapping

    if message is None:
        from_mapping(AtcSpec, mapping, "handoff.atc").validate("handoff.atc")
        return
    with pytest.raises(SpecError, match=message):
        from_mapping(AtcSpec, mapping, "handoff.atc").validate("handoff.atc")


def test_aipp_input_cannot_be_fp16(clean_export, tmp_path):
    aipp = tmp_path / "aipp.cfg"
    aipp.write_text("aipp_op {\n}\n")
    spec = AtcSpec(insert_op_conf=str(aipp), input_fp16_nodes=["image"])
    with pytest.raises(SpecError, match="E10034"):
        plan_commands(load_model(clean_export), spec, clean_export)
    plain = plan_commands(load_model(clean_export), AtcSpec(input_fp16_nodes=["image"]), clean_export)
    assert plain.commands[0].args[-1] == "--input_fp16_nodes=image"
    with pytest.raises(SpecError, match="'img' is not a graph input"):
        plan_commands(load_model(clean_export), AtcSpec(input_fp16_nodes=["img"]), clean_export)


def test_fusion_switch_file_forms(tmp_path):
    from graphkit.ascend.spec import read_fusion_switches

    lines = tmp_path / "a.cfg"
    lines.write_text("SoftmaxFusionPass:off\n# comment\nConvBatchnormFusionPass:on\n")
    assert read_fusion_switches(lines) == {"SoftmaxFusionPass": "off", "ConvBatchnormFusionPass": "on"}
    js = tmp_path / "b.cfg"
    js.write_text(
        '{"Switch": {"GraphFusion": {"SoftmaxFusionPass": "off"}, "UBFusion": {"TbeEltwiseFusionPass": "on"}}}'
    )
    assert read_fusion_switches(js) == {"SoftmaxFusionPass": "off", "TbeEltwiseFusionPass": "on"}
    for text, message in (("garbage", "not 'PassName:on|off'"), ("X:maybe", "expected on or off"), ("", "no fusion")):
        bad = tmp_path / "bad.cfg"
        bad.write_text(text)
        with pytest.raises(SpecError, match=message):
            read_fusion_switches(bad)


def test_cli_unknown_input_shape_name_and_missing_fusion_file_are_exit_2(clean_export, tmp_path, capsys):
    from types import SimpleNamespace

    from graphkit.cli.main import main

    def cli(*args):
        code = main(["atc", *args])
        captured = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)

    out = tmp_path / "out"
    for action in ("precheck", "commands"):
        extra = ["-o", str(out)] if action == "commands" else []
        wrong = cli(action, str(clean_export), *extra, "--input-shape", "images:1,3,8,8")
        _one_line_exit_2(wrong, "'images' is not a graph input", "image")
        missing = cli(action, str(clean_export), *extra, "--fusion-switch-file", str(tmp_path / "nope.cfg"))
        _one_line_exit_2(missing, "fusion_switch_file", "nope.cfg: no such file")
    assert not out.exists()
    both = cli(
        "commands", str(clean_export), "-o", str(out), "--precision-mode", "force_fp16", "--precision-mode-v2", "fp16"
    )
    _one_line_exit_2(both, "cannot be given together")


def test_cli_typed_flags_reach_the_command_line(clean_export, tmp_path):
    aipp = tmp_path / "aipp.cfg"
    aipp.write_text("aipp_op {\n}\n")
    out = tmp_path / "out"
    result = _cli(
        "commands",
        str(clean_export),
        "-o",
        str(out),
        "--insert-op-conf",
        "aipp.cfg",
        "--enable-small-channel",
        "1",
        "--op-select-implmode",
        "high_performance_for_all",
        "--output-type",
        "FP32",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)["commands"][0]
    assert f"--insert_op_conf={aipp.resolve()}" in shlex.split(line)
    assert "--enable_small_channel=1" in line and "--op_select_implmode=high_performance_for_all" in line
    manifest = json.loads((out / "atc_manifest.json").read_text())
    assert manifest["precision_mode"] == "force_fp16 (ATC's default; not given)"
