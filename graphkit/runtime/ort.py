"""onnxruntime sessions for validation: CPU, graph optimizations disabled by default.

ORT's own fusions would hide the difference a pass makes, so validation never enables them.
Models over the 2 GB protobuf limit are handed to ORT through a temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import onnxruntime.capi.onnxruntime_pybind11_state as ort_state

from graphkit.errors import InputError, RuntimeLoadError, one_line
from graphkit.model import save_model, too_big_for_one_file
from graphkit.runtime.backend import check_threads

# Every exception type onnxruntime raises for a model or input it cannot handle.
ORT_ERRORS = tuple(
    value
    for value in vars(ort_state).values()
    if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == ort_state.__name__
)


def session_options(threads: int | None = None, optimize: bool = False) -> ort.SessionOptions:
    """Session options: optimizations off unless ``optimize``, ``threads`` intra-op threads."""
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    options.log_severity_level = 4  # errors come back as exceptions; its own log lines would double them
    if check_threads(threads):
        options.intra_op_num_threads = threads
    return options


def create_session(
    model: onnx.ModelProto | str | os.PathLike,
    threads: int | None = None,
    optimize: bool = False,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> ort.InferenceSession:
    """An InferenceSession for a model proto or a path.

    A model onnxruntime cannot load raises RuntimeLoadError (one line, exit code 2).
    """
    options = session_options(threads, optimize)
    try:
        if isinstance(model, onnx.ModelProto):
            if too_big_for_one_file(model):
                with tempfile.TemporaryDirectory() as tmp:
                    path = save_model(model, Path(tmp) / "model.onnx", external_data=True)
                    return ort.InferenceSession(str(path), options, providers=list(providers))
            return ort.InferenceSession(model.SerializeToString(), options, providers=list(providers))
        return ort.InferenceSession(str(model), options, providers=list(providers))
    except ORT_ERRORS as exc:
        raise RuntimeLoadError(cannot_load_message(model, exc)) from exc


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


def run_session(
    session: ort.InferenceSession, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Run a session; returns outputs by name. Input mismatches become InputError."""
    names = list(outputs) if outputs else [o.name for o in session.get_outputs()]
    expected = {i.name for i in session.get_inputs()}
    if set(feeds) != expected:
        raise InputError(f"inputs {sorted(feeds)} do not match the model's inputs {sorted(expected)}")
    try:
        values = session.run(names, dict(feeds))
    except ORT_ERRORS as exc:
        raise InputError(f"onnxruntime failed to run the model on these inputs: {ort_reason(exc)}") from exc
    return dict(zip(names, values))


def run_ort(
    model: onnx.ModelProto | str | os.PathLike,
    feeds: Mapping[str, np.ndarray],
    outputs: Sequence[str] | None = None,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Run a model once on CPU with graph optimizations disabled."""
    return run_session(create_session(model, threads=threads), feeds, outputs)
