"""Fuse consecutive shape-only ops: a Reshape after a reshape, Squeeze/Unsqueeze pairs that cancel, Unsqueeze chains.

Rewrites:
- ``Reshape(R(x, ...), b)``, where ``R`` is a ``Reshape``, ``Flatten``, ``Squeeze`` or
  ``Unsqueeze`` whose output nothing else reads, becomes ``Reshape(x, b)`` (the outer Reshape
  keeps its name, attributes and output) — counted as ``reshape_chain``;
- ``Unsqueeze(Squeeze(x, a), a)`` and ``Squeeze(Unsqueeze(x, a), a)`` (the same axes) are
  removed and their readers read ``x`` — counted as ``squeeze_pair``. Axes are read from the
  attribute before opset 13 and from the constant input from 13; negative axes are normalized
  with the rank from shape inference.
- ``Unsqueeze(Unsqueeze(x, a), c)`` becomes ``Unsqueeze(x, a ∪ c)`` with ``a`` mapped to the
  output's positions (the outer op keeps its name and output; the inner one dies when nothing
  else reads it) — counted as ``unsqueeze_chain``. Each Unsqueeze inserts size-1 axes and
  moves no element, so one Unsqueeze that inserts all of them at their final positions is the
  same tensor. Needs both axes constant and, for negative axes, the rank of ``x``.

Math: a reshape-like op changes only the shape, never the order or the values of the elements
(row-major), so a chain of them is the last one's shape applied to the first input, provided
the last target does not refer to the intermediate shape: ``b`` must be a constant, and each 0
entry of it (which copies the intermediate's dim unless ``allowzero=1``) is resolved first: where
the inner op is a Reshape (``allowzero=0``) whose constant target has 0 there, that 0 copied
``x``'s dim, so the fused target keeps 0 (the same dim of ``x``); where it has a static dim, or
shape inference gives the intermediate a static dim there, the fused target holds that dim.
``-1`` is fine, since the element count is the same. ``Squeeze(a)`` removes exactly the
size-1 axes that ``Unsqueeze(a)`` inserts (and ``Squeeze`` fails unless they are 1), so each
pair is the identity. Bit-exact.

A non-constant outer target is fused in one case, ``Shape(t)`` after a 1-D intermediate (the
attention-mask chain ``Reshape(Reshape(Gather(flat, t), [-1]), Shape(t))`` of LLaMA, Qwen2 and
BART exports), where each dim of ``t`` is static and positive or the same named dim as the chain
input's axis there, so a copy-0 means the same on both (see :func:`_shape_target_reason`).

Declines (nodes kept, reason given): the outer target is not a constant (nor such a Shape), or holds a 0 without
``allowzero=1`` that is not resolved as above (a target of static dims or -1 would make it
fusable); the pair's axes differ or are negative with an unknown rank; the intermediate value is read elsewhere or is a graph output
(the engine says so); removing would rename a graph output. Only the main graph is rewritten;
custom-domain nodes are never touched.
"""

from __future__ import annotations

import numpy as np

from graphkit.ir.graph import producer
from graphkit.ir.opset import LATEST_OPSET
from graphkit.transform.rules import Rule, rule_pass


def _fused_target(ctx, b) -> np.ndarray | str | None:
    """The target of the fused Reshape: ``b`` with each copy-0 resolved against the intermediate
    value (the inner Reshape's own entry there, or a static dim), None for ``b`` as it is (a
    ``Shape`` target, :func:`_shape_target_reason`), or the reason it cannot be."""
    target = ctx.constant(b)
    if target is None:
        reason = _shape_target_reason(ctx, b)
        return None if reason is None else reason
    target = target.reshape(-1).astype(np.int64)
    if ctx.node.attrs.get("allowzero", 0) or not np.any(target == 0):
        return target
    middle = ctx.node.inputs[0]
    inner = producer(middle)
    inner_target = None
    if inner.op == "Reshape" and not inner.attrs.get("allowzero", 0):
        value = ctx.constant(inner.inputs[1])
        inner_target = None if value is None else value.reshape(-1)
    dims = ctx.shape(middle)
    fused = target.copy()
    for axis in np.flatnonzero(target == 0).tolist():
        if inner_target is not None and axis < len(inner_target) and inner_target[axis] >= 0:
            fused[axis] = inner_target[axis]  # 0 there copies x's dim (the same one); a static dim is itself
        elif dims is not None and axis < len(dims) and isinstance(dims[axis], int):
            fused[axis] = dims[axis]
        else:
            return (
                f"Reshape target {target.tolist()} holds 0 at axis {axis} (copy the previous op's dim), "
                "which is neither a 0 or a static dim of the inner Reshape's target nor a static dim; "
                "a target of static dims or -1 would make the chain fusable"
            )
    return fused


def _shape_target_reason(ctx, b) -> str | None:
    """None when the outer target ``b = Shape(t)`` means the same on ``x`` as on the 1-D
    intermediate (the mask chain ``Reshape(Reshape(Gather(flat, t), [-1]), Shape(t))``), else why not.

    Each element of ``Shape(t)`` is a dim of ``t`` (>= 0). Where it is not 0 both Reshapes read it
    as that size. A 0 copies the previous value's dim: from the 1-D intermediate only at axis 0
    (its one dim, the element count), elsewhere the source fails. So each axis of ``t`` must be a
    static positive dim, or the same named dim as ``x``'s axis there: a 0 at axis 0 then is
    ``x``'s dim 0 = 0, so ``x`` has no elements and the intermediate's dim copied by the source is
    0 too; at a later axis the source fails and the fused node's result is never compared.
    """
    shape = producer(b)
    reason = f"Reshape target '{b.name}' is not a constant (folding it first would make the chain fusable)"
    if shape is None or shape.op != "Shape" or shape.attrs.get("start", 0) != 0 or shape.attrs.get("end") is not None:
        return reason
    if ctx.node.attrs.get("allowzero", 0):
        return None  # a 0 is a zero-sized dim, never a copy
    middle = ctx.node.inputs[0]
    x = producer(middle).inputs[0]
    middle_dims, t_dims, x_dims = ctx.shape(middle), ctx.shape(shape.inputs[0]), ctx.shape(x)
    if middle_dims is None or len(middle_dims) != 1 or t_dims is None or x_dims is None:
        return reason + "; a Shape target is fused only after a 1-D intermediate of known ranks"
    for axis, dim in enumerate(t_dims):
        named_as_x = isinstance(dim, str) and axis < len(x_dims) and x_dims[axis] == dim
        if not (isinstance(dim, int) and dim > 0) and not named_as_x:
            return (
                f"Reshape target is Shape({shape.inputs[0].name}), whose dim {axis} may be 0 (copy a dim) "
                "and is not the same named dim of the chain's input"
            )
    return None


def _chain_check(ctx, x, b, **_):
    fused = _fused_target(ctx, b)
    return fused if isinstance(fused, str) else True


def _chain_rewrite(op, x, b, **_):
    outer = op.ctx.node
    fused = _fused_target(op.ctx, b)
    if fused is not None and not np.array_equal(fused, op.ctx.constant(b).reshape(-1)):
        b = op.constant(fused)
    return op.Reshape(x, b, _name=outer.name, **outer.attrs)


# the inner reshape-like op (Squeeze/Unsqueeze axes as attribute or optional trailing input)
_CHAINS = [
    lambda op, x, s, b: op.Reshape(op.Reshape(x, s), b),
    lambda op, x, b: op.Reshape(op.Flatten(x), b),
    lambda op, x, b, a=None: op.Reshape(op.Squeeze(x, a), b),
    lambda op, x, b, a=None: op.Reshape(op.Unsqueeze(x, a), b),
]


def _raw_axes(ctx, node) -> list[int] | str:
    """The node's axes as written, or the reason they are not known."""
    if len(node.inputs) > 1 and node.inputs[1].name:
        value = ctx.constant(node.inputs[1])
        if value is None:
            return f"{node.op} axes '{node.inputs[1].name}' are not a constant"
        return [int(a) for a in value.reshape(-1)]
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    return f"{node.op} without axes (all size-1 axes) is not paired"


def _both_axes(ctx) -> tuple[list[int], list[int]] | str:
    """The raw axes of the inner and the outer op of the matched pair, or why one is not known."""
    outer, inner = ctx.node, producer(ctx.node.inputs[0])
    first, second = _raw_axes(ctx, inner), _raw_axes(ctx, outer)
    for axes in (first, second):
        if isinstance(axes, str):
            return axes
    return first, second


def _pair_check(ctx, x, **_):
    inner = producer(ctx.node.inputs[0])
    both = _both_axes(ctx)
    if isinstance(both, str):
        return both
    first, second = both
    outer = ctx.node
    # both ops' axes index the tensor of the larger rank: Squeeze's input, Unsqueeze's output
    dims = ctx.shape(x)
    rank = None if dims is None else len(dims) + (len(first) if inner.op == "Unsqueeze" else 0)
    if any(a < 0 for a in first + second):
        if rank is None:
            return (
                f"{inner.op} axes {first} / {outer.op} axes {second} are negative and the rank of '{x.name}' is unknown"
            )
        first, second = [a % rank for a in first], [a % rank for a in second]
    if sorted(first) != sorted(second):
        return f"{inner.op} axes {first} and {outer.op} axes {second} differ; only a pair with the same axes cancels"
    return True


def _keep_input(op, x, **_):
    return x


_PAIRS = [
    lambda op, x: op.Unsqueeze(op.Squeeze(x)),
    lambda op, x, a, c: op.Unsqueeze(op.Squeeze(x, a), c),
    lambda op, x: op.Squeeze(op.Unsqueeze(x)),
    lambda op, x, a, c: op.Squeeze(op.Unsqueeze(x, a), c),
]


def _unsqueeze_axes(ctx, x) -> list[int] | str:
    """The axes ``Unsqueeze(Unsqueeze(x, a), c)`` inserts, as positions of its output (or why not)."""
    both = _both_axes(ctx)
    if isinstance(both, str):
        return both
    first, second = both
    dims = ctx.shape(x)
    if any(a < 0 for a in first + second) and dims is None:
        return f"Unsqueeze axes {first} / {second} are negative and the rank of '{x.name}' is unknown"
    middle_rank = (len(dims) if dims is not None else 0) + len(first)
    final_rank = middle_rank + len(second)
    first = sorted(a % middle_rank if a < 0 else a for a in first)
    second = sorted(a % final_rank if a < 0 else a for a in second)
    if len(set(first)) != len(first) or len(set(second)) != len(second):
        return f"Unsqueeze axes {first} / {second} repeat an axis"
    kept = [p for p in range(final_rank) if p not in second]  # where the middle tensor's axes land
    if dims is not None and len(kept) != middle_rank:
        return f"Unsqueeze axes {second} do not fit the rank {final_rank}"
    if any(a >= len(kept) for a in first):
        return f"Unsqueeze axes {first} are out of range for '{x.name}'"
    return sorted(second + [kept[a] for a in first])


def _unsqueeze_chain_check(ctx, x, **_):
    axes = _unsqueeze_axes(ctx, x)
    return axes if isinstance(axes, str) else True


def _unsqueeze_chain_rewrite(op, x, **_):
    outer = op.ctx.node
    axes = _unsqueeze_axes(op.ctx, x)
    if op.ctx.opset >= 13:
        return op.Unsqueeze(x, op.constant(np.array(axes, dtype=np.int64)), _name=outer.name)
    return op.Unsqueeze(x, axes=axes, _name=outer.name)


_UNSQUEEZE_CHAINS = [
    (lambda op, x: op.Unsqueeze(op.Unsqueeze(x)), (1, 12)),
    (lambda op, x, a, c: op.Unsqueeze(op.Unsqueeze(x, a), c), (13, LATEST_OPSET)),
]


@rule_pass("fuse-reshapes", opset_range=(1, LATEST_OPSET), doc=__doc__)
def fuse_reshapes():
    """Reshape chains (``reshape_chain``), cancelling Squeeze/Unsqueeze pairs (``squeeze_pair``) and
    Unsqueeze chains (``unsqueeze_chain``)."""
    return (
        [Rule(p, _chain_rewrite, _chain_check, name="reshape_chain") for p in _CHAINS]
        + [Rule(p, _keep_input, _pair_check, name="squeeze_pair") for p in _PAIRS]
        + [
            Rule(p, _unsqueeze_chain_rewrite, _unsqueeze_chain_check, name="unsqueeze_chain", opsets=opsets)
            for p, opsets in _UNSQUEEZE_CHAINS
        ]
    )


FuseReshapes = fuse_reshapes
