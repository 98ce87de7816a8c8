"""PassManager: runs passes in order with instruments around each, rolling back failures.

For each pass the manager calls every instrument's ``before_pass``, runs the pass (whose base
class enforces the pass contract), then every instrument's ``after_pass``. If the pass or an
instrument raises a GraphkitError, the pass's result is dropped (the model stays as it was
before the pass), instruments hear ``pass_failed``, and the run either stops
(``on_failure="stop"``, the default) or goes on with the next pass (``"skip"``). A pass that
mutated its input in place cannot be rolled back: the run stops whatever ``on_failure`` says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import onnx

from graphkit.transform.instruments import InputMutatedError, Instrument, PassRecord
from graphkit.transform.pass_base import Pass
from graphkit.transform.provenance import record_provenance
from graphkit.util.errors import GraphkitError, PassError


@dataclass
class RunResult:
    """The final model and one record per pass that was attempted."""

    model: onnx.ModelProto
    records: list[PassRecord]
    failed: PassRecord | None = None
    error: GraphkitError | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None


class PassManager:
    """Runs ``passes`` in order; see the module docstring."""

    def __init__(
        self,
        passes: Sequence[Pass],
        instruments: Sequence[Instrument] = (),
        on_failure: Literal["stop", "skip"] = "stop",
        on_pass_start: Callable[[int, Pass], None] | None = None,
    ):
        if on_failure not in ("stop", "skip"):
            raise ValueError(f"on_failure must be 'stop' or 'skip', not {on_failure!r}")
        self.passes = list(passes)
        self.instruments = list(instruments)
        self.on_failure = on_failure
        self.on_pass_start = on_pass_start

    def run(self, model: onnx.ModelProto) -> RunResult:
        """Apply every pass; returns the final model (never one that failed) and the records."""
        records: list[PassRecord] = []
        done: list[str] = []
        for index, pass_ in enumerate(self.passes):
            if self.on_pass_start:
                self.on_pass_start(index, pass_)
            record = PassRecord(index=index, name=pass_.name, options=pass_.options_dict(), exact=pass_.exact)
            records.append(record)
            result = None
            try:
                for instrument in self.instruments:
                    instrument.before_pass(record, pass_, model)
                result = pass_(model)
                record_provenance(model, result.model, pass_.name, index + 1)  # before instruments hash it
                for instrument in self.instruments:
                    instrument.after_pass(record, pass_, model, result)
            except GraphkitError as exc:
                error = _with_context(exc, pass_, index, done)
                stop = self.on_failure == "stop" or isinstance(exc, InputMutatedError)
                record.status = "failed" if stop else "rolled-back"
                record.error = str(error)
                for instrument in self.instruments:
                    instrument.pass_failed(record, pass_, model, error, result.model if result else None)
                if stop:
                    return RunResult(model, records, failed=record, error=error)
                continue
            record.status = "applied" if result.modified else "unchanged"
            record.modified = result.modified
            record.counts.update(result.counts)
            record.declined = [{"site": d.site, "reason": d.reason} for d in result.declined]
            record.notes = [*record.notes, *result.notes]  # instruments' notes first
            model = result.model
            done.append(pass_.name)
        return RunResult(model, records)


def _with_context(exc: GraphkitError, pass_: Pass, index: int, done: list[str]) -> GraphkitError:
    """The error re-raised with the pass, its position and the passes before it named."""
    previous = ", ".join(done) if done else "none"
    message = str(exc)
    if f"'{pass_.name}'" not in message:
        message = f"pass '{pass_.name}': {message}"
    message = f"{message} (pass #{index + 1}; passes applied before it: {previous})"
    wrapped = type(exc).__new__(type(exc))
    wrapped.__dict__.update(exc.__dict__)
    Exception.__init__(wrapped, message)
    if isinstance(wrapped, PassError):
        wrapped.pass_name, wrapped.previous = pass_.name, tuple(done)
    wrapped.__cause__ = exc
    return wrapped
