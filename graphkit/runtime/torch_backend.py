"""The torch reference backend: runs a PyTorch module behind the :class:`Backend` interface.

A torch model is not an ONNX file, so the backend is opened on one of:

- an ``nn.Module`` (or any callable taking tensors);
- a zero-argument factory returning one;
- a ``"package.module:factory"`` string naming such a factory (for the CLI), e.g.
  ``graphkit.wseg.network:<factory>`` when that module provides one.

Inputs are fed positionally in ``input_names`` order; outputs (a tensor, a tuple/list, or a
dict) are returned under ``output_names`` (default ``output_0``, ``output_1``... or the dict's
keys). The module runs in eval mode under ``torch.inference_mode()``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from graphkit.runtime.backend import Backend, TensorInfo, check_threads
from graphkit.util.errors import GraphkitError, InputError


def resolve_module(source: Any) -> Callable:
    """The callable model for ``source`` (module, factory, or "module:factory" string)."""
    import torch

    if isinstance(source, str):
        module_name, _, attr = source.partition(":")
        if not attr:
            raise GraphkitError(f"torch model '{source}': expected 'package.module:factory'")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise GraphkitError(f"torch model '{source}': cannot import {module_name} ({exc})") from exc
        if not hasattr(module, attr):
            raise GraphkitError(f"torch model '{source}': {module_name} has no '{attr}'")
        source = getattr(module, attr)
    if isinstance(source, torch.nn.Module):
        return source.eval()
    if callable(source):
        built = source()
        if isinstance(built, torch.nn.Module):
            return built.eval()
        if callable(built):
            return built
    raise GraphkitError(f"torch model {source!r}: not an nn.Module, a factory, or 'module:factory'")


class TorchBackend(Backend):
    """A PyTorch module on CPU (the reference the ONNX graph is compared with)."""

    name = "torch"

    def __init__(
        self,
        model: Any,
        input_names: Sequence[str] = ("image",),
        output_names: Sequence[str] | None = None,
        input_shapes: Mapping[str, Sequence[int | str | None]] | None = None,
        threads: int | None = None,
        dtype: str = "float32",
    ):
        import torch

        if check_threads(threads):
            torch.set_num_threads(threads)
        self.module = resolve_module(model)
        self.input_names = list(input_names)
        self.output_names = list(output_names) if output_names else None
        shapes = dict(input_shapes or {})
        self.inputs = [TensorInfo(n, tuple(shapes.get(n, ())), np.dtype(dtype)) for n in self.input_names]
        self.outputs = [TensorInfo(n, (), np.dtype(dtype)) for n in self.output_names or ()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        if set(feeds) != set(self.input_names):
            raise InputError(f"inputs {sorted(feeds)} do not match the torch model's inputs {self.input_names}")
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.input_names]
        with torch.inference_mode():
            result = self.module(*args)
        if isinstance(result, Mapping):
            names = self.output_names or list(result)
            values = [result[k] for k in result]
        else:
            values = list(result) if isinstance(result, (tuple, list)) else [result]
            names = self.output_names or [f"output_{k}" for k in range(len(values))]
        if len(names) != len(values):
            raise InputError(f"torch model returned {len(values)} outputs, {len(names)} output names given")
        if not self.outputs:
            self.outputs = [
                TensorInfo(n, tuple(v.shape), np.dtype(str(v.dtype).removeprefix("torch.")))
                for n, v in zip(names, values)
            ]
        return {n: v.detach().cpu().numpy() for n, v in zip(names, values)}
