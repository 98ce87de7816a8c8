"""The private folder tree an attempt runs in, and snapshots to see what a run changed.

Layout under the sandbox root ``R`` (paths in attempts are relative to ``R``)::

    home/            HOME of the command (must stay unchanged)
    tmp/             TMPDIR of the command (must be empty afterwards)
    mpl/             MPLCONFIGDIR (matplotlib's font cache; allowed to change)
    secret.bin       a file no command may read or change
    a/b/work/        the command's working directory (``..`` three times stays inside R)
        inputs/      generated inputs (must stay unchanged)
        out/         the output folder (may change)
        cache/       GRAPHKIT_CACHE (may change)

Text inputs and argv may name ``@@ROOT@@``; it becomes the sandbox root when written, so an
attempt is independent of where it runs.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT_MARK = "@@ROOT@@"
WORK = "a/b/work"
INPUTS = f"{WORK}/inputs"
OUT = f"{WORK}/out"
CACHE = f"{WORK}/cache"
HOME, TMP, MPL = "home", "tmp", "mpl"
SECRET = "secret.bin"

# Written by onnxruntime 1.32 itself on import (telemetry device id and session file), whatever
# graphkit does: not counted as graphkit's writes.
THIRD_PARTY = [f"{HOME}/.cache/Microsoft", f"{TMP}/.ses"]

FIFO = "<fifo>"  # file content markers: create a named pipe / a folder instead of a file
DIRECTORY = "<dir>"

Content = bytes | str  # bytes, or FIFO / DIRECTORY


def environment(root: Path) -> dict[str, str]:
    """Environment overrides of a command run in the sandbox at ``root``."""
    return {
        "HOME": str(root / HOME),
        "TMPDIR": str(root / TMP),
        "MPLCONFIGDIR": str(root / MPL),
        "GRAPHKIT_CACHE": str(root / CACHE),
        "GRAPHKIT_NO_PROGRESS": "1",
        "OMP_NUM_THREADS": "1",
    }


def resolve(text: str, root: Path) -> str:
    """``text`` with the root mark replaced by ``root``."""
    return text.replace(ROOT_MARK, str(root))


def materialize(root: Path, files: Mapping[str, Content], modes: Mapping[str, int] | None = None) -> None:
    """Create the sandbox at ``root`` with ``files`` (relative to ``root``) and ``modes`` (chmod)."""
    for folder in (HOME, TMP, MPL, INPUTS, CACHE):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / SECRET).write_bytes(b"graphkit-fuzz secret: no command may touch this file\n")
    for relative, content in sorted(files.items()):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == FIFO:
            os.mkfifo(path)
        elif content == DIRECTORY:
            path.mkdir(exist_ok=True)
        else:
            data = content if isinstance(content, bytes) else content.encode()
            path.write_bytes(data.replace(ROOT_MARK.encode(), str(root).encode()))
    for relative, mode in (modes or {}).items():
        os.chmod(root / relative, mode)


@dataclass(frozen=True)
class Entry:
    """What a snapshot records of one path."""

    kind: str  # file, dir, fifo, link, other
    size: int
    mtime_ns: int
    inode: int


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under ``root`` (relative, symlinks not followed) with its kind, size and times."""
    entries: dict[str, Entry] = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            kind = _kind(info.st_mode)
            size = info.st_size if kind == "file" else 0
            entries[os.path.relpath(path, root)] = Entry(kind, size, info.st_mtime_ns, info.st_ino)
    return entries


@dataclass
class Changes:
    """What differs between two snapshots."""

    created: list[str]
    deleted: list[str]
    modified: list[str]  # content, size or kind changed (a folder's own mtime is ignored)

    def all(self) -> list[str]:
        return sorted(self.created + self.deleted + self.modified)


def compare(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> Changes:
    """Paths created, deleted and modified between ``before`` and ``after``."""
    created = sorted(set(after) - set(before))
    deleted = sorted(set(before) - set(after))
    modified = []
    for path in sorted(set(before) & set(after)):
        old, new = before[path], after[path]
        if old.kind != new.kind or (new.kind != "dir" and old != new):
            modified.append(path)
    return Changes(created, deleted, modified)


def inside(path: str, folders: list[str]) -> bool:
    """Whether relative ``path`` is one of ``folders`` or below one of them."""
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def make_writable(root: Path) -> None:
    """Undo read-only modes an attempt set, so the sandbox can be removed."""
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(folder, name), 0o755)
