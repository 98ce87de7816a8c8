"""The user's cache folder: golden sets (and any other cache) live under :func:`cache_root`.

``GRAPHKIT_CACHE`` names the folder when set; else ``$XDG_CACHE_HOME/graphkit``; else
``~/.cache/graphkit``. Every cache of graphkit goes through :func:`cache_root` (one place),
so ``graphkit cache ls|clear`` sees all of them. Entries are the items two levels down
(``<kind>/<entry>``, e.g. ``golden/wseg_310p-0123abcd-onnxruntime``).

Only what graphkit wrote is listed or removed (``GRAPHKIT_CACHE`` may point at any folder):

- the root is graphkit's when it holds graphkit's ``CACHEDIR.TAG`` (written by
  :func:`prepare_cache_dir` when graphkit creates the root or finds it empty; the standard cache
  tag, so backup tools skip the folder too) or holds nothing but known kinds (a cache made
  before the tag existed; it is tagged then). Any other root is refused with one line;
- an entry counts only in a known kind and in the form graphkit writes it
  (:data:`KNOWN_KINDS`): a golden set is a flat folder of ``manifest.json`` and
  ``<label>.inputs.npz``/``<label>.outputs.npz``, a validation result a ``<kind>-<hex>.json``
  file. Anything else (a deeper tree, other names, a link) is left alone and counted apart;
- nothing here recurses: entries are flat by definition, so a tree 1,100 folders deep is
  neither walked nor removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from graphkit.util.errors import GraphkitError, one_line
from graphkit.util.integrity import KEY_FILE


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


MARKER = "CACHEDIR.TAG"
MARKER_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by graphkit (graphkit cache ls|clear).\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)
_GOLDEN_FILE = re.compile(r"^(manifest\.json|[A-Za-z0-9_-]{1,64}\.(inputs|outputs)\.npz)$")
_VALIDATION_FILE = re.compile(r"^[a-z][a-z0-9_-]{0,40}-[0-9a-f]{32}\.json$")


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _golden_entry(path: Path) -> bool:
    """A flat folder of a golden set's files (no links, no subfolders), with its manifest."""
    try:
        if not stat.S_ISDIR(path.lstat().st_mode):
            return False
        names = os.listdir(path)
    except OSError:
        return False
    return (
        "manifest.json" in names
        and all(_GOLDEN_FILE.match(n) for n in names)
        and all(_regular(path / n) for n in names)
    )


def _validation_entry(path: Path) -> bool:
    return bool(_VALIDATION_FILE.match(path.name)) and _regular(path)


KNOWN_KINDS: dict[str, Callable[[Path], bool]] = {"golden": _golden_entry, "validation": _validation_entry}
"""Kind folder -> whether an item in it is an entry graphkit wrote. A new cache kind is added here."""


@dataclass
class CacheEntry:
    """One cache entry: its kind, name, path and size in bytes."""

    kind: str
    name: str
    path: str
    bytes: int


@dataclass
class CacheListing:
    """What the cache root holds: graphkit's entries, and how many other items were left alone."""

    entries: list[CacheEntry]
    foreign: list[str]


def _marked(root: Path) -> bool:
    try:
        return _regular(root / MARKER) and (root / MARKER).read_text(encoding="utf-8") == MARKER_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _only_known_kinds(root: Path) -> bool:
    try:
        children = list(root.iterdir())
    except OSError:
        return False
    return all(c.name in KNOWN_KINDS and stat.S_ISDIR(c.lstat().st_mode) for c in children if c.name != MARKER)


def prepare_cache_dir(kind: str) -> Path:
    """The folder of ``kind`` under the cache root, created (with the root's tag when graphkit
    creates the root or finds it empty or holding only its kinds); GraphkitError naming the
    folder when it cannot be created."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not _marked(root) and _only_known_kinds(root):
            (root / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        (root / kind).mkdir(exist_ok=True)
    except OSError as exc:
        raise GraphkitError(f"{root}: cannot create the cache folder ({exc.strerror or one_line(exc, 200)})") from exc
    return root / kind


def _flat_size(path: Path) -> int:
    if not stat.S_ISDIR(path.lstat().st_mode):
        return path.lstat().st_size
    total = 0
    for child in path.iterdir():
        with contextlib.suppress(OSError):
            total += child.lstat().st_size
    return total


def _checked_root() -> Path:
    """The cache root if graphkit may list and clear it; GraphkitError otherwise."""
    root = cache_root()
    foreign = root.is_symlink() or not root.is_dir() or not _only_known_kinds(root)
    if root.exists() and not _marked(root) and foreign:
        raise GraphkitError(
            f"{root}: not a graphkit cache (no {MARKER} written by graphkit, and it holds other things); "
            "refused: graphkit lists and clears only folders it created"
        )
    return root


def list_entries() -> CacheListing:
    """graphkit's entries under the cache root, sorted by kind then name, and the other items
    found in its kind folders (never followed, walked or removed)."""
    root = _checked_root()
    listing = CacheListing([], [])
    for kind, is_entry in KNOWN_KINDS.items():
        folder = root / kind
        if not folder.is_dir() or folder.is_symlink():
            continue
        for item in sorted(folder.iterdir()):
            if item.name.startswith(".") or item.name == KEY_FILE:  # a write in progress; the cache's key
                continue
            if is_entry(item):
                listing.entries.append(CacheEntry(kind, item.name, str(item), _flat_size(item)))
            else:
                listing.foreign.append(str(item))
    return listing


def _remove(path: Path) -> None:
    """Remove one entry: a file, or a flat folder of files (entries have no subfolders)."""
    if stat.S_ISDIR(path.lstat().st_mode):
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    else:
        path.unlink()


def remove_entries(paths: list[str] | None = None) -> tuple[list[CacheEntry], list[str]]:
    """Remove the given entry paths (default: every entry graphkit wrote); returns what was
    removed and the other items left alone.

    A path that is not an entry graphkit wrote inside the cache root (``..``, a symlink out,
    another folder, a file of the user's) is refused with a GraphkitError before anything is removed.
    """
    listing = list_entries()
    root = cache_root().resolve()
    if paths is None:
        chosen = listing.entries
    else:
        by_path = {Path(e.path).resolve(): e for e in listing.entries}
        chosen = []
        for text in paths:
            target = Path(text).expanduser()
            resolved = target.resolve() if not target.is_symlink() else target.parent.resolve() / target.name
            if root not in resolved.parents:
                raise GraphkitError(f"{text}: not inside the cache folder {root}; refused")
            if resolved not in by_path:
                raise GraphkitError(f"{text}: not a cache entry graphkit wrote (see 'graphkit cache ls'); refused")
            chosen.append(by_path[resolved])
    removed = []
    for entry in chosen:
        try:
            _remove(Path(entry.path))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise GraphkitError(f"{entry.path}: cannot remove ({exc.strerror or one_line(exc, 200)})") from exc
        removed.append(entry)
    return removed, listing.foreign if paths is None else []
