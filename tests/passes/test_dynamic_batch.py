"""dynamic-batch: symbolic dim 0, Reshape targets fixed, validated at batch 1 and 2; declines."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from graphkit.ir.shapes import dims_of
from graphkit.runtime.feeds import random_feeds
from graphkit.runtime.ort import run_ort
from graphkit.testing import (
    assert_declines,
    assert_idempotent,
    assert_numerically_equal,
    export_legacy,
    make_model,
    run_pass,
)
from graphkit.transform.registry import get_pass
from graphkit.util.errors import PassError

torch = pytest.importorskip("torch")
DynamicBatch = get_pass("dynamic-batch")


class Flatten(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        a = self.conv(x)
        return self.fc(a.view(2, -1)), a.reshape(2, 4, 64)


def static_export(module, shape=(2, 3, 8, 8)) -> onnx.ModelProto:
    return export_legacy(module, (torch.randn(*shape),), ["x"], ["y", "z"], batch_dim=None)


@pytest.fixture(scope="module")
def static_model():
    torch.manual_seed(0)
    return static_export(Flatten())


def test_makes_batch_symbolic_and_fixes_reshapes(static_model):
    result = run_pass(DynamicBatch(), static_model)
    assert result.modified
    assert result.counts == {"inputs": 1, "outputs": 2, "reshape_targets_rewritten": 2}
    assert dims_of(result.model.graph.input[0]) == ("batch", 3, 8, 8)
    assert [dims_of(o) for o in result.model.graph.output] == [("batch", 5), ("batch", 4, 64)]
    # exact at the old batch
    assert_numerically_equal(static_model, result.model, atol=0, rtol=0, dims={"batch": 2})
    # and right at other batches: each sample equals the sample run alone
    feeds = random_feeds(result.model, seed=1, dims={"batch": 2})
    both = run_ort(result.model, feeds)
    for i in range(2):
        one = run_ort(result.model, {"x": feeds["x"][i : i + 1]})
        for name in both:
            np.testing.assert_allclose(one[name][0], both[name][i], atol=1e-6, rtol=1e-6)
    assert_idempotent(DynamicBatch(), result.model)


def test_custom_name_and_selected_io(static_model):
    result = run_pass(DynamicBatch(name="N", outputs=["y"]), static_model)
    assert dims_of(result.model.graph.input[0])[0] == "N"
    assert dims_of(result.model.graph.output[0])[0] == "N"
    assert_numerically_equal(static_model, result.model, atol=0, rtol=0, dims={"N": 2})


def test_unknown_name_is_a_clear_error(static_model):
    with pytest.raises(PassError, match="'nope'"):
        DynamicBatch(inputs=["nope"])(static_model)


def test_declines_reshape_that_merges_batch():
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [6, 4])],
        [onnx.numpy_helper.from_array(np.array([6, 4], np.int64), "shape")],
    )
    assert_declines(DynamicBatch(), model, reason_contains="merges the batch")


def test_declines_constant_that_bakes_batch():
    nodes = [helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear")]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 4, 4])],
        [onnx.numpy_helper.from_array(np.array([1, 1, 4, 4], np.int64), "sizes")],
    )
    assert_declines(DynamicBatch(), model, reason_contains="bakes the batch")


def test_already_dynamic_is_unchanged():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 3])],
    )
    result = run_pass(DynamicBatch(), model)
    assert not result.modified and result.model is model


def one_node_model(node, x_dims, y_dims, inits=(), opset=13, y_name="y"):
    return make_model(
        [node],
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info(y_name, onnx.TensorProto.FLOAT, y_dims)],
        list(inits),
        opset=opset,
    )


I64 = onnx.numpy_helper.from_array


@pytest.mark.parametrize("opset", [11, 13])
def test_declines_split_of_the_batch_axis(opset):
    # a traced per-image loop (x.unbind(0)) bakes the exported batch into the Split's pieces
    split = {"split": [1, 1]} if opset < 13 else {}
    inputs = ["x"] if opset < 13 else ["x", "sizes"]
    nodes = [
        helper.make_node("Split", inputs, ["a", "b"], axis=0, **split),
        helper.make_node("Concat", ["b", "a"], ["y"], axis=0),
    ]
    inits = [] if opset < 13 else [I64(np.array([1, 1], np.int64), "sizes")]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])],
        inits,
        opset=opset,
    )
    result = assert_declines(DynamicBatch(), model, reason_contains="cuts the batch axis into 2 fixed pieces")
    assert "export without splitting" in result.declined[-1].reason


def test_declines_gather_slice_and_squeeze_of_fixed_rows():
    gather = one_node_model(
        helper.make_node("Gather", ["x", "row"], ["y"], axis=0), [2, 3], [3], [I64(np.array(0, np.int64), "row")]
    )
    assert_declines(DynamicBatch(), gather, reason_contains="picks fixed rows 0 of the batch axis")
    slice_ = make_model(
        [helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])],
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        [I64(np.array([1], np.int64), "s"), I64(np.array([2], np.int64), "e"), I64(np.array([0], np.int64), "a")],
    )
    assert_declines(DynamicBatch(), slice_, reason_contains="slices the batch axis to the fixed range [1, 2)")
    squeeze = one_node_model(
        helper.make_node("Squeeze", ["x", "ax"], ["y"]), [1, 3], [3], [I64(np.array([0], np.int64), "ax")]
    )
    assert_declines(DynamicBatch(), squeeze, reason_contains="squeezes the batch axis")


def test_declines_output_whose_dim0_is_not_the_batch():
    # a detection count (NonZero / NonMaxSuppression) is never renamed 'batch'
    nodes = [
        helper.make_node("NonZero", ["x"], ["nz"]),
        helper.make_node("Transpose", ["nz"], ["idx"], perm=[1, 0]),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("idx", onnx.TensorProto.INT64, ["K", 2])],
    )
    result = assert_declines(DynamicBatch(), model, reason_contains="not batch-major")
    assert "'outputs' option" in result.declined[-1].reason


def test_declines_minus_one_target_that_folds_dims_into_the_batch():
    model = one_node_model(
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
        [2, 3, 4],
        [8, 3],
        [I64(np.array([-1, 3], np.int64), "shape")],
    )
    assert_declines(DynamicBatch(), model, reason_contains="puts -1 on the batch axis")


def test_minus_one_target_that_keeps_the_batch_is_accepted():
    model = one_node_model(
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
        [2, 3, 4],
        [2, 12],
        [I64(np.array([-1, 12], np.int64), "shape")],
    )
    result = run_pass(DynamicBatch(), model)
    assert result.modified and dims_of(result.model.graph.output[0]) == ("batch", 12)
    assert_numerically_equal(model, result.model, atol=0, rtol=0, dims={"batch": 2})
    three = run_ort(result.model, {"x": np.arange(36, dtype=np.float32).reshape(3, 3, 4)})["y"]
    np.testing.assert_array_equal(three, np.arange(36, dtype=np.float32).reshape(3, 12))


def test_declines_baked_target_on_an_input_inference_cannot_type():
    # distilbert/t5 static exports: the attention branch loses its type, its Reshape target [1, 8, -1]
    # bakes batch 1, and the residual Add broadcasts it back to 'batch' so the output looks fine
    nodes = [
        helper.make_node("Reshape", ["x", "s"], ["untyped"]),  # shape from a graph input: unknown to inference
        helper.make_node("Reshape", ["untyped", "baked"], ["r"]),
        helper.make_node("Add", ["r", "x"], ["y"]),
    ]
    model = make_model(
        nodes,
        [
            helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("s", onnx.TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [I64(np.array([1, 4], np.int64), "baked")],
    )
    result = assert_declines(DynamicBatch(inputs=["x"]), model, reason_contains="shape inference does not know")
    assert "export with dynamic_axes" in result.declined[-1].reason


def test_declines_a_batch_literal_when_only_the_input_rank_is_known():
    """The input's rank is known (a computed Reshape target, typed by graphkit's shape seeds) but
    not its dim 0: a constant target starting with the old batch may bake it, so it declines."""
    from graphkit.testing import parse_model

    model = parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 16] x) => (float[1, 16] y)
        <int64[1] sixteen = {16}, int64[2] t = {1, 16}, int64[1] ax = {0}>
        { m = ReduceMax<keepdims = 0>(x)
          c = Cast<to = 7>(m)
          u = Unsqueeze(c, ax)
          s = Concat<axis = 0>(u, sixteen)
          a = Reshape(x, s)
          y = Reshape(a, t) }
        """
    )
    result = get_pass("dynamic-batch")()(model)
    assert not result.modified
    assert any("does not know its input's shape (dim 0)" in d.reason for d in result.declined), result.declined
