"""Terminal output helpers: progress bars, log messages, JSON printing, plain tables.

Progress bars go to stderr and switch off when stderr is not a terminal or when
``GRAPHKIT_NO_PROGRESS`` is set, so ``--json`` output on stdout stays clean. Log messages of
the ``graphkit`` logger hierarchy (every module logs to ``logging.getLogger(__name__)``) go to
stderr too, once the CLI called :func:`configure_logging`; a library user configures
``logging`` as usual (unconfigured, only warnings show).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from tqdm import tqdm

_progress_allowed = True  # False under -q and --json (configure_logging, allow_progress)
_active_bars: list[_Bar] = []


def allow_progress(allowed: bool) -> None:
    """Allow or forbid progress bars for the rest of the command (``-q`` and ``--json`` forbid them)."""
    global _progress_allowed
    _progress_allowed = allowed


def progress_enabled() -> bool:
    """Whether progress bars should be drawn: stderr is a terminal, not ``-q``/``--json``, and
    ``GRAPHKIT_NO_PROGRESS`` is not set. Without a bar the command logs plain lines instead."""
    return _progress_allowed and sys.stderr.isatty() and not os.environ.get("GRAPHKIT_NO_PROGRESS")


class _Bar(tqdm):
    """A tqdm bar that knows its label (the item in progress) and is the target of :func:`progress_note`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.label = ""
        _active_bars.append(self)

    def set_label(self, label: str) -> None:
        """Name the item in progress (a pass), shown after the bar."""
        self.label = label
        self.set_postfix_str(label)

    def close(self) -> None:
        bars = _active_bars  # None while the interpreter shuts down (tqdm closes bars in __del__)
        if bars is not None and self in bars:
            bars.remove(self)
        super().close()


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it"):
    """A tqdm progress bar on stderr (disabled when not interactive); see :func:`progress_note`."""
    enabled = progress_enabled()
    sized = enabled and _terminal_columns() > 0  # a terminal that reports no width gets 80 columns
    return _Bar(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not enabled,
        leave=False,
        dynamic_ncols=sized,
        ncols=None if sized or not enabled else 80,
        nrows=None if sized or not enabled else 24,
    )


def _terminal_columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


def progress_note(text: str) -> None:
    """Show ``text`` (e.g. ``forward b2``) after the innermost active bar's label; nothing without a bar."""
    if _active_bars:
        bar = _active_bars[-1]
        bar.set_postfix_str(f"{bar.label}: {text}" if bar.label else text)


class _ProgressAwareHandler(logging.StreamHandler):
    """Writes each message above an active progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError):  # stderr is gone (a closed pipe): nowhere to report it
            tqdm.write(self.format(record), file=sys.stderr)


class _Formatter(logging.Formatter):
    """Info as it is, debug marked, warnings and errors as the CLI's ``graphkit: ...`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.ERROR:
            return f"graphkit: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"graphkit: warning: {message}"
        if record.levelno < logging.INFO:
            return f"debug: {record.name}: {message}"
        return message


def configure_logging(verbosity: int = 0) -> None:
    """Send the ``graphkit`` loggers' messages to stderr: warnings only at ``verbosity`` < 0
    (``-q``), progress messages at 0, debug messages (tracebacks of failed passes, every
    onnxruntime forward) at > 0 (``-v``). Calling it again replaces the earlier setting."""
    root = logging.getLogger("graphkit")
    for handler in [h for h in root.handlers if isinstance(h, _ProgressAwareHandler)]:
        root.removeHandler(handler)
    handler = _ProgressAwareHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO)
    allow_progress(verbosity >= 0)
    root.propagate = False


def print_json(data: Any) -> None:
    """Print ``data`` as indented strict JSON on stdout (:func:`dumps_json`)."""
    print(dumps_json(data))


def dumps_json(data: Any, indent: int | None = 2) -> str:
    """``data`` as strict JSON that every parser reads: a float NaN or infinity (which ``json``
    would write as the non-standard ``NaN``/``Infinity``) becomes the string ``"nan"``, ``"inf"``
    or ``"-inf"``; numpy scalars and arrays become numbers and lists (:func:`json_default`)."""
    return json.dumps(_finite(data), indent=indent, sort_keys=False, allow_nan=False, default=json_default)


def _finite(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def json_default(value: Any):
    """``json.dumps`` fallback: numpy scalars and arrays as numbers and lists, anything else as text."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    return str(value)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A left-aligned plain-text table."""
    text_rows = [[_cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in text_rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)
