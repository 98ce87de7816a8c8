"""The worker side of :mod:`graphkit.runtime.ray_executor`: what is shipped, and the actor body.

:func:`model_files` reads the model file and the ONNX external data files it names (refusing
locations that leave the model's folder) into the arrays the driver puts in Ray's object store
once. :class:`SessionWorker` is the actor body (wrapped with ``ray.remote`` by the executor): it
writes those files to a private temporary folder, opens one backend session on them, deletes
the copy, and runs ``task(session, payload)`` items. Ray is imported only inside the actor.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.util.errors import GraphkitError, ModelLoadError, one_line


def ort_providers(num_gpus: float, available: Iterable[str]) -> tuple[str, ...]:
    """The ort execution providers of a worker: CUDA first when it has a GPU and ort offers CUDA."""
    if num_gpus > 0 and "CUDAExecutionProvider" in set(available):
        return ("CUDAExecutionProvider", "CPUExecutionProvider")
    return ("CPUExecutionProvider",)


def model_files(model_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The bytes to ship: the model file plus, for ONNX, the external data files it names."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    files = {path.name: np.fromfile(path, dtype=np.uint8)}
    if path.suffix.lower() == ".onnx":
        for location in _external_locations(path):
            relative = Path(location)
            if relative.is_absolute() or ".." in relative.parts:
                raise ModelLoadError(f"{path}: external data location {location!r} leaves the model's folder")
            source = path.parent / relative
            if not source.is_file():
                raise ModelLoadError(f"{path}: external data file {source} is missing")
            files[relative.as_posix()] = np.fromfile(source, dtype=np.uint8)
    return files


def _external_locations(path: Path) -> list[str]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise ModelLoadError(f"{path}: not a readable ONNX model ({one_line(exc, 200)})") from exc
    tensors = list(model.graph.initializer)
    tensors += [a.t for n in model.graph.node for a in n.attribute if a.HasField("t")]
    locations = []
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entry = {e.key: e.value for e in tensor.external_data}
            if entry.get("location") and entry["location"] not in locations:
                locations.append(entry["location"])
    return locations


class SessionWorker:
    """The actor body (wrapped with ``ray.remote`` at start): one backend session per worker."""

    def __init__(self, model: list, model_name: str, backend: str, options: dict, num_gpus: float):
        """``model`` is ``[ref]``: the ObjectRef of the shipped files, fetched here (nested, so a
        restarted worker fetches it again from the object store while the driver holds it)."""
        import socket

        import ray

        self.pid = os.getpid()
        self.node = socket.gethostname()
        self.error: BaseException | None = None
        self.session = None
        self.providers: tuple[str, ...] | None = None
        folder = Path(tempfile.mkdtemp(prefix="graphkit-ray-model-"))
        try:
            files = ray.get(model[0])
            for name, data in files.items():
                target = folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                data.tofile(target)
            options = dict(options)
            if backend == "ort":
                import onnxruntime

                self.providers = ort_providers(num_gpus, onnxruntime.get_available_providers())
                options["providers"] = self.providers
            from graphkit.runtime.backend import open_backend

            self.session = open_backend(backend, folder / model_name, **options)
        except GraphkitError as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - reported as one line by describe()
            self.error = GraphkitError(f"Ray worker on {self.node}: cannot open the model ({one_line(exc, 250)})")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def describe(self, check: Callable | None, argument: Any) -> dict:
        """Who this worker is; runs ``check(session, argument)`` (its result under ``"check"``)."""
        if self.error is not None:
            raise self.error
        return {
            "pid": self.pid,
            "node": self.node,
            "providers": list(self.providers) if self.providers else None,
            "check": check(self.session, argument) if check else None,
        }

    def run(self, task: Callable, payload: Any) -> tuple[Any, dict]:
        """``task(session, payload)`` and how long it took on this worker."""
        if self.error is not None:
            raise self.error
        import resource

        started = time.perf_counter()
        result = task(self.session, payload)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
        return result, {"pid": self.pid, "seconds": time.perf_counter() - started, "peak_rss_kib": peak_kib}
