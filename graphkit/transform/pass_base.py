"""The pass contract.

A pass is a :class:`Pass` subclass in one file, registered under a kebab-case name with
:func:`graphkit.transform.registry.register`. It declares:

- ``Options``: a dataclass of typed options with defaults; each field's ``metadata["doc"]``
  documents it (``graphkit passes NAME`` prints them);
- ``exact``: True when the rewrite is exact under ONNX semantics (validated with tight
  tolerances); False for approximate passes, which must declare ``tolerance``;
- ``opset_range``: the default-domain opsets it supports; outside it the pass declines;
- ``changes_io``: True only for passes whose job is to change graph input/output shapes;
- ``changes_opset``: True only for passes whose job is to change the opset.

``run(model)`` receives an ``onnx.ModelProto`` that it must not mutate (use
:func:`graphkit.ir.graph.to_graph` for onnx-graphsurgeon, or :func:`graphkit.ir.model_io.clone`), and returns
a :class:`PassResult`: the new model, whether it changed anything, counts, and the sites it
declined with reasons. A pattern that does not match is not an error.

``Pass.__call__`` enforces the contract around ``run`` (after onnx/ir-py's pass infra): opset
range and preconditions first, then the result's type, then postconditions (graph I/O and
opset unchanged unless declared). Verification, validation, timing and rollback belong to the
manager's instruments, not to the pass.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import signal
import traceback
from dataclasses import dataclass, field
from typing import Any, ClassVar

import onnx

from graphkit.ir.model_io import default_opset
from graphkit.ir.shapes import io_signature  # re-exported for passes
from graphkit.util.errors import PassError, SpecError, one_line, printable
from graphkit.util.signals import signals_seen
from graphkit.util.tolerance import Tolerance
from graphkit.util.typed_config import from_mapping, to_mapping


@dataclass(frozen=True)
class Declined:
    """A site where the pattern matched partly but the pass refused, and why."""

    site: str
    reason: str


@dataclass
class PassResult:
    """What a pass returns. ``modified`` must be true exactly when ``model`` differs."""

    model: onnx.ModelProto
    modified: bool
    counts: dict[str, int] = field(default_factory=dict)
    declined: list[Declined] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    content_hash: str = ""  # the model's content hash, set by the Honesty instrument ("" if unknown)


@dataclass
class NoOptions:
    """This pass takes no options."""


def option(default: Any = dataclasses.MISSING, doc: str = "", default_factory: Any = dataclasses.MISSING):
    """A documented dataclass field for pass options."""
    kwargs = {"metadata": {"doc": doc}}
    if default_factory is not dataclasses.MISSING:
        kwargs["default_factory"] = default_factory
    else:
        kwargs["default"] = default
    return field(**kwargs)


class Pass:
    """Base class of every graph pass; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    exact: ClassVar[bool] = True
    tolerance: ClassVar[Tolerance | None] = None
    opset_range: ClassVar[tuple[int, int]] = (1, 10**6)
    changes_io: ClassVar[bool] = False
    changes_opset: ClassVar[bool] = False

    def __init__(self, options: Any = None, **kwargs: Any):
        if options is None:
            options = from_mapping(self.Options, kwargs, f"pass '{self.name}' options")
        elif kwargs:
            raise TypeError("give either an Options instance or keyword options, not both")
        if not isinstance(options, self.Options):
            raise TypeError(f"{self.name}: options must be {self.Options.__name__}, got {type(options).__name__}")
        self.options = options

    @classmethod
    def from_spec(cls, options: dict | None, where: str) -> Pass:
        """Build the pass from a plain mapping; errors name ``where`` and the option."""
        return cls(from_mapping(cls.Options, options or {}, where))

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def options_dict(self) -> dict:
        """The options as a plain mapping."""
        return to_mapping(self.options)

    # --- to be implemented by passes ---------------------------------------------------------
    def check_preconditions(self, model: onnx.ModelProto) -> str | None:
        """Return a reason to refuse the whole model, or None to go on."""
        return None

    def run(self, model: onnx.ModelProto) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- the contract around run ---------------------------------------------------------------
    def __call__(self, model: onnx.ModelProto) -> PassResult:
        opset = default_opset(model)
        low, high = self.opset_range
        if not low <= opset <= high:
            return self.decline_all(model, f"opset {opset} is outside the supported range {low}..{high}")
        with signals_seen() as seen:
            try:
                reason = self.check_preconditions(model)
                result = self.decline_all(model, reason) if reason else self.run(model)
            except (PassError, SpecError):  # SpecError: options that contradict this model (bad input, exit 2)
                raise
            except BaseException as exc:
                # A real signal (Ctrl-C, a handled SIGTERM) during the pass interrupts the run; the
                # same exception raised by the pass itself (sys.exit, KeyboardInterrupt...) is the
                # pass failing. Outside the main thread signals cannot be watched: Ctrl-C wins.
                if seen or (seen is None and isinstance(exc, KeyboardInterrupt)):
                    if isinstance(exc, Exception) and signal.SIGINT in seen:
                        raise KeyboardInterrupt from exc
                    raise
                detail = f": {one_line(exc)}" if str(exc) else ""
                where = raised_at(exc, type(self))
                raise PassError(
                    f"pass '{self.name}' raised {exc.__class__.__name__}{detail}{where}{_mapped_hint(exc)}", self.name
                ) from exc
        if seen and signal.SIGINT in seen:  # the pass swallowed a Ctrl-C: honour it now
            raise KeyboardInterrupt
        if not isinstance(result, PassResult) or not isinstance(result.model, onnx.ModelProto):
            raise PassError(f"pass '{self.name}' returned {type(result).__name__}, not a PassResult", self.name)
        if result.modified:
            self._check_postconditions(model, result.model)
        return result

    def decline_all(self, model: onnx.ModelProto, reason: str) -> PassResult:
        """A result that leaves the model as it is, declining everything for ``reason``."""
        return PassResult(model=model, modified=False, declined=[Declined("<model>", reason)])

    def _check_postconditions(self, before: onnx.ModelProto, after: onnx.ModelProto) -> None:
        if not self.changes_io:
            for kind in ("input", "output"):
                old = [io_signature(v) for v in getattr(before.graph, kind)]
                new = [io_signature(v) for v in getattr(after.graph, kind)]
                if kind == "input":  # initializers listed as inputs may be folded away
                    inits = {t.name for t in after.graph.initializer} | {t.name for t in before.graph.initializer}
                    old = [s for s in old if s[0] not in inits]
                    new = [s for s in new if s[0] not in inits]
                if old != new:
                    raise PassError(
                        f"pass '{self.name}' changed the graph {kind}s without declaring changes_io: {old} -> {new}",
                        self.name,
                    )
        if not self.changes_opset and default_opset(before) != default_opset(after):
            raise PassError(
                f"pass '{self.name}' changed the opset {default_opset(before)} -> {default_opset(after)} "
                "without declaring changes_opset",
                self.name,
            )


def raised_at(exc: BaseException, pass_class: type) -> str:
    """`` at FILE:LINE (in FUNCTION)``: where ``exc`` was raised in the pass's own source file
    (the deepest frame there), else the deepest frame of the traceback; empty without one."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    try:
        own = os.path.realpath(inspect.getfile(pass_class))
    except (TypeError, OSError):
        own = None
    mine = [f for f in frames if own and os.path.realpath(f.filename) == own]
    frame = (mine or frames)[-1]
    return f" at {printable(frame.filename)}:{frame.lineno} (in {printable(frame.name)})"


def _mapped_hint(error: BaseException) -> str:
    """A hint when a pass failed reading a weight kept in its file with ``numpy_helper.to_array``
    (onnx refuses the absolute location of a memory-mapped stub)."""
    if "Location of external TensorProto" in str(error):
        return (
            " (weights of 1 MiB or more stay in their files during apply: read them with "
            "graphkit.api.tensor_array, not onnx.numpy_helper.to_array)"
        )
    return ""
