"""Fuse a zero ``Pad`` in front of a ``Conv`` into the Conv's own ``pads``.

Rewrite: ``y = Conv(Pad(x, pads, 0), W[, B])`` becomes ``y = Conv(x, W[, B])`` with the Pad's
spatial amounts added to the Conv's ``pads``; the Conv keeps its name, its other attributes and
its output. A Pad of all zeros (common in exports that pad "same" at run time, such as TF-style
MobileNets once their pad amounts are folded) simply disappears. All Pad forms are read: the
``pads``/``value`` attributes before opset 11, the ``pads``/``constant_value`` inputs from 11, and
the ``axes`` input from 18.

Math: a Conv with ``pads`` is defined as the Conv of the input zero-padded by those amounts, so
padding with zeros first and then convolving without (or with fewer) pads is the same function.
Exact under ONNX semantics; a runtime may pick a different convolution algorithm for the new
padding, which moves float rounding only in the last bits (the tests allow 1e-6).

Declines (Pad and Conv kept, reason given): the Pad mode is not ``constant``; its constant value
is not 0 (or not a constant); its pads or axes are not constants; a pad is negative (a crop);
the batch or channel axis is padded; the Conv has ``auto_pad`` other than ``NOTSET`` (explicit
pads would then be ignored); the Pad's output has other readers or is a graph output (the engine
says so). Each reason names what would make the site fusable. Only the main graph is rewritten;
custom-domain nodes are never touched.
"""

from __future__ import annotations

import numpy as np

from graphkit.ir.graph import constant_value, producer
from graphkit.ir.opset import LATEST_OPSET
from graphkit.transform.rules import Rule, rule_pass


def _mode(node) -> str:
    mode = node.attrs.get("mode", "constant")
    return mode.decode() if isinstance(mode, bytes) else str(mode)


def _full_pads(ctx, pad, rank: int | None) -> list[int] | str:
    """The Pad's amounts as [begin_0..begin_{r-1}, end_0..end_{r-1}], or the reason they are not known."""
    if ctx.opset < 11:
        pads = [int(v) for v in pad.attrs.get("pads", [])]
        if float(pad.attrs.get("value", 0.0)) != 0.0:
            return f"Pad value {pad.attrs.get('value')} is not 0 (only a zero pad is what Conv pads mean)"
    else:
        inputs = list(pad.inputs)
        value = constant_value(inputs[1]) if len(inputs) > 1 else None
        if value is None:
            return f"Pad amounts '{inputs[1].name}' are not a constant (folding them first would make it fusable)"
        pads = [int(v) for v in value.reshape(-1)]
        if len(inputs) > 2 and inputs[2].name:
            fill = constant_value(inputs[2])
            if fill is None:
                return f"Pad constant_value '{inputs[2].name}' is not a constant"
            if fill.size and np.any(fill != 0):
                return f"Pad constant_value is {fill.reshape(-1)[0]!r}, not 0 (only a zero pad is what Conv pads mean)"
        if len(inputs) > 3 and inputs[3].name:
            axes = constant_value(inputs[3])
            if axes is None:
                return f"Pad axes '{inputs[3].name}' are not a constant"
            if rank is None:
                return "Pad has axes but the input rank is unknown"
            axes = [int(a) % rank for a in axes.reshape(-1)]
            full = [0] * (2 * rank)
            for k, axis in enumerate(axes):
                full[axis], full[rank + axis] = pads[k], pads[len(axes) + k]
            pads = full
    return pads


def _check(ctx, x, w, **_):
    conv = ctx.node
    pad = producer(conv.inputs[0])
    if _mode(pad) != "constant":
        return f"Pad mode is '{_mode(pad)}'; only mode 'constant' with value 0 is what Conv pads mean"
    auto_pad = conv.attrs.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad != "NOTSET":
        return f"Conv auto_pad is {auto_pad}; explicit pads (auto_pad NOTSET) would make it fusable"
    weight = ctx.shape(w)
    rank = len(weight) if weight is not None else None
    pads = _full_pads(ctx, pad, rank)
    if isinstance(pads, str):
        return pads
    rank = len(pads) // 2
    if rank < 3 or len(pads) != 2 * rank:
        return f"Pad amounts {pads} do not fit a Conv input of rank >= 3"
    if min(pads) < 0:
        return f"Pad amounts {pads} hold a negative pad (a crop); only non-negative pads fuse into a Conv"
    if pads[0] or pads[1] or pads[rank] or pads[rank + 1]:
        return f"Pad amounts {pads} pad the batch or channel axis; only spatial pads fuse into a Conv"
    spatial = rank - 2
    old = [int(v) for v in conv.attrs.get("pads", [0] * (2 * spatial))]
    if len(old) != 2 * spatial:
        return f"Conv pads {old} do not have {2 * spatial} entries"
    begins = [old[i] + pads[2 + i] for i in range(spatial)]
    ends = [old[spatial + i] + pads[rank + 2 + i] for i in range(spatial)]
    ctx.memo["pads"] = begins + ends
    return True


def _rewrite(op, x, w, b=None, **_):
    conv = op.ctx.node
    attrs = {**conv.attrs, "pads": op.ctx.memo["pads"]}
    attrs.pop("auto_pad", None)
    inputs = [x, w] if b is None else [x, w, b]
    return op.Conv(*inputs, _name=conv.name, **attrs)


def _pattern(op, x, w, pads=None, value=None, axes=None, b=None):
    """Pad with 1 (before opset 11) to 4 inputs, Conv with or without bias: optional trailing inputs."""
    return op.Conv(op.Pad(x, pads, value, axes), w, b)


@rule_pass("fuse-pad-conv", opset_range=(1, LATEST_OPSET), doc=__doc__)
def fuse_pad_conv():
    """One rule for every Pad/Conv arity, counted as ``fused``."""
    return Rule(_pattern, _rewrite, _check, name="fused")


FusePadConv = fuse_pad_conv
