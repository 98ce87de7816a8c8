"""fuse-reshapes on the attention-mask chain: ``Reshape(Reshape(x, [-1]), Shape(m))`` -> ``Reshape(x, Shape(m))``."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from graphkit_passes.fuse_reshapes import FuseReshapes
from hypothesis import given
from hypothesis import strategies as st

from graphkit.testing import (
    assert_applies_share,
    assert_declines,
    assert_idempotent,
    assert_numerically_equal,
    parse_model,
    property_settings,
    run_pass,
)


def mask_chain(x_dims: str = "N,1,S,1", m_dims: str = "N,1,S", middle: str = "-1", opset: int = 13):
    """x -> Reshape(x, [middle]) -> Reshape(., Shape(m)) -> + m: LLaMA's flattened mask gather, reshaped back."""
    return parse_model(
        f'<ir_version: 8, opset_import: ["" : {opset}]> g (float[{x_dims}] x, float[{m_dims}] m) => (float[{m_dims}] y) '
        f"{{ a = Constant<value=int64[{len(middle.split(','))}] {{{middle}}}>() r = Reshape(x, a) "
        "s = Shape(m) t = Reshape(r, s) y = Add(t, m) }"
    )


def feeds(x_shape, m_shape, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal(x_shape).astype(np.float32),
        "m": rng.standard_normal(m_shape).astype(np.float32),
    }


@pytest.mark.parametrize("opset", [13, 17])
def test_the_mask_chain_becomes_one_reshape_of_the_shape(opset):
    source = mask_chain(opset=opset)
    fuse = FuseReshapes()
    result = run_pass(fuse, source)
    assert result.counts == {"reshape_chain": 1}
    assert collections.Counter(n.op_type for n in result.model.graph.node) == {"Shape": 1, "Reshape": 1, "Add": 1}
    reshape = next(n for n in result.model.graph.node if n.op_type == "Reshape")
    assert list(reshape.input) == ["x", "s"] and reshape.output[0] == "t"
    assert_idempotent(fuse, result.model)
    for n, s in ((1, 5), (3, 2), (2, 1)):
        assert_numerically_equal(source, result.model, feeds=feeds((n, 1, s, 1), (n, 1, s)), atol=0.0, rtol=0.0)


@pytest.mark.parametrize(
    ("x_dims", "m_dims", "middle", "reason"),
    [
        ("N,1,S,1", "N,1,T", "-1", "dim 2 may be 0"),  # another name: maybe a zero-sized dim the source reads otherwise
        ("N,1,S,1", "N,1,S", "-1,1", "1-D intermediate"),  # a 0 would copy the 2-D intermediate's dim
    ],
)
def test_declines_a_shape_whose_zero_could_copy_another_dim(x_dims, m_dims, middle, reason):
    assert_declines(FuseReshapes(), mask_chain(x_dims, m_dims, middle), reason_contains=reason)


AXES = {"same": ("S", "S"), "static": ("3", "3"), "other": ("S", "T"), "ones": ("1", "1")}
APPLIED: list[bool] = []


@property_settings(max_examples=24)
@given(
    st.lists(st.sampled_from(["same", "same", "static", "ones", "other"]), min_size=1, max_size=3),
    st.sampled_from(["-1", "-1", "-1", "-1,1"]),
    st.sampled_from([13, 17]),
)
def test_property_shape_targets_fuse_only_when_a_zero_cannot_differ(kinds, middle, opset):
    x_dims = ["N"] + [AXES[k][0] for k in kinds]
    m_dims = ["N"] + [AXES[k][1] for k in kinds]
    source = mask_chain(",".join(x_dims), ",".join(m_dims), middle, opset)
    result = run_pass(FuseReshapes(), source)
    APPLIED.append(result.modified)
    assert result.modified == (middle == "-1" and "other" not in kinds)
    if not result.modified:
        return
    for n, s in ((1, 2), (2, 4)):
        shape = [n] + [s if d == "S" else int(d) for d in x_dims[1:]]
        assert_numerically_equal(source, result.model, feeds=feeds(shape, shape), atol=0.0, rtol=0.0)


def test_property_shape_targets_fuse_on_a_share():
    if not APPLIED:
        test_property_shape_targets_fuse_only_when_a_zero_cannot_differ()
    assert_applies_share(APPLIED, at_least=0.3)
    assert not all(APPLIED)
