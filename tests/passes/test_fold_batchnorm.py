"""fold-batchnorm: BatchNormalization folded into the preceding Conv, exact up to fp32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
from graphkit_passes.fold_batchnorm import FoldBatchNorm
from onnx import TensorProto, helper, numpy_helper

from graphkit.testing import (
    assert_declines,
    assert_idempotent,
    assert_op_types,
    assert_pass_rewrites,
    make_model,
)
from graphkit.transform.registry import get_pass

ATOL = RTOL = 1e-5


def conv_bn(
    cin=4,
    cout=8,
    group=1,
    bias=True,
    opset=13,
    constant_nodes=False,
    extra_consumer=False,
    bn_attrs=None,
    bn_extra=(),
    seed=0,
):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((cout, cin // group, 3, 3)).astype(np.float32)
    params = {
        "W": w,
        "B": rng.standard_normal(cout).astype(np.float32),
        "scale": rng.uniform(0.5, 2, cout).astype(np.float32),
        "beta": rng.standard_normal(cout).astype(np.float32),
        "mean": rng.standard_normal(cout).astype(np.float32),
        "var": rng.uniform(0.1, 2, cout).astype(np.float32),
    }
    if not bias:
        del params["B"]
    nodes, inits = [], []
    for name, value in params.items():
        if constant_nodes and name != "W":
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name)))
        else:
            inits.append(numpy_helper.from_array(value, name))
    conv_inputs = ["x", "W"] + (["B"] if bias else [])
    nodes.append(helper.make_node("Conv", conv_inputs, ["c"], name="conv", pads=[1, 1, 1, 1], group=group))
    bn = helper.make_node(
        "BatchNormalization",
        ["c", "scale", "beta", "mean", "var"],
        ["y", *bn_extra],
        name="bn",
        epsilon=1e-3,
        **(bn_attrs or {}),
    )
    nodes.append(bn)
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", cout, 5, 5])]
    if extra_consumer:
        nodes.append(helper.make_node("Relu", ["c"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", cout, 5, 5]))
    return make_model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cin, 5, 5])], outputs, inits, opset=opset
    )


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("group", [1, 2, 4])
def test_folds_conv_with_and_without_bias_and_groups(bias, group):
    model = conv_bn(group=group, bias=bias)
    result = assert_pass_rewrites(FoldBatchNorm(), model, atol=ATOL, rtol=RTOL, dims={"N": 2})
    assert_op_types(result.model, ["Conv"])
    conv = result.model.graph.node[0]
    assert conv.name == "conv" and conv.output[0] == "y" and len(conv.input) == 3
    assert result.counts == {"folded": 1}
    assert_idempotent(FoldBatchNorm(), result.model)


@pytest.mark.parametrize("opset", [9, 14, 15])
def test_constant_node_params_and_opsets(opset):
    model = conv_bn(constant_nodes=True, opset=opset)
    result = assert_pass_rewrites(FoldBatchNorm(), model, atol=ATOL, rtol=RTOL, dims={"N": 1})
    assert_op_types(result.model, ["Conv"])


def test_weight_keeps_its_name_when_only_this_conv_reads_it():
    result = FoldBatchNorm()(conv_bn())
    assert {t.name for t in result.model.graph.initializer} == {"W", "B"}


def test_declines_when_conv_output_has_another_consumer():
    assert_declines(FoldBatchNorm(), conv_bn(extra_consumer=True), reason_contains="has 2 consumers")


def test_declines_non_constant_scale_and_training_mode():
    model = conv_bn()
    model.graph.initializer.remove(next(t for t in model.graph.initializer if t.name == "scale"))
    model.graph.input.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, [8]))
    assert_declines(FoldBatchNorm(), model, reason_contains="BN scale 'scale' is not constant")
    assert_declines(
        FoldBatchNorm(),
        conv_bn(opset=15, bn_attrs={"training_mode": 1}, bn_extra=("rm", "rv")),
        reason_contains="training mode",
    )


def test_declines_bn_not_after_conv():
    model = conv_bn(cin=8)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    conv.CopyFrom(helper.make_node("Relu", ["x"], ["c"], name="relu"))
    assert_declines(FoldBatchNorm(), model, reason_contains="not produced by a Conv (Relu)")


def test_registry():
    cls = get_pass("fold-batchnorm")
    assert cls is FoldBatchNorm and cls.exact
