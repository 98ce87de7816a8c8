"""Merge a Slice of a Slice on other axes into one Slice.

Rewrite: ``y = Slice(Slice(x, s1, e1, a1, t1), s2, e2, a2, t2)`` where the axes ``a1`` and ``a2``
share no axis becomes ``y = Slice(x, s1 ++ s2, e1 ++ e2, a1 ++ a2, t1 ++ t2)`` (the outer Slice
keeps its name and output). The inner Slice dies when nothing else reads it; when something does
(Swin's patch merging slices one strided half twice), each outer Slice is merged on its own and
the inner one goes with the last. Exported patch-merging / space-to-depth code
(``x[:, 0::2, 1::2, :]``) comes out as such chains; onnxslim merges them too.

Math: a Slice on axis ``i`` leaves every other axis as it is, so a Slice on other axes
resolves its starts, ends and steps against the same dim sizes before or after it, and slices
on disjoint axes commute; one Slice with both sets of axes selects the same elements in the same
order. No arithmetic: bit-exact.

Declines (nodes kept, reason given): starts, ends, axes or steps of either Slice not constants
(folding them first would make the chain mergeable); negative axes while the rank of ``x`` is
unknown; both Slices on a common axis (composing two slices of one axis needs the dim size).
Opset 10 and later (Slice takes its parameters as inputs); only the main graph is rewritten.
"""

from __future__ import annotations

import numpy as np

from graphkit.ir.graph import is_default_domain, producer
from graphkit.ir.opset import LATEST_OPSET
from graphkit.transform.rules import Rule, rule_pass


def _params(ctx, node) -> list[np.ndarray] | str:
    """The node's constant (starts, ends, axes, steps), default axes/steps filled in; or the
    reason they are not known."""
    values = []
    for index, role in enumerate(("starts", "ends", "axes", "steps"), start=1):
        tensor = node.inputs[index] if len(node.inputs) > index and node.inputs[index].name else None
        if tensor is None:
            values.append(None)
            continue
        value = ctx.constant(tensor)
        if value is None:
            return (
                f"Slice '{node.name}' {role} '{tensor.name}' is not a constant "
                "(folding it first would make the chain mergeable)"
            )
        values.append(value.reshape(-1).astype(np.int64))
    starts, ends, axes, steps = values
    if axes is None:
        axes = np.arange(len(starts), dtype=np.int64)
    if steps is None:
        steps = np.ones(len(starts), dtype=np.int64)
    return [starts, ends, axes, steps]


def _merged(ctx, x) -> list[np.ndarray] | str:
    """The four parameter vectors of the merged Slice, or the reason the chain is not merged."""
    inner, outer = producer(ctx.node.inputs[0]), ctx.node
    first, second = _params(ctx, inner), _params(ctx, outer)
    for params in (first, second):
        if isinstance(params, str):
            return params
    p1, p2 = first, second
    axes1, axes2 = p1[2], p2[2]
    if np.any(axes1 < 0) or np.any(axes2 < 0):
        dims = ctx.shape(x)
        if dims is None:
            return f"Slice axes {axes1.tolist()} / {axes2.tolist()} are negative and the rank of '{x.name}' is unknown"
        axes1, axes2 = axes1 % len(dims), axes2 % len(dims)
    common = sorted(set(axes1.tolist()) & set(axes2.tolist()))
    if common:
        return f"both Slices cut axis {common[0]}; only Slices on different axes are merged"
    return [np.concatenate([a, b]) for a, b in zip(p1[:2] + [axes1, p1[3]], p2[:2] + [axes2, p2[3]])]


def _check(ctx, x, starts, ends, axes=None, steps=None):
    inner = producer(x)
    if inner is None or inner.op != "Slice" or not is_default_domain(inner) or len(inner.outputs) != 1:
        return False
    merged = _merged(ctx, x)
    return merged if isinstance(merged, str) else True


def _rewrite(op, x, starts, ends, axes=None, steps=None):
    inner, outer = producer(x), op.ctx.node
    merged = _merged(op.ctx, x)
    return op.Slice(inner.inputs[0], *(op.constant(v) for v in merged), _name=outer.name)


@rule_pass("merge-slices", opset_range=(1, LATEST_OPSET), doc=__doc__)
def merge_slices():
    """One rule (``slice_chain``): the outer Slice of a chain on disjoint axes takes over both."""
    return [
        Rule(
            lambda op, x, starts, ends, axes=None, steps=None: op.Slice(x, starts, ends, axes, steps),
            _rewrite,
            _check,
            name="slice_chain",
            opsets=(10, LATEST_OPSET),
        )
    ]


MergeSlices = merge_slices
