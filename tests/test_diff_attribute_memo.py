"""The diff remembers attribute text and Constant hashes by the attribute's bytes: a remembered
answer must equal a fresh one, and any change of value must give another answer."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from graphkit.diff import matching
from graphkit.diff.matching import attribute_text, constant_outputs


def _fresh(attr: onnx.AttributeProto) -> str:
    return matching._attribute_text(attr)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["ints", "floats", "int", "string", "tensor"]),
    values=st.lists(st.integers(-1000, 1000), min_size=1, max_size=8),
    position=st.integers(0, 7),
)
def test_remembered_text_is_the_fresh_text_and_tells_values_apart(kind, values, position):
    changed = list(values)
    changed[position % len(values)] += 1

    def make(vals):
        if kind == "ints":
            return helper.make_attribute("a", vals)
        if kind == "floats":
            return helper.make_attribute("a", [v / 8 for v in vals])
        if kind == "int":
            return helper.make_attribute("a", vals[0] if position % len(values) == 0 else sum(vals))
        if kind == "string":
            return helper.make_attribute("a", ",".join(map(str, vals)))
        return helper.make_attribute("a", numpy_helper.from_array(np.array(vals, dtype=np.int64)))

    first, again, other = attribute_text(make(values)), attribute_text(make(values)), attribute_text(make(changed))
    assert first == again == _fresh(make(values))
    assert other == _fresh(make(changed))
    assert other != first


def test_constant_hashes_follow_the_values_not_the_memory():
    def constant(name, values):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(values, np.float32)))

    nodes = [constant("a", [1.0, 2.0]), constant("b", [1.0, 2.0]), constant("c", [1.0, 2.5])]
    hashes = constant_outputs(nodes)
    assert hashes["a"] == hashes["b"] != hashes["c"]
    assert hashes["c"] == matching.tensor_hash(nodes[2].attribute[0].t)


def test_a_tensor_stored_outside_the_proto_is_never_remembered():
    tensor = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="weights.bin")
    matching._text_memo.clear()
    attribute_text(helper.make_attribute("value", tensor))
    assert not matching._text_memo
    attribute_text(helper.make_attribute("perm", [1, 0]))
    assert len(matching._text_memo) == 1
