"""graphkit.ascend.precheck: rules on tiny torch exports and hand-built graphs, plus the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

from graphkit.ascend.precheck import precheck
from graphkit.ir.model_io import load_model
from graphkit.testing import make_model
from graphkit.util.errors import SpecError


def rules(report, level=None):
    return [f.rule for f in report.findings if level is None or f.level == level]


def test_modelzoo_fix_reports_softmax_semantics_error(modelzoo_fix):
    report = precheck(load_model(modelzoo_fix), cann="6.0")
    errors = [f for f in report.findings if f.level == "error"]
    assert [f.rule for f in errors] == ["softmax-axis"]
    assert errors[0].node == "softmax_fixed"
    assert "axis=1" in errors[0].message and "rank-4" in errors[0].message
    assert errors[0].fix_pass == "softmax-transpose"
    assert report.has_errors


def test_raw_export_reports_softmax_transposes_as_perf_and_symbolic_dims(raw_export):
    report = precheck(load_model(raw_export), cann="6.0")
    assert rules(report, "error") == []
    perf = [f for f in report.findings if f.level == "perf"]
    assert [f.rule for f in perf] == ["softmax-transpose"]
    assert "softmax-transpose" in perf[0].hint
    symbolic = [f for f in report.findings if f.rule == "symbolic-dim"]
    assert symbolic and all(f.node == "mask" for f in symbolic)
    assert "batch" not in symbolic[0].message.split("axes")[1]  # the batch axis itself is not reported


def test_clean_opset13_model_has_no_errors(clean_export):
    report = precheck(load_model(clean_export), cann="6.0", batch_sizes=[1, 4], dynamic_batch_sizes=[1, 4, 8])
    assert report.counts["error"] == 0
    assert "softmax-axis" not in rules(report) and "softmax-transpose" not in rules(report)


def _single(op, attrs=None, opset=13, x_shape=(1, 4, 8, 8), y_shape=None, domain=""):
    node = helper.make_node(op, ["x"], ["y"], name="n0", domain=domain, **(attrs or {}))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_shape or x_shape))
    model = make_model([node], [x], [y], opset=opset)
    if domain:
        model.opset_import.append(helper.make_opsetid(domain, 1))
    return model


@pytest.mark.parametrize(
    ("cann", "opset", "bad"),
    [("6.0", 13, False), ("6.0", 14, True), ("6.0.RC1", 17, True), ("7.0", 17, False), ("7.0", 18, False)],
)
def test_opset_range_per_cann(cann, opset, bad):
    report = precheck(_single("Relu", opset=opset), cann=cann)
    assert ("opset-range" in rules(report, "error")) == bad
    if bad:
        assert report.findings[0].fix_pass == "convert-opset"


def test_unknown_cann_version_is_a_spec_error():
    with pytest.raises(SpecError, match="cann"):
        precheck(_single("Relu"), cann="five")


def test_custom_domain_is_an_error():
    report = precheck(_single("MyOp", domain="com.example"), cann="6.0")
    assert rules(report, "error") == ["custom-domain"]
    assert report.findings[0].op == "com.example::MyOp"


@pytest.mark.parametrize(("axis", "opset", "error"), [(1, 11, True), (-1, 11, False), (3, 11, False), (1, 13, False)])
def test_softmax_axis_rule(axis, opset, error):
    report = precheck(_single("Softmax", {"axis": axis}, opset=opset), cann="6.0")
    assert ("softmax-axis" in rules(report, "error")) == error


def test_softmax_default_axis_below_13_on_rank2_is_fine():
    report = precheck(_single("LogSoftmax", opset=11, x_shape=(2, 5)), cann="6.0")
    assert rules(report) == []


def _resize(mode, coordinates, opset=13):
    extra = {"coordinate_transformation_mode": coordinates} if coordinates else {}
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode=mode, **extra)
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])
    return make_model([node], [x], [y], [scales], opset=opset)


@pytest.mark.parametrize(
    ("mode", "coordinates", "expected"),
    [
        ("linear", "align_corners", []),
        ("linear", "pytorch_half_pixel", []),
        ("nearest", "asymmetric", []),
        ("linear", "half_pixel", ["resize-coordinates"]),
        ("cubic", "align_corners", ["resize-mode"]),
    ],
)
def test_resize_rules(mode, coordinates, expected):
    assert rules(precheck(_resize(mode, coordinates), cann="6.0")) == expected


def test_index_avgpool_pad_zero_dim_rules():
    nodes = [
        helper.make_node("ArgMax", ["x"], ["am"], name="argmax", axis=1),
        helper.make_node("AveragePool", ["x"], ["pool"], name="pool", kernel_shape=[300, 1]),
        helper.make_node("Pad", ["x", "pads"], ["padded"], name="pad", mode="reflect"),
        helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["empty"], name="slice"),
    ]
    inits = [
        helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1]),
        helper.make_tensor("starts", TensorProto.INT64, [1], [2]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [2]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 300, 8])
    outs = [
        helper.make_tensor_value_info("am", TensorProto.INT64, None),
        helper.make_tensor_value_info("pool", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("padded", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("empty", TensorProto.FLOAT, None),
    ]
    report = precheck(make_model(nodes, [x], outs, inits, opset=13), cann="6.0")
    found = {(f.rule, f.level) for f in report.findings}
    assert ("int64-index", "warning") in found
    # AveragePool over 255 and reflect Pad compile (AI CPU / slow path): performance findings.
    assert ("avgpool-kernel", "perf") in found
    assert ("reflect-pad", "perf") in found
    assert ("zero-sized-dim", "error") in found
    argmax = next(f for f in report.findings if f.rule == "int64-index")
    assert "unverified" in argmax.message  # no public source confirms int64 ArgMax fails


def _pool(kernel):
    node = helper.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=kernel)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 300, 300])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return make_model([node], [x], [y], opset=13)


@pytest.mark.parametrize(
    ("kernel", "flagged"), [([16, 16], False), ([17, 16], True), ([255, 1], False), ([256, 1], True)]
)
def test_avgpool_kernel_limits(kernel, flagged):
    assert rules(precheck(_pool(kernel), cann="6.0"), "perf") == (["avgpool-kernel"] if flagged else [])


def test_topk_int64_is_the_known_failure():
    k = helper.make_tensor("k", TensorProto.INT64, [1], [2])
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    outs = [helper.make_tensor_value_info(n, t, None) for n, t in (("v", TensorProto.FLOAT), ("i", TensorProto.INT64))]
    finding = precheck(make_model([node], [x], outs, [k], opset=13), cann="6.0").findings[0]
    assert finding.rule == "int64-index" and "known ATC failure" in finding.message
    assert "unverified" not in finding.message


def _pad(value, mode="constant", opset=13, graph_value=False):
    inputs = ["x", "pads"] + (["cv"] if value is not None or graph_value else [])
    nodes = [helper.make_node("Pad", inputs, ["y"], name="pad", mode=mode)]
    inits = [helper.make_tensor("pads", TensorProto.INT64, [4], [0, 1, 0, 1])]
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])]
    if graph_value:
        graph_inputs.append(helper.make_tensor_value_info("cv", TensorProto.FLOAT, []))
    elif value is not None:
        inits.append(helper.make_tensor("cv", TensorProto.FLOAT, [], [value]))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return make_model(nodes, graph_inputs, [y], inits, opset=opset)


def test_pad_constant_value_must_be_zero():
    assert rules(precheck(_pad(None), cann="6.0")) == []
    assert rules(precheck(_pad(0.0), cann="6.0")) == []
    bad = precheck(_pad(1.5), cann="6.0")
    assert rules(bad, "error") == ["pad-constant"] and "1.5" in bad.findings[0].message
    assert "pad_with_zero" in bad.findings[0].hint
    # Documented in CANN's ONNX operator spec for Pad (docs/ascend.md): no "unverified" label.
    assert "unverified" not in bad.findings[0].message and "atlasoxol_09_0111" in bad.findings[0].message
    assert rules(precheck(_pad(None, graph_value=True), cann="6.0"), "warning") == ["pad-constant"]
    legacy = helper.make_node("Pad", ["x"], ["y"], name="pad", pads=[0, 1, 0, 1], value=2.0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    assert rules(precheck(make_model([legacy], [x], [y], opset=10), cann="6.0"), "error") == ["pad-constant"]


def test_resize_default_half_pixel_and_computed_sizes(raw_export):
    finding = next(f for f in precheck(_resize("linear", None), cann="6.0").findings)
    assert finding.rule == "resize-coordinates" and "ONNX's default" in finding.message
    # The raw export resizes to image.shape[-2:]: sizes come from a Shape chain.
    raw = precheck(load_model(raw_export), cann="6.0")
    assert "resize-dynamic-scales" in rules(raw, "warning")


def test_notes_state_the_default_precision_and_the_fusion_switch(tmp_path):
    plain = precheck(_single("Relu"), cann="6.0")
    assert any("force_fp16" in n and "ATC's default" in n for n in plain.notes)
    switch = tmp_path / "fusion_swith.cfg"
    switch.write_text("SoftmaxFusionPass:off")
    noted = precheck(_single("Relu"), cann="6.0", precision_mode="allow_fp32_to_fp16", fusion_switch_file=str(switch))
    assert noted.notes[0] == "precision_mode=allow_fp32_to_fp16"
    assert noted.notes[1].startswith("SoftmaxFusionPass off:") and "unverified" in noted.notes[1]
    # What the public implementation shows is stated; the guide no longer ships the file.
    assert "3-D last-axis softmax" in noted.notes[1] and "no longer uses a fusion switch file" in noted.notes[1]


def test_input_shape_rules():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y])
    uncovered = precheck(model, cann="6.0")
    assert "input-shape" in rules(uncovered, "error")
    assert next(f for f in uncovered.findings if f.rule == "input-shape").fix_pass == "fix-input-shape"
    covered = precheck(model, cann="6.0", input_shape="x:1,3,64,64")
    assert rules(covered, "error") == []
    wrong_name = precheck(model, cann="6.0", input_shape="x:1,3,64,64;image:1,3,8,8")
    assert "image" in [f.node for f in wrong_name.findings if f.rule == "input-shape"]


def test_static_batch_with_other_planned_sizes_is_an_error():
    report = precheck(_single("Relu"), cann="6.0", batch_sizes=[1, 4])
    finding = next(f for f in report.findings if f.rule == "static-batch")
    assert finding.level == "error" and finding.fix_pass == "dynamic-batch"
    assert precheck(_single("Relu"), cann="6.0", batch_sizes=[1]).counts["error"] == 0


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "graphkit", "atc", *args], capture_output=True, text=True)


def test_cli_exit_codes_and_json(modelzoo_fix, clean_export, raw_export):
    bad = _cli("precheck", str(modelzoo_fix), "--json")
    assert bad.returncode == 1, bad.stderr
    data = json.loads(bad.stdout)
    assert data["counts"]["error"] == 1 and data["findings"][0]["rule"] == "softmax-axis"
    good = _cli("precheck", str(clean_export), "--cann", "6.0")
    assert good.returncode == 0, good.stderr
    assert "0 error(s)" in good.stdout
    raw = _cli("precheck", str(raw_export))
    assert raw.returncode == 0 and "softmax-transpose" in raw.stdout


def test_cli_missing_model_is_one_line_exit_2(tmp_path):
    result = _cli("precheck", str(tmp_path / "nope.onnx"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "nope.onnx" in result.stderr


def test_precheck_does_not_modify_the_model(raw_export):
    model = load_model(raw_export)
    before = model.SerializeToString()
    precheck(model)
    assert model.SerializeToString() == before
    assert isinstance(model, onnx.ModelProto)
