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
import onnx_graphsurgeon as gs

from graphkit.ir.graph import constant_value, fresh_name, is_default_domain, producer
from graphkit.ir.opset import LATEST_OPSET
from graphkit.transform.rules import Rule, rule_pass


@dataclass
class _Fold:
    conv: gs.Node
    bn: gs.Node
    weight: np.ndarray
    bias: np.ndarray


def _check(ctx, x, scale, bias, mean, var):
    fold = _match(ctx.node, ctx.opset, {t.name for t in ctx.graph.outputs})
    if isinstance(fold, str):
        return fold
    ctx.memo["fold"] = fold
    return True


def _rewrite(op, x, scale, bias, mean, var):
    """The Conv with folded weights, named as the old one, writing the BN's output."""
    fold = op.ctx.memo["fold"]
    conv = fold.conv
    base = conv.name or conv.outputs[0].name
    old_bias = conv.inputs[2] if len(conv.inputs) > 2 and conv.inputs[2].name else None
    weight = op.constant(fold.weight, _reused_name(conv.inputs[1], f"{base}_bn_folded_weight", op.graph))
    new_bias = op.constant(fold.bias, _reused_name(old_bias, f"{base}_bn_folded_bias", op.graph))
    return op.Conv(conv.inputs[0], weight, new_bias, _name=conv.name, **conv.attrs)


def _pattern(op, x, scale, bias, mean, var):
    return op.BatchNormalization(x, scale, bias, mean, var)


@rule_pass("fold-batchnorm", opset_range=(1, LATEST_OPSET), doc=__doc__)
def fold_batchnorm():
    """A rule: the pattern is the BatchNormalization; the check finds the Conv and computes the
    folded weights or says why not; the rewrite puts the folded Conv in its place."""
    return Rule(_pattern, _rewrite, _check, name="folded")


FoldBatchNorm = fold_batchnorm


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


def _reused_name(old: gs.Tensor | None, fallback: str, graph: gs.Graph) -> str:
    """``old``'s name when it is an initializer read by this Conv only (it becomes unused), else a fresh one."""
    if isinstance(old, gs.Constant) and len(old.outputs) <= 1:
        name = old.name
        old.name = f"{name}__replaced"
        return name
    return fresh_name(graph, fallback)
