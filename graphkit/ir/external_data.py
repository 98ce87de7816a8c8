"""Read an initializer's external data where it lies, without loading it into the proto.

A model loaded with ``load_external_data=False`` keeps its large weights as stubs (location,
offset, length beside the model file). These functions read such a weight from its file:
:func:`external_chunks` in pieces through one reusable buffer (hashing 2.5 GB of weights this
way holds 16 MB), :func:`external_array` as a read-only memory map (for element-wise
comparisons). A location that is absolute, climbs out of the model's folder, or points past
the end of its file is a :class:`~graphkit.util.errors.ModelLoadError` naming the tensor.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import xxhash
from onnx import numpy_helper

from graphkit.util.errors import ModelLoadError

CHUNK = 16 << 20


def is_external(tensor: onnx.TensorProto) -> bool:
    """Whether ``tensor`` keeps its data in an external file."""
    return tensor.data_location == onnx.TensorProto.EXTERNAL


def external_span(tensor: onnx.TensorProto, folder: Path) -> tuple[Path, int, int]:
    """(file, offset, length) of an external tensor's bytes, checked to lie inside ``folder``'s file."""
    entries = {entry.key: entry.value for entry in tensor.external_data}
    where = f"initializer '{tensor.name}'"
    location = entries.get("location", "")
    relative = Path(location)
    if not location or relative.is_absolute() or ".." in relative.parts or "\n" in location:
        raise ModelLoadError(f"{where}: external data location {location!r:.200} is not a file beside the model")
    path = Path(folder) / relative
    try:
        offset = int(entries.get("offset", "0"))
        size = path.stat().st_size
        length = int(entries["length"]) if "length" in entries else size - offset
    except ValueError as exc:
        raise ModelLoadError(f"{where}: bad external data offset or length ({exc})") from exc
    except OSError as exc:
        raise ModelLoadError(f"{where}: external data file {path} unreadable ({exc.strerror or exc})") from exc
    if offset < 0 or length < 0 or offset + length > size:
        raise ModelLoadError(f"{where}: external data [{offset}, {offset + length}) lies outside {path} ({size} bytes)")
    return path, offset, length


def external_chunks(tensor: onnx.TensorProto, folder: Path, chunk: int = CHUNK) -> Iterator[memoryview]:
    """The external tensor's bytes in pieces of at most ``chunk`` bytes (one buffer, reused)."""
    path, offset, length = external_span(tensor, folder)
    return _chunks(path, offset, length, tensor.name, chunk)


def external_array(tensor: onnx.TensorProto, folder: Path, dtype: np.dtype) -> np.ndarray:
    """A flat read-only memory map of the external tensor's elements of ``dtype``."""
    path, offset, length = external_span(tensor, folder)
    count = length // np.dtype(dtype).itemsize
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))


# --- weights mapped for a whole run ------------------------------------------------------------
#
# A model loaded with ``load_model(..., mapped=True)`` keeps every external weight as a stub whose
# location is the data file's absolute path (checked once at load against the model's folder:
# relative, no ``..``, inside the file, the length its dims need). Such a *mapped stub* is read
# only through :func:`tensor_array` (a read-only memory map: a pass that writes to it gets an
# error, the file cannot change), hashed once per file version (:func:`raw_digest`), handed to
# onnxruntime as a file it maps itself (:func:`graphkit.runtime.ort.create_session`) and streamed
# to the output by :func:`graphkit.ir.model_io.save_model`. A user's file never holds an absolute
# location (:func:`external_span` refuses it), so an absolute location always means a mapped stub.

MAP_MIN_BYTES = 1 << 20  # weights at least this big are mapped; smaller ones are read into the proto
_DIGESTS: dict[tuple, bytes] = {}  # (path, offset, length, inode, size, mtime) -> xxh3-128 digest
# mapped file -> (inode, size, mtime) when a model mapping it was loaded: a file replaced or
# written to afterwards (by another process) is an error, never a weight read half old, half new
_VERSIONS: dict[str, tuple[int, int, int]] = {}


def _version(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def is_mapped(tensor: onnx.TensorProto) -> bool:
    """Whether ``tensor`` is a mapped stub (external, absolute location; see above)."""
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return False
    return any(entry.key == "location" and entry.value.startswith("/") for entry in tensor.external_data)


def mapped_span(tensor: onnx.TensorProto) -> tuple[Path, int, int]:
    """(file, offset, length) of a mapped stub's bytes."""
    entries = {entry.key: entry.value for entry in tensor.external_data}
    return Path(entries["location"]), int(entries.get("offset", "0")), int(entries["length"])


def map_external_data(model: onnx.ModelProto, folder: Path, model_file: str = "") -> None:
    """Turn the main graph's external stubs (relative to ``folder``) into mapped stubs, in place;
    those under :data:`MAP_MIN_BYTES` are read into the proto instead (as ``onnx.load`` would:
    shape constants stay readable by every pass).

    Raises ModelLoadError naming the initializer for a location outside ``folder``, a file that
    is a symbolic link (other than ``model_file``, the model's own file name), a range past its file's end, or a length that does not match the
    tensor's dims and type.
    """
    folder = Path(folder).resolve()
    for tensor in model.graph.initializer:
        if not is_external(tensor):
            continue
        path, offset, length = external_span(tensor, folder)
        # as onnx.load refuses: a link could carry any file of this machine into the output (the
        # model file itself, named by the user, holding its own large weights, may be one)
        if path.is_symlink() and path.name != model_file:
            raise ModelLoadError(f"initializer '{tensor.name}': external data file {path} is a symbolic link")
        expected = expected_bytes(tensor)
        if expected is not None and expected != length:
            raise ModelLoadError(
                f"initializer '{tensor.name}': external data holds {length} bytes, but dims {list(tensor.dims)} "
                f"need {expected} (file edited or truncated?)"
            )
        del tensor.external_data[:]
        if length >= MAP_MIN_BYTES:
            _VERSIONS[str(path.resolve())] = _version(path.stat())
        if length < MAP_MIN_BYTES:
            tensor.raw_data = b"".join(bytes(piece) for piece in _chunks(path, offset, length, tensor.name))
            tensor.data_location = onnx.TensorProto.DEFAULT
            continue
        for key, value in (("location", str(path.resolve())), ("offset", str(offset)), ("length", str(length))):
            tensor.external_data.add(key=key, value=value)


def expected_bytes(tensor: onnx.TensorProto) -> int | None:
    """The bytes a tensor's dims and fixed-width type need (None: strings, sub-byte or unknown types)."""
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return None
    if tensor.data_type in (onnx.TensorProto.STRING,) or tensor.data_type in _SUB_BYTE:
        return None
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count * itemsize


_SUB_BYTE = {
    getattr(onnx.TensorProto, name)
    for name in ("INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2")
    if hasattr(onnx.TensorProto, name)
}


def _mapped_file(tensor: onnx.TensorProto) -> tuple[Path, int, int, os.stat_result]:
    path, offset, length = mapped_span(tensor)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelLoadError(
            f"initializer '{tensor.name}': external data file {path} unreadable ({exc.strerror or exc})"
        ) from exc
    if offset + length > stat.st_size:
        raise ModelLoadError(
            f"initializer '{tensor.name}': external data [{offset}, {offset + length}) lies outside {path} "
            f"({stat.st_size} bytes; file changed during the run?)"
        )
    if _VERSIONS.get(str(path), _version(stat)) != _version(stat):
        raise ModelLoadError(
            f"initializer '{tensor.name}': external data file {path} changed during the run "
            "(written or replaced after the model was loaded): run again"
        )
    return path, offset, length, stat


def mapped_source(tensor: onnx.TensorProto) -> tuple[Path, int, int]:
    """(file, offset, length) of a mapped stub's bytes, checked to still lie in the file version
    that was loaded (ModelLoadError naming the tensor otherwise)."""
    return _mapped_file(tensor)[:3]


def raw_digest(tensor: onnx.TensorProto) -> bytes:
    """xxh3-128 digest of a raw tensor's bytes: a mapped stub's from its file (computed once per
    file version), an in-proto tensor's from ``raw_data``. The same weight gives the same digest
    either way."""
    if not is_mapped(tensor):
        return xxhash.xxh3_128(tensor.raw_data).digest()
    path, offset, length, stat = _mapped_file(tensor)
    key = (str(path), offset, length, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = _DIGESTS[key] = _file_digest(path, offset, length, tensor.name)
    return digest


def _file_digest(path: Path, offset: int, length: int, name: str) -> bytes:
    """xxh3-128 of ``length`` bytes at ``offset`` of ``path``, hashed straight from a read-only
    map of that range (no copy through a buffer: a third of read()'s system CPU on 2.5 GB,
    ``docs/speed.md``); read through one buffer where the file cannot be mapped."""
    hasher = xxhash.xxh3_128()
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    try:
        with open(path, "rb") as handle:
            window = mmap.mmap(handle.fileno(), offset + length - start, prot=mmap.PROT_READ, offset=start)
    except (OSError, ValueError):  # an empty range, or a file that cannot be mapped
        window = None
    if window is None:
        for piece in _chunks(path, offset, length, name):
            hasher.update(piece)
        return hasher.digest()
    with window:
        window.madvise(mmap.MADV_SEQUENTIAL)
        with memoryview(window) as view:
            for begin in range(offset - start, offset - start + length, CHUNK):
                hasher.update(view[begin : min(begin + CHUNK, offset - start + length)])
    return hasher.digest()


def _chunks(path: Path, offset: int, length: int, name: str, chunk: int = CHUNK) -> Iterator[memoryview]:
    buffer = bytearray(min(chunk, length) or 1)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        handle.seek(offset)
        left = length
        while left:
            got = handle.readinto(view[: min(left, len(buffer))])
            if not got:
                raise ModelLoadError(f"initializer '{name}': external data file {path} ended early")
            yield view[:got]
            left -= got


def mapped_chunks(tensor: onnx.TensorProto) -> Iterator[memoryview]:
    """A mapped stub's bytes in pieces through one reused buffer (for streaming them to a file)."""
    path, offset, length, _ = _mapped_file(tensor)
    return _chunks(path, offset, length, tensor.name)


def tensor_array(tensor: onnx.TensorProto) -> np.ndarray:
    """A tensor's values: a read-only memory map for a mapped stub, ``numpy_helper.to_array``
    otherwise. The one way passes read a weight that may be mapped."""
    if not is_mapped(tensor):
        return numpy_helper.to_array(tensor)
    path, offset, length, _ = _mapped_file(tensor)
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).newbyteorder("<")
    shape = tuple(tensor.dims)
    if length == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def rooted_locations(model: onnx.ModelProto) -> set[str]:
    """Rewrite the main graph's mapped stubs in place to locations relative to ``/`` (what the
    ONNX checker and onnxruntime accept: relative, in the folder ``/``); returns their names.
    Use on a copy (a skeleton), never on the run's model."""
    names = set()
    for tensor in model.graph.initializer:
        if is_mapped(tensor):
            names.add(tensor.name)
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = entry.value.lstrip("/")
    return names
