"""Golden-set settings chosen from the model: batch sizes, symbolic dims, integer input ranges.

:func:`golden_defaults` fills in what a pipeline or ``graphkit golden make`` leaves out, with a
note for each choice made for the user (:class:`GoldenDefaults`); an integer input that indexes
a Gather table gets the table's size as its range (:func:`gather_table_size`).

Every symbolic dim other than the batch gets two sizes (:func:`dim_sizes`, :func:`second_size`)
that are not multiples of each other, so that a constant baked from one size cannot pass at the
other; the golden cases alternate between them (:func:`graphkit.check.golden.plan_cases`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from graphkit.ir.model_io import graph_inputs
from graphkit.runtime.feeds import input_dims, np_dtype
from graphkit.util.errors import GoldenError


@dataclass
class GoldenDefaults:
    """Batch sizes, dims and integer input ranges for a model's golden set, with the notes
    that say which of them were chosen for the user (see :func:`golden_defaults`)."""

    batch_sizes: list[int]
    dims: dict[str, list[int]]  # name -> [first size, second size] ([size] when one size only)
    input_ranges: dict[str, list[int]]
    notes: list[str] = field(default_factory=list)
    dynamic_batch: bool = True


SEQUENCE_DIM = 16  # default first size of a symbolic sequence-like dim (the second: 12)
DimSizes = int | Sequence[int]


def second_size(first: int) -> int:
    """The automatic second size of a dim whose first size is ``first``: about 3/4 of it (so a
    case at the second size costs less than one at the first), >= 2, and neither a multiple nor
    a divisor of ``first`` (a Reshape baked to ``[-1, first]`` would still run at ``2 * first``).
    16 -> 12, 32 -> 24, 3 -> 2; 1 and 2 -> 3 (every size is a multiple of 1: see the docs)."""
    start = max(2, round(first * 3 / 4))
    for candidate in itertools.chain(range(start, 1, -1), range(start + 1, 2 * first + 3)):  # lazily: first may be huge
        if candidate != first and first % candidate and candidate % first:
            return candidate
    return 3 if first != 3 else 2


def dim_sizes(name: str, given: DimSizes) -> tuple[list[int], str | None]:
    """``given`` as ``[first, second]``, with a note when the second was chosen here or the dim is
    kept at one size: an integer N gets a second size (:func:`second_size`); a list ``[N, M]`` is
    both; ``[N]`` or ``[N, N]`` keeps one size on purpose (what a manifest records for it).
    GoldenError for sizes < 1, more than two sizes, or two different sizes of which one is a
    multiple of the other."""
    single = isinstance(given, (int, np.integer)) and not isinstance(given, bool)
    sizes = [given] if single else given
    if (
        not isinstance(sizes, (list, tuple))
        or not 1 <= len(sizes) <= 2
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in sizes)
    ):
        raise GoldenError(f"golden dims: '{name}' must be a size >= 1 or two sizes [N, M], got {given!r}")
    sizes = [int(v) for v in sizes]
    if single:
        second = second_size(sizes[0])
        return [sizes[0], second], f"symbolic dim '{name}' checked at {sizes[0]} and {second} (second size chosen)"
    first, second = sizes * 2 if len(sizes) == 1 else sizes
    if first == second:
        return [first], f"symbolic dim '{name}' kept at one size ({first}): not exercised at a second size"
    if first % second == 0 or second % first == 0:
        raise GoldenError(
            f"golden dims: '{name}' sizes {first} and {second} are multiples of each other (a constant baked "
            f"from one could pass at the other); choose e.g. {first},{second_size(first)}"
        )
    return [first, second], None


_SEQUENCE_NAMES = re.compile(r"(^|[_\W])(seq|sequence|length|len|tokens?|time|steps?)([_\W]|$)", re.IGNORECASE)


def golden_defaults(
    model: onnx.ModelProto,
    batch_sizes: list[int] | None = None,
    dims: Mapping[str, DimSizes] | None = None,
    input_ranges: Mapping[str, Sequence[int]] | None = None,
) -> GoldenDefaults:
    """Fill what the user did not give from the model itself.

    - batch sizes (``None``): a model whose inputs all have a static dim 0 gets one case at that
      batch (dynamic batch cannot be proven on it, and a note says so); otherwise 1 and 2.
    - symbolic dims other than the batch: a sequence-like one (an integer input's axis 1, or a
      name like ``seq``/``sequence_length``) gets ``SEQUENCE_DIM`` with a note; any other one is a
      GoldenError naming the flag to add (``--dim NAME=N``; ``golden.dims`` in a pipeline). Each
      gets two sizes (:func:`dim_sizes`): the given or default one and an automatic second one,
      or both as given (``--dim NAME=N,M``); ``dims`` in the result maps names to the sizes.
    - integer inputs: a given range, else ``[0, table size - 1]`` of the Gather whose indices
      they are (token ids), else ``[0, 1]`` for a name with ``mask`` in it, else ``[0, 3]``.
    """
    inputs = graph_inputs(model)
    given = dict(dims or {})
    notes: list[str] = []
    dynamic = True
    if batch_sizes is None:
        first_dims = [input_dims(v)[:1] for v in inputs]
        static = {d[0] for d in first_dims if d and isinstance(d[0], int)}
        has_symbolic = any(d and not isinstance(d[0], int) for d in first_dims)
        if static and not has_symbolic:
            batch_sizes = [min(static)]
            dynamic = False
            notes.append(
                f"the model has a static batch ({min(static)}): one golden case at batch {min(static)}; "
                "dynamic batch was not proven (the model has none)"
            )
        elif static:
            batch_sizes = [min(static)]
            notes.append(f"an input has a static dim 0 ({min(static)}): one golden case at batch {min(static)}")
        elif has_symbolic:
            batch_sizes = [1, 2]
        else:  # no input has a dim 0 (scalars, or no inputs): one case
            batch_sizes = [1]
            dynamic = False
    filled: dict[str, list[int]] = {}
    for name, sizes in given.items():
        filled[name], note = dim_sizes(name, sizes)
        if note:
            notes.append(note)
    for value in inputs:
        integer = np_dtype(value).kind in "iu"
        for axis, dim in enumerate(input_dims(value)):
            if axis == 0 or isinstance(dim, int):
                continue
            name = dim or f"{value.name}:{axis}"
            if name in filled or f"{value.name}:{axis}" in filled:
                continue
            if (integer and axis == 1) or _SEQUENCE_NAMES.search(name):
                filled[name] = [SEQUENCE_DIM, second_size(SEQUENCE_DIM)]
                notes.append(
                    f"symbolic dim '{name}' (input '{value.name}' axis {axis}) set to {SEQUENCE_DIM} and "
                    f"{filled[name][1]}; give --dim {name}=N (or N,M) for other sizes"
                )
                continue
            raise GoldenError(
                f"input '{value.name}' axis {axis} is symbolic ('{name}'); give its size with --dim {name}=N "
                "(in a pipeline file: golden.dims)"
            )
    ranges = {name: [int(lo), int(hi)] for name, (lo, hi) in (input_ranges or {}).items()}
    known = {v.name: v for v in inputs}
    for name, (low, high) in ranges.items():
        if name not in known:
            raise GoldenError(f"--input-range {name}: the model has no input '{name}' (inputs: {', '.join(known)})")
        if np_dtype(known[name]).kind not in "iu":
            raise GoldenError(f"--input-range {name}: input '{name}' is {np_dtype(known[name])}, not an integer input")
        if low > high:
            raise GoldenError(f"--input-range {name}={low}:{high}: LOW must be <= HIGH")
    for value in inputs:
        if np_dtype(value).kind not in "iu" or value.name in ranges:
            continue
        table = gather_table_size(model, value.name)
        if table is not None:
            ranges[value.name] = [0, table - 1]
            notes.append(f"integer input '{value.name}' indexes a table of {table} rows: values in [0, {table - 1}]")
        elif "mask" in value.name.lower():
            ranges[value.name] = [0, 1]
            notes.append(f"integer input '{value.name}' looks like a mask: values 0/1")
    for name, (low, high) in ranges.items():
        limits = np.iinfo(np_dtype(known[name]))
        if low < limits.min or high > limits.max:
            raise GoldenError(
                f"--input-range {name}={low}:{high}: outside the values of input '{name}' "
                f"({np_dtype(known[name])}: {limits.min}..{limits.max})"
            )
    return GoldenDefaults(list(batch_sizes), filled, ranges, notes, dynamic)


_PASS_THROUGH = {"Cast", "Unsqueeze", "Squeeze", "Reshape", "Identity", "Flatten"}


def gather_table_size(model: onnx.ModelProto, name: str) -> int | None:
    """Rows of the constant table a Gather reads with ``name`` as its indices (through Casts and
    reshapes), the smallest when several; None when ``name`` indexes no constant table."""
    tables = {t.name: list(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tables[node.output[0]] = list(node.attribute[0].t.dims)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for index, tensor in enumerate(node.input):
            consumers.setdefault(tensor, []).append((node, index))
    sizes, frontier, seen = [], [name], set()
    while frontier:
        tensor = frontier.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        for node, index in consumers.get(tensor, []):
            if node.op_type == "Gather" and index == 1 and node.input[0] in tables:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                shape = tables[node.input[0]]
                if -len(shape) <= axis < len(shape) and shape[axis] > 0:
                    sizes.append(shape[axis])
            elif node.op_type in _PASS_THROUGH and index == 0:
                frontier.extend(node.output)
    return min(sizes) if sizes else None
