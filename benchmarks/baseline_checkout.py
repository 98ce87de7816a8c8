"""Run graphkit from another checkout (``--baseline-src DIR``) for a same-run A/B.

The editable install maps ``graphkit`` and ``graphkit_passes`` (the repository's ``passes/``
folder) to this tree, and a ``python -c`` child puts the current folder first on ``sys.path``: a
plain ``PYTHONPATH=DIR`` therefore ran this tree's passes, and, from the repository root, this
tree's graphkit too. :func:`baseline_env` puts both packages of ``DIR`` first (through a folder
of links, since ``passes/`` is imported as ``graphkit_passes``) and :data:`PYTHON_FLAGS` keeps the
current folder off ``sys.path``. Plug-in entry points still come from the installed metadata:
they name modules (``graphkit.wseg.plugin``), which then resolve in ``DIR``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

PYTHON_FLAGS = ["-P"]  # no current folder (nor script folder) first on sys.path


def baseline_env(env: dict[str, str], src: Path) -> dict[str, str]:
    """``env`` with ``src``'s ``graphkit`` and ``graphkit_passes`` first on ``PYTHONPATH``."""
    src = Path(src).resolve()
    for folder in ("graphkit", "passes"):
        if not (src / folder / "__init__.py").exists():
            raise SystemExit(f"--baseline-src {src}: no {folder}/ package there (a graphkit checkout?)")
    return dict(env, PYTHONPATH=str(_links(src)))


_LINKED: dict[Path, Path] = {}


def _links(src: Path) -> Path:
    """A temporary folder holding ``graphkit`` and ``graphkit_passes`` links into ``src`` (made once)."""
    if src not in _LINKED:
        folder = Path(tempfile.mkdtemp(prefix="graphkit-baseline-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        (folder / "graphkit").symlink_to(src / "graphkit", target_is_directory=True)
        (folder / "graphkit_passes").symlink_to(src / "passes", target_is_directory=True)
        _LINKED[src] = folder
    return _LINKED[src]
