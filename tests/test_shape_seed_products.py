"""Products of dims in the shape seeds (``unk__product:`` names): MobileViT's unfold/fold Reshapes.

MobileViT reshapes ``[batch, C, H, W]`` into patches (``-1`` is ``batch * k``), back (``-1`` is
``batch``), then to ``[Shape(x)[0] * P, A, -1]`` and ``[Shape(x)[0], P, A, -1]``: below opset 14
ONNX types none of these, and the targets fold only once the ``-1`` is known to be static.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphkit.ir.shape_seeds import _quotient
from graphkit.ir.shapes import infer_value_types
from graphkit.testing import (
    assert_applies_share,
    assert_declines,
    assert_idempotent,
    assert_numerically_equal,
    parse_model,
    property_settings,
    run_pass,
)
from graphkit.transform.registry import get_pass

FOLD_UNFOLD = """
<ir_version: 8, opset_import: ["" : {opset}]>
g (float[batch, 4, 4, 4] x) => (float[batch, {p}, {a}, {rest}] y)
<int64[4] t0 = {{-1, 2, 2, 4}}, int64[4] t1 = {{-1, 4, 4, 4}}, int64 zero = {{0}}, int64[1] ax0 = {{0}},
 int64 p = {{{p}}}, int64[1] p1 = {{{p}}}, int64[1] a = {{{a}}}, int64[1] minus = {{-1}}>
{{
  r0 = Reshape(x, t0)
  t = Transpose<perm = [0, 2, 1, 3]>(r0)
  r1 = Reshape(t, t1)
  s = Shape(x)
  b = Gather(s, zero)
  m = {op}(b, p)
  mu = Unsqueeze(m, ax0)
  c2 = Concat<axis=0>(mu, a, minus)
  r2 = Reshape(r1, c2)
  h = Relu(r2)
  bu = Unsqueeze(b, ax0)
  c3 = Concat<axis=0>(bu, p1, a, minus)
  z = Reshape(h, c3)
  y = Relu(z)
}}
"""


def fold_unfold(opset: int = 13, p: int = 4, a: int = 4, op: str = "Mul") -> onnx.ModelProto:
    return parse_model(FOLD_UNFOLD.format(opset=opset, p=p, a=a, rest=64 // (p * a), op=op))


def feeds(batch: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(batch).standard_normal((batch, 4, 4, 4)).astype(np.float32)}


def test_reshape_minus_one_over_products_is_a_product_a_name_or_static():
    types = infer_value_types(fold_unfold())
    assert types["r0"].dims == ("unk__product:4*batch", 2, 2, 4)
    assert types["r1"].dims == ("batch", 4, 4, 4)  # 4*batch*64 / 64: the product cancels
    assert types["r2"].dims == ("unk__product:4*batch", 4, 4)  # Shape(x)[0] * 4 and the -1 left
    assert types["z"].dims == ("batch", 4, 4, 4)


def test_quotient_cancels_names_and_never_returns_an_onnx_unk_name():
    assert _quotient(("unk__product:128*batch", 8, 2, 2), [16, 64, 4]) == "batch"
    assert _quotient(("batch", "seq", 8), [2, "seq"]) == "unk__product:4*batch"
    assert _quotient(("unk__3", 8), [2]) is None  # 4*unk__3: ONNX renumbers unk__N on every inference
    assert _quotient(("unk__3", 8), ["unk__3", 2]) == 4  # but it cancels within one inference
    assert _quotient(("batch", 6), [4]) is None  # 6/4 is not exact
    assert _quotient(("batch", None), [4]) is None
    assert _quotient(("a*b", 8), [2]) is None  # a name holding "*" would read back as two factors


@pytest.mark.parametrize("opset", [13, 17])
def test_fold_shapes_folds_the_product_targets_exactly(opset):
    model = fold_unfold(opset)
    fold = get_pass("fold-shapes")()
    result = run_pass(fold, model)
    ops = collections.Counter(n.op_type for n in result.model.graph.node)
    assert ops == {"Reshape": 4, "Transpose": 1, "Relu": 2}
    targets = {
        n.output[0]: onnx.numpy_helper.to_array(next(t for t in result.model.graph.initializer if t.name == n.input[1]))
        for n in result.model.graph.node
        if n.op_type == "Reshape"
    }
    assert targets["r2"].tolist() == [-1, 4, 4] and targets["z"].tolist() == [-1, 4, 4, 4]
    assert_idempotent(fold, result.model)
    for batch in (1, 3):
        assert_numerically_equal(model, result.model, feeds=feeds(batch), atol=0.0, rtol=0.0)


def test_a_sum_of_dims_is_no_product_and_the_target_stays():
    assert_declines(get_pass("fold-shapes")(), fold_unfold(op="Add"), reason_contains="at most one can become -1")


FOLDED: list[bool] = []


@property_settings(max_examples=16)
@given(
    st.sampled_from([(1, 4), (2, 2), (4, 4), (2, 8), (1, 1), (8, 2), (16, 4)]),
    st.sampled_from(["Mul", "Mul", "Add"]),
    st.sampled_from([13, 17]),
)
def test_property_product_targets_fold_only_for_products_and_stay_exact(sizes, op, opset):
    p, a = sizes
    model = fold_unfold(opset, p, a, op)
    result = run_pass(get_pass("fold-shapes")(), model)
    folded = "Concat" not in {n.op_type for n in result.model.graph.node}
    FOLDED.append(folded)
    assert folded == (op == "Mul")
    if op == "Add":  # batch + p: the source runs only where batch + p divides the element count
        return
    for batch in (1, 2):
        assert_numerically_equal(model, result.model, feeds=feeds(batch), atol=0.0, rtol=0.0)


def test_property_product_targets_fold_on_a_share():
    if not FOLDED:
        test_property_product_targets_fold_only_for_products_and_stay_exact()
    assert_applies_share(FOLDED, at_least=0.4)
    assert not all(FOLDED)
