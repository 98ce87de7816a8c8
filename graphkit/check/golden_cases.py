"""What cases a golden request makes: the request checked (:func:`check_request`), the cases
planned from the batch sizes and the two sizes of every symbolic dim (:func:`plan_cases`), and
the dims a recorded set shows at one size only (:func:`unexercised_dims`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from graphkit.ir.model_io import graph_inputs
from graphkit.runtime.feeds import input_dims, symbolic_dim_names
from graphkit.util.errors import GoldenError


def check_request(model: onnx.ModelProto, batch_sizes, seed, dims) -> None:
    """GoldenError (exit 2) for batch sizes, a seed or dims that cannot make a golden set."""
    if not isinstance(batch_sizes, (list, tuple)) or not batch_sizes:
        raise GoldenError("golden batch sizes: give at least one batch size (a golden set with no case checks nothing)")
    for batch in batch_sizes:
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise GoldenError(f"golden batch sizes: each must be an integer >= 1, got {batch!r}")
    if len(set(batch_sizes)) != len(batch_sizes):
        raise GoldenError(f"golden batch sizes: {list(batch_sizes)} repeats a batch size")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GoldenError(f"golden seed: must be an integer >= 0, got {seed!r}")
    known = symbolic_dim_names(model)
    batch_axis = {"batch"}
    for value in graph_inputs(model):
        first = input_dims(value)[:1]
        if first and not isinstance(first[0], int):
            batch_axis |= {f"{value.name}:0", first[0]} - {None}
    for name, sizes in (dims or {}).items():
        if name in batch_axis:
            raise GoldenError(
                f"golden dims: '{name}' is the batch axis, set per case by the batch sizes; do not give it in dims"
            )
        if name not in known:
            names = ", ".join(sorted(known - batch_axis)) or "none besides the batch axis"
            raise GoldenError(f"golden dims: the model has no symbolic dim '{name}'; its symbolic dims: {names}")
        listed = sizes if isinstance(sizes, (list, tuple)) else [sizes]
        if not 1 <= len(listed) <= 2 or any(
            isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 for size in listed
        ):
            raise GoldenError(f"golden dims: '{name}' must be an integer >= 1 (or two of them), got {sizes!r}")


@dataclass
class PlannedCase:
    """One golden case to record: its label, batch, dim sizes and input seed; ``second`` when its
    dims are at their second sizes (the source may fail there: see :func:`make_or_load_golden`)."""

    label: str
    dims: dict[str, int]
    seed: int
    second: bool = False


def plan_cases(
    batch_sizes: Sequence[int], dims: Mapping[str, int | Sequence[int]], seed: int, symbolic_batch: bool = False
) -> list[PlannedCase]:
    """The cases of a golden set: one per batch size, alternating the first and the second size of
    every symbolic dim (b1 at the first sizes, b2 at the second, b4 at the first...), so that each
    dim is seen at two sizes at no extra cost. A single batch size gets one more case at the second
    sizes, ``b<N>-d2``: at batch 1 when the batch is symbolic (at most one batch-1 forward more,
    and the batch seen at two sizes too), else at that batch. A dim with one size is the same in
    every case."""
    sizes = {name: list(v) if isinstance(v, (list, tuple)) else [v] for name, v in dims.items()}
    two = any(len(v) > 1 for v in sizes.values())

    def at(variant: int) -> dict[str, int]:
        return {name: int(v[min(variant, len(v) - 1)]) for name, v in sizes.items()}

    cases = [
        PlannedCase(
            f"b{batch}", {**at(index % 2 if two else 0), "batch": int(batch)}, seed + int(batch), two and index % 2 == 1
        )
        for index, batch in enumerate(batch_sizes)
    ]
    if two and len(cases) == 1:
        batch = 1 if symbolic_batch and int(batch_sizes[0]) != 1 else int(batch_sizes[0])
        cases.append(PlannedCase(f"b{batch}-d2", {**at(1), "batch": batch}, seed + batch + 1, True))
    return cases


def unexercised_dims(manifest: dict) -> dict[str, str]:
    """The symbolic input dims that the set's cases show at one size only, each with the reason:
    the source failed at the second size (manifest ``unexercised_dims``), one size was asked for,
    or a symbolic batch has one batch size."""
    found = dict(manifest.get("unexercised_dims") or {})
    for name, sizes in (manifest.get("dims") or {}).items():
        listed = sizes if isinstance(sizes, list) else [sizes]
        if name not in found and len(set(listed)) < 2:
            found[name] = f"one size asked for ({listed[0]})"
    batch_is_symbolic = any(
        isinstance(spec, dict) and spec.get("shape") and isinstance(spec["shape"][0], str)
        for spec in (manifest.get("inputs") or {}).values()
    )
    batches = {case["dims"].get("batch") for case in manifest.get("cases") or []}
    if batch_is_symbolic and len(batches) < 2:
        found["batch"] = f"one batch size ({', '.join(map(str, batches))})"
    return found


def check_batch_fits(model: onnx.ModelProto, batch: int) -> None:
    """GoldenError when an input's static dim 0 is not ``batch``."""
    for value in graph_inputs(model):
        dims = input_dims(value)
        if dims and isinstance(dims[0], int) and dims[0] != batch:
            raise GoldenError(
                f"input '{value.name}' has static batch {dims[0]}; cannot make a golden case with batch {batch}"
            )


def symbolic_batch(model: onnx.ModelProto) -> bool:
    """Whether the model's batch is symbolic: some input has a symbolic dim 0 and none a static one."""
    first = [input_dims(v)[:1] for v in graph_inputs(model)]
    return any(d and not isinstance(d[0], int) for d in first) and not any(d and isinstance(d[0], int) for d in first)
