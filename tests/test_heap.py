"""Retained heap memory: repeated copies of a big buffer stop page-faulting (glibc only)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

COPIES = r"""
import json, resource, sys
from graphkit.util.heap import retain_freed_memory
switched = retain_freed_memory() if sys.argv[1] == "on" else None
source = bytes(64 << 20)
copy = bytes(bytearray(source)); del copy  # the first copies may fault in any mode
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    copy = bytes(bytearray(source)); del copy  # what reading a protobuf bytes field does
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"switched": switched, "faults": after - before}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", COPIES, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_retained_heap_reuses_pages_of_freed_copies():
    plain, retained = _faults("off"), _faults("on")
    if retained["switched"] is False:
        pytest.skip("not glibc: mallopt unavailable")
    pages_per_copy = (64 << 20) // 4096
    # 8 transient 64 MiB buffers: each mapped anew (>= 16,384 faults) unless the heap keeps them
    assert plain["faults"] >= 4 * pages_per_copy
    assert retained["faults"] < pages_per_copy
