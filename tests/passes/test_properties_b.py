"""Property tests for fold-shapes, dynamic-batch and fix-input-shape on random small graphs.

Each example contains the pass's pattern or a near miss; the pass either declines (model
unchanged) or the rewritten model passes the checker and matches onnxruntime within 1e-5.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from graphkit.runtime.feeds import random_feeds
from graphkit.runtime.ort import run_ort
from graphkit.testing import assert_applies_share, make_model, run_pass
from graphkit.transform.registry import get_pass

SETTINGS = settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLOAT = onnx.TensorProto.FLOAT
# Whether the pass rewrote each generated case, per pass: a pass that declined everything would
# still satisfy "declines or is exact", so the last tests require it to apply on a share.
APPLIED: dict[str, list[bool]] = {"fold-shapes": [], "dynamic-batch": [], "fix-input-shape": []}


def _i64(name, values):
    return onnx.numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _unsqueeze(src, dst, opset, nodes, inits):
    if opset < 13:
        nodes.append(helper.make_node("Unsqueeze", [src], [dst], axes=[0]))
    else:
        inits.append(_i64(dst + "_axes", [0]))
        nodes.append(helper.make_node("Unsqueeze", [src, dst + "_axes"], [dst]))


def _same_outputs(reference, candidate, dims):
    feeds = random_feeds(reference, seed=3, dims=dims)
    expected, actual = run_ort(reference, feeds), run_ort(candidate, feeds)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-5, rtol=1e-5)


def _check(pass_, model, dims_list):
    result = run_pass(pass_, model)  # checker + honesty of 'modified' + input untouched
    if result.modified:
        for dims in dims_list:
            _same_outputs(model, result.model, dims)
    else:
        assert result.model is model
    return result


@st.composite
def shape_graphs(draw):
    opset = draw(st.integers(11, 21))
    rank = draw(st.integers(2, 4))
    dims = [draw(st.integers(1, 4)) for _ in range(rank)]
    symbolic = draw(st.booleans())
    keep = draw(st.integers(1, rank - 1))
    order = list(range(keep))
    if draw(st.booleans()):  # near miss: gathered dims out of place
        order = draw(st.permutations(order))
    nodes, inits = [helper.make_node("Shape", ["x"], ["s"])], []
    parts = []
    for k, axis in enumerate(order):
        inits.append(_i64(f"i{k}", axis))
        nodes.append(helper.make_node("Gather", ["s", f"i{k}"], [f"g{k}"], axis=0))
        _unsqueeze(f"g{k}", f"u{k}", opset, nodes, inits)
        parts.append(f"u{k}")
    inits.append(_i64("minus1", [-1]))
    nodes.append(helper.make_node("Concat", parts + ["minus1"], ["target"], axis=0))
    nodes.append(helper.make_node("Reshape", ["x", "target"], ["r"]))
    nodes.append(helper.make_node("Relu", ["r"], ["y"]))
    outputs = [helper.make_tensor_value_info("y", FLOAT, [None] * (keep + 1))]
    if draw(st.booleans()):  # extra consumer of the shape vector
        nodes.append(helper.make_node("Cast", ["target"], ["tf"], to=FLOAT))
        outputs.append(helper.make_tensor_value_info("tf", FLOAT, [keep + 1]))
    x_dims = (["batch"] if symbolic else [dims[0]]) + dims[1:]
    model = make_model(nodes, [helper.make_tensor_value_info("x", FLOAT, x_dims)], outputs, inits, opset=opset)
    return model, dims[0]


@SETTINGS
@given(shape_graphs())
def test_fold_shapes_property(case):
    model, batch = case
    result = _check(get_pass("fold-shapes")(), model, [{"batch": 1}, {"batch": 2}, {"batch": batch}])
    APPLIED["fold-shapes"].append(result.modified)


@st.composite
def batched_graphs(draw):
    opset = draw(st.integers(11, 21))
    batch = draw(st.integers(1, 3))
    rest = [draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3)))]
    # near miss: the Reshape merges the batch with dim 1 (a real merge only when that dim is > 1)
    merge = draw(st.booleans()) and rest[0] > 1
    total = int(np.prod(rest))
    target = [batch * rest[0], -1] if merge else [batch, total]
    nodes = [helper.make_node("Reshape", ["x", "t"], ["r"]), helper.make_node("Sigmoid", ["r"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", FLOAT, [None, None])]
    if draw(st.booleans()):
        nodes.append(helper.make_node("Neg", ["x"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", FLOAT, [batch] + rest))
    model = make_model(
        nodes, [helper.make_tensor_value_info("x", FLOAT, [batch] + rest)], outputs, [_i64("t", target)], opset=opset
    )
    return model, batch, merge


@SETTINGS
@given(batched_graphs())
def test_dynamic_batch_property(case):
    model, batch, merge = case
    result = run_pass(get_pass("dynamic-batch")(), model)
    APPLIED["dynamic-batch"].append(result.modified)
    if merge and batch > 1:
        assert not result.modified and result.declined
    if result.modified:
        _same_outputs(model, result.model, {"batch": batch})
        for other in (1, 2):  # each sample alone equals the same sample in a batch
            feeds = random_feeds(result.model, seed=5, dims={"batch": 2})
            both = run_ort(result.model, feeds)
            if other == 1:
                one = run_ort(result.model, {"x": feeds["x"][:1]})
                for name in both:
                    np.testing.assert_allclose(one[name][0], both[name][0], atol=1e-5, rtol=1e-5)


@st.composite
def dynamic_graphs(draw):
    opset = draw(st.integers(11, 21))
    rest = [draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3)))]
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Reshape", ["x", "s"], ["r"]),
        helper.make_node("Exp", ["r"], ["y"]),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", FLOAT, ["batch"] + rest)],
        [helper.make_tensor_value_info("y", FLOAT, ["batch"] + [None] * len(rest))],
        opset=opset,
    )
    return model, draw(st.integers(1, 3)), rest


@SETTINGS
@given(dynamic_graphs())
def test_fix_input_shape_property(case):
    model, batch, rest = case
    fixed = _check(get_pass("fix-input-shape")(batch=batch), model, [{"batch": batch}])
    APPLIED["fix-input-shape"].append(fixed.modified)
    assert fixed.modified
    folded = _check(get_pass("fold-shapes")(), fixed.model, [{}])
    assert all(n.op_type != "Shape" for n in folded.model.graph.node)


PROPERTIES = {
    "fold-shapes": test_fold_shapes_property,
    "dynamic-batch": test_dynamic_batch_property,
    "fix-input-shape": test_fix_input_shape_property,
}


@pytest.mark.parametrize(("name", "at_least"), [("fold-shapes", 0.3), ("dynamic-batch", 0.3), ("fix-input-shape", 1.0)])
def test_each_pass_applies_on_a_share_of_its_generated_cases(name, at_least):
    if not APPLIED[name]:  # the property test did not run in this session (e.g. -k selected this one)
        PROPERTIES[name]()
    print(f"{name}: applied on {sum(APPLIED[name])} of {len(APPLIED[name])}")
    assert_applies_share(APPLIED[name], at_least=at_least)
