"""Pure-inference throughput and latency per batch size, in ais_bench's summary schema.

:func:`measure_perf` opens one backend session (its creation time is reported separately),
then for each batch size runs ``warmup`` untimed calls and ``loop`` timed calls of
``backend.run`` on fixed seeded inputs. Per batch size it reports::

    {"batchsize": 4,
     "NPU_compute_time": {"min", "max", "mean", "median", "percentile(99%)", "count"},  # ms
     "H2D_latency": {...}, "D2H_latency": {...},
     "throughput": 1000 * batchsize / mean,                                           # samples/s
     "overhead": {"mean_ms", "percent"}}

``NPU_compute_time`` is the backend's device time when it reports one (ais_bench), otherwise
the wall time of ``backend.run`` (host backends: the copies are inside it, so H2D/D2H are
reported as zero with count 0). ``overhead`` is the time per iteration spent outside
``backend.run`` (timer calls and bookkeeping); it should stay under 1 % of inference time.

A model with a static batch runs only at that batch size; other sizes are listed under
``skipped`` with the reason.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.errors import InputError
from graphkit.files import atomic_path, make_folder, write_text_atomic
from graphkit.runtime.backend import Backend, TensorInfo, open_backend

STAT_KEYS = ("min", "max", "mean", "median", "percentile(99%)", "count")


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


def input_shape_for(info: TensorInfo, batch: int, input_size: Sequence[int] | None) -> tuple[int, ...]:
    """Concrete shape of ``info`` at ``batch``.

    ``input_size``: None (use the model's dims), two values (the last two dims, H W), or one
    value per dim (dim 0 ignored: the batch). Dims still symbolic are an InputError.
    """
    dims = list(info.shape)
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
            raise InputError(f"input '{info.name}' axis {axis} is symbolic ({dim}); give its size with --input-size")
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
) -> dict[str, Any]:
    """Time ``loop`` calls of ``backend.run(feeds)`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        backend.run(feeds)
    device_time = getattr(backend, "device_time_ms", None)
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
    compute = device_ms if device_ms and all(d is not None for d in device_ms) else wall_ms
    stats = latency_stats(compute)
    overhead_ms = (total_ns - int(wall_ns.sum())) / 1e6 / loop
    result = {
        "batchsize": batch,
        "NPU_compute_time": stats,
        "H2D_latency": latency_stats([]),
        "D2H_latency": latency_stats([]),
        "throughput": 1000.0 * batch / stats["mean"] if stats["mean"] > 0 else 0.0,
        "host_wall_time": latency_stats(wall_ms),
        "overhead": {"mean_ms": overhead_ms, "percent": 100.0 * overhead_ms / float(wall_ms.mean())},
    }
    return result


def measure_perf(
    model: str | os.PathLike | Any,
    batch_sizes: Sequence[int] = (1,),
    loop: int = 10,
    warmup: int = 1,
    backend: str = "ort",
    backend_options: dict[str, Any] | None = None,
    input_size: Sequence[int] | None = None,
    seed: int = 0,
    on_batch: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Throughput and latency of ``model`` per batch size (see the module doc for the schema)."""
    if loop < 1 or warmup < 0:
        raise InputError(f"loop must be >= 1 and warmup >= 0 (got loop={loop}, warmup={warmup})")
    if not batch_sizes or any(b < 1 for b in batch_sizes):
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
        for batch in batch_sizes:
            if fixed is not None and batch != fixed:
                report["skipped"].append(
                    {"batchsize": batch, "reason": f"the model has a static batch of {fixed}; only {fixed} runs"}
                )
                continue
            feeds = {}
            for info in session.inputs:
                shape = input_shape_for(info, batch, input_size)
                feeds[info.name] = _random(rng, shape, info.dtype)
            result = measure_batch(session, feeds, batch, loop, warmup)
            result["input_shapes"] = {name: list(value.shape) for name, value in feeds.items()}
            report["results"].append(result)
            if on_batch is not None:
                on_batch(result)
    if not report["results"]:
        raise InputError(f"no batch size could run: {report['skipped'][0]['reason']}")
    return report


def _random(rng: np.random.Generator, shape, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    if dtype.kind in "iu":
        return rng.integers(0, 4, size=shape).astype(dtype)
    return rng.random(shape) < 0.5


def table_rows(report: dict) -> list[tuple]:
    """Rows for the text table: batch, FPS, latency stats (ms), overhead %."""
    rows = []
    for r in report["results"]:
        s = r["NPU_compute_time"]
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
    plot_perf(report, plot_path)
    return {"json": json_path, "plot": plot_path}


def plot_perf(report: dict, path: Path) -> Path:
    """A PNG with FPS vs batch size and latency (mean, p99, min-max band) vs batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    batches = [r["batchsize"] for r in results]
    stats = [r["NPU_compute_time"] for r in results]
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
