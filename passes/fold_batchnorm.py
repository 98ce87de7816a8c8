"""Fold an inference BatchNormalization into the Conv that feeds it.

Rewrite: ``y = BatchNormalization(Conv(x, W, B), scale, bias, mean, var, epsilon)`` becomes
``y = Conv(x, W', B')``; the Conv keeps its name and attributes and now writes ``y`` (the BN
output name), so downstream names survive. Group and depthwise convs are handled (the output
channel is always W's axis 0). ``W'`` keeps W's initializer name when this Conv is its only
reader; otherwise new initializers are named after the Conv.

Math, per output channel ``m``, with ``s = scale / sqrt(var + epsilon)``::

    W'[m] = W[m] * s[m]            B'[m] = (B[m] - mean[m]) * s[m] + bias[m]   (B = 0 if absent)

computed in float64 and rounded once to the weights' type. Exact in real arithmetic; in float32
the folded model differs from the original only by rounding (the BN is no longer applied as a
separate rounding step), typically ~1e-7 relative. The pass is declared ``exact`` on that basis
and its tests validate it with atol = rtol = 1e-5; a float16/bfloat16 Conv is declined because
rounding folded weights to 16 bits is not exact in that sense.

Declines (model unchanged at that BN, reason given): its input is not a default-domain Conv
output; the Conv output has other consumers or is a graph output; W, B or any BN parameter is
not a constant (initializer or Constant node); parameter shapes do not match W's output
channels; the BN runs in training mode (``training_mode=1``, ``is_test=0`` before opset 7) or
uses its extra outputs; ``spatial=0`` (before opset 9); the weights are not float32/float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from graphkit_passes.convert_opset import LATEST_OPSET

from graphkit.ir import (
    add_initializer,
    constant_value,
    is_default_domain,
    node_index,
    node_site,
    producer,
    to_graph,
    to_model,
)
from graphkit.model import default_opset
from graphkit.pass_base import Declined, NoOptions, Pass, PassResult
from graphkit.registry import register


@dataclass
class _Fold:
    conv: gs.Node
    bn: gs.Node
    weight: np.ndarray
    bias: np.ndarray


@register("fold-batchnorm")
class FoldBatchNorm(Pass):
    """Fold inference BatchNormalization into the preceding Conv (exact up to fp32 rounding).

    See the module docstring for the rewrite, the math and when it declines.
    """

    Options = NoOptions
    exact = True
    opset_range = (1, LATEST_OPSET)
    changes_opset = False
    changes_io = False

    def run(self, model: onnx.ModelProto) -> PassResult:
        opset = default_opset(model)
        graph = to_graph(model)
        outputs = {t.name for t in graph.outputs}
        folded, declined = 0, []
        for bn in list(graph.nodes):
            if bn.op != "BatchNormalization" or not is_default_domain(bn):
                continue
            match = _match(bn, opset, outputs)
            if isinstance(match, str):
                declined.append(Declined(node_site(bn), match))
                continue
            _apply(graph, match, outputs)
            folded += 1
        if not folded:
            return PassResult(model=model, modified=False, declined=declined)
        return PassResult(to_model(graph, like=model), True, counts={"folded": folded}, declined=declined)


def _match(bn: gs.Node, opset: int, outputs: set[str]) -> _Fold | str:
    """The fold for ``bn``, or the reason it cannot be folded."""
    x = bn.inputs[0]
    conv = producer(x)
    if conv is None or conv.op != "Conv" or not is_default_domain(conv):
        return f"input '{x.name}' is not produced by a Conv ({conv.op if conv is not None else 'graph input'})"
    if x.name in outputs:
        return f"conv output '{x.name}' is a graph output"
    if len(x.outputs) != 1:
        return f"conv output '{x.name}' has {len(x.outputs)} consumers"
    if opset < 7 and bn.attrs.get("is_test", 0) != 1:
        return "BN before opset 7 without is_test=1 runs in training mode"
    if bn.attrs.get("training_mode", 0):
        return "training mode (training_mode=1)"
    if opset < 9 and bn.attrs.get("spatial", 1) == 0:
        return "spatial=0 (per-element statistics) is not folded"
    used_extra = [t.name for t in bn.outputs[1:] if t.name and (t.outputs or t.name in outputs)]
    if used_extra:
        return f"BN extra outputs {used_extra} are used (training mode)"
    weight = constant_value(conv.inputs[1])
    if weight is None:
        return f"conv weight '{conv.inputs[1].name}' is not constant"
    if weight.dtype not in (np.float32, np.float64):
        return f"conv weight type is {weight.dtype}; folding is exact only for float32/float64"
    channels = weight.shape[0]
    params = {}
    for role, tensor in zip(("scale", "bias", "mean", "var"), bn.inputs[1:5]):
        value = constant_value(tensor)
        if value is None:
            return f"BN {role} '{tensor.name}' is not constant"
        if value.shape != (channels,):
            return f"BN {role} shape {list(value.shape)} does not match the conv's {channels} output channels"
        params[role] = value.astype(np.float64)
    if len(conv.inputs) > 2 and conv.inputs[2].name:
        conv_bias = constant_value(conv.inputs[2])
        if conv_bias is None:
            return f"conv bias '{conv.inputs[2].name}' is not constant"
        conv_bias = conv_bias.astype(np.float64).reshape(-1)
    else:
        conv_bias = np.zeros(channels, np.float64)
    epsilon = float(bn.attrs.get("epsilon", 1e-5))
    factor = params["scale"] / np.sqrt(params["var"] + epsilon)
    new_weight = (weight.astype(np.float64) * factor.reshape((-1,) + (1,) * (weight.ndim - 1))).astype(weight.dtype)
    new_bias = ((conv_bias - params["mean"]) * factor + params["bias"]).astype(weight.dtype)
    return _Fold(conv, bn, new_weight, new_bias)


def _apply(graph: gs.Graph, fold: _Fold, outputs: set[str]) -> None:
    conv, bn = fold.conv, fold.bn
    base = conv.name or conv.outputs[0].name
    old_weight = conv.inputs[1]
    old_bias = conv.inputs[2] if len(conv.inputs) > 2 and conv.inputs[2].name else None
    replaced = [t for t in (old_weight, old_bias, *bn.inputs[1:5]) if t is not None]
    conv.inputs[1] = _newconstant_value(graph, old_weight, fold.weight, f"{base}_bn_folded_weight")
    bias = _newconstant_value(graph, old_bias, fold.bias, f"{base}_bn_folded_bias")
    if len(conv.inputs) > 2:
        conv.inputs[2] = bias
    else:
        conv.inputs.append(bias)
    y = bn.outputs[0]
    bn.inputs.clear()
    bn.outputs.clear()
    del graph.nodes[node_index(graph, bn)]
    conv.outputs[0] = y
    # Unused initializers are dropped on export; Constant nodes that fed only the old values go here.
    for tensor in replaced:
        writer = producer(tensor)
        if writer is not None and writer.op == "Constant" and not tensor.outputs and tensor.name not in outputs:
            writer.outputs.clear()
            del graph.nodes[node_index(graph, writer)]


def _newconstant_value(graph: gs.Graph, old: gs.Tensor | None, values: np.ndarray, fallback: str) -> gs.Constant:
    """Reuse ``old``'s name when it is an initializer read by one node only, else a fresh name."""
    if isinstance(old, gs.Constant) and len(old.outputs) <= 1:
        name = old.name
        old.name = f"{name}__replaced"
        return gs.Constant(name, values)
    return add_initializer(graph, fallback, values)
