"""Graph input specifications and seeded random feeds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from graphkit.errors import InputError


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The real inputs of the graph (initializers listed as inputs excluded)."""
    inits = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in inits]


def input_dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    """Dims of a value: ints for static, the dim_param for named, None for unknown."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in value.type.tensor_type.shape.dim]


def np_dtype(value: onnx.ValueInfoProto) -> np.dtype:
    """The numpy dtype of a tensor value."""
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))


def resolve_shape(value: onnx.ValueInfoProto, dims: Mapping[str, int]) -> tuple[int, ...]:
    """Concrete shape of ``value`` with symbolic dims taken from ``dims``.

    A dim named in ``dims`` by its position (``"<input>:<axis>"``) or by its name is replaced;
    an unnamed unknown dim of axis 0 uses ``dims["batch"]`` when given.
    """
    shape = []
    for axis, dim in enumerate(input_dims(value)):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
            continue
        for key in (f"{value.name}:{axis}", dim, "batch" if axis == 0 else None):
            if key is not None and key in dims:
                shape.append(int(dims[key]))
                break
        else:
            raise InputError(
                f"input '{value.name}' axis {axis} is symbolic ({dim or 'unnamed'}); give its size (e.g. batch=1)"
            )
    return tuple(shape)


def random_feeds(model: onnx.ModelProto, seed: int = 0, dims: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded random inputs for every graph input: floats ~ N(0,1), ints in [0, 4), bools."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in graph_inputs(model):
        shape = resolve_shape(value, dims or {})
        dtype = np_dtype(value)
        if dtype.kind == "f":
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[value.name] = rng.integers(0, 4, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[value.name] = rng.random(shape) < 0.5
        else:
            raise InputError(f"input '{value.name}': cannot generate random data of type {dtype}")
    return feeds
