"""Small models of the kinds users bring: a static-batch CNN, a BERT-like text encoder with token
ids and a mask over a symbolic sequence, and a detector-like graph whose batch is not dynamic."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inputs, outputs, inits, opset=13):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def static_cnn(batch: int = 1) -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu -> Identity -> GlobalAveragePool -> Flatten, static batch."""
    rng = np.random.default_rng(0)
    inits = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "scale": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "bias": rng.standard_normal(4).astype(np.float32),
        "mean": rng.standard_normal(4).astype(np.float32),
        "var": rng.uniform(0.5, 1.5, 4).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("Identity", ["r"], ["i"]),
        helper.make_node("GlobalAveragePool", ["i"], ["p"]),
        helper.make_node("Flatten", ["p"], ["logits"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])],
        inits,
    )


def tiny_bert(vocab: int = 50, hidden: int = 8, batch: str | int = "batch", seq: str = "seq") -> onnx.ModelProto:
    """Token ids (int64 [batch, seq]) -> Gather over an embedding table, + token types, masked by
    attention_mask (int64 0/1) -> a mean over the sequence (via Shape arithmetic) -> [batch, hidden].

    The Gather fails in onnxruntime for an id >= vocab: golden inputs must respect the table size.
    """
    rng = np.random.default_rng(1)
    inits = {
        "word_emb": rng.standard_normal((vocab, hidden)).astype(np.float32),
        "type_emb": rng.standard_normal((2, hidden)).astype(np.float32),
        "axes1": np.array([1], np.int64),
        "axes2": np.array([2], np.int64),
        "eps": np.array(1e-6, np.float32),
    }
    nodes = [
        helper.make_node("Gather", ["word_emb", "input_ids"], ["we"]),
        helper.make_node("Gather", ["type_emb", "token_type_ids"], ["te"]),
        helper.make_node("Add", ["we", "te"], ["emb"]),
        helper.make_node("Identity", ["emb"], ["emb_id"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axes2"], ["mask3"]),
        helper.make_node("Mul", ["emb_id", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axes1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["maskf", "axes1"], ["count"], keepdims=1),
        helper.make_node("Add", ["count", "eps"], ["count_eps"]),
        helper.make_node("Div", ["summed", "count_eps"], ["pooled"]),
    ]
    ints = [batch, seq]
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ints),
            helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ints),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ints),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [batch, hidden])],
        inits,
    )


def detector_split() -> onnx.ModelProto:
    """A detector-like head exported at batch 1: the image rows are concatenated with a constant
    prior row and split back with sizes [1, 1] baked for batch 1. Valid at batch 1; at batch 3 the
    Split sizes no longer add up, so the batch is not really dynamic."""
    inits = {"prior": np.arange(6, dtype=np.float32).reshape(1, 6), "split": np.array([1, 1], np.int64)}
    nodes = [
        helper.make_node("Relu", ["image"], ["r"]),
        helper.make_node("Concat", ["r", "prior"], ["both"], axis=0),
        helper.make_node("Split", ["both", "split"], ["scores", "anchors"], axis=0),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 6])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 6]),
            helper.make_tensor_value_info("anchors", TensorProto.FLOAT, [1, 6]),
        ],
        inits,
    )


def detector_counts() -> onnx.ModelProto:
    """Batch 1 image [1, 6] -> per-anchor scores [6, 1]: the output's dim 0 is a count of anchors,
    not the batch, so the samples are not rows of the output."""
    nodes = [helper.make_node("Transpose", ["image"], ["per_anchor"], perm=[1, 0])]
    return _model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("per_anchor", TensorProto.FLOAT, [6, 1])],
        {},
    )


def detector_like() -> onnx.ModelProto:
    """Batch 1 image [1, 6] -> scores; the detections' dim 0 is a count, not the batch: a Reshape
    flattens the batch into the boxes ([1, 6] -> [3, 2]), and a Split has sizes baked for batch 1."""
    inits = {"shape": np.array([3, 2], np.int64), "split": np.array([1, 2], np.int64)}
    nodes = [
        helper.make_node("Relu", ["image"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["boxes"]),
        helper.make_node("Split", ["boxes", "split"], ["best", "rest"], axis=0),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 6])],
        [
            helper.make_tensor_value_info("best", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("rest", TensorProto.FLOAT, [2, 2]),
        ],
        inits,
    )
