"""fuse-pad-conv: a zero constant Pad in front of a Conv becomes the Conv's own pads."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from graphkit_passes.fuse_pad_conv import FusePadConv
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from graphkit.testing import (
    assert_applies_share,
    assert_declines,
    assert_idempotent,
    assert_op_types,
    assert_pass_rewrites,
    check_declines_or_exact,
    make_model,
    property_settings,
    run_pass,
    value,
)
from graphkit.transform.registry import get_pass

ATOL = RTOL = 1e-6  # the same function; a runtime may pick another conv algorithm for the new pads


def pad_conv(
    pads=(0, 0, 1, 2, 0, 0, 1, 0),
    opset=13,
    mode="constant",
    fill=None,
    conv_pads=None,
    bias=True,
    auto_pad=None,
    group=1,
    axes=None,
    extra_reader=False,
    seed=0,
    batch="N",
):
    """x [N,4,6,5] -> Pad -> Conv(3x3, 8 channels) -> y."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 4 // group, 3, 3)).astype(np.float32), "W")]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "B"))
    pad_attrs = {"mode": mode}
    if opset < 11:
        pad_inputs = ["x"]
        pad_attrs["pads"] = list(pads)
        if fill is not None:
            pad_attrs["value"] = float(fill)
    else:
        inits.append(numpy_helper.from_array(np.array(pads, np.int64), "pads"))
        pad_inputs = ["x", "pads"]
        if fill is not None or axes is not None:
            pad_inputs.append("fill" if fill is not None else "")
            if fill is not None:
                inits.append(numpy_helper.from_array(np.array(fill, np.float32), "fill"))
        if axes is not None:
            inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
            pad_inputs.append("axes")
    conv_attrs = {"kernel_shape": [3, 3], "group": group}
    if conv_pads is not None:
        conv_attrs["pads"] = list(conv_pads)
    if auto_pad is not None:
        conv_attrs["auto_pad"] = auto_pad
    nodes = [
        helper.make_node("Pad", pad_inputs, ["p"], name="pad", **pad_attrs),
        helper.make_node("Conv", ["p", "W", "B"] if bias else ["p", "W"], ["y"], name="conv", **conv_attrs),
    ]
    outputs = [value("y", ["N", 8, None, None])]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["p"], ["r"]))
        outputs.append(value("r", ["N", 4, None, None]))
    return make_model(nodes, [value("x", [batch, 4, 6, 5])], outputs, inits, opset=opset)


def fuse(m):
    result = assert_pass_rewrites(FusePadConv(), m, atol=ATOL, rtol=RTOL, dims={"N": 2})
    assert_op_types(result.model, ["Conv"])
    assert_idempotent(FusePadConv(), result.model)
    conv = result.model.graph.node[0]
    assert conv.name == "conv" and conv.input[0] == "x" and conv.output[0] == "y"
    return result, helper.get_attribute_value(next(a for a in conv.attribute if a.name == "pads"))


@pytest.mark.parametrize("opset", [7, 11, 13, 18])
def test_spatial_pad_moves_into_the_conv_at_every_pad_form(opset):
    result, pads = fuse(pad_conv(opset=opset))
    assert result.counts == {"fused": 1}
    assert pads == [1, 2, 1, 0]  # H begin, W begin, H end, W end


def test_pads_add_to_the_convs_own_and_no_bias_and_depthwise():
    _, pads = fuse(pad_conv(conv_pads=[1, 1, 1, 1], bias=False, group=4))
    assert pads == [2, 3, 2, 1]


def test_all_zero_pad_just_disappears():
    _, pads = fuse(pad_conv(pads=[0] * 8, fill=0.0))
    assert pads == [0, 0, 0, 0]


def test_pad_with_axes_at_opset_18():
    # axes [2, 3]: pads are [H begin, W begin, H end, W end]; negative axes count from the end
    _, pads = fuse(pad_conv(pads=[1, 0, 2, 1], axes=[-2, -1], opset=18))
    assert pads == [1, 0, 2, 1]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"mode": "reflect"}, "Pad mode is 'reflect'"),
        ({"fill": 1.5}, "not 0 (only a zero pad"),
        ({"fill": 2.0, "opset": 10}, "Pad value 2.0 is not 0"),
        ({"pads": (0, 1, 1, 1, 0, 0, 1, 1)}, "pad the batch or channel axis"),
        ({"pads": (0, 0, -1, 0, 0, 0, 1, 0)}, "negative pad (a crop)"),
        ({"auto_pad": "SAME_UPPER"}, "explicit pads (auto_pad NOTSET) would make it fusable"),
        ({"extra_reader": True}, "also read by Relu"),
    ],
)
def test_declines_with_the_reason(kwargs, reason):
    assert_declines(FusePadConv(), pad_conv(**kwargs), reason_contains=reason)


def test_declines_pad_amounts_that_are_not_constant():
    m = pad_conv()
    m.graph.initializer.pop(-1)  # 'pads' becomes a graph input
    m.graph.input.append(value("pads", [8], onnx.TensorProto.INT64))
    assert_declines(FusePadConv(), m, reason_contains="folding them first would make it fusable")


def test_registered_exact_and_in_the_generic_preset():
    from graphkit.transform.presets import pass_names, preset_passes

    cls = get_pass("fuse-pad-conv")
    assert cls is FusePadConv and cls.exact
    assert "fuse-pad-conv" in pass_names(preset_passes("generic"))


def test_no_pad_is_no_match():
    m = pad_conv()
    m.graph.node[1].input[0] = "x"
    del m.graph.node[0]
    result = run_pass(FusePadConv(), m)
    assert not result.modified and not result.declined


@st.composite
def pad_conv_cases(draw):
    spatial = [draw(st.integers(-1, 2)) for _ in range(4)]  # -1: a crop (near miss)
    outer = [0, 0] if draw(st.integers(0, 4)) else [0, draw(st.integers(0, 1))]  # padded channels: near miss
    pads = (*outer, spatial[0], spatial[1], 0, 0, spatial[2], spatial[3])
    mode = draw(st.sampled_from(["constant", "constant", "constant", "edge"]))
    fill = draw(st.sampled_from([None, 0.0, 0.0, 0.5]))
    return pad_conv(
        pads=pads,
        opset=draw(st.sampled_from([10, 13, 18])),
        mode=mode,
        fill=fill,
        conv_pads=draw(st.sampled_from([None, [0, 1, 1, 0]])),
        bias=draw(st.booleans()),
        group=draw(st.sampled_from([1, 2, 4])),
        seed=draw(st.integers(0, 3)),
        batch=2,
    )


APPLIED: list[bool] = []


@property_settings(max_examples=30)
@given(pad_conv_cases())
def test_property_declines_or_is_exact(m):
    APPLIED.append(check_declines_or_exact(FusePadConv(), m, atol=ATOL, rtol=RTOL))


def test_property_applies_on_a_share_of_generated_cases():
    if not APPLIED:
        test_property_declines_or_is_exact()
    assert_applies_share(APPLIED, at_least=0.2)
    assert not all(APPLIED)
