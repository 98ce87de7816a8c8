"""A small fake of ais_bench's Python API, written by the tests into a temporary folder.

Only what graphkit's ``ais_bench`` backend calls, with the names of the real package
(Ascend/tools ``ais_bench/infer/interface.py``): ``InferSession(device_id, model_path,
acl_json_path=None)`` with ``get_inputs``/``get_outputs``, ``set_staticbatch``,
``set_dynamic_batchsize``, ``set_dynamic_hw``, ``set_dynamic_dims``, ``set_dynamic_shape``,
``set_custom_outsize``, ``infer(feeds, mode, custom_sizes)``, ``sumary()`` and ``finalize``;
and ``MemorySummary`` with the current names (``get_h2d_time_list``/``get_d2h_time_list``,
``api="current"``) or the pre-June-2023 ones (``get_H2D_time_list``/``get_D2H_time_list``,
``api="old"``).

The "OM" is an ONNX file run by onnxruntime, so outputs are real. Like a device, the fake
refuses to run a dynamic model whose dims the session was not told (a dynamic-batch OM in
static mode, feeds that contradict ``set_dynamic_*``): a backend that silently ran static
would fail here. Every call is appended to the JSON-lines file named by
``FAKE_AIS_BENCH_LOG``. Each run adds 2.0 ms of compute, 0.25 ms H2D and 0.5 ms D2H.
"""

from __future__ import annotations

from pathlib import Path

INTERFACE = """
import json, os
import numpy as np
import onnxruntime as ort

API = {api!r}
_MEM = {{"h2d": [], "d2h": []}}
_TYPES = {{"float": "float32", "double": "float64"}}


def _log(event, **data):
    path = os.environ.get("FAKE_AIS_BENCH_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({{"event": event, **data}}) + "\\n")


class _Desc:
    def __init__(self, name, shape, datatype):
        self.name, self.shape, self.datatype = name, shape, datatype


class _Summary:
    def __init__(self, times):
        self.exec_time_list = times


class InferSession:
    def __init__(self, device_id, model_path, acl_json_path=None, debug=False, loop=1):
        self._ort = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
        self._times = []
        self._dyn = ("static", None)
        self._custom = None
        _log("init", device_id=device_id, model=os.path.basename(model_path), acl_json_path=acl_json_path)

    def _descs(self, items):
        out = []
        for i in items:
            dims = [d if isinstance(d, int) else -1 for d in i.shape]
            kind = i.type[len("tensor("):-1]
            out.append(_Desc(i.name, dims, "dtype." + _TYPES.get(kind, kind)))
        return out

    def get_inputs(self):
        return self._descs(self._ort.get_inputs())

    def get_outputs(self):
        return self._descs(self._ort.get_outputs())

    def set_staticbatch(self):
        self._dyn = ("static", None)
        _log("set_staticbatch")

    def set_dynamic_batchsize(self, batch):
        self._dyn = ("batch", int(batch))
        _log("set_dynamic_batchsize", value=int(batch))

    def set_dynamic_hw(self, h, w):
        self._dyn = ("hw", (int(h), int(w)))
        _log("set_dynamic_hw", value=[int(h), int(w)])

    def set_dynamic_dims(self, text):
        self._dyn = ("dims", text)
        _log("set_dynamic_dims", value=text)

    def set_dynamic_shape(self, text):
        self._dyn = ("shape", text)
        _log("set_dynamic_shape", value=text)

    def set_custom_outsize(self, sizes):
        self._custom = list(sizes)
        _log("set_custom_outsize", value=list(sizes))

    def _check(self, arrays):
        kind, value = self._dyn
        for desc, array in zip(self.get_inputs(), arrays):
            dynamic = [k for k, d in enumerate(desc.shape) if d < 0]
            if not dynamic:
                continue
            if kind == "static":
                raise RuntimeError("fake device: dynamic OM run in static mode (dims " + str(desc.shape) + ")")
            if kind == "batch" and array.shape[0] != value:
                raise RuntimeError("fake device: batch " + str(array.shape[0]) + " != dymBatch " + str(value))
            if kind == "hw" and tuple(array.shape[2:4]) != value:
                raise RuntimeError("fake device: HW " + str(array.shape[2:4]) + " != dymHW " + str(value))
            if kind in ("dims", "shape"):
                given = dict(part.split(":") for part in value.split(";"))
                wanted = [int(v) for v in given[desc.name].split(",")]
                if list(array.shape) != wanted:
                    raise RuntimeError("fake device: " + str(list(array.shape)) + " != " + value)

    def infer(self, feeds, mode="static", custom_sizes=100000):
        names = [i.name for i in self._ort.get_inputs()]
        if mode in ("dymshape", "dymdims"):
            text = ";".join(n + ":" + ",".join(str(d) for d in a.shape) for n, a in zip(names, feeds))
            (self.set_dynamic_shape if mode == "dymshape" else self.set_dynamic_dims)(text)
            if mode == "dymshape":
                sizes = custom_sizes if isinstance(custom_sizes, list) else [custom_sizes] * len(self.get_outputs())
                self.set_custom_outsize(sizes)
        self._check(feeds)
        _log("infer", mode=mode, shapes=[list(a.shape) for a in feeds])
        self._times.append(2.0)
        _MEM["h2d"].append(0.25)
        _MEM["d2h"].append(0.5)
        return self._ort.run(None, dict(zip(names, feeds)))

    def sumary(self):
        return _Summary(list(self._times))

    def finalize(self):
        _log("finalize")


class MemorySummary:
    @staticmethod
    def reset():
        _MEM["h2d"].clear()
        _MEM["d2h"].clear()


if API == "current":
    MemorySummary.get_h2d_time_list = staticmethod(lambda: list(_MEM["h2d"]))
    MemorySummary.get_d2h_time_list = staticmethod(lambda: list(_MEM["d2h"]))
else:
    MemorySummary.get_H2D_time_list = staticmethod(lambda: list(_MEM["h2d"]))
    MemorySummary.get_D2H_time_list = staticmethod(lambda: list(_MEM["d2h"]))
"""


def write_fake_ais_bench(root: Path, api: str = "current") -> Path:
    """Write the fake ``ais_bench`` package under ``root`` (put ``root`` on PYTHONPATH); returns ``root``."""
    package = root / "ais_bench" / "infer"
    package.mkdir(parents=True)
    (root / "ais_bench" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "interface.py").write_text(INTERFACE.format(api=api))
    return root
