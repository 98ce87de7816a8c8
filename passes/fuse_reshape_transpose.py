"""Fuse a chain of Reshapes and Transposes into at most Reshape -> Transpose -> Reshape.

Rewrite: a chain ``x -> (Reshape | Transpose) x n -> y`` (n >= 3, each value inside read only by
the next node and no graph output, every Reshape target a constant) becomes
``Reshape(x, r1) -> Transpose(perm) -> Reshape(r2)`` (the last node keeps the chain end's name and
output), leaving out a Reshape that would not change the shape and the Transpose when the chain
moves no element (a chain that is the identity goes, its readers read ``x``); the rewrite is made only when it leaves fewer nodes (counted as
``reshape_transpose_chain``). MobileViT's unfold and fold (``reshape -> transpose(1, 2) ->
reshape -> transpose(1, 3) -> reshape``) are five nodes each and come out as three; neither
onnxsim nor onnxslim merges them.

Math: a Reshape renumbers the elements' multi-index without moving an element (row-major), and a
Transpose permutes axes. Reshapes before the first Transpose and after the last one only give the
shape going in and coming out (they become ``r1`` and ``r2``). From the first Transpose on, the
value's shape is written as a product of factors, refined wherever a Reshape in between splits
one (a dim of size ``a * b`` read as the two digits ``a`` then ``b`` of its row-major index,
wherever that dim has moved); a Reshape groups consecutive factors into axes and a Transpose
reorders the groups. After the last Transpose the factors are a permutation of the first ones,
so the chain is the input reshaped to its factors (``r1``), transposed by that permutation and
reshaped to the output shape (``r2``). Factors next to each other in both orders are merged
first, so the Transpose has the fewest axes. No arithmetic: bit-exact.

Symbolic dims: sizes are tracked as ``c * s^k`` in one dim name ``s`` (a seeded product name
``unk__product:4*batch`` is ``4 * batch``, :mod:`graphkit.ir.shape_seeds`); a factor is split
only into digits that are such products for every value of ``s`` (``4 * batch`` read as
``batch`` then ``4``, as MobileViT's fold reads it), a ``-1`` or copy-0 of a target is resolved
as the same product, and the one axis of ``r1`` or ``r2`` that holds ``s`` is written ``-1``.
Declines (nodes kept, reason given, for chains of four or more nodes): the rank of ``x``
unknown, dims of two different names, a zero-sized dim, a ``-1`` that is not a whole product for
every value of the name, a Reshape between two Transposes that cuts a dim across factors
(``[6, 4] -> [4, 6]``: no common factorization). Shorter chains are left alone silently (three
nodes is what the rewrite writes at most). A Reshape with ``allowzero=1`` or a target that is
not a constant ends a chain. Only the main graph is rewritten; custom-domain nodes are never
touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graphkit.ir.graph import is_default_domain, output_names, producer
from graphkit.ir.opset import LATEST_OPSET
from graphkit.ir.shape_seeds import dim_monomial
from graphkit.transform.rules import Rule, rule_pass

LAYOUT_OPS = ("Reshape", "Transpose")
MIN_REPORTED = 4  # chains this long or longer say why they are kept


class _Kept(Exception):
    """The chain has no factor form; the message says why."""


Size = tuple[int, int]  # a dim as (static coefficient, power of the one symbolic dim)


@dataclass
class _Factors:
    """The chain input as factors: ``size`` per factor id, the ids in the input's row-major
    order, and the current tensor's axes as lists of ids."""

    size: dict[int, Size] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    axes: list[list[int]] = field(default_factory=list)

    def new(self, size: Size) -> int:
        self.size[len(self.size)] = size
        return len(self.size) - 1

    def split(self, factor: int, high: Size) -> tuple[int, int]:
        """Split ``factor`` into the digits ``high`` and ``size / high`` everywhere it appears."""
        coef, power = self.size[factor]
        first, second = self.new(high), self.new((coef // high[0], power - high[1]))
        for ids in [self.order, *self.axes]:
            if factor in ids:
                at = ids.index(factor)
                ids[at : at + 1] = [first, second]
        return first, second

    def monomial(self, ids: list[int]) -> Size:
        """The product of ``ids``."""
        return _product([self.size[f] for f in ids])


def _input_sizes(dims: tuple) -> list[Size]:
    """The chain input's dims as sizes in one symbol (an unknown dim is a symbol of its own)."""
    symbol, sizes = None, []
    for axis, dim in enumerate(dims):
        product = dim_monomial(dim) if dim is not None else (1, (f"?{axis}",))
        if product is None or len(product[1]) > 1:
            raise _Kept(f"the chain input's dim {dim!r} is not a multiple of one named dim")
        coef, names = product
        if coef == 0:
            raise _Kept("the chain input has a zero-sized dim")
        if names and symbol not in (None, names[0]):
            raise _Kept("the chain input has dims of two symbols (one is tracked)")
        symbol = names[0] if names else symbol
        sizes.append((coef, len(names)))
    return sizes


def _factors(sizes: list[Size]) -> _Factors:
    """One factor per dim of ``sizes`` (none for a dim of 1)."""
    factors = _Factors()
    for size in sizes:
        ids = [] if size == (1, 0) else [factors.new(size)]
        factors.order += ids
        factors.axes.append(ids)
    return factors


def _product(sizes: list[Size]) -> Size:
    coef, power = 1, 0
    for c, p in sizes:
        coef, power = coef * c, power + p
    return coef, power


def _target_sizes(current: list[Size], target: list[int]) -> list[Size]:
    """The sizes after a Reshape to ``target`` of a value of ``current`` sizes: 0 copies the
    current dim, -1 is the rest."""
    if sum(t == -1 for t in target) > 1 or any(t < -1 for t in target):
        raise _Kept(f"Reshape target {target} is not a valid target")
    sizes: list[Size | None] = []
    for axis, t in enumerate(target):
        if t == 0:
            if axis >= len(current):
                raise _Kept(f"Reshape target {target} copies dim {axis} of a rank-{len(current)} value")
            sizes.append(current[axis])
        else:
            sizes.append((t, 0) if t > 0 else None)
    if None in sizes:
        total, (coef, power) = _product(current), _product([s for s in sizes if s is not None])
        if total[0] % coef or power > total[1]:
            raise _Kept(f"Reshape target {target}: its -1 is not a whole number of elements for every batch")
        sizes[sizes.index(None)] = (total[0] // coef, total[1] - power)
    return sizes


def _reshape(factors: _Factors, target: list[int]) -> None:
    """Group the current factors into the target's axes, splitting a factor where an axis ends inside it."""
    flat = [f for a in factors.axes for f in a]
    axes, at = [], 0
    for coef, power in _target_sizes([factors.monomial(a) for a in factors.axes], target):
        axis: list[int] = []
        while coef > 1 or power:
            if at == len(flat):
                raise _Kept(f"Reshape target {target} does not hold the input's elements")
            f = flat[at]
            c, p = factors.size[f]
            if coef % c == 0 and p <= power:  # the whole factor
                coef, power = coef // c, power - p
            elif c % coef == 0 and power <= p:  # its high digit ends the axis
                f, rest = factors.split(f, (coef, power))
                flat[at : at + 1] = [f, rest]
                coef, power = 1, 0
            else:
                raise _Kept(f"Reshape target {target} cuts a dim across factors (no common factorization)")
            axis.append(f)
            at += 1
        axes.append(axis)
    if at != len(flat):
        raise _Kept(f"Reshape target {target} does not hold the input's elements")
    factors.axes = axes


def _as_target(sizes: list[Size]) -> list[int]:
    """A Reshape target for ``sizes`` (the one holding the symbol written -1)."""
    if sum(power > 0 for _, power in sizes) > 1:
        raise _Kept("two axes of the fused form hold the symbolic dim (a target has one -1)")
    return [-1 if power else coef for coef, power in sizes]


@dataclass
class _Plan:
    r1: list[int] | None  # None: x already has the factor shape
    perm: list[int] | None  # None: the chain moves no element
    r2: list[int] | None  # None: the Transpose's output (or x) already has the output shape; all None: y is x

    @property
    def nodes(self) -> int:
        return sum(part is not None for part in (self.r1, self.perm, self.r2))


def _plan(dims: tuple, chain: list) -> _Plan:
    """The Reshape -> Transpose -> Reshape form of ``chain`` applied to a value of shape ``dims``.

    Reshapes before the first Transpose and after the last one may regroup elements freely (they
    become ``r1`` and ``r2``); those between two Transposes must split factors (a common
    factorization)."""
    given = sizes = _input_sizes(dims)
    moves = [i for i, (node, _) in enumerate(chain) if node.op == "Transpose"]
    if not moves:
        out = sizes
        for _, target in chain:
            out = _target_sizes(out, target)
        return _Plan(None, None, None if out == given else _as_target(out))
    first, last = moves[0], moves[-1]
    for _, target in chain[:first]:
        sizes = _target_sizes(sizes, target)
    factors = _factors(sizes)
    for node, target in chain[first : last + 1]:
        if node.op == "Reshape":
            _reshape(factors, target)
            continue
        perm = node.attrs.get("perm")
        perm = list(range(len(factors.axes)))[::-1] if perm is None else [int(p) for p in perm]
        if sorted(perm) != list(range(len(factors.axes))):
            raise _Kept(f"Transpose perm {perm} does not fit rank {len(factors.axes)}")
        factors.axes = [factors.axes[p] for p in perm]
    out = [factors.monomial(a) for a in factors.axes]
    for _, target in chain[last + 1 :]:
        out = _target_sizes(out, target)
    blocks: list[list[int]] = []  # runs of factors consecutive in both orders
    for f in (f for a in factors.axes for f in a):
        if blocks and factors.order.index(f) == factors.order.index(blocks[-1][-1]) + 1:
            blocks[-1].append(f)
        else:
            blocks.append([f])
    by_input = sorted(blocks, key=lambda b: factors.order.index(b[0]))
    perm = [by_input.index(b) for b in blocks]
    if perm == sorted(perm):
        return _Plan(None, None, None if out == given else _as_target(out))
    # a Reshape to the shape a value already has is left out
    r1 = [factors.monomial(b) for b in by_input]
    r2 = [factors.monomial(b) for b in blocks]
    return _Plan(None if r1 == given else _as_target(r1), perm, None if out == r2 else _as_target(out))


def _chain(ctx) -> list | None:
    """The chain ending at the matched node, as (node, constant target or None) pairs, first
    node first; None when the matched node is no chain end."""
    graph_outputs = output_names(ctx.graph)

    def link(node):
        if node is None or node.op not in LAYOUT_OPS or not is_default_domain(node) or len(node.outputs) != 1:
            return None
        if node.op == "Transpose":
            return node, None
        if node.attrs.get("allowzero", 0):
            return None
        value = ctx.constant(node.inputs[1]) if len(node.inputs) > 1 else None
        return None if value is None else (node, [int(v) for v in value.reshape(-1)])

    end = link(ctx.node)
    out = ctx.node.outputs[0]
    if end is None:
        return None
    if out.name not in graph_outputs and len(out.outputs) == 1 and link(out.outputs[0]) is not None:
        return None  # the chain goes on: its last node rewrites it
    chain = [end]
    while True:
        value = chain[0][0].inputs[0]
        before = link(producer(value))
        if before is None or value.name in graph_outputs or len(value.outputs) != 1:
            return chain
        chain.insert(0, before)


def _check(ctx, x, **_):
    chain = _chain(ctx)
    if chain is None or len(chain) < 3:
        return False
    start = chain[0][0].inputs[0]
    dims = ctx.shape(start)
    try:
        if dims is None:
            raise _Kept(f"the rank of the chain input '{start.name}' is unknown")
        plan = _plan(dims, chain)
        if plan.nodes == 0 and ctx.is_graph_output(ctx.output) and producer(start) is None:
            plan.r2 = _as_target(_input_sizes(dims))  # a graph output keeps its name: one Reshape
    except _Kept as kept:
        return f"{kept} ({len(chain)} nodes kept)" if len(chain) >= MIN_REPORTED else False
    if plan.nodes >= len(chain):
        return False
    ctx.memo["fuse"] = (start, plan)
    return True


def _rewrite(op, x, **_):
    start, plan = op.ctx.memo["fuse"]
    name = op.ctx.node.name
    if plan.nodes == 0:
        return start  # the chain is the identity: its readers read x
    value = start
    if plan.r1 is not None:
        value = op.Reshape(value, op.constant(np.array(plan.r1, np.int64)))
    if plan.perm is not None:
        last = plan.r2 is None
        value = op.Transpose(value, perm=plan.perm, **({"_name": name} if last else {}))
    if plan.r2 is not None:
        value = op.Reshape(value, op.constant(np.array(plan.r2, np.int64)), _name=name)
    return value


@rule_pass("fuse-reshape-transpose", opset_range=(5, LATEST_OPSET), doc=__doc__)
def fuse_reshape_transpose():
    """One rule per chain end (``reshape_transpose_chain``): the chain's last node writes the
    fused form."""
    return [
        Rule(lambda op, x, s: op.Reshape(x, s), _rewrite, _check, name="reshape_transpose_chain"),
        Rule(lambda op, x: op.Transpose(x), _rewrite, _check, name="reshape_transpose_chain"),
    ]


FuseReshapeTranspose = fuse_reshape_transpose
