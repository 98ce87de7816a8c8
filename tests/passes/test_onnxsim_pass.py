"""onnxsim pass: structure, numerics within its declared tolerance, checker, idempotence, declines, properties."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from graphkit.ir.model_io import op_counts
from graphkit.ir.shapes import dims_of
from graphkit.testing import (
    assert_declines,
    assert_idempotent,
    assert_numerically_equal,
    make_model,
    property_settings,
    run_pass,
    value,
)
from graphkit.transform.registry import get_pass

pytest.importorskip("onnxsim")
OnnxSim = get_pass("onnxsim")
PROPERTY = property_settings(max_examples=4)


def shape_chain_model(batch="batch") -> onnx.ModelProto:
    """x.view(x.size(0), -1) computed through Shape/Gather/Unsqueeze/Concat, plus an Identity."""
    nodes = [
        helper.make_node("Identity", ["x"], ["xi"]),
        helper.make_node("Shape", ["xi"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "ax"], ["b1"]),
        helper.make_node("Concat", ["b1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["xi", "target"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "ax"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
    ]
    return make_model(nodes, [value("x", [batch, 2, 3])], [value("y", [batch, 6])], inits)


def test_simplifies_a_static_model_and_is_idempotent():
    model = shape_chain_model(batch=2)
    result = run_pass(OnnxSim(), model)
    assert result.modified and op_counts(result.model) == {"Reshape": 1}
    assert result.counts == {"nodes_before": 6, "nodes_after": 1}
    assert_numerically_equal(model, result.model, atol=1e-5, rtol=1e-4)
    assert_idempotent(OnnxSim(), result.model)


def test_keeps_a_symbolic_batch_symbolic():
    model = shape_chain_model()
    result = run_pass(OnnxSim(), model)
    assert dims_of(result.model.graph.input[0])[0] == "batch"
    assert dims_of(result.model.graph.output[0])[0] == "batch"
    for batch in (1, 3):
        assert_numerically_equal(model, result.model, atol=1e-5, rtol=1e-4, dims={"batch": batch})


def test_declines_over_the_2gb_limit(monkeypatch):
    import graphkit_passes.onnxsim_pass as module

    monkeypatch.setattr(module, "PROTOBUF_LIMIT", 16)  # the real limit needs a 2 GB model; the same code path
    assert_declines(OnnxSim(), shape_chain_model(2), reason_contains="over the 2 GB protobuf limit")


def test_declines_when_it_would_bake_a_symbolic_dim():
    # x [n, 3] + c [2, 3]: onnxsim's inference writes the output's named dim 'n' as 2
    nodes = [helper.make_node("Add", ["x", "c"], ["y"])]
    inits = [numpy_helper.from_array(np.ones([2, 3], np.float32), "c")]
    model = make_model(nodes, [value("x", ["n", 3])], [value("y", ["n", 3])], inits)
    result = assert_declines(OnnxSim(), model, reason_contains="would bake dim 0 of output 'y' (n) to 2")
    assert "fold-shapes" in result.declined[0].reason


def test_declines_on_a_custom_domain_onnxsim_cannot_run():
    nodes = [helper.make_node("Probe", ["x"], ["p"], domain="com.example"), helper.make_node("Relu", ["p"], ["y"])]
    model = make_model(nodes, [value("x", [3])], [value("y", [3])])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    result = OnnxSim()(model)
    if not result.modified:
        assert result.declined and result.declined[0].reason
    else:
        assert [n.op_type for n in result.model.graph.node].count("Probe") == 1  # passed through untouched


@st.composite
def shape_models(draw, symbolic: bool):
    dims = draw(st.lists(st.integers(1, 3), min_size=2, max_size=3))
    model = shape_chain_model(batch="batch" if symbolic else dims[0])
    shape = ["batch" if symbolic else dims[0], *dims[1:]]
    model.graph.input[0].CopyFrom(value("x", shape))
    model.graph.output[0].CopyFrom(value("y", [shape[0], int(np.prod(dims[1:]))]))
    return model


@PROPERTY
@given(st.tuples(*[shape_models(symbolic=i % 2 == 1) for i in range(4)]))
def test_property_onnxsim_keeps_io_and_numbers(models):
    applied = 0
    for model in models:
        result = run_pass(OnnxSim(), model)
        assert [dims_of(v) for v in result.model.graph.input] == [dims_of(v) for v in model.graph.input]
        if result.modified:
            applied += 1
            assert_numerically_equal(model, result.model, atol=1e-5, rtol=1e-4, dims={"batch": 2})
    assert applied >= 2, f"onnxsim applied on only {applied} of {len(models)} generated graphs"
