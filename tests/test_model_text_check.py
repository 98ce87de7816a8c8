"""A model whose string fields are not UTF-8 is refused with the field's path, wherever it sits."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.model_check import invalid_reason


def _model() -> onnx.ModelProto:
    inner = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["z"], name="INNERCCCC")],
        "then",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [3])],
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="NODEAAAA"),
        helper.make_node("Add", ["r", "w"], ["s"]),
        helper.make_node("Constant", [], ["c"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
        helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=inner),
    ]
    weight = numpy_helper.from_array(np.ones(3, np.float32), "w")
    weight.doc_string = "DOCBBBB"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(
    ("marker", "where"),
    [
        (b"NODEAAAA", "model.graph.node[0].name"),
        (b"DOCBBBB", "model.graph.initializer[0].doc_string"),
        (b"INNERCCCC", "model.graph.node[3].attribute[0].g.node[0].name"),
    ],
)
def test_non_utf8_string_fields_are_named(marker, where):
    model = _model()
    assert invalid_reason(model) is None
    bad = onnx.ModelProto()
    bad.ParseFromString(model.SerializeToString().replace(marker, marker[:-4] + b"\xff\xfe\xfd\xfc"))
    reason = invalid_reason(bad)
    assert reason is not None and reason.startswith(where) and "is not UTF-8 text" in reason
