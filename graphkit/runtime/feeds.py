"""Graph input specifications, seeded random feeds, and reading input arrays from .npz files.

Sizes are checked before anything is allocated: a dim must be a positive integer (a declared
dim <= 0 is invalid, not symbolic), and inputs whose total size exceeds the memory available
here are refused with a line that gives the size.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from graphkit.ir.model_io import graph_inputs
from graphkit.ir.shapes import dims_of
from graphkit.util.errors import InputError, one_line

# numpy's deflate ratio ceiling: a member cannot honestly expand more than this
_MAX_DEFLATE_RATIO = 1100


def input_dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    """Dims of a value as a list (:func:`graphkit.ir.shapes.dims_of`; [] when it declares no shape)."""
    return list(dims_of(value) or ())


def np_dtype(value: onnx.ValueInfoProto) -> np.dtype:
    """The numpy dtype of a tensor value; InputError for a non-tensor or untyped input."""
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.elem_type:
        raise InputError(f"input '{value.name}' is not a typed tensor; cannot make data for it")
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"input '{value.name}': unsupported element type {value.type.tensor_type.elem_type}") from exc


def symbolic_dim_names(model: onnx.ModelProto) -> set[str]:
    """Every name a symbolic input dim can be given by: its dim_param, ``<input>:<axis>``, ``batch``."""
    names = {"batch"}
    for value in graph_inputs(model):
        for axis, dim in enumerate(input_dims(value)):
            if not isinstance(dim, int):
                names.add(f"{value.name}:{axis}")
                if dim:
                    names.add(dim)
    return names


def resolve_shape(value: onnx.ValueInfoProto, dims: Mapping[str, int]) -> tuple[int, ...]:
    """Concrete shape of ``value`` with symbolic dims taken from ``dims``.

    A dim named in ``dims`` by its position (``"<input>:<axis>"``) or by its name is replaced;
    an unnamed unknown dim of axis 0 uses ``dims["batch"]`` when given. A static dim <= 0, or a
    given size that is not an integer >= 1, is an InputError.
    """
    shape = []
    for axis, dim in enumerate(input_dims(value)):
        if isinstance(dim, int):
            if dim <= 0:
                raise InputError(f"input '{value.name}' axis {axis} is declared with size {dim}; sizes must be >= 1")
            shape.append(dim)
            continue
        for key in (f"{value.name}:{axis}", dim, "batch" if axis == 0 else None):
            if key is not None and key in dims:
                size = dims[key]
                if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
                    raise InputError(
                        f"dim '{key}' (input '{value.name}' axis {axis}) must be an integer >= 1, got {size!r}"
                    )
                shape.append(int(size))
                break
        else:
            raise InputError(
                f"input '{value.name}' axis {axis} is symbolic ({dim or 'unnamed'}); give its size (e.g. batch=1)"
            )
    return tuple(shape)


MEMORY_BUDGET = 3 * 2**30
"""Bytes of data graphkit allocates for one set of inputs at most: the 3 GiB of address space a
run stays within (README, "Reliability"), whatever the machine has free."""


def available_memory() -> int:
    """Bytes of memory available to allocate here: MemAvailable (else physical memory), and no
    more than the address space left under this process's RLIMIT_AS."""
    return min(_system_available(), _address_space_left())


def _system_available() -> int:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 2**63


def _address_space_left() -> int:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return 2**63
    if soft == resource.RLIM_INFINITY:
        return 2**63
    used = 0
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    used = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return max(0, soft - used)


def check_allocatable(shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, np.dtype], what: str) -> int:
    """The bytes the arrays of ``shapes`` need; InputError giving the size when it exceeds
    :data:`MEMORY_BUDGET`, the memory available or the address space left under RLIMIT_AS
    (float data is made as float32 first, counted too). Every input graphkit makes (golden
    cases, random feeds, perf, infer batches) is sized here before anything is allocated."""
    total = 0
    for name, shape in shapes.items():
        itemsize = np.dtype(dtypes[name]).itemsize
        extra = 4 if np.dtype(dtypes[name]).kind == "f" and itemsize != 4 else 0
        total += math.prod(shape) * (itemsize + extra)
    available = available_memory()
    limit = min(MEMORY_BUDGET, available)
    if total > limit:
        sizes = ", ".join(f"'{n}' {list(s)}" for n, s in shapes.items())
        bound = f"the {_human(MEMORY_BUDGET)} budget" if limit == MEMORY_BUDGET else f"{_human(limit)} available"
        raise InputError(f"{what} need {_human(total)} ({sizes}), over {bound}; give smaller dims or batch sizes")
    return total


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{size} B"  # pragma: no cover


DEFAULT_INT_RANGE = (0, 3)  # integers drawn in [0, 3], both included: valid indices of most axes


def seeded_array(
    rng: np.random.Generator, shape, dtype, value_range: tuple[int, int] | None = None, name: str = "input"
) -> np.ndarray:
    """The one seeded-data generator of graphkit (golden sets, random feeds, perf, region checks).

    Floats: standard normal drawn in float32 and cast to ``dtype``; booleans: 0/1; integers:
    uniform in ``value_range`` (``[low, high]``, both included; default [0, 3]). Only numpy's
    ``Generator`` (PCG64) is used, whose streams are the same on every CPU and OS for a numpy
    version, so the same seed gives the same bytes everywhere. InputError names ``name`` for a
    dtype it cannot make (strings, complex).
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    if dtype.kind in "iub":
        low, high = value_range if value_range is not None else ((0, 1) if dtype.kind == "b" else DEFAULT_INT_RANGE)
        return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
    raise InputError(f"input '{name}': cannot generate random data of type {dtype}")


def seeded_feeds(
    shapes: Mapping[str, tuple[int, ...]],
    dtypes: Mapping[str, np.dtype],
    seed: int,
    ranges: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, np.ndarray]:
    """Seeded data for named inputs, drawn in the order of ``shapes`` from one generator
    seeded with ``seed`` (see :func:`seeded_array`); ``ranges[name]`` bounds an integer input."""
    rng = np.random.default_rng(seed)
    return {
        name: seeded_array(rng, shape, dtypes[name], (ranges or {}).get(name), name) for name, shape in shapes.items()
    }


def random_feeds(model: onnx.ModelProto, seed: int = 0, dims: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded random inputs for every graph input (:func:`seeded_feeds`): the same data as a
    golden set's case with the same seed and dims."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    values = graph_inputs(model)
    shapes = {v.name: resolve_shape(v, dims or {}) for v in values}
    dtypes = {v.name: np_dtype(v) for v in values}
    for name, dtype in dtypes.items():
        if dtype.kind not in "fiub":
            raise InputError(f"input '{name}': cannot generate random data of type {dtype}")
    check_allocatable(shapes, dtypes, "the random inputs")
    return seeded_feeds(shapes, dtypes, seed)


def load_npz(path: str | os.PathLike, what: str = "arrays file") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file by name; InputError names the file when it is missing,
    not an npz (an ``.npy`` included), truncated or corrupt, holds pickled objects, or declares
    sizes its bytes cannot hold (checked before anything is allocated)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = {}
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise InputError(f"{path}: not a numpy .npz file (member '{info.filename}')")
                arrays[info.filename[: -len(".npy")]] = _read_member(archive, info, path)
            return arrays
    except InputError:
        raise
    except zipfile.BadZipFile as exc:
        kind = "an .npy file, not an .npz" if _is_npy(path) else "not a readable .npz file"
        raise InputError(f"{path}: {what} is {kind} ({one_line(exc, 120)})") from exc
    except (OSError, ValueError, EOFError, SyntaxError, KeyError, zipfile.LargeZipFile, RuntimeError) as exc:
        raise InputError(
            f"{path}: {what} is truncated or corrupt ({exc.__class__.__name__}: {one_line(exc, 120)})"
        ) from exc


def _is_npy(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(6) == b"\x93NUMPY"
    except OSError:
        return False


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    from numpy.lib import format as npformat

    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise InputError(f"{path}: member '{info.filename}' declares inconsistent sizes")
    elif info.file_size > _MAX_DEFLATE_RATIO * max(info.compress_size, 1):
        raise InputError(f"{path}: member '{info.filename}' claims an impossible uncompressed size")
    with archive.open(info) as member:
        version = npformat.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(member)
        else:
            shape, fortran, dtype = npformat.read_array_header_2_0(member)
        if dtype.hasobject:
            raise InputError(f"{path}: member '{info.filename}' holds Python objects (refused: not plain arrays)")
        header = member.tell()
        need = math.prod(shape) * dtype.itemsize
        if need != info.file_size - header:
            raise InputError(
                f"{path}: member '{info.filename}' declares {list(shape)} {dtype} ({need} bytes) "
                f"but holds {info.file_size - header} bytes (truncated or corrupt)"
            )
        raw = np.empty(need, dtype=np.uint8)
        view, filled = memoryview(raw), 0
        while filled < need:
            count = member.readinto(view[filled:])
            if not count:
                raise InputError(f"{path}: member '{info.filename}' is truncated")
            filled += count
    array = raw.view(dtype) if dtype.itemsize else np.empty(0, dtype)
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)
