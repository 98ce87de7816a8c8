"""Pure-inference throughput and latency per batch size, with ais_bench's summary keys.

:func:`measure_perf` opens one backend session (its creation time is reported separately),
then for each batch size runs ``warmup`` untimed calls and ``loop`` timed calls of
``backend.run`` on fixed seeded inputs. The timing keys keep ais_bench's meaning (source:
Ascend/tools ais-bench_workload/tool/ais_bench/ais_bench/infer/summary.py and __main__.py):

- device backends (ais_bench): ``NPU_compute_time`` from the session's execution time list,
  ``H2D_latency``/``D2H_latency`` from its memory-copy times, plus ``host_wall_time``;
- host backends (ort, torch): there is no device, so these keys are absent; ``host_run_time``
  is the wall-clock time of one ``backend.run`` on the host (input/output handling included).

Each result's ``measures`` says what each figure measures. ``throughput`` is ais_bench's
formula, 1000 * batchsize / mean of the time key (:func:`time_key`). ``overhead`` is the time
per iteration spent outside ``backend.run``; it should stay under 1 % of inference time. A model
with a static batch runs only at that batch size; other sizes are listed under ``skipped``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.runtime.backend import Backend, TensorInfo, open_backend
from graphkit.runtime.feeds import check_allocatable, seeded_array
from graphkit.util.errors import GraphkitError, InputError
from graphkit.util.extras import require
from graphkit.util.files import atomic_path, make_folder, write_text_atomic

STAT_KEYS = ("min", "max", "mean", "median", "percentile(99%)", "count")
DEVICE_TIME_KEY = "NPU_compute_time"
HOST_TIME_KEY = "host_run_time"
MEASURES = {
    DEVICE_TIME_KEY: "device compute time of one run, from the session's execution time list (ms; ais_bench)",
    "H2D_latency": "host-to-device copy time per run, from the session's memory-copy times (ms; ais_bench)",
    "D2H_latency": "device-to-host copy time per run, from the session's memory-copy times (ms; ais_bench)",
    "host_wall_time": "wall-clock time of one backend run measured on the host (ms)",
    HOST_TIME_KEY: "wall-clock time of one backend run on the host, input/output handling included (ms); no "
    "device, so no NPU_compute_time and no H2D/D2H copies",
    "throughput": "1000 * batchsize / mean of the time key (samples per second; ais_bench's formula)",
}

logger = logging.getLogger(__name__)


def time_key(result: dict) -> str:
    """The key holding a result's timing statistics: NPU_compute_time (device) or host_run_time."""
    return DEVICE_TIME_KEY if DEVICE_TIME_KEY in result else HOST_TIME_KEY


def timing_summary(
    batchsize: float,
    host_ms: Sequence[float],
    device_ms: Sequence[float] | None = None,
    h2d_ms: Sequence[float] | None = None,
    d2h_ms: Sequence[float] | None = None,
) -> dict[str, Any]:
    """ais_bench-style timing keys for one measurement, with ``measures`` saying what each is.

    ``device_ms`` (one value per run) marks a device backend: then NPU_compute_time, H2D/D2H
    (empty lists give ais_bench's zero statistics) and host_wall_time; otherwise host_run_time.
    """
    if device_ms is not None:
        stats = latency_stats(device_ms)
        result = {
            DEVICE_TIME_KEY: stats,
            "H2D_latency": latency_stats(h2d_ms or []),
            "D2H_latency": latency_stats(d2h_ms or []),
            "host_wall_time": latency_stats(host_ms),
        }
    else:
        stats = latency_stats(host_ms)
        result = {HOST_TIME_KEY: stats}
    result["throughput"] = 1000.0 * batchsize / stats["mean"] if stats["mean"] > 0 else 0.0
    result["measures"] = {key: MEASURES[key] for key in (*result, "throughput") if key in MEASURES}
    return result


def latency_stats(values_ms: Sequence[float]) -> dict[str, float]:
    """ais_bench's latency statistics (ms) of ``values_ms``; all zero for an empty list."""
    if not len(values_ms):
        return {k: 0.0 if k != "count" else 0 for k in STAT_KEYS}
    data = np.asarray(values_ms, dtype=np.float64)
    return {
        "min": float(data.min()),
        "max": float(data.max()),
        "mean": float(data.mean()),
        "median": float(np.median(data)),
        "percentile(99%)": float(np.percentile(data, 99)),
        "count": int(data.size),
    }


def input_shape_for(
    info: TensorInfo, batch: int, input_size: Sequence[int] | None, named: Mapping[str, int] | None = None
) -> tuple[int, ...]:
    """Concrete shape of ``info`` at ``batch``.

    ``named`` (``--dim NAME=N``) sizes a symbolic dim by its name or ``<input>:<axis>``.
    ``input_size``: None (use the model's dims), two values (the last two dims, H W), or one
    value per dim (dim 0 ignored: the batch). Dims still symbolic are an InputError.
    """
    dims = list(info.shape)
    for axis, dim in enumerate(dims):
        for key in (f"{info.name}:{axis}", dim):
            if named and isinstance(key, str) and key in named:
                dims[axis] = named[key]
                break
    if input_size is not None:
        size = list(input_size)
        if dims and len(size) == len(dims):
            dims = [dims[0], *size[1:]]
        elif not dims and len(size) > 1:
            dims = [batch, *size[1:]]
        elif len(size) == 2 and len(dims) >= 3:
            dims = [*dims[:-2], *size]
        else:
            raise InputError(
                f"--input-size {size}: give H W or one value per dim of input '{info.name}' {list(info.shape) or '?'}"
            )
    if not dims:
        raise InputError(f"input '{info.name}': shape unknown; give every dim with --input-size N C H W")
    dims[0] = batch
    for axis, dim in enumerate(dims):
        if not isinstance(dim, int) or dim <= 0:
            raise InputError(
                f"input '{info.name}' axis {axis} is symbolic ({dim}); give its size with --dim {dim or 'NAME'}=N"
            )
    return tuple(dims)


def static_batch(backend: Backend) -> int | None:
    """The batch size fixed in the model (dim 0 of the first input), or None when dynamic."""
    for info in backend.inputs:
        if info.shape and isinstance(info.shape[0], int) and info.shape[0] > 0:
            return info.shape[0]
    return None


def measure_batch(
    backend: Backend,
    feeds: dict[str, np.ndarray],
    batch: int,
    loop: int,
    warmup: int,
    throughput_batch: int | None = None,
) -> dict[str, Any]:
    """Time ``loop`` calls of ``backend.run(feeds)`` after ``warmup`` untimed ones.

    ``throughput_batch`` (ais_bench's --batchsize) replaces ``batch`` in the throughput figure.
    """
    for _ in range(warmup):
        backend.run(feeds)
    device_time = getattr(backend, "device_time_ms", None)
    memcpy = getattr(backend, "memcpy_times_ms", None)
    if memcpy is not None:
        memcpy()  # drop the warm-up copies
    run = backend.run
    clock = time.perf_counter_ns
    wall_ns = np.empty(loop, dtype=np.int64)
    device_ms = []
    start = clock()
    for i in range(loop):
        before = clock()
        run(feeds)
        wall_ns[i] = clock() - before
        if device_time is not None:
            device_ms.append(device_time())
    total_ns = clock() - start
    wall_ms = wall_ns / 1e6
    device = device_ms if device_ms and all(d is not None for d in device_ms) else None
    h2d, d2h = memcpy() if (device is not None and memcpy is not None) else (None, None)
    overhead_ms = (total_ns - int(wall_ns.sum())) / 1e6 / loop
    return {
        "batchsize": throughput_batch or batch,
        "model_batch": batch,
        **timing_summary(throughput_batch or batch, wall_ms, device, h2d, d2h),
        "overhead": {"mean_ms": overhead_ms, "percent": 100.0 * overhead_ms / float(wall_ms.mean())},
    }


def measure_perf(
    model: str | os.PathLike | Any,
    batch_sizes: Sequence[int] | None = None,
    loop: int = 10,
    warmup: int = 1,
    backend: str = "ort",
    backend_options: dict[str, Any] | None = None,
    input_size: Sequence[int] | None = None,
    dims: Mapping[str, int] | None = None,
    seed: int = 0,
    on_batch: Callable[[dict], None] | None = None,
    ais_batchsize: int | None = None,
) -> dict[str, Any]:
    """Throughput and latency of ``model`` per batch size (see the module doc for the schema).

    ``batch_sizes`` None: the model's static batch, else 1 (as ais_bench runs an OM at its batch).
    ``ais_batchsize`` is ais_bench's ``--batchsize``: it replaces ``batch_sizes``; a model with a
    static batch runs at that batch and ``ais_batchsize`` only feeds the throughput figure.
    """
    if ais_batchsize is not None:
        if ais_batchsize < 1:
            raise InputError(f"--batchsize {ais_batchsize}: must be >= 1")
        batch_sizes = [ais_batchsize]
    if loop < 1 or warmup < 0:
        raise InputError(f"loop must be >= 1 and warmup >= 0 (got loop={loop}, warmup={warmup})")
    if batch_sizes is not None and (not batch_sizes or any(b < 1 for b in batch_sizes)):
        raise InputError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    created = time.perf_counter()
    session = open_backend(backend, model, **(backend_options or {}))
    session_s = time.perf_counter() - created
    report: dict[str, Any] = {
        "model": os.fspath(model) if isinstance(model, (str, os.PathLike)) else repr(model),
        "backend": backend,
        "backend_options": backend_options or {},
        "session_creation_s": session_s,
        "loop": loop,
        "warmup": warmup,
        "results": [],
        "skipped": [],
    }
    rng = np.random.default_rng(seed)
    with session:
        fixed = static_batch(session)
        if batch_sizes is None:
            batch_sizes = [fixed or 1]
        for batch in batch_sizes:
            if ais_batchsize is not None and fixed is not None:
                batch = fixed  # ais_bench: the OM's batch runs; --batchsize only feeds the throughput
            if fixed is not None and batch != fixed:
                report["skipped"].append(
                    {"batchsize": batch, "reason": f"the model has a static batch of {fixed}; only {fixed} runs"}
                )
                continue
            shapes = {info.name: tuple(input_shape_for(info, batch, input_size, dims)) for info in session.inputs}
            check_allocatable(
                shapes, {info.name: info.dtype for info in session.inputs}, f"the inputs at batch {batch}"
            )
            feeds = {
                info.name: seeded_array(rng, shapes[info.name], info.dtype, name=info.name) for info in session.inputs
            }
            result = measure_batch(session, feeds, batch, loop, warmup, ais_batchsize)
            result["input_shapes"] = {name: list(value.shape) for name, value in feeds.items()}
            report["results"].append(result)
            if on_batch is not None:
                on_batch(result)
    if not report["results"]:
        raise InputError(f"no batch size could run: {report['skipped'][0]['reason']}")
    return report


def table_rows(report: dict) -> list[tuple]:
    """Rows for the text table: batch, FPS, latency stats (ms), overhead %."""
    rows = []
    for r in report["results"]:
        s = r[time_key(r)]
        rows.append(
            (
                r["batchsize"],
                f"{r['throughput']:.2f}",
                f"{s['mean']:.3f}",
                f"{s['median']:.3f}",
                f"{s['min']:.3f}",
                f"{s['max']:.3f}",
                f"{s['percentile(99%)']:.3f}",
                f"{r['overhead']['percent']:.4f}",
            )
        )
    for s in report["skipped"]:
        rows.append((s["batchsize"], "skipped", s["reason"], "", "", "", "", ""))
    return rows


TABLE_HEADERS = ["batch", "FPS", "mean ms", "median ms", "min ms", "max ms", "p99 ms", "overhead %"]


def default_output_dir(model: Any) -> Path:
    """``runs/perf/<model stem>`` in the working folder."""
    if not isinstance(model, (str, os.PathLike)):
        return Path("runs") / "perf" / "model"
    text = os.fspath(model)
    if ":" in text and not Path(text).exists():  # a torch "package.module:factory"
        return Path("runs") / "perf" / re.sub(r"[^A-Za-z0-9_-]+", "_", text)
    return Path("runs") / "perf" / Path(text).stem


def write_perf_report(report: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``perf_summary.json`` and ``perf.png`` (FPS and latency vs batch) atomically."""
    out = Path(out_dir)
    make_folder(out)
    json_path = write_text_atomic(out / "perf_summary.json", json.dumps(report, indent=2) + "\n")
    plot_path = out / "perf.png"
    try:
        plot_perf(report, plot_path)
    except GraphkitError as exc:  # matplotlib is an extra: the figures are in the JSON and the table
        logger.warning("perf.png not written: %s", exc)
        return {"json": json_path, "plot": None}
    return {"json": json_path, "plot": plot_path}


def plot_perf(report: dict, path: Path) -> Path:
    """A PNG with FPS vs batch size and latency (mean, p99, min-max band) vs batch size."""
    matplotlib = require("matplotlib", "plot", "the perf plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    batches = [r["batchsize"] for r in results]
    stats = [r[time_key(r)] for r in results]
    figure, (fps_axes, latency_axes) = plt.subplots(1, 2, figsize=(10, 4))
    fps_axes.plot(batches, [r["throughput"] for r in results], marker="o")
    fps_axes.set_xlabel("batch size")
    fps_axes.set_ylabel("throughput (samples/s)")
    fps_axes.set_title("FPS vs batch size")
    latency_axes.plot(batches, [s["mean"] for s in stats], marker="o", label="mean")
    latency_axes.plot(batches, [s["percentile(99%)"] for s in stats], marker="x", linestyle="--", label="p99")
    latency_axes.fill_between(batches, [s["min"] for s in stats], [s["max"] for s in stats], alpha=0.2, label="min-max")
    latency_axes.set_xlabel("batch size")
    latency_axes.set_ylabel("latency per batch (ms)")
    latency_axes.set_title("latency vs batch size")
    latency_axes.legend()
    for axes in (fps_axes, latency_axes):
        axes.set_xticks(batches)
        axes.grid(True, alpha=0.3)
    figure.suptitle(f"{Path(str(report['model'])).name} ({report['backend']})")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
    return path
