"""onnxruntime sessions for validation: CPU, at a chosen graph optimization level.

Validation runs on optimized sessions by default (:class:`ValidationRuntime`, ``all``): the
optimizer preserves semantics and both sides of a comparison run through it, so a pass that
changes the function still changes the outputs; only float rounding moves, which the
tolerances allow. ``none`` is the strict mode for debugging a pass (what ORT runs is the graph
as written). Every forward of a full model run through :func:`run_session` while a
:class:`ForwardLog` is active is recorded there (purpose, model hash, case, batch, time).
A model proto is handed to ORT as its serialized graph with the large weights handed over in
memory (:func:`weights_apart`), also past the 2 GB protobuf limit: no temporary file, no
serialized copy of the weights (only a model whose small weights alone pass 2 GB goes through
a temporary file).
:class:`OrtBackend` is the "ort" inference backend (:mod:`graphkit.runtime.backend`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
import onnxruntime.capi.onnxruntime_pybind11_state as ort_state

from graphkit.ir.external_data import is_mapped, mapped_span, rooted_locations
from graphkit.ir.model_io import save_model, too_big_for_one_file, without_initializers
from graphkit.runtime.backend import Backend, TensorInfo, check_threads
from graphkit.util.console import progress_note
from graphkit.util.errors import FieldValueError, GraphkitError, InputError, RuntimeLoadError, one_line

logger = logging.getLogger(__name__)

# Every exception type onnxruntime raises for a model or input it cannot handle.
ORT_ERRORS = tuple(
    value
    for value in vars(ort_state).values()
    if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == ort_state.__name__
)


OPTIMIZATION_LEVELS = {
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
Optimization = Literal["all", "extended", "basic", "none"]
MAX_THREADS = 1024  # a thread pool of millions would exhaust the machine before failing


@dataclass(frozen=True)
class ValidationRuntime:
    """How validation runs onnxruntime (the pipeline's ``validate.runtime``).

    ``optimization`` is ORT's graph optimization level (``none``: the strict mode for
    debugging a pass); ``threads`` the intra-op threads (None: ORT's default). Both are
    checked here, so a bad value from YAML, ``--set`` or a flag is a FieldValueError.
    """

    optimization: Optimization = "all"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.optimization not in OPTIMIZATION_LEVELS:
            raise FieldValueError(
                "optimization", f"must be one of {', '.join(OPTIMIZATION_LEVELS)}, got {self.optimization!r}"
            )
        threads = self.threads
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS
        ):
            raise FieldValueError("threads", f"must be an integer from 1 to {MAX_THREADS} or null, got {threads!r:.40}")


@dataclass
class Forward:
    """One forward of a full model (not a region): why, which model, which case, how long."""

    purpose: str
    model_hash: str
    case: str
    batch: int
    seconds: float
    optimization: str
    backend: str = "onnxruntime"


@dataclass
class ForwardLog:
    """The forwards of one run, in order (see :func:`recording_forwards`)."""

    forwards: list[Forward] = field(default_factory=list)

    def b1_equivalents(self) -> int:
        """Forwards weighted by batch size (a batch-2 forward costs about two batch-1 ones)."""
        return sum(f.batch for f in self.forwards)

    def summary_line(self) -> str:
        ort_forwards = [f for f in self.forwards if f.backend == "onnxruntime"]
        others = len(self.forwards) - len(ort_forwards)
        text = f"forwards: {len(ort_forwards)} (b1-equivalents {sum(f.batch for f in ort_forwards)})"
        return text + (f" + {others} reference" if others else "")


_FORWARD_LOG: contextvars.ContextVar[ForwardLog | None] = contextvars.ContextVar("forward_log", default=None)
_PURPOSE: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("purpose", default=("", ""))


@contextlib.contextmanager
def recording_forwards(log: ForwardLog) -> Iterator[ForwardLog]:
    """Record every full-model forward run inside the block into ``log``."""
    token = _FORWARD_LOG.set(log)
    try:
        yield log
    finally:
        _FORWARD_LOG.reset(token)


def active_forward_log() -> ForwardLog | None:
    """The ForwardLog recording now, if any."""
    return _FORWARD_LOG.get()


@contextlib.contextmanager
def forward_purpose(purpose: str, model_hash: str = "") -> Iterator[None]:
    """Name the purpose (and model hash) of the forwards run inside the block."""
    token = _PURPOSE.set((purpose, model_hash))
    try:
        yield
    finally:
        _PURPOSE.reset(token)


def record_forward(case: str, batch: int, seconds: float, optimization: str, backend: str = "onnxruntime") -> None:
    """Add one forward to the active log (if any) under the current purpose."""
    log = _FORWARD_LOG.get()
    if log is not None:
        purpose, model_hash = _PURPOSE.get()
        log.forwards.append(
            Forward(purpose or "unnamed", model_hash, case, batch, round(seconds, 3), optimization, backend)
        )


def session_options(threads: int | None = None, optimization: str = "none") -> ort.SessionOptions:
    """Session options at ORT graph optimization level ``optimization``, ``threads`` intra-op threads."""
    if optimization not in OPTIMIZATION_LEVELS:
        raise FieldValueError("optimization", f"must be one of {', '.join(OPTIMIZATION_LEVELS)}, got {optimization!r}")
    options = ort.SessionOptions()
    options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
    # no CPU arena: a validation session runs a few forwards, and the arena grows by doubling and
    # never gives memory back to the system (see docs/validation.md for the measured peak)
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 4  # errors come back as exceptions; its own log lines would double them
    # idle intra-op threads sleep instead of spinning: no change to what is computed, and a
    # validation session's parallel init left them burning a core for nothing (swin, level all:
    # 40 -> 20 ms CPU per session; docs/corpus.md "Time")
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if check_threads(threads):
        options.intra_op_num_threads = threads
    return options


def create_session(
    model: onnx.ModelProto | str | os.PathLike,
    threads: int | None = None,
    optimization: str = "none",
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> ort.InferenceSession:
    """An InferenceSession for a model proto or a path at graph optimization level ``optimization``.

    A model onnxruntime cannot load raises RuntimeLoadError (one line, exit code 2).
    """
    options = session_options(threads, optimization)
    try:
        if isinstance(model, onnx.ModelProto):
            light, names, values = weights_apart(model)
            mapped = sum(mapped_span(t)[2] for t in light.graph.initializer if is_mapped(t))
            if rooted_locations(light):  # ORT maps the weights' files itself: no copy of ours
                options.add_session_config_entry(FOLDER_CONFIG, "/")
                if mapped >= NO_PREPACK_MIN_BYTES:  # nor one of its own (see NO_PREPACK_MIN_BYTES)
                    options.add_session_config_entry("session.disable_prepacking", "1")
            if too_big_for_one_file(light):  # small weights alone past 2 GB: through a file
                del light, names, values
                options = session_options(threads, optimization)  # its data lies beside it, not under "/"
                with tempfile.TemporaryDirectory() as tmp:
                    path = save_model(model, Path(tmp) / "model.onnx", external_data=True)
                    return ort.InferenceSession(str(path), options, providers=list(providers))
            if names:
                try:
                    options.add_external_initializers(names, values)  # copied in: they need not outlive the call
                except RuntimeError:  # not expected (weights_apart hands over only what ORT takes): the plain way
                    options = session_options(threads, optimization)
                    light = model
            return ort.InferenceSession(light.SerializeToString(), options, providers=list(providers))
        return ort.InferenceSession(str(model), options, providers=list(providers))
    except ORT_ERRORS as exc:
        raise RuntimeLoadError(cannot_load_message(model, exc)) from exc


# A model handed over as bytes reads its external data from this folder: "/" with the mapped
# stubs' locations made relative to it (ORT refuses absolute ones). Given the files, ORT
# memory-maps each page-aligned weight and reads the others; its CPU kernels then pre-pack what
# they pre-pack (their usual copy): a session holds the weights once, not the proto's copy, ours
# and its own (measured in docs/speed.md; outputs bit-identical to weights handed in memory).
FOLDER_CONFIG = "session.model_external_initializers_file_folder_path"

# A session over at least this many bytes of mapped weights does not pre-pack them: pre-packing
# gives each session a fresh copy of every MatMul weight (allocated, zeroed and filled: most of a
# large model's system CPU, one copy per session); unpacked, MLAS packs panels per call in a small
# buffer and the session holds only the mapped file pages. Outputs move in the last bits (max
# abs 2.4e-7 on the issue 24 model), far inside every tolerance; the golden set of a mapped model
# is recorded by such a session too, so its checks compare like with like (docs/speed.md).
NO_PREPACK_MIN_BYTES = 64 << 20


# Element types handed to ORT as in-memory external initializers (those numpy and ORT share as is).
_EXTERNAL_DTYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.INT16: np.int16,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.UINT16: np.uint16,
    onnx.TensorProto.UINT32: np.uint32,
    onnx.TensorProto.UINT64: np.uint64,
    onnx.TensorProto.BOOL: np.bool_,
}
EXTERNAL_MIN_BYTES = 4096  # smaller weights stay in the proto: ORT's shape inference reads small constants


def weights_apart(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str], list[ort.OrtValue]]:
    """``model`` with its large main-graph weights as in-memory external data, and those weights.

    Handing a session the weights as OrtValues (``SessionOptions.add_external_initializers``,
    which copies them in before any optimization) skips serializing them into one protobuf
    string and parsing them back: the same bytes reach ORT, at a fraction of the cost on a
    model of hundreds of MB. ``model`` is not modified; weights that are not raw little-endian
    data of a plain numeric type, are small, or share their name with another initializer (ORT
    reads the first; its external-initializer API refuses the name) stay in the returned proto.
    """
    light = without_initializers(model)
    names: list[str] = []
    values: list[ort.OrtValue] = []
    repeated = {name for name, count in Counter(t.name for t in model.graph.initializer).items() if count > 1}
    for tensor in model.graph.initializer:
        dtype = _EXTERNAL_DTYPES.get(tensor.data_type) if tensor.name not in repeated else None
        raw = tensor.raw_data if dtype is not None and tensor.data_location != onnx.TensorProto.EXTERNAL else b""
        if len(raw) < EXTERNAL_MIN_BYTES or len(raw) != np.dtype(dtype).itemsize * int(
            np.prod(tensor.dims, dtype=np.int64)
        ):
            light.graph.initializer.append(tensor)
            continue
        stub = light.graph.initializer.add()
        stub.name, stub.data_type = tensor.name, tensor.data_type
        stub.dims.extend(tensor.dims)
        stub.data_location = onnx.TensorProto.EXTERNAL
        stub.external_data.add(key="location", value="graphkit-in-memory")
        array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(tuple(tensor.dims))
        names.append(tensor.name)
        values.append(ort.OrtValue.ortvalue_from_numpy(array.astype(dtype, copy=False)))
    return light, names, values


def cannot_load_message(model: onnx.ModelProto | str | os.PathLike, exc: BaseException, what: str = "") -> str:
    """'onnxruntime cannot load <what>: <its reason>', noting custom-domain ops (valid ONNX)."""
    what = what or ("the model" if isinstance(model, onnx.ModelProto) else os.fspath(model))
    message = f"onnxruntime cannot load {what}: {ort_reason(exc)}"
    if isinstance(model, onnx.ModelProto):
        custom = sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})
        if custom:
            message += f" (custom-domain ops {', '.join(custom[:5])} are valid ONNX but need an onnxruntime kernel)"
    return message


def ort_reason(exc: BaseException, limit: int = 2000) -> str:
    """onnxruntime's message on one line, without its C++ source location and function signature."""
    text = one_line(exc, None)
    located = text.find("/onnxruntime_src/")
    if located >= 0:
        head, tail = text[:located], text[located:]
        cut = tail.find(" ") + 1  # past "file.cc:LINE "
        depth, end = 0, cut
        for position in range(cut, len(tail)):  # skip a "type name(args...)" signature
            if tail[position] == "(":
                depth += 1
            elif tail[position] == ")":
                depth -= 1
                if depth == 0:
                    end = position + 1
                    break
        text = head + tail[end:].lstrip()
    return text[:limit]


def ort_error_text(error: BaseException, limit: int = 2000) -> str:
    """An onnxruntime error on one line without its noise (see :func:`ort_reason`), also
    without graphkit's own wrapping ("Input shape:{2,8,16,16}, requested shape:{1,2048}" stays)."""
    if isinstance(error, RuntimeLoadError):
        text = str(error)  # already cleaned, with the custom-domain note
    else:
        source = error.__cause__ if isinstance(error, GraphkitError) and error.__cause__ else error  # untruncated
        text = ort_reason(source, limit=10 * limit)
    text = re.sub(r"\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    return text[:limit] or error.__class__.__name__


def run_session(
    session: ort.InferenceSession,
    feeds: Mapping[str, np.ndarray],
    outputs: Sequence[str] | None = None,
    case: str | None = None,
) -> dict[str, np.ndarray]:
    """Run a session; returns outputs by name. Input mismatches become InputError.

    ``case`` marks a forward of a whole model on that case: it goes into the active ForwardLog.
    """
    names = list(outputs) if outputs else [o.name for o in session.get_outputs()]
    expected = {i.name for i in session.get_inputs()}
    if set(feeds) != expected:
        raise InputError(f"inputs {sorted(feeds)} do not match the model's inputs {sorted(expected)}")
    if case is not None:
        progress_note(f"forward {case}")
    start = time.perf_counter()
    try:
        values = session.run(names, dict(feeds))
    except ORT_ERRORS as exc:
        raise InputError(f"onnxruntime failed to run the model on these inputs: {ort_reason(exc)}") from exc
    seconds = time.perf_counter() - start
    logger.debug("onnxruntime forward%s: batch %d, %.3f s", f" (case {case})" if case else "", _batch(feeds), seconds)
    if case is not None:
        record_forward(case, _batch(feeds), seconds, session_level(session))
    return dict(zip(names, values))


def session_level(session: ort.InferenceSession) -> str:
    """The graph optimization level name a session was made with."""
    level = session.get_session_options().graph_optimization_level
    return next((name for name, value in OPTIMIZATION_LEVELS.items() if value == level), str(level))


def _batch(feeds: Mapping[str, np.ndarray]) -> int:
    first = next(iter(feeds.values()), None)
    shape = np.shape(first) if first is not None else ()
    return int(shape[0]) if shape else 1


def run_ort(
    model: onnx.ModelProto | str | os.PathLike,
    feeds: Mapping[str, np.ndarray],
    outputs: Sequence[str] | None = None,
    threads: int | None = None,
    optimization: str = "none",
) -> dict[str, np.ndarray]:
    """Run a model once on CPU at graph optimization level ``optimization``."""
    return run_session(create_session(model, threads=threads, optimization=optimization), feeds, outputs)


class OrtBackend(Backend):
    """The "ort" backend: CPU by default, full graph optimizations unless ``optimize=False``.

    ``model_path`` is an ONNX file or a model proto (large weights are handed to onnxruntime in
    memory, see :func:`create_session`). ``optimization`` names the graph optimization level and
    overrides ``optimize``: validation opens this backend through
    :func:`graphkit.runtime.backend.open_validation_backend` at ``validate.runtime``'s level, and
    ``run`` then takes the outputs to compute and the golden case a forward belongs to.
    """

    name = "ort"

    def __init__(
        self,
        model_path: onnx.ModelProto | str | os.PathLike,
        threads: int | None = None,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        optimize: bool = True,
        io_binding: bool = False,
        optimization: str | None = None,
    ):
        level = optimization if optimization is not None else ("all" if optimize else "none")
        self.session = create_session(model_path, threads=threads, optimization=level, providers=providers)
        self.inputs = [_info(v) for v in self.session.get_inputs()]
        self.outputs = [_info(v) for v in self.session.get_outputs()]
        # io-binding lets ORT place outputs where the provider wants them (it helps with device
        # providers; on CPU it only skips a copy of the feeds).
        self.io_binding = io_binding

    def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None, case: str | None = None
    ) -> dict[str, np.ndarray]:
        """Run one batch (see :func:`run_session`: ``outputs`` to compute, ``case`` for the ForwardLog)."""
        if not self.io_binding or outputs or case is not None:
            return run_session(self.session, feeds, outputs, case)
        return self._run_bound(feeds)

    def close(self) -> None:
        """Drop the session (its memory goes back once nothing else holds it)."""
        self.session = None

    def _run_bound(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        expected = {i.name for i in self.inputs}
        if set(feeds) != expected:
            raise InputError(f"inputs {sorted(feeds)} do not match the model's inputs {sorted(expected)}")
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for info in self.outputs:
            binding.bind_output(info.name)
        self.session.run_with_iobinding(binding)
        return dict(zip([o.name for o in self.outputs], binding.copy_outputs_to_cpu()))


# onnxruntime's tensor type names -> numpy dtypes (other types, such as sequences, read as float32)
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


def _info(arg) -> TensorInfo:
    return TensorInfo(arg.name, tuple(arg.shape), np.dtype(ORT_DTYPES.get(arg.type, np.float32)))
