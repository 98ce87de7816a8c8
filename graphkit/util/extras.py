"""Optional dependencies: import one, or say in one line which extra installs it.

graphkit's core install holds what every command needs; image, plotting, Ray and onnxscript
support are extras of the ``graphkit-onnx`` distribution (``pip install 'graphkit-onnx[eval]'``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from graphkit.util.errors import GraphkitError

DISTRIBUTION = "graphkit-onnx"


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(
    module: str, extra: str, purpose: str, package: str | None = None, alternative: str | None = None
) -> ModuleType:
    """Import ``module``, or raise one GraphkitError line: ``purpose`` needs ``package``, how to
    install it, and ``alternative`` (what else the user can do) when given."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        other = f" (or {alternative})" if alternative else ""
        raise GraphkitError(f"{purpose} needs the {package or module} package: {install_hint(extra)}{other}") from exc
