"""Backends behind one interface: onnxruntime (plain and io-binding), torch, ais_bench registration."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from graphkit.ir.model_io import save_model
from graphkit.runtime.backend import BACKENDS, open_backend
from graphkit.runtime.torch_backend import TorchBackend
from graphkit.testing import make_model
from graphkit.util.errors import GraphkitError, InputError


class Scale(torch.nn.Module):
    def forward(self, x):
        return x * 2.0 + 1.0, x.sum(dim=1)


def build_scale():
    return Scale()


@pytest.fixture
def scale_onnx(tmp_path):
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["t"]),
        helper.make_node("Add", ["t", "one"], ["y"]),
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
    ]
    inits = [
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N", 4])
    return save_model(make_model(nodes, [x], [y, s], inits), tmp_path / "scale.onnx")


@pytest.mark.parametrize("options", [{}, {"io_binding": True}, {"threads": 1, "optimize": False}])
def test_ort_backend_options_agree(scale_onnx, options):
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    with open_backend("ort", scale_onnx, **options) as backend:
        assert [i.name for i in backend.inputs] == ["x"] and [o.name for o in backend.outputs] == ["y", "s"]
        out = backend.run({"x": x})
    assert list(out) == ["y", "s"]
    np.testing.assert_allclose(out["y"], x * 2 + 1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["s"], x.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_ort_io_binding_rejects_wrong_inputs(scale_onnx):
    with open_backend("ort", scale_onnx, io_binding=True) as backend, pytest.raises(InputError):
        backend.run({"y": np.zeros((1, 3, 4), np.float32)})


@pytest.mark.parametrize("source", [Scale(), build_scale, f"{__name__}:build_scale"])
def test_torch_backend_matches_ort(scale_onnx, source):
    x = np.random.default_rng(1).standard_normal((3, 3, 4)).astype(np.float32)
    with open_backend("torch", source, input_names=["x"], output_names=["y", "s"], threads=1) as reference:
        expected = reference.run({"x": x})
        assert [o.name for o in reference.outputs] == ["y", "s"]
    actual = open_backend("ort", scale_onnx).run({"x": x})
    for name in ("y", "s"):
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-5)


def test_torch_backend_default_output_names():
    backend = TorchBackend(Scale(), input_names=["x"])
    out = backend.run({"x": np.ones((1, 3, 4), np.float32)})
    assert list(out) == ["output_0", "output_1"]


@pytest.mark.parametrize("source", ["no_colon", "graphkit.nope:thing", "graphkit.util.errors:nothing_here", 42])
def test_torch_backend_bad_source_is_user_error(source):
    with pytest.raises(GraphkitError):
        open_backend("torch", source)


def test_unknown_backend_suggests_names(scale_onnx):
    with pytest.raises(GraphkitError, match="did you mean: ort"):
        open_backend("orts", scale_onnx)


def test_ais_bench_registered_only_when_it_imports(scale_onnx):
    installed = importlib.util.find_spec("ais_bench") is not None
    assert ("ais_bench" in BACKENDS) == installed
    if not installed:
        with pytest.raises(GraphkitError, match="ais_bench.infer.interface does not import"):
            open_backend("ais_bench", scale_onnx)


def test_validation_opens_the_registered_ort_backend_with_validation_session_options():
    import onnxruntime as ort

    from graphkit.runtime.backend import open_validation_backend
    from graphkit.runtime.ort import ForwardLog, recording_forwards
    from graphkit.util.errors import RuntimeLoadError

    weight = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)  # 16 KB: handed over in memory
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor("w", TensorProto.FLOAT, [64, 64], weight.ravel())],
    )
    with open_validation_backend(model, "none", threads=1) as backend:
        assert isinstance(backend, BACKENDS["ort"])  # the registry's "ort" entry, not a session of its own
        options = backend.session.get_session_options()
        assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        assert options.enable_cpu_mem_arena is False and options.intra_op_num_threads == 1
        # idle threads sleep: the session's parallel init and forwards leave no core spinning
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert [(i.name, i.shape, i.dtype) for i in backend.inputs] == [("x", ("N", 64), np.dtype(np.float32))]
        x = np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32)
        with recording_forwards(log := ForwardLog()):
            y = backend.run({"x": x}, case="b2")["y"]
        # float32 MatMul: the summation order may differ from numpy's, a few ulps at most
        np.testing.assert_allclose(y, x @ weight, rtol=1e-5, atol=1e-5)
        assert [(f.case, f.batch, f.optimization) for f in log.forwards] == [("b2", 2, "none")]
    with open_validation_backend(model, "all") as backend:
        level = backend.session.get_session_options().graph_optimization_level
        assert level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    broken = make_model(
        [helper.make_node("NoSuchOp", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(RuntimeLoadError, match="onnxruntime cannot load the model"):
        open_validation_backend(broken)
