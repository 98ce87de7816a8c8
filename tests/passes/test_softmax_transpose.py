"""softmax-transpose: fold Transpose -> Softmax -> inverse Transpose, exact at every opset."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.version_converter
import pytest
from graphkit_passes.softmax_transpose import SoftmaxTranspose
from onnx import TensorProto, helper

from graphkit.ir.model_io import default_opset
from graphkit.runtime.ort import run_ort
from graphkit.testing import (
    assert_declines,
    assert_idempotent,
    assert_numerically_equal,
    assert_op_types,
    assert_pass_rewrites,
    export_legacy,
    make_model,
)
from graphkit.transform.registry import get_pass
from graphkit.util.errors import SpecError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy exporter, used on purpose


class ChannelSoftmax(torch.nn.Module):
    """The wseg head's softmax as the reference implementation writes it."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).softmax(-1).permute(0, 3, 1, 2)


def export_wseg_like(opset: int) -> onnx.ModelProto:
    """A legacy torch export like the ModelZoo one: [N,21,H,W], batch named '-1'."""
    return export_legacy(ChannelSoftmax(), (torch.randn(2, 21, 6, 5),), ["image"], ["mask"], opset, batch_dim="-1")


def chain(perm, axis, opset, shape, op="Softmax", inverse=None):
    """x -> Transpose(perm) -> op(axis) -> Transpose(inverse or perm^-1) -> y."""
    inverse = list(np.argsort(perm)) if inverse is None else inverse
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="t1", perm=perm),
        helper.make_node(op, ["t"], ["s"], name="sm", axis=axis),
        helper.make_node("Transpose", ["s"], ["y"], name="t2", perm=[int(i) for i in inverse]),
    ]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        opset=opset,
        ir_version=7,
    )


@pytest.mark.parametrize("opset", [11, 12])
def test_wseg_legacy_export_is_raised_to_13_and_folded_bit_exact(opset):
    model = export_wseg_like(opset)
    assert_op_types(model, ["Transpose", "Softmax", "Transpose"])
    result = assert_pass_rewrites(SoftmaxTranspose(), model, atol=1e-6, rtol=0, dims={"batch": 2})
    assert_op_types(result.model, ["Softmax"])
    (node,) = result.model.graph.node
    assert node.attribute[0].i == 1 and node.output[0] == "mask"
    assert default_opset(result.model) == 13
    assert result.counts == {"folded": 1, "opset_upgraded": 1}
    assert_idempotent(SoftmaxTranspose(), result.model)


def test_result_is_a_channel_softmax_not_the_modelzoo_joint_one():
    model = export_wseg_like(11)
    result = SoftmaxTranspose()(model)
    feeds = {"image": np.random.default_rng(1).standard_normal((1, 21, 6, 5)).astype(np.float32) * 4}
    mask = run_ort(result.model, feeds)["mask"]
    np.testing.assert_allclose(mask.sum(axis=1), 1.0, atol=1e-6, rtol=0)
    # The ModelZoo form (opset-11 Softmax(axis=1) on 4-D) sums to 1 over C*H*W instead.
    zoo = make_model(
        [helper.make_node("Softmax", ["image"], ["mask"], axis=1)],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 21, 6, 5])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 21, 6, 5])],
        opset=11,
    )
    assert abs(run_ort(zoo, feeds)["mask"] - mask).max() > 1e-2


def test_opset13_export_folds_without_opset_change():
    model = export_wseg_like(13)
    result = assert_pass_rewrites(SoftmaxTranspose(), model, atol=0, rtol=0, dims={"batch": 3})
    assert_op_types(result.model, ["Softmax"])
    assert default_opset(result.model) == 13
    assert result.counts == {"folded": 1}


def test_sees_through_the_version_converter_flatten_wrapper():
    # When the rank is unknown the converter wraps the opset-11 softmax as Flatten/Softmax/Reshape;
    # a Reshape to a runtime shape hides the rank here, as shape chains do in big exports.
    model = chain([0, 2, 3, 1], 3, 11, [2, 21, 4, 3])
    model.graph.input.append(helper.make_tensor_value_info("shape", TensorProto.INT64, [None]))
    model.graph.node.insert(0, helper.make_node("Reshape", ["x", "shape"], ["xr"]))
    model.graph.node[1].input[0] = "xr"
    converted = onnx.version_converter.convert_version(model, 13)
    assert_op_types(converted, ["Reshape", "Transpose", "Shape", "Flatten", "Softmax", "Reshape", "Transpose"])
    result = SoftmaxTranspose()(converted)
    assert_op_types(result.model, ["Reshape", "Softmax"])
    assert result.modified and result.model.graph.node[1].attribute[0].i == 1
    feeds = {
        "x": np.random.default_rng(0).standard_normal((2, 21, 4, 3)).astype(np.float32),
        "shape": np.array([2, 21, 4, 3], dtype=np.int64),
    }
    assert_numerically_equal(model, result.model, atol=1e-6, rtol=0, feeds=feeds)
    assert_idempotent(SoftmaxTranspose(), result.model)
    # and through the pass's own upgrade path on the opset-11 model
    upgraded = SoftmaxTranspose()(model)
    assert_op_types(upgraded.model, ["Reshape", "Softmax"])
    assert_numerically_equal(model, upgraded.model, atol=1e-6, rtol=0, feeds=feeds)


def test_flatten_wrapper_with_constant_shape_on_static_model():
    shape = [2, 5, 4, 3]
    t_shape = [2, 4, 3, 5]
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Flatten", ["t"], ["f"], axis=3),
        helper.make_node("Softmax", ["f"], ["s"], axis=-1),
        helper.make_node("Reshape", ["s", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"], perm=[0, 3, 1, 2]),
    ]
    shape_init = helper.make_tensor("shape", TensorProto.INT64, [4], t_shape)
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [shape_init],
        opset=13,
    )
    model = onnx.shape_inference.infer_shapes(model)
    result = assert_pass_rewrites(SoftmaxTranspose(), model, atol=0, rtol=0)
    assert_op_types(result.model, ["Softmax"])


def test_trailing_range_folds_at_opset_11_without_upgrade():
    # Softmax(axis=1) on Transpose(0,2,3,1) output covers original axes {2,3,1} = {1,2,3}: legacy axis=1.
    model = chain([0, 2, 3, 1], 1, 11, [2, 3, 4, 5])
    result = assert_pass_rewrites(SoftmaxTranspose(), model, atol=1e-6, rtol=0)
    assert_op_types(result.model, ["Softmax"])
    assert default_opset(result.model) == 11


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("perm", [[1, 0], [2, 0, 1], [0, 3, 1, 2], [4, 1, 0, 3, 2]])
def test_any_rank_and_permutation_at_opset_13(perm, op):
    shape = [2, 3, 4, 5, 6][: len(perm)]
    for axis in range(len(perm)):
        model = chain(perm, axis, 13, shape, op=op)
        result = assert_pass_rewrites(SoftmaxTranspose(), model, atol=1e-6, rtol=0)
        assert_op_types(result.model, [op])
        assert result.model.graph.node[0].attribute[0].i == perm[axis]


def test_first_transpose_with_other_consumer_is_kept():
    model = chain([0, 2, 1], -1, 13, [2, 3, 4])
    model.graph.node.append(helper.make_node("Relu", ["t"], ["z"]))
    model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 4, 3]))
    result = assert_pass_rewrites(SoftmaxTranspose(), model, atol=0, rtol=0)
    assert_op_types(result.model, ["Transpose", "Softmax", "Relu"])


def test_declines_when_transposes_do_not_cancel():
    model = chain([0, 2, 3, 1], 3, 13, [2, 3, 4, 5], inverse=[0, 2, 3, 1])
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 3, 4]))
    assert_declines(SoftmaxTranspose(), model, reason_contains="do not cancel")


def test_declines_when_softmax_output_has_another_consumer():
    model = chain([0, 2, 1], -1, 13, [2, 3, 4])
    model.graph.output.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 4, 3]))
    assert_declines(SoftmaxTranspose(), model, reason_contains="graph output")


def test_declines_joint_non_trailing_softmax_at_opset_11():
    # Softmax(axis=2) on Transpose(0,2,3,1) covers original axes {3,1}: no single Softmax computes it.
    model = chain([0, 2, 3, 1], 2, 11, [2, 3, 4, 5])
    assert_declines(SoftmaxTranspose(), model, reason_contains="jointly over original axes [1, 3]")


def test_declines_upgrade_when_not_allowed():
    model = export_wseg_like(11)
    result = assert_declines(SoftmaxTranspose(allow_opset_upgrade=False), model, reason_contains="opset 13")
    assert "allow_opset_upgrade is false" in result.declined[0].reason


def test_custom_domain_nodes_pass_through():
    model = chain([0, 2, 1], -1, 13, [2, 3, 4])
    model.graph.node.insert(0, helper.make_node("Foo", ["x"], ["unused"], domain="custom.x"))
    model.opset_import.append(helper.make_opsetid("custom.x", 1))
    result = SoftmaxTranspose()(model)
    assert result.modified
    assert [n.op_type for n in result.model.graph.node].count("Foo") == 1


def test_registry_and_option_types():
    cls = get_pass("softmax-transpose")
    assert cls is SoftmaxTranspose and cls.changes_opset and cls.exact
    with pytest.raises(SpecError, match="allow_opset_upgrade"):
        cls.from_spec({"allow_opset_upgrade": "yes"}, "pipeline.yaml passes[0]")
    assert cls.from_spec({"allow_opset_upgrade": False}, "x").options.allow_opset_upgrade is False


# --- input models stay untouched (graphsurgeon shares the input's TensorProtos) ---------------


def unnamed_constant(output: str, value: float) -> onnx.NodeProto:
    """A Constant node whose tensor has no ``name`` field, as in function-expanded models."""
    tensor = onnx.numpy_helper.from_array(np.array([value], dtype=np.float32))
    assert not tensor.HasField("name")
    return helper.make_node("Constant", [], [output], value=tensor)


def chain_then_scale(opset: int, shape, perm, axis, with_if: bool = False) -> onnx.ModelProto:
    """chain(...) followed by y = s * k (k an unnamed Constant); optionally y goes through an If
    whose branches hold another unnamed Constant (the corpus' *_expanded softmax-cross-entropy shape)."""
    model = chain(perm, axis, opset, shape)
    model.graph.node[-1].output[0] = "u"
    model.graph.node.extend([unnamed_constant("k", 2.0), helper.make_node("Mul", ["u", "k"], ["v"])])
    if not with_if:
        model.graph.node[-1].output[0] = "y"
        return model
    out_info = helper.make_tensor_value_info("b", TensorProto.FLOAT, shape)
    then_branch = helper.make_graph(
        [unnamed_constant("c1", 3.0), helper.make_node("Add", ["v", "c1"], ["b"])], "then", [], [out_info]
    )
    else_branch = helper.make_graph([helper.make_node("Neg", ["v"], ["b"])], "else", [], [out_info])
    model.graph.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    model.graph.node.append(helper.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch))
    onnx.checker.check_model(model)
    return model


def test_unnamed_constant_tensor_is_not_written_into_the_input():
    m = chain_then_scale(13, [2, 3, 4], [0, 2, 1], 2)
    result = assert_pass_rewrites(SoftmaxTranspose(), m, atol=0, rtol=0)  # asserts the input is unchanged
    assert_op_types(result.model, ["Softmax", "Constant", "Mul"])
    assert not m.graph.node[3].attribute[0].t.HasField("name")


@pytest.mark.parametrize("opset", [11, 13])
def test_constants_in_if_subgraph_are_not_written_into_the_input(opset):
    m = chain_then_scale(opset, [2, 5, 3, 4], [0, 2, 3, 1], 3, with_if=True)
    x = np.random.default_rng(0).standard_normal((2, 5, 3, 4)).astype(np.float32)
    for flag in (True, False):
        result = assert_pass_rewrites(SoftmaxTranspose(), m, atol=0, rtol=0, feeds={"x": x, "c": np.array(flag)})
    assert_op_types(result.model, ["Softmax", "Constant", "Mul", "If"])
    assert default_opset(result.model) == 13
    assert result.counts["folded"] == 1
