"""File-based inference with ais_bench's conventions, so scripts can swap ais_bench and graphkit.

:func:`infer_files` follows ``python3 -m ais_bench --model M --input DIR[,DIR] --output OUT
--output_dirname D --outfmt BIN|NPY --batchsize N``:

- one input folder (or file) per model input, in the model's input order;
- files in a folder are naturally sorted (``img2`` before ``img10``);
- a file holds one sample or several (its size must divide the batch tensor's size); files are
  concatenated along dim 0 to fill a batch; the last batch is padded with zeros and the
  outputs of the padding are dropped;
- outputs go to ``OUT/D/{input_stem}_{k}.{bin|npy}`` with ``k`` the 0-based model output index
  and ``input_stem`` the name of the matching file of the first input;
- ``OUT/D_summary.json`` has ais_bench's summary keys (``NPU_compute_time``, ``H2D_latency``,
  ``D2H_latency`` with min/max/mean/median/percentile(99%)/count, ``throughput``).

``.bin`` files are raw arrays of the model input's dtype; ``.npy`` files are numpy arrays.
Outputs are written into a temporary folder and moved into place at the end, so a failed run
leaves no half-written output folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graphkit.errors import InputError
from graphkit.files import make_folder, write_text_atomic
from graphkit.perf import input_shape_for, latency_stats, static_batch
from graphkit.runtime.backend import open_backend

INPUT_EXTENSIONS = (".bin", ".npy")


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers numerically (ais_bench's natural sort)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_input_files(path: str | os.PathLike) -> list[Path]:
    """The input files of one model input: a folder's .bin/.npy files naturally sorted, or one file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path}: no such folder or file")
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in INPUT_EXTENSIONS),
            key=lambda p: natural_key(p.name),
        )
        if not files:
            raise InputError(f"input {path}: no .bin or .npy files in the folder")
    for file in files:
        if file.suffix.lower() not in INPUT_EXTENSIONS:
            raise InputError(f"input {file}: unsupported file type (expected .bin or .npy)")
    return files


def _file_elements(file: Path, dtype: np.dtype) -> int:
    if file.suffix.lower() == ".npy":
        array = np.load(file, mmap_mode="r")
        return int(array.size)
    size = file.stat().st_size
    if size % dtype.itemsize:
        raise InputError(f"input {file}: {size} bytes is not a whole number of {dtype} values")
    return size // dtype.itemsize


def _read(file: Path, dtype: np.dtype) -> np.ndarray:
    if file.suffix.lower() == ".npy":
        array = np.load(file)
        if array.dtype != dtype:
            if array.dtype.kind != dtype.kind:
                raise InputError(f"input {file}: dtype {array.dtype} does not match the model input's {dtype}")
            array = array.astype(dtype)
        return array.reshape(-1)
    return np.fromfile(file, dtype=dtype)


def infer_files(
    model: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    output_dirname: str | None = None,
    outfmt: Literal["BIN", "NPY"] = "BIN",
    batchsize: int | None = None,
    backend: str = "ort",
    backend_options: dict[str, Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``model`` over input files ais_bench-style; returns the summary (also written to disk).

    ``batchsize`` defaults to the model's static batch, else 1; a ``batchsize`` that contradicts
    a static batch is an InputError. ``on_batch(done, total)`` reports progress.
    """
    outfmt = outfmt.upper()
    if outfmt not in ("BIN", "NPY"):
        raise InputError(f"--outfmt {outfmt}: expected BIN or NPY")
    if batchsize is not None and batchsize < 1:
        raise InputError(f"--batchsize {batchsize}: must be >= 1")
    output_dirname = output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S")
    if "/" in output_dirname or output_dirname in (".", ".."):
        raise InputError(f"--output-dirname '{output_dirname}': must be a plain folder name")
    file_lists = [list_input_files(p) for p in inputs]
    out_root = Path(output)
    target = out_root / output_dirname
    if target.exists() and any(target.iterdir()):
        raise InputError(f"output folder {target} already exists and is not empty; choose another --output-dirname")

    with open_backend(backend, model, **(backend_options or {})) as session:
        if len(file_lists) != len(session.inputs):
            names = [i.name for i in session.inputs]
            raise InputError(f"{len(file_lists)} input folder(s) given, the model has {len(names)} inputs {names}")
        counts = {len(files) for files in file_lists}
        if len(counts) != 1:
            raise InputError(f"input folders hold different numbers of files: {[len(f) for f in file_lists]}")
        fixed = static_batch(session)
        if fixed is not None and batchsize is not None and batchsize != fixed:
            raise InputError(f"--batchsize {batchsize}: the model has a static batch of {fixed}")
        batch = fixed or batchsize or 1

        shapes, per_file = [], None
        for info, files in zip(session.inputs, file_lists):
            shape = input_shape_for(info, batch, None)
            sample = int(np.prod(shape[1:]))
            sizes = {}
            for file in files:
                elements = _file_elements(file, info.dtype)
                if elements % sample or batch % (elements // sample) or elements == 0:
                    raise InputError(
                        f"input {file}: {elements} {info.dtype} values do not fit input '{info.name}' {list(shape)} "
                        f"({sample} per sample; a file must hold a whole number of samples dividing the batch {batch})"
                    )
                sizes[file] = elements // sample
            if len(set(sizes.values())) != 1:
                raise InputError(f"input files for '{info.name}' hold different numbers of samples")
            samples = next(iter(sizes.values()))
            if per_file is not None and samples != per_file:
                raise InputError("input folders hold different numbers of samples per file")
            per_file = samples
            shapes.append(shape)

        files_per_batch = batch // per_file
        total_files = len(file_lists[0])
        total_batches = -(-total_files // files_per_batch)
        staging = out_root / f".{output_dirname}.partial"
        if staging.exists():
            shutil.rmtree(staging)
        make_folder(staging)
        times_ms = []
        extension = outfmt.lower()
        try:
            for b in range(total_batches):
                chunk = range(b * files_per_batch, min((b + 1) * files_per_batch, total_files))
                feeds = {}
                for info, files, shape in zip(session.inputs, file_lists, shapes):
                    flat = [_read(files[i], info.dtype) for i in chunk]
                    data = np.concatenate(flat) if len(flat) > 1 else flat[0]
                    padded = np.zeros(int(np.prod(shape)), dtype=info.dtype)
                    padded[: data.size] = data
                    feeds[info.name] = padded.reshape(shape)
                start = time.perf_counter()
                results = session.run(feeds)
                times_ms.append((time.perf_counter() - start) * 1000.0)
                for k, value in enumerate(results.values()):
                    if value.ndim == 0 or value.shape[0] != batch:
                        raise InputError(
                            f"output {k} has shape {list(value.shape)}; its dim 0 is not the batch {batch}, so it "
                            "cannot be split per input file"
                        )
                    for j, i in enumerate(chunk):
                        part = value[j * per_file : (j + 1) * per_file]
                        name = staging / f"{file_lists[0][i].stem}_{k}.{extension}"
                        if outfmt == "NPY":
                            np.save(name, part)
                        else:
                            part.tofile(name)
                if on_batch is not None:
                    on_batch(b + 1, total_batches)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if target.exists():
            target.rmdir()  # empty (checked above)
        os.replace(staging, target)

    compute = latency_stats(times_ms)
    summary = {
        "NPU_compute_time": compute,
        "H2D_latency": latency_stats([]),
        "D2H_latency": latency_stats([]),
        "throughput": 1000.0 * batch / compute["mean"] if compute["mean"] > 0 else 0.0,
        "batchsize": batch,
        "backend": backend,
        "model": os.fspath(model),
        "input_files": total_files,
        "batches": total_batches,
        "output_dir": str(target),
    }
    summary_path = write_text_atomic(out_root / f"{output_dirname}_summary.json", json.dumps(summary, indent=2) + "\n")
    summary["summary_path"] = str(summary_path)
    return summary
