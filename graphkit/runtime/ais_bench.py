"""The ais_bench backend: Ascend OM models through ``ais_bench.infer.interface.InferSession``.

Registered in :data:`graphkit.runtime.backend.BACKENDS` only when that module imports (CANN and
the ais_bench/aclruntime wheels installed); graphkit ships no stand-in. API used (from the ais_bench source; docs/ascend.md lists it):
``InferSession(device_id, model_path)``, ``get_inputs()``/``get_outputs()`` (``.name``,
``.shape``, ``.datatype``), the ``set_dynamic_*``/``set_staticbatch``/``set_custom_outsize``
setters, ``infer(feeds, mode, custom_sizes)`` -> list of arrays, ``sumary()``
(``exec_time_list``: device compute time per call, ms).

Dynamic-batch OMs: ATC adds an input ``ascend_mbatch_shape_data``; aclruntime already hides
it from ``get_inputs()`` (issue 14's reading of the ais_bench source), so graphkit does not
filter it. H2D/D2H copy times come from ``MemorySummary`` (as ais_bench's
own ``__main__`` reads them: Ascend/tools ais-bench_workload/tool/ais_bench/ais_bench/infer/
__main__.py). Not verified here: no Ascend device or CANN in this environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

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
    """An OM model on an Ascend device via ais_bench.

    The dynamic options are ais_bench's (``set_session_options`` in its ``__main__.py``): at most
    one of ``dym_batch`` (``set_dynamic_batchsize``), ``dym_hw`` ("H,W", ``set_dynamic_hw``),
    ``dym_dims``/``dym_shape`` ("name:d0,d1;...", ``set_dynamic_dims``/``set_dynamic_shape``),
    else ``set_staticbatch``; ``output_size`` (one size per output) is ``set_custom_outsize``.
    ``auto_mode`` "dymshape"/"dymdims" sets each run's shapes from its feeds, as ais_bench's
    ``--auto_set_dymshape_mode``/``--auto_set_dymdims_mode`` do. The caller
    (:func:`graphkit.runtime.file_inference.infer_files`) checks the option texts first, for
    every backend alike. ``acl_json_path`` goes to ``InferSession`` (dump/profiling config);
    ``dump_output`` (ais_bench's ``--dump``) writes ``dump_output/acl.json`` for a dump of every
    tensor into ``dump_output/dump`` and passes it.
    """

    name = "ais_bench"
    device = True

    def __init__(
        self,
        model_path: str | os.PathLike,
        device_id: int = 0,
        threads: int | None = None,
        dym_batch: int | None = None,
        dym_hw: str | None = None,
        dym_dims: str | None = None,
        dym_shape: str | None = None,
        output_size: list[int] | None = None,
        auto_mode: str | None = None,
        acl_json_path: str | None = None,
        dump_output: str | os.PathLike | None = None,
    ):
        from ais_bench.infer.interface import InferSession

        check_threads(threads)
        if dump_output is not None and acl_json_path is None:  # --dump: written only once ais_bench imported
            acl_json_path = dump_acl_json(
                dump_output, model_path
            )  # checked like everywhere, though host threads do not apply to device inference
        if auto_mode not in (None, "dymshape", "dymdims"):
            raise InputError(f"auto_mode {auto_mode!r}: expected 'dymshape' or 'dymdims'")
        if acl_json_path is not None:
            self.session = InferSession(device_id, str(model_path), acl_json_path)
        else:
            self.session = InferSession(device_id, str(model_path))
        self.auto_mode = auto_mode
        self.mode = "static"
        if dym_batch:
            self.session.set_dynamic_batchsize(dym_batch)
        elif dym_hw:
            height, width = (int(v) for v in dym_hw.split(","))
            self.session.set_dynamic_hw(height, width)
        elif dym_dims:
            self.session.set_dynamic_dims(dym_dims)
        elif dym_shape:
            self.session.set_dynamic_shape(dym_shape)
            self.mode = "dymshape"
        else:
            self.session.set_staticbatch()
        self.custom_sizes = list(output_size) if output_size else 100000  # InferSession.infer's default
        if output_size:
            self.session.set_custom_outsize(list(output_size))
        if auto_mode is not None:
            self.mode = auto_mode
        self.inputs = [TensorInfo(i.name, tuple(i.shape), _dtype(i.datatype)) for i in self.session.get_inputs()]
        self.outputs = [TensorInfo(o.name, tuple(o.shape), _dtype(o.datatype)) for o in self.session.get_outputs()]
        # A dynamic-batch OM run without --dymBatch: set its batch from each run's feeds (what
        # graphkit resolved from --batchsize) rather than run it in static mode.
        given = dym_batch or dym_hw or dym_dims or dym_shape or auto_mode
        self.batch_from_feeds = not given and any(
            i.shape and isinstance(i.shape[0], int) and i.shape[0] < 0 for i in self.inputs
        )

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [i.name for i in self.inputs]
        if set(feeds) != set(names):
            raise InputError(f"inputs {sorted(feeds)} do not match the OM's inputs {names}")
        arrays = [np.ascontiguousarray(feeds[n]) for n in names]
        if self.batch_from_feeds:
            self.session.set_dynamic_batchsize(int(arrays[0].shape[0]))
        # infer() sets the shapes from the feeds in the dymshape/dymdims modes; the dynamic batch
        # and image size were set on the session once, and run as its static mode.
        values = self.session.infer(arrays, mode=self.mode, custom_sizes=self.custom_sizes)
        return dict(zip([o.name for o in self.outputs], values))

    def device_time_ms(self) -> float | None:
        """Device compute time of the last ``run`` (ms), from the session summary."""
        # ``sumary()`` in the ais_bench interface; ``summary()`` where a version spells it so.
        summary = getattr(self.session, "summary", None) or self.session.sumary
        times = summary().exec_time_list
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
        h2d, d2h = memory_copy_times(MemorySummary)
        MemorySummary.reset()
        return h2d, d2h

    def close(self) -> None:
        free = getattr(self.session, "free_resource", None) or getattr(self.session, "finalize", None)
        if free is not None:
            free()


def memory_copy_times(memory_summary) -> tuple[list[float], list[float]]:
    """(H2D, D2H) lists from ``MemorySummary``: ``get_h2d_time_list``/``get_d2h_time_list``
    (ait's names since June 2023), else the older ``get_H2D_time_list``/``get_D2H_time_list``."""
    lists = []
    for current, old in (("get_h2d_time_list", "get_H2D_time_list"), ("get_d2h_time_list", "get_D2H_time_list")):
        getter = getattr(memory_summary, current, None) or getattr(memory_summary, old, None)
        lists.append([float(v) for v in getter()] if getter is not None else [])
    return lists[0], lists[1]


def dump_acl_json(output: str | os.PathLike, model: str | os.PathLike) -> str:
    """ais_bench's ``--dump``: write ``OUTPUT/acl.json`` asking for a dump of every tensor of
    ``model`` into ``OUTPUT/dump`` (``get_acl_json_path`` in its ``miscellaneous.py``); its path."""
    import json

    from graphkit.util.files import make_folder, write_text_atomic

    dump_path = make_folder(os.path.join(os.fspath(output), "dump"))
    name = os.path.basename(os.fspath(model)).split(".")[0]
    config = {"dump": {"dump_path": str(dump_path), "dump_mode": "all", "dump_list": [{"model_name": name}]}}
    return str(write_text_atomic(Path(output) / "acl.json", json.dumps(config, indent=4, sort_keys=True) + "\n"))


def check_acl_json(path: str) -> str:
    """``--acl_json_path``: an existing, readable JSON object (dump or profiling config); InputError otherwise."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"--acl_json_path {path}: no such file") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"--acl_json_path {path}: not a readable JSON file ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise InputError(f'--acl_json_path {path}: expected a JSON object like {{"dump": {{...}}}}')
    return path
