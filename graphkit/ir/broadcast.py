"""Numpy-style (multidirectional) broadcasting checks on dims that may be symbolic.

Dims follow :mod:`graphkit.ir.shapes`: ``int`` (static), ``str`` (a named symbol) or ``None``
(unknown). Passes that remove an op whose other operand only broadcasts (``x + 0``,
``Expand(x, ones)``) use :func:`broadcast_keeps_shape` to prove the result has ``x``'s shape.
"""

from __future__ import annotations

from collections.abc import Sequence

from graphkit.ir.shapes import Dim


def broadcast_keeps_shape(dims: Sequence[Dim] | None, other: Sequence[int], what: str = "the constant") -> str | None:
    """None when broadcasting a tensor of ``dims`` with a static shape ``other`` gives ``dims`` back;
    else the reason it may not (``what`` names the ``other`` operand in the reason).

    Proven when ``other`` has at most ``len(dims)`` axes and each of its dims (right-aligned) is 1
    or equal to the tensor's static dim there. A symbolic or unknown tensor dim against a dim > 1
    is not proven: the tensor's dim could be 1 and be broadcast up.
    """
    if dims is None:
        return "the input's rank is unknown; shape inference that gives it would make the node removable"
    other = [int(d) for d in other]
    if len(other) > len(dims):
        return (
            f"{what} has rank {len(other)} > the input's {len(dims)}: it broadcasts the input up "
            "(only one of at most the input's rank keeps the shape)"
        )
    offset = len(dims) - len(other)
    for axis, want in enumerate(other):
        have = dims[offset + axis]
        if want == 1 or have == want:
            continue
        return (
            f"{what} has dim {want} on axis {offset + axis}, where the input has {have!r}: it may broadcast "
            f"the input up (a static input dim {want} there would make the node removable)"
        )
    return None
