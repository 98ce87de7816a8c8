"""Small formatters the diff records and views share: shapes, ``-`` for a missing value,
counted phrases, JSON-plain values, shortened text."""

from __future__ import annotations

from typing import Any

from graphkit.ir.shapes import format_dims


def short(text: str, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shape_text(shape) -> str:
    return format_dims(shape)


def or_dash(value) -> str:
    return "-" if value is None else str(value)


def counted(n: int, singular: str, plural: str) -> list[str]:
    return [f"{n} {singular if n == 1 else plural}"] if n else []


def plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value
