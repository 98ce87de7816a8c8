"""Evaluation of shape computations: constant nodes, and shape vectors with symbolic dims.

- :func:`constant_value` reads a ``Constant`` node; :data:`NEVER_FOLD` are the ops never
  evaluated on constant inputs (:func:`graphkit.runtime.node_eval.evaluate_node` runs one).
- :class:`Partial` is a 0-D or 1-D integer tensor whose elements are ints or :class:`Sym`
  (a named dim, an unnamed axis of a tensor, or an opaque value); :func:`evaluate_partial`
  evaluates ``Shape``, ``Gather``, ``Concat``, ``Slice``, integer arithmetic... on them, given
  the values known so far (:class:`KnownValues`) and the value types of the graph.

Used by the fold-shapes and fold-constants passes; any pass that reasons about shape vectors
(dynamic batch, for one) can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.ir.value_type import RANDOM_OPS, ValueType

# Ops whose outputs are not a function of their inputs, or not plain tensors: never folded.
NEVER_FOLD = RANDOM_OPS | {
    "If",
    "Loop",
    "Scan",
    "Constant",
    "Optional",
    "OptionalGetElement",
    "OptionalHasElement",
}
# Integer arithmetic tracked element by element on shape vectors (a symbolic operand gives an opaque value).
ARITHMETIC = {"Add", "Sub", "Mul", "Div"}
EXACT_INT_OPS = {"Add": lambda x, y: x + y, "Sub": lambda x, y: x - y, "Mul": lambda x, y: x * y}
# The ops evaluate_partial can give a value for (None for any other op, whatever its inputs).
PARTIAL_OPS = frozenset(
    {"Shape", "Size", "Identity", "Cast", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Equal", "Where"}
    | ARITHMETIC
)


class Sym:
    """A symbolic dim inside a partially known shape vector.

    ``key`` is ``("param", name)`` for a named dim, ``("axis", tensor, axis)`` for an unnamed
    dim read from a tensor (two unnamed dims are only equal when they are the same axis of the
    same tensor), or ``("opaque", n, never_negative)`` for a value nothing else is known about
    (copies of one opaque element keep its key: the same key is the same run-time value).
    """

    __slots__ = ("key",)
    _opaque = 0

    def __init__(self, key: tuple):
        self.key = key

    @classmethod
    def opaque(cls, never_negative: bool = False) -> Sym:
        """A fresh unknown value (``never_negative``: known to be >= 0, e.g. a product of dims)."""
        cls._opaque += 1
        return cls(("opaque", cls._opaque, never_negative))

    def matches(self, tensor: str, axis: int, dim) -> bool:
        """True when this symbol is provably axis ``axis`` (dim ``dim``) of ``tensor``."""
        if self.key[0] == "param":
            return isinstance(dim, str) and dim == self.key[1]
        return self.key == ("axis", tensor, axis)

    def __eq__(self, other):
        return isinstance(other, Sym) and self.key == other.key and self.key[0] != "opaque"

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):
        return f"Sym{self.key}"


@dataclass
class Partial:
    """A 0-D or 1-D integer tensor whose elements are ints or :class:`Sym`."""

    rank: int
    elems: list
    dtype: np.dtype

    def known(self) -> np.ndarray | None:
        if any(isinstance(e, Sym) for e in self.elems):
            return None
        array = np.array(self.elems, dtype=self.dtype)
        return array.reshape(()) if self.rank == 0 else array


class KnownValues(Protocol):
    """What :func:`evaluate_partial` reads: partial shape vectors and constant values, by name."""

    partial: dict[str, Partial]

    def is_const(self, name: str) -> bool: ...

    def value(self, name: str) -> np.ndarray: ...


def attr_value(node: onnx.NodeProto, name: str, default):
    """The value of attribute ``name`` of ``node`` (``default`` when absent)."""
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def dims_in(types: dict[str, ValueType], name: str):
    """The dims of ``name`` in ``types`` (None when its type or rank is unknown)."""
    vtype = types.get(name)
    return None if vtype is None else vtype.dims


def constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value of a ``Constant`` node (None for sparse or string constants)."""
    for attribute in node.attribute:
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t)
        if attribute.name == "value_float":
            return np.array(attribute.f, dtype=np.float32)
        if attribute.name == "value_floats":
            return np.array(list(attribute.floats), dtype=np.float32)
        if attribute.name == "value_int":
            return np.array(attribute.i, dtype=np.int64)
        if attribute.name == "value_ints":
            return np.array(list(attribute.ints), dtype=np.int64)
    return None  # sparse or string constants are left alone


def as_partial(name: str, round_: KnownValues) -> Partial | None:
    if name in round_.partial:
        return round_.partial[name]
    array = round_.value(name) if round_.is_const(name) else None
    if array is None or array.ndim > 1 or array.dtype.kind not in "iub":
        return None
    return Partial(array.ndim, [int(v) for v in array.reshape(-1)], array.dtype)


def evaluate_partial(
    node: onnx.NodeProto, round_: KnownValues, types: dict[str, ValueType], opset: int
) -> Partial | None:
    """Element-wise evaluation of shape arithmetic on partially known vectors (None: unknown)."""
    op = node.op_type
    if op == "Shape":
        dims = dims_in(types, node.input[0])
        if dims is None:
            return None
        elems = [
            d if isinstance(d, int) else Sym(("param", d) if isinstance(d, str) else ("axis", node.input[0], axis))
            for axis, d in enumerate(dims)
        ]
        start, end = attr_value(node, "start", 0), attr_value(node, "end", None)
        rank = len(elems)
        start = min(max(start + rank if start < 0 else start, 0), rank)
        end = rank if end is None else min(max(end + rank if end < 0 else end, 0), rank)
        return Partial(1, elems[start:end], np.dtype(np.int64))
    if op == "Size":
        dims = dims_in(types, node.input[0])
        if dims is None or not all(isinstance(d, int) for d in dims):
            return None
        return Partial(0, [int(np.prod(dims, dtype=np.int64))], np.dtype(np.int64))
    if not any(i in round_.partial for i in node.input):
        return None
    if op == "Identity":
        return round_.partial[node.input[0]]
    if op == "Cast":
        data = round_.partial.get(node.input[0])
        to = onnx.helper.tensor_dtype_to_np_dtype(attr_value(node, "to", 0))
        if data is None or to.kind not in "iu":
            return None
        return Partial(data.rank, list(data.elems), np.dtype(to))
    if op == "Gather":
        data = round_.partial.get(node.input[0])
        indices = round_.value(node.input[1]) if round_.is_const(node.input[1]) else None
        if data is None or data.rank != 1 or indices is None or attr_value(node, "axis", 0) not in (0, -1):
            return None
        n = len(data.elems)
        flat = [int(i) + n if int(i) < 0 else int(i) for i in indices.reshape(-1)]
        if any(not 0 <= i < n for i in flat):
            return None
        return Partial(indices.ndim, [data.elems[i] for i in flat], data.dtype) if indices.ndim <= 1 else None
    if op == "Unsqueeze":
        data = round_.partial.get(node.input[0])
        axes = attr_value(node, "axes", None) if opset < 13 else const_list(node, 1, round_)
        if data is None or data.rank != 0 or axes is None or list(axes) not in ([0], [-1]):
            return None
        return Partial(1, list(data.elems), data.dtype)
    if op == "Squeeze":
        data = round_.partial.get(node.input[0])
        if data is None or data.rank != 1 or len(data.elems) != 1:
            return None
        return Partial(0, list(data.elems), data.dtype)
    if op == "Concat":
        if attr_value(node, "axis", 0) not in (0, -1):
            return None
        parts = [as_partial(i, round_) for i in node.input]
        if any(p is None or p.rank != 1 for p in parts):
            return None
        return Partial(1, [e for p in parts for e in p.elems], parts[0].dtype)
    if op == "Slice":
        data = round_.partial.get(node.input[0])
        if data is None or data.rank != 1:
            return None
        if opset < 10:
            starts, ends, axes = (
                attr_value(node, "starts", None),
                attr_value(node, "ends", None),
                attr_value(node, "axes", [0]),
            )
            steps = [1]
        else:
            starts, ends = const_list(node, 1, round_), const_list(node, 2, round_)
            axes = const_list(node, 3, round_) if len(node.input) > 3 and node.input[3] else [0]
            steps = const_list(node, 4, round_) if len(node.input) > 4 and node.input[4] else [1]
        if None in (starts, ends, axes, steps) or len(starts) != 1 or list(axes) not in ([0], [-1]):
            return None
        picked = onnx_slice(len(data.elems), int(starts[0]), int(ends[0]), int(steps[0]))
        return None if picked is None else Partial(1, [data.elems[i] for i in picked], data.dtype)
    if op == "Equal":
        return _equal(node, round_)
    if op == "Where":
        return _where(node, round_)
    if op in ARITHMETIC:
        # batch*seq and the like: the result is an unknown (opaque) value unless both elements are known
        parts = [as_partial(i, round_) for i in node.input]
        if any(p is None for p in parts) or len(parts) != 2:
            return None
        (a, b), n = parts, max(len(parts[0].elems), len(parts[1].elems))
        if any(len(p.elems) not in (1, n) for p in parts):
            return None
        elems = []
        for i in range(n):
            x, y = a.elems[i if len(a.elems) > 1 else 0], b.elems[i if len(b.elems) > 1 else 0]
            if isinstance(x, Sym) or isinstance(y, Sym) or op not in EXACT_INT_OPS:
                # a sum, product or quotient of dims and non-negative ints is never negative
                elems.append(Sym.opaque(op != "Sub" and _never_negative(x) and _never_negative(y)))
            else:
                elems.append(EXACT_INT_OPS[op](int(x), int(y)))
        return Partial(max(a.rank, b.rank), elems, a.dtype)
    return None


def _broadcast_1d(parts: list[Partial]) -> int | None:
    """The length two or three 0-D/1-D partials broadcast to (None when they do not)."""
    n = max(len(p.elems) for p in parts)
    return n if all(len(p.elems) in (1, n) and p.rank <= 1 for p in parts) else None


def _at(part: Partial, i: int):
    return part.elems[i if len(part.elems) > 1 else 0]


def _never_negative(elem) -> bool:
    """True for an element known to be >= 0: a dim, a non-negative int, or such an opaque value."""
    if not isinstance(elem, Sym):
        return int(elem) >= 0
    return elem.key[0] in ("param", "axis") or (elem.key[0] == "opaque" and elem.key[2])


def _equal(node: onnx.NodeProto, round_: KnownValues) -> Partial | None:
    """``Equal`` on shape vectors: ints compare; a never-negative value against a negative int is False (the
    ``Equal(shape, -1)`` of exported Expand shapes); anything else is unknown."""
    parts = [as_partial(i, round_) for i in node.input]
    if any(p is None for p in parts) or (n := _broadcast_1d(parts)) is None:
        return None
    elems = []
    for i in range(n):
        x, y = _at(parts[0], i), _at(parts[1], i)
        if not isinstance(x, Sym) and not isinstance(y, Sym):
            elems.append(int(int(x) == int(y)))
        elif (_never_negative(x) and not isinstance(y, Sym) and int(y) < 0) or (
            _never_negative(y) and not isinstance(x, Sym) and int(x) < 0
        ):
            elems.append(0)
        elif isinstance(x, Sym) and isinstance(y, Sym) and x.key == y.key:
            elems.append(1)  # the same dim, or copies of the same opaque element
        else:
            elems.append(Sym.opaque())
    return Partial(max(p.rank for p in parts), elems, np.dtype(np.bool_))


def _where(node: onnx.NodeProto, round_: KnownValues) -> Partial | None:
    """``Where`` on shape vectors: an element whose condition is known picks its side."""
    parts = [as_partial(i, round_) for i in node.input]
    if any(p is None for p in parts) or (n := _broadcast_1d(parts)) is None:
        return None
    elems = []
    for i in range(n):
        cond = _at(parts[0], i)
        elems.append(Sym.opaque() if isinstance(cond, Sym) else _at(parts[1] if int(cond) else parts[2], i))
    return Partial(max(p.rank for p in parts), elems, parts[1].dtype)


def const_list(node: onnx.NodeProto, slot: int, round_: KnownValues) -> list[int] | None:
    if len(node.input) <= slot or not node.input[slot] or not round_.is_const(node.input[slot]):
        return None
    return [int(v) for v in round_.value(node.input[slot]).reshape(-1)]


def onnx_slice(n: int, start: int, end: int, step: int) -> list[int] | None:
    if step == 0:
        return None
    start = start + n if start < 0 else start
    end = end + n if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), n), min(max(end, 0), n)
    else:
        start, end = min(max(start, 0), n - 1), min(max(end, -1), n - 1)
    return list(range(start, end, step))
