"""Read an initializer's external data where it lies, without loading it into the proto.

A model loaded with ``load_external_data=False`` keeps its large weights as stubs (location,
offset, length beside the model file). These functions read such a weight from its file:
:func:`external_chunks` in pieces through one reusable buffer (hashing 2.5 GB of weights this
way holds 16 MB), :func:`external_array` as a read-only memory map (for element-wise
comparisons). A location that is absolute, climbs out of the model's folder, or points past
the end of its file is a :class:`~graphkit.util.errors.ModelLoadError` naming the tensor.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

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
    buffer = bytearray(min(chunk, length) or 1)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        handle.seek(offset)
        left = length
        while left:
            got = handle.readinto(view[: min(left, len(buffer))])
            if not got:
                raise ModelLoadError(f"initializer '{tensor.name}': external data file {path} ended early")
            yield view[:got]
            left -= got


def external_array(tensor: onnx.TensorProto, folder: Path, dtype: np.dtype) -> np.ndarray:
    """A flat read-only memory map of the external tensor's elements of ``dtype``."""
    path, offset, length = external_span(tensor, folder)
    count = length // np.dtype(dtype).itemsize
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))
