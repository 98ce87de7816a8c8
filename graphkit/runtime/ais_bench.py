"""The ais_bench backend: Ascend OM models through ``ais_bench.infer.interface.InferSession``.

Registered in :data:`graphkit.runtime.backend.BACKENDS` only when that module imports (CANN and
the ais_bench/aclruntime wheels installed); graphkit ships no stand-in. API used (from the ais_bench source; docs/ascend.md lists it):
``InferSession(device_id, model_path)``, ``get_inputs()``/``get_outputs()`` (``.name``,
``.shape``, ``.datatype``), ``infer(feeds, mode)`` -> list of arrays, ``summary()``
(``exec_time_list``: device compute time per call, ms).

Dynamic-batch OMs: ATC adds an input ``ascend_mbatch_shape_data``; aclruntime already hides
it from ``get_inputs()`` (issue 14's reading of the ais_bench source), so graphkit does not
filter it. ``infer`` runs in ``dymbatch`` mode when an input's dim 0 is dynamic (< 0), which
sets the batch from the feeds. H2D/D2H copy times come from ``MemorySummary`` (as ais_bench's
own ``__main__`` reads them: Ascend/tools ais-bench_workload/tool/ais_bench/ais_bench/infer/
__main__.py). Not verified here: no Ascend device or CANN in this environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from graphkit.runtime.backend import Backend, TensorInfo, check_threads
from graphkit.util.errors import InputError


def _dtype(datatype) -> np.dtype:
    name = str(datatype).rsplit(".", 1)[-1].lower()
    try:
        return np.dtype(name)
    except TypeError:
        return np.dtype(np.float32)


class AisBenchBackend(Backend):
    """An OM model on an Ascend device via ais_bench."""

    name = "ais_bench"
    device = True

    def __init__(self, model_path: str | os.PathLike, device_id: int = 0, threads: int | None = None):
        from ais_bench.infer.interface import InferSession

        check_threads(threads)  # checked like everywhere, though host threads do not apply to device inference
        self.session = InferSession(device_id, str(model_path))
        self.inputs = [TensorInfo(i.name, tuple(i.shape), _dtype(i.datatype)) for i in self.session.get_inputs()]
        self.dynamic_batch = any(i.shape and isinstance(i.shape[0], int) and i.shape[0] < 0 for i in self.inputs)
        self.outputs = [TensorInfo(o.name, tuple(o.shape), _dtype(o.datatype)) for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [i.name for i in self.inputs]
        if set(feeds) != set(names):
            raise InputError(f"inputs {sorted(feeds)} do not match the OM's inputs {names}")
        mode = "dymbatch" if self.dynamic_batch else "static"
        values = self.session.infer([np.ascontiguousarray(feeds[n]) for n in names], mode=mode)
        return dict(zip([o.name for o in self.outputs], values))

    def device_time_ms(self) -> float | None:
        """Device compute time of the last ``run`` (ms), from the session summary."""
        times = self.session.summary().exec_time_list
        if not times:
            return None
        last = times[-1]
        if isinstance(last, (tuple, list)) and len(last) == 2:  # (start, end) in some ais_bench versions
            return float(last[1]) - float(last[0])
        return float(last)

    def memcpy_times_ms(self) -> tuple[list[float], list[float]]:
        """(H2D, D2H) copy times (ms) since the last call, from ais_bench's ``MemorySummary``."""
        try:
            from ais_bench.infer.interface import MemorySummary
        except ImportError:
            return [], []
        h2d, d2h = list(MemorySummary.get_H2D_time_list()), list(MemorySummary.get_D2H_time_list())
        MemorySummary.reset()
        return h2d, d2h

    def close(self) -> None:
        free = getattr(self.session, "free_resource", None)
        if free is not None:
            free()
