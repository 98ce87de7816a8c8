"""One interface for inference backends: onnxruntime (default), torch (reference), ais_bench.

A backend is opened on a model and runs batches of named numpy arrays::

    with open_backend("ort", "model.onnx", threads=2) as backend:
        outputs = backend.run({"image": batch})   # {"cls": ..., "mask": ...}

Backends are looked up by name in ``BACKENDS`` (a :class:`~graphkit.util.plugin_registry.Registry`):
ort (:mod:`graphkit.runtime.ort`), torch (:mod:`graphkit.runtime.torch_backend`), ais_bench
(:mod:`graphkit.runtime.ais_bench`, registered only when its runtime imports) and any entry point
of the group ``graphkit.backends``. This module defines the interface and imports no backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from graphkit.util.errors import GraphkitError, InputError
from graphkit.util.plugin_registry import Registry
from graphkit.util.typed_config import close_names


def check_threads(threads: int | None) -> int | None:
    """``threads`` if it is None or an integer >= 0 (0: the runtime's default); InputError otherwise."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
        raise InputError(f"threads: must be an integer >= 0 (0 or unset: the runtime's default), got {threads!r:.40}")
    return threads


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


BACKENDS: Registry[Callable[..., Backend]] = Registry(
    "graphkit.backends", "backend", callable, "callable (a Backend class or a factory)"
)
"""Backend name -> class or factory ``(model_path, **options) -> Backend``. Built-in entries are
``"module:attr"`` references imported on first use (this module imports no backend); other
packages add theirs as entry points of the group ``graphkit.backends``."""
BACKENDS.register("ort", "graphkit.runtime.ort:OrtBackend")
BACKENDS.register("torch", "graphkit.runtime.torch_backend:TorchBackend")


def _register_ais_bench() -> None:
    """Add the "ais_bench" backend when Ascend's ais_bench runtime is installed (never faked)."""
    import importlib.util

    try:
        if importlib.util.find_spec("ais_bench") is None:
            return
        import ais_bench.infer.interface  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken CANN install must not break graphkit
        return
    BACKENDS.register("ais_bench", "graphkit.runtime.ais_bench:AisBenchBackend")


_register_ais_bench()


VALIDATION_BACKEND = "ort"
"""The backend every validation runs on (golden outputs, golden checks, regions, batch proofs,
localize): onnxruntime on CPU, whose graph optimizations both sides of a comparison share."""


def open_validation_backend(model, optimization: str = "none", threads: int | None = None) -> Backend:
    """The validation backend (``BACKENDS[VALIDATION_BACKEND]``) opened on a model proto or path.

    ``optimization`` is onnxruntime's graph optimization level (``none``: the strict mode) and
    ``threads`` its intra-op threads; the session is a validation session (no CPU memory arena,
    large weights handed over in memory). Its ``run(feeds, outputs=None, case=None)`` computes
    ``outputs`` (default: all) and records a whole-model forward of golden case ``case``. A model
    it cannot load raises RuntimeLoadError.
    """
    return open_backend(VALIDATION_BACKEND, model, optimization=optimization, threads=threads)


def open_backend(name: str, model_path: str | os.PathLike, **options) -> Backend:
    """Open backend ``name`` on ``model_path``; unknown or unavailable names are user errors.

    ``model_path`` is an ONNX file or model proto for "ort", an OM file for "ais_bench", and for "torch" an
    ``nn.Module``, a zero-argument factory, or a ``"module:factory"`` string.
    """
    if name == "ais_bench" and name not in BACKENDS:
        raise GraphkitError("backend 'ais_bench' is unavailable: ais_bench.infer.interface does not import here")
    if name not in BACKENDS:
        raise GraphkitError(
            f"unknown or unavailable backend '{name}'{close_names(name, BACKENDS)}; available: {', '.join(BACKENDS)}"
        )
    return BACKENDS[name](model_path, **options)
