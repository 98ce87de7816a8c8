"""Terminal output helpers: progress bars, JSON printing, plain tables.

Progress bars go to stderr and switch off when stderr is not a terminal or when
``GRAPHKIT_NO_PROGRESS`` is set, so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from tqdm import tqdm


def progress_enabled() -> bool:
    """Whether progress bars should be drawn."""
    return sys.stderr.isatty() and not os.environ.get("GRAPHKIT_NO_PROGRESS")


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it"):
    """A tqdm progress bar on stderr (disabled when not interactive)."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not progress_enabled(),
        leave=False,
        dynamic_ncols=True,
    )


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    print(json.dumps(data, indent=2, sort_keys=False, default=json_default))


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
