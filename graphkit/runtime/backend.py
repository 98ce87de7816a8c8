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

from graphkit.util.errors import GraphkitError, InputError
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


class OrtBackend(Backend):
    """onnxruntime; CPU by default, full graph optimizations unless ``optimize=False``.

    Validation uses :mod:`graphkit.runtime.ort` (at ``validate.runtime``'s level); this backend is for
    speed and accuracy runs, where ORT's optimizations are what a user would deploy.
    """

    name = "ort"

    def __init__(
        self,
        model_path: str | os.PathLike,
        threads: int | None = None,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        optimize: bool = True,
        io_binding: bool = False,
    ):
        from graphkit.runtime.ort import create_session

        self.session = create_session(
            model_path, threads=threads, optimization="all" if optimize else "none", providers=providers
        )
        self.inputs = [_info(v) for v in self.session.get_inputs()]
        self.outputs = [_info(v) for v in self.session.get_outputs()]
        # io-binding lets ORT place outputs where the provider wants them (it helps with device
        # providers; on CPU it only skips a copy of the feeds).
        self.io_binding = io_binding

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from graphkit.runtime.ort import run_session

        if not self.io_binding:
            return run_session(self.session, feeds)
        return self._run_bound(feeds)

    def _run_bound(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from graphkit.util.errors import InputError

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


def _open_torch(model, **options) -> Backend:
    from graphkit.runtime.torch_backend import TorchBackend

    return TorchBackend(model, **options)


BACKENDS: dict[str, Callable[..., Backend]] = {"ort": OrtBackend, "torch": _open_torch}


def _register_ais_bench() -> None:
    """Add the "ais_bench" backend when Ascend's ais_bench runtime is installed (never faked)."""
    import importlib.util

    try:
        if importlib.util.find_spec("ais_bench") is None:
            return
        import ais_bench.infer.interface  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken CANN install must not break graphkit
        return
    from graphkit.runtime.ais_bench import AisBenchBackend

    BACKENDS["ais_bench"] = AisBenchBackend


_register_ais_bench()


def open_backend(name: str, model_path: str | os.PathLike, **options) -> Backend:
    """Open backend ``name`` on ``model_path``; unknown or unavailable names are user errors.

    ``model_path`` is an ONNX file for "ort", an OM file for "ais_bench", and for "torch" an
    ``nn.Module``, a zero-argument factory, or a ``"module:factory"`` string.
    """
    if name == "ais_bench" and name not in BACKENDS:
        raise GraphkitError("backend 'ais_bench' is unavailable: ais_bench.infer.interface does not import here")
    if name not in BACKENDS:
        raise GraphkitError(
            f"unknown or unavailable backend '{name}'{close_names(name, BACKENDS)}; available: {', '.join(BACKENDS)}"
        )
    return BACKENDS[name](model_path, **options)
