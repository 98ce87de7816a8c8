"""PassManager: runs passes in order with instruments around each, rolling back failures.

For each pass the manager calls every instrument's ``before_pass``, runs the pass (whose base
class enforces the pass contract), then every instrument's ``after_pass``, and builds the
pass's :class:`~graphkit.transform.record.PassRecord` from the pass's result and the
instruments' observations. If the pass or an instrument raises a GraphkitError (or an
instrument returns a rejection), the pass's result is dropped, instruments hear
``pass_failed``, and the run either stops (``on_failure="stop"``, the default) or goes on with
the next pass (``"skip"``).

Rollback restores what was there, byte for byte, on every failure path (an exception, a wrong
return type, ``SystemExit`` or ``KeyboardInterrupt`` raised by the pass, a failed check, a real
signal that ends the run). A pass runs on its own copy of the model (below
``copy_limit_bytes`` of weights), or on the model itself with everything but the weights kept
aside (:mod:`graphkit.transform.snapshot`), so the model after a rolled-back pass has the content
hash it had before; a large model whose weights a pass edited in place cannot be restored, and
the run stops (:class:`StopRun`) without writing a model. A pass that edited its input in place
(its content hash changed) is named in its record (``input_mutated``) whether it succeeded or
failed, and is refused (the contract: a pass never edits its input). Costs: docs/portability.md.

When the pass itself raised, the record keeps the formatted traceback of the original
exception (``traceback``). A :class:`~graphkit.transform.group.PassGroup` among the passes runs
its passes (and nested groups) in place, repeated until a fixed point when it says so; each inner
pass is handled as above and its record names the group and the iteration. At the end, decline
reasons that advise folding first are settled against what ran (:mod:`graphkit.transform.remedies`).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import onnx

from graphkit.ir.model_io import content_hash
from graphkit.ir.provenance import record_provenance
from graphkit.transform.group import PassGroup
from graphkit.transform.instruments import InputMutatedError, Instrument
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.record import PassRecord, PassStatus
from graphkit.transform.remedies import settle_remedies
from graphkit.transform.snapshot import COPY_LIMIT_BYTES, ModelSnapshot
from graphkit.util.errors import GraphkitError, PassError

logger = logging.getLogger(__name__)


class StopRun(InputMutatedError):
    """A pass edited its input's weights in place on a model too large to copy: the run stops."""


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
    """Runs ``passes`` (passes and groups: :class:`~graphkit.transform.group.PassGroup`) in order; see the
    module docstring. ``on_pass_start(index, pass_)`` hears every pass run, inner ones included,
    with its running index (the record's)."""

    def __init__(
        self,
        passes: Sequence[Pass | PassGroup],
        instruments: Sequence[Instrument] = (),
        on_failure: Literal["stop", "skip"] = "stop",
        on_pass_start: Callable[[int, Pass], None] | None = None,
        copy_limit_bytes: int = COPY_LIMIT_BYTES,
    ):
        if on_failure not in ("stop", "skip"):
            raise ValueError(f"on_failure must be 'stop' or 'skip', not {on_failure!r}")
        self.passes = list(passes)
        self.instruments = list(instruments)
        self.on_failure = on_failure
        self.on_pass_start = on_pass_start
        self.copy_limit_bytes = copy_limit_bytes  # models with more weight bytes are not copied per pass

    def run(self, model: onnx.ModelProto) -> RunResult:
        """Apply every pass; returns the final model (never one that failed) and the records.

        ``model`` is left as it was, byte for byte, unless a pass edited the weights of a model
        too large to copy (then the run has failed with :class:`StopRun`).
        """
        run = _Run(model, [], [])
        self._run_items(self.passes, run, group="", iteration=None)
        settle_remedies(run.records, run.model)
        return RunResult(run.model, run.records, failed=run.failed, error=run.error)

    def _run_items(self, items: Sequence[Pass | PassGroup], run: _Run, group: str, iteration: int | None) -> bool:
        """Run ``items`` once; True when any pass was applied. Stops early once the run failed."""
        changed = False
        for position, item in enumerate(items, 1):
            if run.failed is not None:
                break
            if isinstance(item, PassGroup):
                changed |= self._run_group(item, run, f"{group}.{position}" if group else str(position))
            else:
                changed |= self._run_pass(item, run, group, iteration)
        return changed

    def _run_group(self, group: PassGroup, run: _Run, label: str) -> bool:
        """Run ``group`` until an iteration changes nothing (or once); True when anything changed."""
        changed = False
        for iteration in range(1, group.iterations + 1):
            if not self._run_items(group.passes, run, label, iteration) or run.failed is not None:
                return changed
            changed = True
        if group.until_fixed_point:
            note = f"group {label}: still changing after {group.max_iterations} iterations (max_iterations)"
            run.records[-1].notes.append(note)
            logger.info(note)
        return changed

    def _run_pass(self, pass_: Pass, run: _Run, group: str, iteration: int | None) -> bool:
        """Run one pass inside the instruments, on a copy or a snapshot of the model (a failure
        leaves the run's model byte-identical); True when it was applied (kept and modified)."""
        index, model = len(run.records), run.model
        if self.on_pass_start:
            self.on_pass_start(index, pass_)
        record = PassRecord(index=index, name=pass_.name, options=pass_.options_dict(), exact=pass_.exact)
        if group:
            record.group, record.iteration = group, iteration
        run.records.append(record)
        if run.known is None or run.known[0] is not model:
            run.known = (model, content_hash(model))
        known_hash = run.known[1]
        snapshot = ModelSnapshot(model, self.copy_limit_bytes)
        work = snapshot.for_pass()
        result: PassResult | None = None
        try:
            for instrument in self.instruments:
                record.observe(instrument.before_pass(index, pass_, model))
            try:
                result = pass_(work)
            except BaseException as exc:
                if isinstance(exc, GraphkitError):
                    record.traceback = _traceback_of(exc)
                record.input_mutated = content_hash(work) != known_hash
                if record.input_mutated and not snapshot.copied:
                    if not isinstance(exc, Exception):  # a real signal: put back what can be, go on ending
                        snapshot.restore(work)
                        raise
                    _restore(snapshot, work, known_hash, pass_)
                raise
            record.input_mutated = content_hash(work) != known_hash
            if record.input_mutated:
                if not snapshot.copied:
                    _restore(snapshot, work, known_hash, pass_)
                raise InputMutatedError(
                    f"pass '{pass_.name}' edited its input model in place (a pass must return a new model; "
                    "its edits were rolled back)",
                    pass_.name,
                )
            if result.model is work and not result.modified:
                result.model = model  # unchanged: keep the manager's own object (not the copy)
            record_provenance(model, result.model, pass_.name, index + 1)  # before instruments hash it
            for instrument in self.instruments:
                observation = instrument.after_pass(index, pass_, model, result)
                record.observe(observation)
                if observation is not None and observation.rejection is not None:
                    raise observation.rejection
        except GraphkitError as exc:
            error = _with_context(exc, pass_, index, run.done)
            stop = self.on_failure == "stop" or isinstance(exc, StopRun)
            record.status = PassStatus.FAILED if stop else PassStatus.ROLLED_BACK
            record.error = str(error)
            if not stop:
                logger.info("pass '%s' rolled back: %s", pass_.name, error)
            if record.traceback:
                logger.debug("traceback of pass '%s':\n%s", pass_.name, record.traceback.rstrip())
            for instrument in self.instruments:
                record.observe(instrument.pass_failed(index, pass_, model, error, result.model if result else None))
            if stop:
                run.failed, run.error = record, error
            return False
        finally:
            del work
        record.status = PassStatus.APPLIED if result.modified else PassStatus.UNCHANGED
        record.modified = result.modified
        record.counts.update(result.counts)
        record.declined = [{"site": d.site, "reason": d.reason} for d in result.declined]
        record.notes = [*record.notes, *result.notes]  # instruments' notes first
        run.model = result.model
        run.done.append(pass_.name)
        return result.modified


@dataclass
class _Run:
    """The state of one :meth:`PassManager.run`: the current model, the records, the passes applied."""

    model: onnx.ModelProto
    records: list[PassRecord]
    done: list[str]
    failed: PassRecord | None = None
    error: GraphkitError | None = None
    known: tuple[onnx.ModelProto, str] | None = None  # (model object, its content hash)


def _restore(snapshot: ModelSnapshot, model: onnx.ModelProto, hash_before: str, pass_: Pass) -> None:
    """Put back what ``pass_`` edited in place on ``model``; InputMutatedError when impossible."""
    snapshot.restore(model)
    if content_hash(model) != hash_before:
        raise StopRun(
            f"pass '{pass_.name}' edited the weights of its input model in place; they cannot be restored "
            "(large models are not copied before each pass), so the run stops and writes no model",
            pass_.name,
        )


def _traceback_of(error: BaseException) -> str:
    """The formatted traceback of what the pass raised: the innermost cause of ``error`` (the
    exception the pass's code raised before the contract wrapped it), with its own chain."""
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    return "".join(traceback.format_exception(root))


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
