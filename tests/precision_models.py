"""Small models that break in fp16 for a known reason, and one that does not (tests and docs/precision.md).

Each builder returns ``(model, feeds, responsible)``: the seeded inputs that show the break and
the names of the nodes that a minimal fp32 keep-list must hold (None for the model that is fine).
Weights come from numpy's PCG64 generator (the same on every CPU).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in initializers.items()]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _io(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def overflow_before_div(seed: int = 0):
    """MatMul outputs past 65,504, scaled back down by a Div: fp16 stores inf, the Div gives inf."""
    rng = np.random.default_rng(seed)
    w = (2e4 * rng.standard_normal((8, 8))).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["big"], name="big_matmul"),
        helper.make_node("Div", ["big", "scale"], ["scaled"], name="scale_div"),
        helper.make_node("Tanh", ["scaled"], ["y"], name="squash"),
    ]
    init = {"w": w, "scale": np.array(1e5, np.float32)}
    model = _model(nodes, [_io("x", [4, 8])], [_io("y", [4, 8])], init)
    feeds = {"x": rng.standard_normal((4, 8)).astype(np.float32)}
    return model, feeds, {"big_matmul", "scale_div"}


def overflow_through_relu(seed: int = 0):
    """As overflow_before_div with a Relu between: the Relu must be kept too, or it reads the value rounded."""
    model, feeds, _ = overflow_before_div(seed)
    graph = model.graph
    graph.node[1].input[0] = "big_relu"
    graph.node.insert(1, helper.make_node("Relu", ["big"], ["big_relu"], name="relu"))
    onnx.checker.check_model(model)
    return model, feeds, {"big_matmul", "relu", "scale_div"}


def _layer_norm(nodes_before, x, eps, name="ln"):
    return nodes_before + [
        helper.make_node("ReduceMean", [x], [f"{name}_mean"], name=f"{name}_mean", axes=[-1], keepdims=1),
        helper.make_node("Sub", [x, f"{name}_mean"], [f"{name}_centered"], name=f"{name}_sub"),
        helper.make_node("Mul", [f"{name}_centered", f"{name}_centered"], [f"{name}_sq"], name=f"{name}_square"),
        helper.make_node("ReduceMean", [f"{name}_sq"], [f"{name}_var"], name=f"{name}_var", axes=[-1], keepdims=1),
        helper.make_node("Add", [f"{name}_var", eps], [f"{name}_var_eps"], name=f"{name}_add_eps"),
        helper.make_node("Sqrt", [f"{name}_var_eps"], [f"{name}_std"], name=f"{name}_sqrt"),
        helper.make_node("Div", [f"{name}_centered", f"{name}_std"], ["y"], name=f"{name}_div"),
    ]


def layernorm_variance_overflow(seed: int = 0):
    """A LayerNorm written out (as exporters do before opset 17) over values near 200: squares pass 65,504."""
    rng = np.random.default_rng(seed)
    nodes = _layer_norm([], "x", "eps")
    model = _model(nodes, [_io("x", [4, 32])], [_io("y", [4, 32])], {"eps": np.array(1e-5, np.float32)})
    feeds = {"x": (200.0 * rng.standard_normal((4, 32))).astype(np.float32)}
    return model, feeds, {"ln_square", "ln_var"}


def softmax_large_logits(seed: int = 0):
    """Logits near 1e4 (fp16 spacing there is 8) before a softmax: the rounding moves the probabilities."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((8, 16)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["proj"], name="proj"),
        helper.make_node("Add", ["proj", "offset"], ["logits"], name="logit_offset"),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
    ]
    model = _model(nodes, [_io("x", [4, 8])], [_io("y", [4, 16])], {"w": w, "offset": np.array(1e4, np.float32)})
    feeds = {"x": rng.standard_normal((4, 8)).astype(np.float32)}
    return model, feeds, {"logit_offset", "softmax"}


def tiny_epsilon(seed: int = 0):
    """A LayerNorm with eps 1e-9 (0 in fp16) on a constant row: fp32 gives 0 / sqrt(eps) = 0, fp16 0 / 0."""
    rng = np.random.default_rng(seed)
    nodes = _layer_norm([], "x", "eps")
    model = _model(nodes, [_io("x", [4, 32])], [_io("y", [4, 32])], {"eps": np.array(1e-9, np.float32)})
    x = rng.standard_normal((4, 32)).astype(np.float32)
    x[0] = 5.0
    return model, {"x": x}, {"ln_add_eps", "ln_sqrt"}


def fine_in_fp16(seed: int = 0):
    """A small MLP with values near 1: fp16 keeps every output within 1e-2."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["a"], name="relu"),
        helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2"),
    ]
    init = {
        "w1": (rng.standard_normal((8, 16)) / 4).astype(np.float32),
        "w2": (rng.standard_normal((16, 4)) / 4).astype(np.float32),
    }
    model = _model(nodes, [_io("x", [4, 8])], [_io("y", [4, 4])], init)
    return model, {"x": rng.standard_normal((4, 8)).astype(np.float32)}, None


BREAKING = {
    "overflow_before_div": overflow_before_div,
    "overflow_through_relu": overflow_through_relu,
    "layernorm_variance_overflow": layernorm_variance_overflow,
    "softmax_large_logits": softmax_large_logits,
    "tiny_epsilon": tiny_epsilon,
}


def amplified_layernorm(seed: int = 0):
    """layernorm_variance_overflow with its input scaled by 200 inside the graph (for N(0, 1) golden inputs)."""
    model, _, responsible = layernorm_variance_overflow(seed)
    graph = model.graph
    graph.node[0].input[0] = graph.node[1].input[0] = "x_scaled"
    graph.node.insert(0, helper.make_node("Mul", ["x", "gain"], ["x_scaled"], name="amplify"))
    graph.initializer.append(numpy_helper.from_array(np.array(200.0, np.float32), "gain"))
    onnx.checker.check_model(model)
    rng = np.random.default_rng(seed)
    return model, {"x": rng.standard_normal((4, 32)).astype(np.float32)}, responsible
