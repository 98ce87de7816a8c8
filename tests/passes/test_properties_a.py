"""Property tests for softmax-transpose, eliminate-noops and fold-batchnorm.

Random small graphs that contain each pass's pattern (random ranks, permutations, shapes,
opsets, extra consumers) and near misses: either the pass declines (model unchanged), or the
result passes the checker and onnxruntime outputs match the original within 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
from graphkit_passes.eliminate_noops import EliminateNoops
from graphkit_passes.fold_batchnorm import FoldBatchNorm
from graphkit_passes.softmax_transpose import SoftmaxTranspose
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from graphkit.testing import assert_applies_share, assert_numerically_equal, make_model, run_pass

PROPERTY = settings(
    derandomize=True,
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
TOL = 1e-5
# Whether the pass rewrote each generated case, per pass: a pass that declined everything would
# still satisfy "declines or is exact", so the last tests require it to apply on a share.
APPLIED: dict[str, list[bool]] = {"softmax-transpose": [], "eliminate-noops": [], "fold-batchnorm": []}


def check(pass_, model):
    """The property: declined (unchanged, with no error) or rewritten and numerically equal."""
    result = run_pass(pass_, model)  # checker-valid, input untouched, honest `modified`
    if result.modified:
        assert_numerically_equal(model, result.model, atol=TOL, rtol=TOL)
    return result


def value(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, list(shape))


@st.composite
def softmax_chains(draw):
    rank = draw(st.integers(2, 5))
    shape = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    perm = draw(st.permutations(range(rank)))
    inverse = [int(i) for i in np.argsort(perm)]
    second = inverse if draw(st.booleans()) or rank == 2 else list(draw(st.permutations(range(rank))))
    axis = draw(st.integers(-rank, rank - 1))
    opset = draw(st.sampled_from([11, 12, 13, 17, 21]))
    op = draw(st.sampled_from(["Softmax", "LogSoftmax"]))
    extra_t, extra_s = draw(st.booleans()), draw(st.booleans())
    t_shape = [shape[i] for i in perm]
    y_shape = [t_shape[i] for i in second]
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=list(perm)),
        helper.make_node(op, ["t"], ["s"], axis=axis),
        helper.make_node("Transpose", ["s"], ["y"], perm=second),
    ]
    outputs = [value("y", y_shape)]
    if extra_t:
        nodes.append(helper.make_node("Neg", ["t"], ["u"]))
        outputs.append(value("u", t_shape))
    if extra_s:
        nodes.append(helper.make_node("Relu", ["s"], ["v"]))
        outputs.append(value("v", t_shape))
    return make_model(nodes, [value("x", shape)], outputs, opset=opset, ir_version=7)


@PROPERTY
@given(softmax_chains())
def test_softmax_transpose_declines_or_is_exact(model):
    result = check(SoftmaxTranspose(), model)
    APPLIED["softmax-transpose"].append(result.modified)
    if not result.modified:
        assert result.declined, "a Transpose/Softmax/Transpose chain left as is must say why"


@st.composite
def noop_chains(draw):
    rank = draw(st.integers(2, 4))
    shape = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    opset = draw(st.sampled_from([11, 13, 14, 17, 21]))
    nodes, inits, outputs = [], [], []
    current, current_shape, elem = "x", list(shape), TensorProto.FLOAT
    for index in range(draw(st.integers(1, 6))):
        out = f"v{index}"
        kind = draw(st.sampled_from(["Identity", "Cast", "CastOther", "Transpose", "Reshape", "Dropout", "Relu"]))
        if kind == "Transpose":
            perm = list(draw(st.permutations(range(rank))))
            nodes.append(helper.make_node("Transpose", [current], [out], perm=perm))
            current_shape = [current_shape[i] for i in perm]
        elif kind == "Reshape":
            target = [draw(st.sampled_from([d, 0, -1])) for d in current_shape]
            if target.count(-1) > 1:
                target = [d if t == -1 else t for d, t in zip(current_shape, target)]
            if draw(st.booleans()):  # a near miss: a real reshape to the flattened shape
                target = [int(np.prod(current_shape))]
            inits.append(numpy_helper.from_array(np.array(target, np.int64), f"shape{index}"))
            nodes.append(helper.make_node("Reshape", [current, f"shape{index}"], [out]))
            if len(target) == 1:
                current_shape, rank = [int(np.prod(current_shape))], 1
        elif kind == "Cast":
            nodes.append(helper.make_node("Cast", [current], [out], to=elem))
        elif kind == "CastOther":
            elem = TensorProto.DOUBLE if elem == TensorProto.FLOAT else TensorProto.FLOAT
            nodes.append(helper.make_node("Cast", [current], [out], to=elem))
        elif kind == "Dropout":
            nodes.append(helper.make_node("Dropout", [current], [out]))
        else:
            nodes.append(helper.make_node(kind, [current], [out]))
        if draw(st.booleans()):
            outputs.append(value(out, current_shape, elem))
        current = out
    if current not in {o.name for o in outputs}:
        outputs.append(value(current, current_shape, elem))
    return make_model(nodes, [value("x", shape)], outputs, inits, opset=opset)


@PROPERTY
@given(noop_chains())
def test_eliminate_noops_declines_or_is_exact(model):
    result = check(EliminateNoops(), model)
    APPLIED["eliminate-noops"].append(result.modified)
    names = [o.name for o in model.graph.output]
    assert [o.name for o in result.model.graph.output] == names


@st.composite
def conv_bns(draw):
    group = draw(st.sampled_from([1, 2, 3]))
    cin, cout = group * draw(st.integers(1, 3)), group * draw(st.integers(1, 3))
    kernel = draw(st.integers(1, 3))
    opset = draw(st.sampled_from([9, 11, 13, 15, 17, 21]))
    bias, extra = draw(st.booleans()), draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    inits = [numpy_helper.from_array(rng.standard_normal((cout, cin // group, kernel, kernel)).astype(np.float32), "W")]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), "B"))
    for name, values in (
        ("scale", rng.uniform(0.2, 3, cout)),
        ("beta", rng.standard_normal(cout)),
        ("mean", rng.standard_normal(cout)),
        ("var", rng.uniform(0.05, 3, cout)),
    ):
        inits.append(numpy_helper.from_array(values.astype(np.float32), name))
    size = 5
    out = size - kernel + 1
    nodes = [
        helper.make_node("Conv", ["x", "W"] + (["B"] if bias else []), ["c"], group=group),
        helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["y"], epsilon=1e-5),
    ]
    outputs = [value("y", [2, cout, out, out])]
    if extra:
        nodes.append(helper.make_node("Relu", ["c"], ["z"]))
        outputs.append(value("z", [2, cout, out, out]))
    return make_model(nodes, [value("x", [2, cin, size, size])], outputs, inits, opset=opset)


@PROPERTY
@given(conv_bns())
def test_fold_batchnorm_declines_or_is_exact(model):
    result = check(FoldBatchNorm(), model)
    APPLIED["fold-batchnorm"].append(result.modified)
    extra = len(model.graph.output) > 1
    assert result.modified != extra
    if extra:
        assert any("consumers" in d.reason for d in result.declined)


PROPERTIES = {
    "softmax-transpose": test_softmax_transpose_declines_or_is_exact,
    "eliminate-noops": test_eliminate_noops_declines_or_is_exact,
    "fold-batchnorm": test_fold_batchnorm_declines_or_is_exact,
}


@pytest.mark.parametrize(
    ("name", "at_least"), [("softmax-transpose", 0.2), ("eliminate-noops", 0.5), ("fold-batchnorm", 0.3)]
)
def test_each_pass_applies_on_a_share_of_its_generated_cases(name, at_least):
    if not APPLIED[name]:  # the property test did not run in this session (e.g. -k selected this one)
        PROPERTIES[name]()
    print(f"{name}: applied on {sum(APPLIED[name])} of {len(APPLIED[name])}")
    assert_applies_share(APPLIED[name], at_least=at_least)
