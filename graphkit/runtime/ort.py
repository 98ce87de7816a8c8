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

from graphkit.errors import InputError, one_line
from graphkit.model import save_model, too_big_for_one_file
from graphkit.runtime.backend import check_threads


def session_options(threads: int | None = None, optimize: bool = False) -> ort.SessionOptions:
    """Session options: optimizations off unless ``optimize``, ``threads`` intra-op threads."""
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    options.log_severity_level = 3
    if check_threads(threads):
        options.intra_op_num_threads = threads
    return options


def create_session(
    model: onnx.ModelProto | str | os.PathLike,
    threads: int | None = None,
    optimize: bool = False,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> ort.InferenceSession:
    """An InferenceSession for a model proto or a path."""
    options = session_options(threads, optimize)
    if isinstance(model, onnx.ModelProto):
        if too_big_for_one_file(model):
            with tempfile.TemporaryDirectory() as tmp:
                path = save_model(model, Path(tmp) / "model.onnx", external_data=True)
                return ort.InferenceSession(str(path), options, providers=list(providers))
        return ort.InferenceSession(model.SerializeToString(), options, providers=list(providers))
    return ort.InferenceSession(str(model), options, providers=list(providers))


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
    except (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ort.capi.onnxruntime_pybind11_state.Fail) as exc:
        raise InputError(f"onnxruntime rejected the inputs: {one_line(exc, 300)}") from exc
    return dict(zip(names, values))


def run_ort(
    model: onnx.ModelProto | str | os.PathLike,
    feeds: Mapping[str, np.ndarray],
    outputs: Sequence[str] | None = None,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Run a model once on CPU with graph optimizations disabled."""
    return run_session(create_session(model, threads=threads), feeds, outputs)
