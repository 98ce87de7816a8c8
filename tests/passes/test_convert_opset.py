"""convert-opset: onnx version converter with shape inference first, clear refusals."""

from __future__ import annotations

import pytest
from graphkit_passes.convert_opset import ConvertOpset

from graphkit.ir.model_io import default_opset
from graphkit.testing import (
    assert_declines,
    assert_idempotent,
    assert_op_types,
    assert_pass_rewrites,
    parse_model,
    run_pass,
)
from graphkit.transform.registry import get_pass
from graphkit.util.errors import SpecError


def model(body: str, opset: int, inputs="float[N,3,4,5] x", outputs="float[N,3,4,5] y", ir=6):
    return parse_model(f'<ir_version: {ir}, opset_import: ["" : {opset}]> g ({inputs}) => ({outputs}) {{ {body} }}')


def test_opset11_softmax_and_reducesum_to_13():
    m = model("s = Softmax<axis=1>(x) y = ReduceSum<axes=[2], keepdims=1>(s)", 11, outputs="float[N,3,1,5] y")
    result = assert_pass_rewrites(ConvertOpset(target=13), m, atol=1e-6, rtol=0, dims={"N": 2})
    assert default_opset(result.model) == 13
    assert result.model.ir_version >= 7  # opset 13 needs IR 7
    assert_op_types(result.model, ["Shape", "Flatten", "Softmax", "Reshape", "Constant", "ReduceSum"])
    assert_idempotent(ConvertOpset(target=13), result.model)


@pytest.mark.parametrize("target", [13, 17, 21])
def test_upgrades_keep_outputs(target):
    m = model("a = Relu(x) y = Softmax<axis=-1>(a)", 11)
    result = assert_pass_rewrites(ConvertOpset(target=target), m, atol=0, rtol=0, dims={"N": 1})
    assert default_opset(result.model) == target


def test_already_at_target_is_a_noop():
    m = model("y = Relu(x)", 13, ir=8)
    result = run_pass(ConvertOpset(target=13), m)
    assert not result.modified and result.model is m


def test_downgrade_declined_unless_allowed():
    m = model("y = Softmax<axis=-1>(x)", 13, ir=8)
    assert_declines(ConvertOpset(target=11), m, reason_contains="allow_downgrade")
    result = assert_pass_rewrites(ConvertOpset(target=11, allow_downgrade=True), m, atol=1e-6, rtol=0, dims={"N": 1})
    assert default_opset(result.model) == 11
    # the converter has no down-adapter for most ops: a clear refusal naming the op
    relu = model("y = Relu(x)", 13, ir=8)
    assert_declines(ConvertOpset(target=11, allow_downgrade=True), relu, reason_contains="for Relu")


def test_unconvertible_op_is_declined_with_the_converter_message():
    # GridSample (opset 16) has no adapter down to 15.
    m = model(
        "y = GridSample(x, g)",
        16,
        inputs="float[1,3,4,5] x, float[1,4,5,2] g",
        outputs="float[1,3,4,5] y",
        ir=8,
    )
    result = assert_declines(ConvertOpset(target=15, allow_downgrade=True), m, reason_contains="cannot convert")
    assert "16 -> 15" in result.declined[0].reason


def test_registry_and_option_validation():
    cls = get_pass("convert-opset")
    assert cls is ConvertOpset and cls.changes_opset
    with pytest.raises(SpecError, match="target"):
        cls.from_spec({"target": "13"}, "pipeline.yaml passes[0]")
    with pytest.raises(SpecError, match="target"):
        cls.from_spec({"target": 99}, "pipeline.yaml passes[0]")


def test_declines_a_conversion_that_would_change_graph_inputs():
    """Scan 8 -> 9 drops the batch axis of the graph inputs: declined, never a contract error."""
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    from graphkit.testing import assert_declines
    from graphkit.transform.registry import get_pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (case,) = [c for c in collect_testcases() if c.name == "test_scan_sum"]
    assert_declines(get_pass("convert-opset")(target=13), case.model, reason_contains="would change the graph inputs")
