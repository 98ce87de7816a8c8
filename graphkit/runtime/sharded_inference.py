"""``graphkit infer --executor ray``: the input files sharded over Ray workers, outputs as the local run.

The driver lists the input files exactly as :func:`graphkit.runtime.file_inference.infer_files` does and
cuts them into shards of whole batches (a multiple of the model's static batch and of
``--batchsize``), so every batch holds the same files as in the local run. Each shard travels
as file bytes (workers need no shared file system); a worker writes them under their own
names into a private temporary folder and runs :func:`~graphkit.runtime.file_inference.infer_files` on
them with the session it holds, so the ais_bench conventions (sorting, padding, output names)
are the local run's by construction. The output files come back as bytes; only the driver
writes them, into a staging folder that is moved into place at the end, then the summary.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.runtime.backend import BACKENDS, Backend
from graphkit.runtime.infer_paths import check_output_dirname, output_prefix, summary_path
from graphkit.runtime.perf import static_batch, timing_summary
from graphkit.runtime.ray_executor import RayExecutor, RaySettings
from graphkit.util.errors import InputError
from graphkit.util.files import write_text_atomic

SHARDS_PER_WORKER = 4
"""About this many shards per worker: small enough to balance, large enough to amortize."""
MAX_SHARD_BYTES = 64 * 2**20
"""A shard's input files stay under this (unless one batch is larger): the driver holds at most
two shards per worker in memory, and the outputs come back per shard."""


def shard_ranges(total: int, unit: int, workers: int, bytes_per_file: float = 0.0) -> list[range]:
    """File index ranges: each a multiple of ``unit`` files (the last one may be short), about
    ``SHARDS_PER_WORKER`` per worker, each under ``MAX_SHARD_BYTES`` of input where a batch allows."""
    units = math.ceil(total / unit)
    per_shard_units = max(1, math.ceil(units / (workers * SHARDS_PER_WORKER)))
    if bytes_per_file > 0:
        per_shard_units = max(1, min(per_shard_units, int(MAX_SHARD_BYTES // (bytes_per_file * unit))))
    per_shard = per_shard_units * unit
    return [range(start, min(start + per_shard, total)) for start in range(0, total, per_shard)]


@dataclass
class Shard:
    """Some consecutive files of every input folder, as ``(name, bytes)`` pairs, and the settings."""

    files: list[list[tuple[str, bytes]]]
    outfmt: str
    batchsize: int | None


class _HeldSession(Backend):
    """The worker's own session lent to one infer_files call: closing it is a no-op; run times kept."""

    def __init__(self, session: Backend):
        self.session = session
        self.name = session.name
        self.inputs, self.outputs = session.inputs, session.outputs
        self.times_ms: list[float] = []

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        result = self.session.run(feeds)
        self.times_ms.append((time.perf_counter() - started) * 1000.0)
        return result


@contextlib.contextmanager
def _lent(session: Backend):
    """Register ``session`` under a private backend name (in this worker process only)."""
    held = _HeldSession(session)
    name = f"graphkit-ray-held-{id(held)}"
    BACKENDS[name] = lambda _model, **_options: held
    try:
        yield name, held
    finally:
        BACKENDS.pop(name, None)


def infer_shard(session: Backend, shard: Shard) -> dict[str, Any]:
    """Run one shard on the worker's session: ``{"outputs": {name: bytes}, "times_ms": [...]}``."""
    from graphkit.runtime.file_inference import infer_files

    with tempfile.TemporaryDirectory(prefix="graphkit-ray-shard-") as tmp:
        folders = []
        for j, files in enumerate(shard.files):
            folder = Path(tmp) / f"input{j}"
            folder.mkdir()
            for name, data in files:
                (folder / name).write_bytes(data)
            folders.append(folder)
        with _lent(session) as (name, held):
            infer_files(
                Path(tmp) / "model",
                folders,
                Path(tmp) / "out",
                output_dirname="shard",
                outfmt=shard.outfmt,
                batchsize=shard.batchsize,
                backend=name,
                warmup_count=0,  # the worker's session is warm after its first shard; times count every run
            )
        outputs = {p.name: p.read_bytes() for p in sorted((Path(tmp) / "out" / "shard").iterdir())}
    return {"outputs": outputs, "times_ms": held.times_ms}


def _describe(session: Backend, _argument) -> dict:
    return {"static_batch": static_batch(session), "inputs": [i.name for i in session.inputs]}


def infer_files_ray(
    model: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    output_dirname: str | None = None,
    outfmt: str = "BIN",
    batchsize: int | None = None,
    backend: str = "ort",
    backend_options: dict[str, Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    *,
    ray: RaySettings,
) -> dict[str, Any]:
    """:func:`~graphkit.runtime.file_inference.infer_files` on Ray workers; same output files, same summary
    keys, plus ``executor`` (per-worker shards/s, start-up, retries). ``on_batch(done, total)``
    reports finished shards; ``ray`` says where the workers run."""
    from graphkit.runtime.tensor_files import list_input_files

    outfmt = outfmt.upper()
    if outfmt not in ("BIN", "NPY"):
        raise InputError(f"--outfmt {outfmt}: expected BIN or NPY")
    if batchsize is not None and batchsize < 1:
        raise InputError(f"--batchsize {batchsize}: must be >= 1")
    output_dirname = check_output_dirname(output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S"))
    file_lists = [list_input_files(p) for p in inputs]
    if len({len(files) for files in file_lists}) != 1:
        raise InputError(f"input folders hold different numbers of files: {[len(f) for f in file_lists]}")
    out_root = Path(output)
    prefix = output_prefix(output, output_dirname)  # ais_bench's text: os.path.join(output, output_dirname)
    target = Path(prefix)

    times_ms: list[float] = []
    with RayExecutor(ray, model, backend, backend_options) as executor:
        info = executor.start(check=_describe)[0]["check"]
        if len(file_lists) != len(info["inputs"]):
            raise InputError(
                f"{len(file_lists)} input folder(s) given, the model has {len(info['inputs'])} inputs {info['inputs']}"
            )
        fixed = info["static_batch"]
        if fixed is not None and batchsize is not None and batchsize != fixed:
            raise InputError(f"--batchsize {batchsize}: the model has a static batch of {fixed}")
        batch = fixed or batchsize or 1
        total = len(file_lists[0])
        size = sum(f.stat().st_size for files in file_lists for f in files) / max(1, total)
        ranges = shard_ranges(total, math.lcm(fixed or 1, batchsize or 1), executor.workers, size)

        def shards():
            for chunk in ranges:
                files = [[(files[i].name, files[i].read_bytes()) for i in chunk] for files in file_lists]
                yield Shard(files, outfmt, batchsize)

        staging = out_root / ".graphkit-ray.partial"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            for done, (_, result) in enumerate(executor.imap_unordered(infer_shard, shards()), start=1):
                for name, data in result["outputs"].items():
                    (staging / name).write_bytes(data)
                times_ms.extend(result["times_ms"])
                if on_batch is not None:
                    on_batch(done, len(ranges))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        target.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, target / item.name)  # a rerun overwrites files of the same name, as ais_bench does
        staging.rmdir()
        stats = executor.stats(unit="shards")

    summary = {
        # host wall-clock per batch on the workers (host_run_time); --batchsize feeds the throughput, as ais_bench;
        # without it, ais_bench's get_batchsize: dim 0 of the first input as it runs
        **timing_summary(batchsize or batch, times_ms),
        "batchsize": batchsize or batch,
        "model_batch": batch,
        "backend": backend,
        "model": os.fspath(model),
        "input_files": total,
        "batches": len(times_ms),
        "output_dir": str(target),
        "executor": stats | {"shards": len(ranges), "files_per_shard": len(ranges[0]) if ranges else 0},
    }
    written = write_text_atomic(Path(summary_path(prefix)), json.dumps(summary, indent=2) + "\n")
    summary["summary_path"] = str(written)
    return summary
