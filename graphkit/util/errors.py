"""User-facing errors.

Every error a user can cause (bad file, bad YAML, unknown pass, wrong option type, shape
mismatch, failed validation) is a :class:`GraphkitError`. The CLI prints ``str(error)`` on one
line and exits with code 2; anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
import reprlib

# ANSI escape sequences (colours from onnxruntime's and torch's loggers), then other control characters.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(error: BaseException | str, limit: int | None = 300) -> str:
    """An exception's (or a text's) message on one line: ANSI colour codes and control characters
    removed, whitespace collapsed, at most ``limit`` characters (None: no limit)."""
    text = _CONTROL.sub(" ", _ANSI.sub("", str(error)))
    text = " ".join(text.split())[:limit]
    return text or (error.__class__.__name__ if isinstance(error, BaseException) else "")


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped (``\\n``, ``\\x1b``): names
    read from a file are shown as they are, and cannot move the cursor or colour a terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message: bounded in length and depth, one line."""
    text = " ".join(_REPR.repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class GraphkitError(Exception):
    """Base class: a problem with the user's input or request, reported as one line."""

    exit_code = 2


class ModelLoadError(GraphkitError):
    """A model file is missing, empty, truncated, or not ONNX."""


class OutputError(GraphkitError):
    """An output cannot be written: not a regular file, read-only, a parent is a file, disk full.

    Nothing half-written is left behind (see :mod:`graphkit.util.files`).
    """


class ModelSaveError(OutputError):
    """A model could not be written (nothing half-written is left behind)."""


class SpecError(GraphkitError):
    """A typed mapping (pipeline YAML, pass options) has a bad key or value.

    The message names the file (when known) and the dotted key path.
    """


class FieldValueError(SpecError):
    """A dataclass field holds a value outside its domain (raised from ``__post_init__``).

    :func:`graphkit.util.typed_config.from_mapping` reports it at the field's full key path.
    """

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class PipelineSpecError(SpecError):
    """A pipeline YAML file is unreadable or does not match the schema."""


class UnknownPassError(SpecError):
    """A pass name is not registered; the message lists close names."""


class PassLoadError(GraphkitError):
    """A pass file could not be imported or registers an invalid pass."""


class PassError(GraphkitError):
    """A pass raised, returned a malformed result, or broke its own contract."""

    def __init__(self, message: str, pass_name: str = "", previous: tuple[str, ...] = ()):
        super().__init__(message)
        self.pass_name = pass_name
        self.previous = previous


class ValidationError(GraphkitError):
    """A model's outputs do not match the golden outputs within tolerance.

    ``comparison`` holds the per-output figures (see :mod:`graphkit.check.compare`).
    """

    def __init__(self, message: str, comparison=None):
        super().__init__(message)
        self.comparison = comparison


class RuntimeLoadError(ModelLoadError):
    """onnxruntime cannot load or run a model graphkit reads as valid ONNX (e.g. a custom-domain
    op it has no kernel for, an opset it does not support yet)."""


class GoldenError(GraphkitError):
    """A golden set is missing, corrupt, or was made for another model or input spec."""


class InputError(GraphkitError):
    """Inputs given by the user do not fit the model (names, dtypes, shapes)."""


class ToolNotFoundError(GraphkitError):
    """An external tool (atc, ais_bench) is not installed here."""
