"""Keep freed large blocks in the process heap, so copies of big weights do not page-fault anew.

glibc serves every allocation over 32 MiB (its largest mmap threshold) with a fresh ``mmap``
and unmaps it on free. Reading a protobuf ``bytes`` field copies it, so each read of a 64 MB
weight (hashing, size checks, handing it to onnxruntime) maps 16,000 fresh pages that the
kernel must fault in and zero: on a 2.5 GB model that was most of the run's time, as system
CPU. :func:`retain_freed_memory` tells glibc to serve big blocks from the heap and never give
freed heap memory back, so the next copy reuses the pages of the last one. Peak memory
(``VmHWM``) does not grow; the resident size simply stays at its peak until the process ends.
Only the commands that load a large model call it (:func:`graphkit.ir.model_io.load_model`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc malloc.h)
M_MMAP_MAX = -4
LARGE_MODEL_BYTES = 1 << 30  # models at least this big switch the heap mode


@functools.cache
def retain_freed_memory() -> bool:
    """Switch glibc's malloc to heap-only, never-trimmed mode (once); False where unavailable."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to do
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
