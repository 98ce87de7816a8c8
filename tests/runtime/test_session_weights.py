"""Sessions made from a model proto get its large weights as in-memory external initializers:
the same outputs as a session from the serialized model, the model untouched."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.model_io import content_hash
from graphkit.runtime.ort import EXTERNAL_MIN_BYTES, create_session, run_session, session_options, weights_apart


def _model(ir_version: int = 8) -> onnx.ModelProto:
    """y = MatMul(x, W) + b (+ Cast(int64 table) + bool table): big float32, float16, int64 and bool
    weights, small ones, one kept in float_data (not raw), one that is also a graph input."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 64)).astype(np.float32)  # 16 KiB: external
    half = rng.standard_normal((64, 64)).astype(np.float16)  # 8 KiB: external
    table = rng.integers(-5, 5, (64, 64)).astype(np.int64)  # 32 KiB: external
    mask = rng.random((64, 64)) > 0.5  # 4 KiB bool: external
    bias = rng.standard_normal(64).astype(np.float32)  # 256 B: stays
    listed = helper.make_tensor("listed", TensorProto.FLOAT, [64, 64], rng.standard_normal(4096).tolist())
    override = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "override")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Cast", ["half"], ["half32"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["table"], ["table32"], to=TensorProto.FLOAT),
        helper.make_node("Where", ["mask", "half32", "table32"], ["w"]),
        helper.make_node("MatMul", ["a", "w"], ["p"]),
        helper.make_node("MatMul", ["p", "listed"], ["q"]),
        helper.make_node("MatMul", ["q", "override"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(weight, "W"),
        numpy_helper.from_array(bias, "b"),
        numpy_helper.from_array(half, "half"),
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(mask, "mask"),
        listed,
        override,
    ]
    graph = helper.make_graph(
        nodes,
        "weights",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64]),
            helper.make_tensor_value_info("override", TensorProto.FLOAT, [64, 64]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = ir_version
    return model


def test_weights_apart_keeps_small_and_non_raw_weights_and_leaves_the_model_alone():
    model = _model()
    before = content_hash(model)
    light, names, values = weights_apart(model)
    assert content_hash(model) == before
    assert sorted(names) == ["W", "half", "mask", "override", "table"]
    kept = {t.name: t for t in light.graph.initializer}
    assert kept["b"].raw_data == next(t for t in model.graph.initializer if t.name == "b").raw_data
    assert len(kept["listed"].float_data) == 4096  # not raw data: stays in the proto
    for name, value in zip(names, values):
        stub = kept[name]
        assert stub.data_location == TensorProto.EXTERNAL and not stub.raw_data
        original = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name))
        np.testing.assert_array_equal(value.numpy(), original)
        assert value.numpy().dtype == original.dtype
    assert [n.SerializeToString() for n in light.graph.node] == [n.SerializeToString() for n in model.graph.node]
    assert light.opset_import == model.opset_import and light.ir_version == model.ir_version
    assert light.graph.input == model.graph.input and light.graph.output == model.graph.output
    assert light.ByteSize() < model.ByteSize() - 4 * EXTERNAL_MIN_BYTES


@pytest.mark.parametrize("optimization", ["none", "all"])
def test_session_outputs_equal_a_session_of_the_serialized_model(optimization):
    model = _model()
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    plain = ort.InferenceSession(
        model.SerializeToString(), session_options(None, optimization), providers=["CPUExecutionProvider"]
    )
    expected = plain.run(["y"], {"x": x})[0]
    session = create_session(model, optimization=optimization)
    got = run_session(session, {"x": x})["y"]
    np.testing.assert_array_equal(got, expected)
    # an initializer that is also a graph input can still be fed (ir_version >= 4 semantics)
    other = np.eye(64, dtype=np.float32)
    fed_plain = plain.run(["y"], {"x": x, "override": other})[0]
    fed = session.run(["y"], {"x": x, "override": other})[0]
    np.testing.assert_array_equal(fed, fed_plain)
    assert not np.array_equal(fed, got)


def test_a_broken_model_still_fails_to_load_with_one_line():
    from graphkit.util.errors import RuntimeLoadError

    model = _model()
    model.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(RuntimeLoadError, match="onnxruntime cannot load the model"):
        create_session(model)


def test_initializers_sharing_a_name_stay_in_the_proto_and_load_as_before():
    """ORT takes the first of two initializers with one name; its external-initializer API
    would refuse the name, so both stay in the proto and the session is the plain one."""
    first = numpy_helper.from_array(np.ones((64, 64), np.float32), "W")
    second = numpy_helper.from_array(np.zeros((64, 64), np.float32), "W")
    other = numpy_helper.from_array(np.full((64, 64), 2.0, np.float32), "V")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("MatMul", ["m", "V"], ["y"])],
        "dup",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [first, second, other],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    light, names, _ = weights_apart(model)
    assert names == ["V"] and [t.name for t in light.graph.initializer] == ["W", "W", "V"]
    x = np.ones((1, 64), np.float32)
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(run_session(create_session(model), {"x": x})["y"], plain.run(None, {"x": x})[0])
