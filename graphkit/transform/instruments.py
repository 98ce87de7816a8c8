"""Instruments run around every pass (after TVM's PassContext instruments): the base class and
the cheap ones (timing, honesty, op counts, ONNX checker + shape inference).

An instrument sees each pass before and after it runs and returns what it saw as an
:class:`~graphkit.transform.record.Observation`; the manager builds the pass's record from
those (an instrument never writes the record, the pass's result or another instrument's
state). ``after_pass`` rejects the pass's result by raising a
:class:`~graphkit.util.errors.GraphkitError` or by returning an observation with a
``rejection``; the manager then rolls the model back to what it was before the pass.

The instruments that run the model (golden and region checks, batch stacking, per-pass diffs)
live in :mod:`graphkit.check.instruments`: importing the pass manager imports neither
onnxruntime nor the diff nor the golden sets.
"""

from __future__ import annotations

import time

import onnx

from graphkit.ir.model_check import check_tensor_sizes
from graphkit.ir.model_io import check_model, content_hash, infer_shapes, op_counts
from graphkit.ir.shapes import skeleton
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.record import Observation
from graphkit.util.errors import PassError


class Instrument:
    """Hooks around each pass; the default implementations observe nothing.

    ``index`` is the pass's position in the run (0-based).
    """

    def before_pass(self, index: int, pass_: Pass, model: onnx.ModelProto) -> Observation | None:
        """Called before the pass runs."""
        return None

    def after_pass(self, index: int, pass_: Pass, before: onnx.ModelProto, result: PassResult) -> Observation | None:
        """Called after a pass returned; raise a GraphkitError (or return an observation with a
        ``rejection``) to reject (roll back) its result."""
        return None

    def pass_failed(
        self,
        index: int,
        pass_: Pass,
        before: onnx.ModelProto,
        error: Exception,
        rejected: onnx.ModelProto | None = None,
    ) -> Observation | None:
        """Called after a pass was rejected; the model is back to ``before``.

        ``rejected`` is the model the pass returned, when it returned one.
        """
        return None


class Timing(Instrument):
    """Wall time of the pass itself (``times.pass``); instruments time their own work."""

    def __init__(self):
        self._start = 0.0

    def before_pass(self, index, pass_, model):
        self._start = time.perf_counter()

    def after_pass(self, index, pass_, before, result):
        return Observation(times={"pass": time.perf_counter() - self._start})


class InputMutatedError(PassError):
    """A pass edited the model it was given in place (the manager's copy; its edits are dropped)."""


class Honesty(Instrument):
    """Checks that ``modified`` tells the truth (in-place edits of the input: the manager).

    The input's content hash is taken before every pass, the first included (reusing the hash
    of the previous pass's result when that very object is the input).
    """

    def __init__(self):
        self._latest: tuple[onnx.ModelProto, str] | None = None  # (model object, its hash)
        self._before = ""

    def before_pass(self, index, pass_, model):
        start = time.perf_counter()
        if self._latest is None or self._latest[0] is not model:
            self._latest = (model, content_hash(model))
        self._before = self._latest[1]
        return Observation(times={"honesty": time.perf_counter() - start})

    def after_pass(self, index, pass_, before, result):
        start = time.perf_counter()
        hash_before = self._before  # the pass ran on a copy: the manager checks that copy for in-place edits
        if result.model is before:
            changed = False
            result.content_hash = hash_before
        else:
            hash_after = content_hash(result.model)
            changed = hash_after != hash_before
            self._latest = (result.model, hash_after)
            result.content_hash = hash_after
        if changed != result.modified:
            said = "changed nothing" if not result.modified else "changed the model"
            raise PassError(f"pass '{pass_.name}' said it {said}, but the content hash says otherwise", pass_.name)
        return Observation(times={"honesty": time.perf_counter() - start})


class OpCounts(Instrument):
    """Node counts before/after and the op-count delta."""

    def after_pass(self, index, pass_, before, result):
        old, new = op_counts(before), op_counts(result.model)
        return Observation(
            nodes_before=sum(old.values()),
            nodes_after=sum(new.values()),
            op_delta={
                op: [old.get(op, 0), new.get(op, 0)]
                for op in sorted(set(old) | set(new))
                if old.get(op, 0) != new.get(op, 0)
            },
        )


class Verify(Instrument):
    """ONNX checker and strict shape inference on every changed model.

    Both run on the graph with its large initializers turned into typed inputs
    (:func:`graphkit.ir.shapes.skeleton`), whose data is checked for size separately.
    """

    def after_pass(self, index, pass_, before, result):
        if not result.modified:
            return None
        start = time.perf_counter()
        what = f"output of pass '{pass_.name}'"
        # the graph without its large weights: no 500 MB serialization per pass; the weights
        # themselves are checked for size against their declared dims
        check_tensor_sizes(result.model, what)
        light = skeleton(result.model)
        check_model(light, what)
        infer_shapes(light, what)
        return Observation(times={"verify": time.perf_counter() - start})
