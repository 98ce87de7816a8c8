"""graphkit.ir.shapes: the one shape-inference path (on the graph without its large weights) and
the one reader of a value's dims, with what each caller relies on."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.shapes import (
    dims_of,
    format_dims,
    infer_value_types,
    io_signature,
    known_value_types,
    skeleton,
    symbolic_value_types,
)
from graphkit.testing import make_model, value
from graphkit.util.errors import PassError

BIG = 1 << 20  # elements of the large weight: 4 MiB of float32


def conv_model(batch="N") -> onnx.ModelProto:
    """Conv with a 4 MiB weight, then Reshape to a target held in a small int64 initializer."""
    weight = numpy_helper.from_array(np.full((256, 1024, 2, 2), 0.5, np.float32), "w")
    target = numpy_helper.from_array(np.array([0, -1], np.int64), "target")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2]),
        helper.make_node("Reshape", ["c", "target"], ["y"]),
    ]
    return make_model(nodes, [value("x", [batch, 1024, 8, 8])], [value("y", None)], [weight, target])


def test_skeleton_leaves_the_large_weights_out_and_keeps_small_integer_tensors():
    model = conv_model()
    assert model.ByteSize() > 4 * BIG
    skel = skeleton(model)
    assert skel.ByteSize() < 10_000
    assert [t.name for t in skel.graph.initializer] == ["target"]
    lifted = {v.name: dims_of(v) for v in skel.graph.input}
    assert lifted["w"] == (256, 1024, 2, 2)


def test_inference_reads_small_tensors_and_keeps_named_dims():
    types = infer_value_types(conv_model())
    assert types["c"].dims == ("N", 256, 4, 4)
    assert types["y"].dims == ("N", 4096)  # Reshape target read from the kept initializer
    assert types["w"].dims == (256, 1024, 2, 2) and types["w"].elem_type == TensorProto.FLOAT


def test_input_shapes_fix_the_graph_input_dims():
    types = infer_value_types(conv_model(), input_shapes={"x": [3, 1024, 8, 8]})
    assert types["y"].dims == (3, 4096) and types["y"].is_static
    assert symbolic_value_types(conv_model(), {"x": [3, 1024, 8, 8]})["c"].dims == (3, 256, 4, 4)


def test_stored_value_info_is_a_hint_only_when_asked():
    model = conv_model()
    model.graph.value_info.append(value("c", ["N", 256, "h", "w"]))  # stale/looser declaration
    assert infer_value_types(model)["c"].dims == ("N", 256, 4, 4)
    assert infer_value_types(model, keep_value_info=True)["c"].dims[0] == "N"


def test_strict_inference_fails_with_one_line_and_known_types_fall_back_to_declared():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [value("x", [1, 3])], [value("y", [1, 3, 4])])
    with pytest.raises(PassError, match="shape inference failed"):
        infer_value_types(model, strict=True)
    custom = make_model(
        [helper.make_node("Mystery", ["x"], ["y"], domain="my.domain")], [value("x", [1, 3])], [value("y", [2, "k"])]
    )
    custom.opset_import.append(helper.make_opsetid("my.domain", 1))
    assert known_value_types(custom)["y"].dims == (2, "k")  # inference cannot type it; the declaration stands


def test_one_dims_reader_and_one_unknown_marker():
    unknown = onnx.ValueInfoProto()
    unknown.CopyFrom(value("v", [2, "batch", None]))
    assert dims_of(unknown) == (2, "batch", None)
    assert dims_of(value("r", None)) is None
    assert io_signature(unknown) == ("v", TensorProto.FLOAT, (2, "batch", None))
    assert format_dims((2, "batch", None)) == "[2,batch,?]"
    assert format_dims(None) == "[?]"
