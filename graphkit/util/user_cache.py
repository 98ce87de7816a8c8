"""The user's cache folder: golden sets (and any other cache) live under :func:`cache_root`.

``GRAPHKIT_CACHE`` names the folder when set; else ``$XDG_CACHE_HOME/graphkit``; else
``~/.cache/graphkit``. Every cache of graphkit goes through :func:`cache_root` (one place),
so ``graphkit cache ls|clear`` sees all of them. Entries are the folders two levels down
(``<kind>/<entry>``, e.g. ``golden/wseg_310p-0123abcd-onnxruntime``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from graphkit.util.errors import GraphkitError


def cache_root() -> Path:
    """The cache folder (not created here): GRAPHKIT_CACHE, $XDG_CACHE_HOME/graphkit or ~/.cache/graphkit."""
    override = os.environ.get("GRAPHKIT_CACHE", "").strip()
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is invalid and ignored
        return Path(xdg) / "graphkit"
    return Path.home() / ".cache" / "graphkit"


def cache_dir(kind: str) -> Path:
    """The folder of one kind of cache entry (``golden``, ...) under :func:`cache_root`."""
    return cache_root() / kind


@dataclass
class CacheEntry:
    """One cached folder: its kind, name, path and size in bytes."""

    kind: str
    name: str
    path: str
    bytes: int


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


def list_entries() -> list[CacheEntry]:
    """Every entry under the cache root, sorted by kind then name (symlinks are not followed)."""
    root = cache_root()
    entries = []
    if not root.is_dir():
        return entries
    for kind in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for entry in sorted(kind.iterdir()):
            if entry.name.startswith("."):  # a staging folder of a write in progress
                continue
            size = _size(entry) if entry.is_dir() and not entry.is_symlink() else entry.lstat().st_size
            entries.append(CacheEntry(kind.name, entry.name, str(entry), size))
    return entries


def remove_entries(paths: list[str] | None = None) -> list[CacheEntry]:
    """Remove the given entry paths (default: every entry) and return what was removed.

    A path that is not an entry inside the cache root (``..``, a symlink out, another folder)
    is refused with a GraphkitError before anything is removed.
    """
    root = cache_root().resolve()
    entries = list_entries()
    if paths is None:
        chosen = entries
    else:
        by_path = {Path(e.path).resolve(): e for e in entries}
        chosen = []
        for text in paths:
            target = Path(text).expanduser()
            resolved = target.resolve() if not target.is_symlink() else target.parent.resolve() / target.name
            if root not in resolved.parents:
                raise GraphkitError(f"{text}: not inside the cache folder {root}; refused")
            if resolved not in by_path:
                raise GraphkitError(f"{text}: not a cache entry (see 'graphkit cache ls')")
            chosen.append(by_path[resolved])
    for entry in chosen:
        path = Path(entry.path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return chosen
