"""fold-shapes (and fold-constants) evaluate a constant Unsqueeze without onnxruntime: the result
must be exactly what onnxruntime computes, and a node onnxruntime rejects must still be rejected."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from graphkit.runtime.node_eval import _unsqueeze, evaluate_node
from graphkit.runtime.ort import create_session


def _like(opset: int) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph([], "like", [], []), opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _node(opset: int, axes: list[int]) -> tuple[onnx.NodeProto, dict[str, np.ndarray]]:
    if opset >= 13:
        return helper.make_node("Unsqueeze", ["d", "axes"], ["u"]), {"axes": np.array(axes, dtype=np.int64)}
    return helper.make_node("Unsqueeze", ["d"], ["u"], axes=axes), {}


def _by_onnxruntime(node: onnx.NodeProto, arrays: dict[str, np.ndarray], opset: int) -> np.ndarray:
    inputs = [
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)
        for name, array in arrays.items()
    ]
    graph = helper.make_graph([node], "one", inputs, [onnx.ValueInfoProto(name="u")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return create_session(model).run(["u"], arrays)[0]


@settings(max_examples=60, deadline=None)
@given(
    opset=st.sampled_from([11, 13, 17]),
    shape=st.lists(st.integers(0, 3), min_size=0, max_size=3),
    axes=st.lists(st.integers(-6, 5), min_size=1, max_size=3),
    dtype=st.sampled_from([np.int64, np.float32, np.int32, np.bool_]),
)
def test_unsqueeze_matches_onnxruntime_or_defers_to_it(opset, shape, axes, dtype):
    data = (np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) % 7).astype(dtype)
    node, extra = _node(opset, axes)
    arrays = {"d": data, **extra}
    ours = _unsqueeze(node, arrays, opset)
    try:
        expected = _by_onnxruntime(node, arrays, opset)
    except Exception:  # noqa: BLE001 - onnxruntime rejects the node: so must we (None defers to it)
        assert ours is None
        with pytest.raises(Exception):  # noqa: B017 - evaluate_node then fails as onnxruntime does
            evaluate_node(node, arrays, _like(opset))
        return
    assert ours is not None
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)
    assert not np.shares_memory(ours, data)
    got = evaluate_node(node, arrays, _like(opset))["u"]
    np.testing.assert_array_equal(got, expected)


def test_unsqueeze_with_non_constant_or_odd_axes_is_left_to_onnxruntime():
    node, _ = _node(13, [0])
    assert _unsqueeze(node, {"d": np.ones(2, np.float32)}, 13) is None  # axes unknown
    node = helper.make_node("Unsqueeze", ["d", "axes"], ["u"])
    assert _unsqueeze(node, {"d": np.ones(2), "axes": np.array([0], dtype=np.int32)}, 13) is None
    assert _unsqueeze(node, {"d": np.ones(2), "axes": np.array([], dtype=np.int64)}, 13) is None
    old = helper.make_node("Unsqueeze", ["d"], ["u"], axes=[0])
    assert _unsqueeze(old, {"d": np.ones(2)}, 13) is None  # opset-11 form under opset 13
    assert _unsqueeze(node, {"d": np.ones(2), "axes": np.array([0])}, 11) is None  # and the reverse
