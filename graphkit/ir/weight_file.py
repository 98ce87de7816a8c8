"""Write a model's external-data file: large weights at aligned offsets, copied around the page cache.

:class:`WeightFileWriter` appends tensors to a new data file and returns where each landed.
Weights of at least :data:`ALIGN_MIN_BYTES` start on a :data:`ALIGNMENT` boundary (ONNX's
external-data format allows up to 64 KiB of padding between tensors; onnxruntime maps a weight
at a page-aligned offset instead of reading it into its own buffer).

A save that copies at least :data:`DIRECT_MIN_BYTES` of mapped weights writes them with direct
I/O (``O_DIRECT``) where the file system takes it: straight from a read-only map of the source
file (or, for a source offset off a block boundary, through one aligned buffer) to the disk,
without filling the page cache with a second copy of the weights. On the issue 24 model
(2.5 GB) the kernel's copy through the page cache (``copy_file_range``) cost 1.2-9.7 s of
system CPU from run to run on this machine, the direct copy 0.02-0.4 s (docs/speed.md). Where
direct I/O is refused (tmpfs, another OS), the copy goes through the page cache as before: the
bytes written are the same either way.
"""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path

import onnx

from graphkit.ir.external_data import is_mapped, mapped_chunks, mapped_source
from graphkit.util.errors import ModelLoadError

ALIGNMENT = 64 << 10  # offset boundary of large weights (the most padding ONNX's format allows)
ALIGN_MIN_BYTES = 1 << 20  # weights at least this big are aligned
DIRECT_MIN_BYTES = 256 << 20  # mapped bytes to copy that make a save use direct I/O
BLOCK = 4096  # direct I/O's unit: offsets, lengths and buffer addresses are multiples of it
DIRECT_CHUNK = 64 << 20  # bytes per direct write


class WeightFileWriter:
    """Append tensors' bytes to a new file at ``path``; :meth:`append` returns (offset, length).

    ``mapped_bytes`` is how many bytes of mapped weights the file will receive: from
    :data:`DIRECT_MIN_BYTES` on, they are copied with direct I/O where the file system allows it.
    Use as a context manager: the file is complete when the block ends without an exception.
    """

    def __init__(self, path: str | os.PathLike, mapped_bytes: int = 0) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._direct_fd = -1
        if mapped_bytes >= DIRECT_MIN_BYTES and hasattr(os, "O_DIRECT"):
            try:
                self._direct_fd = os.open(self.path, os.O_WRONLY | os.O_DIRECT)
            except OSError:  # the file system refuses direct I/O: through the page cache
                self._direct_fd = -1
        self._end = 0
        self._bounce: mmap.mmap | None = None

    def __enter__(self) -> WeightFileWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        for fd in (self._fd, self._direct_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._direct_fd = -1
        self._bounce = None  # unmapped with its last view

    def append(self, tensor: onnx.TensorProto) -> tuple[int, int]:
        """Write ``tensor``'s bytes (a mapped stub's from its file, else ``raw_data``) at the end,
        aligned when large; returns (offset, length)."""
        source = mapped_source(tensor) if is_mapped(tensor) else None
        length = source[2] if source else len(tensor.raw_data)
        offset = self._end
        if length >= ALIGN_MIN_BYTES:
            offset = -(-offset // ALIGNMENT) * ALIGNMENT
        if source is None:
            self._write_at(memoryview(tensor.raw_data), offset)
        elif not (self._direct_fd >= 0 and length >= BLOCK and self._copy_direct(tensor, source, offset)):
            position = offset
            for piece in mapped_chunks(tensor):
                self._write_at(piece, position)
                position += len(piece)
        self._end = offset + length
        return offset, length

    def _write_at(self, data: memoryview, offset: int) -> None:
        while len(data):
            written = os.pwrite(self._fd, data, offset)
            data, offset = data[written:], offset + written

    def _copy_direct(self, tensor: onnx.TensorProto, source: tuple[Path, int, int], offset: int) -> bool:
        """Copy the mapped weight whose bytes lie at ``source`` (file, offset, length) to ``offset``
        (a BLOCK multiple) with direct I/O; False, having written nothing that the buffered path
        will not overwrite, where the kernel refuses."""
        path, source_offset, length = source
        bulk = length // BLOCK * BLOCK
        try:
            with open(path, "rb", buffering=0) as handle:
                # Straight from a map of the source where it starts on a block, else through one
                # aligned buffer. The map is not closed here: a refused write's traceback still
                # holds views of it; it goes with the last of them.
                mapped = None
                if source_offset % BLOCK == 0:
                    mapped = memoryview(mmap.mmap(handle.fileno(), bulk, access=mmap.ACCESS_READ, offset=source_offset))
                elif self._bounce is None:
                    self._bounce = mmap.mmap(-1, DIRECT_CHUNK)
                for start in range(0, bulk, DIRECT_CHUNK):
                    size = min(DIRECT_CHUNK, bulk - start)
                    if mapped is not None:
                        chunk = mapped[start : start + size]
                    else:
                        chunk = memoryview(self._bounce)[:size]
                        _read_exactly(handle.fileno(), chunk, source_offset + start, path)
                    self._write_direct(chunk, offset + start)
                if bulk < length:
                    tail = memoryview(bytearray(length - bulk))
                    _read_exactly(handle.fileno(), tail, source_offset + bulk, path)
                    self._write_at(tail, offset + bulk)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # not a refusal of direct I/O:
                mapped_source(tensor)  # a source cut short meanwhile (EFAULT) is named as such
                raise
            os.close(self._direct_fd)
            self._direct_fd = -1
            return False
        return True

    def _write_direct(self, data: memoryview, offset: int) -> None:
        while len(data):
            written = os.pwrite(self._direct_fd, data, offset)
            if written % BLOCK:  # a short direct write ends off a block: finish through the cache
                self._write_at(data[written:], offset + written)
                return
            data, offset = data[written:], offset + written


def _read_exactly(fd: int, buffer: memoryview, offset: int, path: Path) -> None:
    done = 0
    while done < len(buffer):
        got = os.preadv(fd, [buffer[done:]], offset + done)
        if not got:
            raise ModelLoadError(f"external data file {path} ended early (file changed during the run?)")
        done += got
