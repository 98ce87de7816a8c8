"""ATC hand-off for Huawei Ascend: pre-check, command lines + manifest, build.

Public API: :class:`~graphkit.ascend.spec.AtcSpec` (the pipeline's ``handoff.atc`` section) and
:func:`~graphkit.ascend.handoff.run_handoff`, imported on first use (so that importing one
submodule does not import the whole package, and no submodule imports another back).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AtcSpec": "graphkit.ascend.spec",
    "HandoffError": "graphkit.ascend.handoff",
    "run_handoff": "graphkit.ascend.handoff",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'graphkit.ascend' has no attribute {name!r}")
