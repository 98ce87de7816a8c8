"""Atomic file writes: write under a temporary folder beside the target, then rename.

Every file graphkit writes goes through :func:`atomic_paths` (or its one-file forms
:func:`atomic_path`, :func:`write_text_atomic`, :func:`write_bytes_atomic`), which guarantee:

- a reader never sees a half-written file: the data goes to ``.NAME.XXXX.tmp/NAME`` in the
  target's folder and is renamed into place only when the writer finished;
- nothing is left behind on failure or interruption: the temporary folder is removed by the
  context manager, also when SIGINT/SIGTERM arrive (see :mod:`graphkit.util.signals`), and
  :func:`remove_temporaries` sweeps any that are still registered;
- only regular files are replaced: a target that is a device, a FIFO, a socket or a folder is
  refused with :class:`~graphkit.util.errors.OutputError` before anything is written (a symlink is
  judged by what it points to, and replaced by the new file like ``mv`` would);
- every way the target cannot be written (read-only or immutable folder, a parent that is a
  file, ``/proc``, a full disk) is one :class:`~graphkit.util.errors.OutputError` naming the path.

Files get the usual permissions (0666 less the umask) unless ``mode`` says otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from graphkit.util.errors import OutputError, SpecError, one_line, shown
from graphkit.util.signals import deferred

_temporaries: set[Path] = set()  # temporary folders of writes in progress

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def _reason(exc: OSError) -> str:
    return exc.strerror or one_line(exc, 200)


def current_umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_target(path: str | os.PathLike) -> Path:
    """Return ``path`` if graphkit may (re)place a file there; OutputError otherwise.

    Refused: an existing target that is not a regular file (device, FIFO, socket, folder) and
    a path whose parent is a file.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path
    except NotADirectoryError as exc:
        raise OutputError(f"{path}: cannot write: a parent of it is a file, not a folder") from exc
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({_reason(exc)})") from exc
    for test, kind in _KINDS:
        if test(mode):
            raise OutputError(f"{path}: is {kind}, not a regular file; graphkit only replaces regular files")
    return path


PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def check_plain_name(value: str, where: str) -> str:
    """Return ``value`` if it is a plain file name (no folder part); SpecError naming ``where``.

    Plain: letters, digits and ``_ . + -``, not starting with a dot, at most 128 characters.
    So no ``..``, no absolute path, no separator, no control character, no hidden name.
    """
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value):
        raise SpecError(
            f"{where}: must be a plain name (letters, digits, '_', '.', '+', '-'; no folder part, "
            f"no '..', not starting with '.'), got {shown(value)}"
        )
    return value


def make_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) if needed; OutputError names it when that fails."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise OutputError(
            f"{folder}: cannot create the folder: it, or a parent of it, exists and is not a folder"
        ) from exc
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({_reason(exc)})") from exc
    return folder


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike, mode: int | None = None) -> Iterator[list[Path]]:
    """Yield temporary paths for ``paths`` (all in one folder); on success each is renamed into place.

    The temporary paths keep the targets' file names (inside a hidden temporary folder), so
    tools that pick a format from the extension work, and files that refer to each other by
    name (a model and its external data file) stay consistent. A companion path (all but the
    first) that the writer did not create is skipped. ``mode`` sets the permissions.
    """
    targets = [Path(p) for p in paths]
    folder = targets[0].parent
    if any(t.parent != folder for t in targets):
        raise ValueError("atomic_paths: all targets must be in one folder")
    for target in targets:
        check_target(target)
    make_folder(folder)
    with deferred():  # created and registered together, or not at all
        try:
            tmp_dir = Path(tempfile.mkdtemp(prefix=f".{targets[0].name}.", suffix=".tmp", dir=folder))
        except OSError as exc:
            raise OutputError(f"{targets[0]}: cannot write in {folder} ({_reason(exc)})") from exc
        _temporaries.add(tmp_dir)
    try:
        temps = [tmp_dir / t.name for t in targets]
        try:
            yield temps
            for index, (tmp, target) in enumerate(zip(temps, targets)):
                if index and not tmp.exists():
                    continue
                os.chmod(tmp, mode if mode is not None else 0o666 & ~current_umask())
                check_target(target)  # again: something may have appeared there meanwhile
                os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"{targets[0]}: cannot write ({_reason(exc)})") from exc
    finally:
        with deferred():
            shutil.rmtree(tmp_dir, ignore_errors=True)
            _temporaries.discard(tmp_dir)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path for ``path``; on success it is renamed to ``path`` (see :func:`atomic_paths`)."""
    with atomic_paths(path, mode=mode) as (tmp,):
        yield tmp


def place_files(pairs: list[tuple[Path, Path]], move: bool = False) -> list[Path]:
    """Put each ``source`` at its ``target`` (all targets in one folder) as a hard link, or a copy
    where links cannot be made, atomically: all targets appear together or none does.

    ``move=True`` removes the sources once every target is in place (the targets are then the
    files' only names; until then a failure leaves the sources as they were)."""
    targets = [Path(target) for _, target in pairs]
    with atomic_paths(*targets) as temps:
        for (source, _), tmp in zip(pairs, temps):
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
    if move:
        for source, _ in pairs:
            Path(source).unlink(missing_ok=True)
    return targets


def write_text_atomic(path: str | os.PathLike, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def remove_temporaries() -> None:
    """Remove the temporary folders of writes still in progress (the CLI's last resort on a signal)."""
    with deferred():
        for tmp_dir in list(_temporaries):
            shutil.rmtree(tmp_dir, ignore_errors=True)
            _temporaries.discard(tmp_dir)
