"""Build typed dataclasses from plain mappings (YAML, ``--set``), with errors that cite the key.

Used for pass options and pipeline sections alike. Supported field types: ``bool``, ``int``,
``float``, ``str``, ``Literal[...]``, ``list[T]``, ``tuple[T, ...]``, ``dict[str, T]``,
``T | None`` and nested dataclasses. Unknown keys are errors with "did you mean" hints; values echoed in messages are capped
(:func:`graphkit.util.safe_yaml.shown`).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union

from graphkit.util.errors import FieldValueError, SpecError, one_line, shown


def close_names(name: str, choices) -> str:
    """' (did you mean: a, b?)' for names close to ``name``, or ''."""
    if not isinstance(name, str) or len(name) > 100:
        return ""
    matches = difflib.get_close_matches(name, [str(c) for c in choices], n=3, cutoff=0.5)
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""


def from_mapping(cls: type, data: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``data``; ``where`` prefixes error messages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{where or 'top level'}: expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        raise SpecError(
            f"{where or 'top level'}: unknown key {shown(key)}{close_names(key, fields)}; known keys: {', '.join(fields)}"
        )
    values = {}
    for name, field in fields.items():
        key_where = f"{where}.{name}" if where else name
        if name in data:
            values[name] = coerce(hints[name], data[name], key_where)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise SpecError(f"{key_where}: required key is missing")
    try:
        return cls(**values)
    except FieldValueError as exc:  # a __post_init__ check: name the full key path
        raise SpecError(f"{where}.{exc.key}: {exc.reason}" if where else str(exc)) from exc


def coerce(hint: Any, value: Any, where: str) -> Any:
    """Check/convert ``value`` against type ``hint``; raise SpecError naming ``where``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(option, value, where)
            except SpecError as exc:
                errors.append(str(exc))
        raise SpecError(errors[0] if len(errors) == 1 else f"{where}: expected {type_name(hint)}, got {_kind(value)}")
    if origin is Literal:
        if value in args:
            return value
        raise SpecError(
            f"{where}: expected one of {', '.join(map(repr, args))}, got {shown(value)}{close_names(value, args)}"
        )
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{where}: expected a list ({type_name(hint)}), got {_kind(value)}")
        item = args[0] if args else Any
        items = [coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a mapping, got {_kind(value)}")
        key_t, val_t = args if args else (Any, Any)
        return {coerce(key_t, k, where): coerce(val_t, v, f"{where}.{one_line(str(k), 40)}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 1e-5 (no dot) as a string
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported field type {hint!r} at {where}")
    raise SpecError(f"{where}: expected {type_name(hint)}, got {_kind(value)} {shown(value)}")


def to_mapping(obj: Any) -> Any:
    """The inverse of :func:`from_mapping`: plain dicts/lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def type_name(hint: Any) -> str:
    """A readable name for a type hint (``list[int]``, ``float | None``...)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(hint))
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in typing.get_args(hint))}]"
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)
