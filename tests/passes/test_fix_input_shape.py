"""fix-input-shape: static inputs, re-inferred shapes, clear user errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from graphkit.ir.shapes import dims_of
from graphkit.testing import assert_idempotent, assert_numerically_equal, make_model, run_pass
from graphkit.transform.registry import get_pass
from graphkit.util.errors import GraphkitError, PassError, SpecError

FixInputShape = get_pass("fix-input-shape")


def dynamic_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 2, "h_out", None])],
        [onnx.numpy_helper.from_array(np.random.default_rng(0).standard_normal((2, 3, 3, 3)).astype(np.float32), "w")],
        opset=11,
    )


def test_fixes_shapes_and_reinfers():
    model = dynamic_model()
    result = run_pass(FixInputShape(shapes={"x": [2, 3, 8, 8]}), model)
    assert result.modified
    assert dims_of(result.model.graph.input[0]) == (2, 3, 8, 8)
    assert dims_of(result.model.graph.output[0]) == (2, 2, 8, 8)
    assert {v.name: dims_of(v) for v in result.model.graph.value_info} == {"c": (2, 2, 8, 8)}
    assert result.counts == {"inputs_fixed": 1, "input_dims_fixed": 3, "output_dims_refined": 3}
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)}
    assert_numerically_equal(model, result.model, atol=0, rtol=0, feeds=feeds)
    assert_idempotent(FixInputShape(shapes={"x": [2, 3, 8, 8]}), result.model)


def test_batch_only_keeps_other_symbolic_dims():
    result = run_pass(FixInputShape(batch=4), dynamic_model())
    assert dims_of(result.model.graph.input[0]) == (4, 3, "h", "w")
    assert dims_of(result.model.graph.output[0])[0] == 4


def test_nothing_to_do_is_unchanged():
    model = dynamic_model()
    result = run_pass(FixInputShape(), model)
    assert not result.modified and result.model is model


@pytest.mark.parametrize(
    "options, message",
    [
        ({"shapes": {"image": [1, 3, 8, 8]}}, "input 'image' that the model does not have"),
        ({"shapes": {"x": [1, 4, 8, 8]}}, "shape mismatch at axis 1"),
        ({"shapes": {"x": [1, 3, 8]}}, "shape mismatch: the model declares rank 4"),
        ({"shapes": {"x": [1, 3, 0, 8]}}, "must be positive"),
        ({"batch": 0}, "positive"),
    ],
)
def test_user_errors_are_one_clear_line(options, message):
    # option values bad in themselves (dims <= 0) fail when the options are made (SpecError, exit 2)
    with pytest.raises(GraphkitError, match=message) as info:
        FixInputShape(**options)(dynamic_model())
    assert "\n" not in str(info.value)


def test_static_batch_contradiction():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])],
    )
    with pytest.raises(SpecError, match="dim 0 is static 2, option batch is 1"):
        FixInputShape(batch=1)(model)


def test_graph_that_cannot_take_the_shape():
    model = make_model(
        [helper.make_node("Add", ["x", "b"], ["y"])],
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", "k"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3])],
        [onnx.numpy_helper.from_array(np.ones(3, np.float32), "b")],
    )
    with pytest.raises(PassError, match="does not accept these input shapes"):
        FixInputShape(shapes={"x": [2, 4]})(model)
