"""One interface for inference backends: onnxruntime (default), torch (reference), ais_bench.

A backend is opened on a model and runs batches of named numpy arrays::

    with open_backend("ort", "model.onnx", threads=2) as backend:
        outputs = backend.run({"image": batch})   # {"cls": ..., "mask": ...}

Backends are looked up by name in ``BACKENDS``; optional ones (ais_bench) register only when
their runtime imports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from graphkit.errors import GraphkitError
from graphkit.typed import close_names


@dataclass(frozen=True)
class TensorInfo:
    """Name, dims (ints or symbolic names) and numpy dtype of a model input or output."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype


class Backend:
    """Base class: subclasses set ``inputs``/``outputs`` and implement ``run``."""

    name = ""
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        """Run one batch; returns every output by name, in the model's output order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the session (no-op by default)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OrtBackend(Backend):
    """onnxruntime; CPU by default, full graph optimizations unless ``optimize=False``.

    Validation uses :mod:`graphkit.runtime.ort` (optimizations off); this backend is for
    speed and accuracy runs, where ORT's optimizations are what a user would deploy.
    """

    name = "ort"

    def __init__(
        self,
        model_path: str | os.PathLike,
        threads: int | None = None,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        optimize: bool = True,
    ):
        from graphkit.runtime.ort import create_session

        self.session = create_session(model_path, threads=threads, optimize=optimize, providers=providers)
        self.inputs = [_info(v) for v in self.session.get_inputs()]
        self.outputs = [_info(v) for v in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from graphkit.runtime.ort import run_session

        return run_session(self.session, feeds)


def _info(arg) -> TensorInfo:
    dtype_map = {
        "tensor(float)": np.float32,
        "tensor(float16)": np.float16,
        "tensor(double)": np.float64,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
        "tensor(uint8)": np.uint8,
        "tensor(bool)": np.bool_,
    }
    return TensorInfo(arg.name, tuple(arg.shape), np.dtype(dtype_map.get(arg.type, np.float32)))


BACKENDS: dict[str, Callable[..., Backend]] = {"ort": OrtBackend}


def open_backend(name: str, model_path: str | os.PathLike, **options) -> Backend:
    """Open backend ``name`` on ``model_path``; unknown or unavailable names are user errors."""
    if name not in BACKENDS:
        raise GraphkitError(
            f"unknown or unavailable backend '{name}'{close_names(name, BACKENDS)}; available: {', '.join(BACKENDS)}"
        )
    return BACKENDS[name](model_path, **options)
