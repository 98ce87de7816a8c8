"""File-based inference with ais_bench's conventions, so ModelZoo command lines run unchanged.

:func:`infer_files` does what ``python3 -m ais_bench --model M --input DIR[,DIR] --output OUT
--output_dirname D --outfmt BIN|NPY|TXT --batchsize N --loop L`` does (source: Ascend/tools
``ais-bench_workload/tool/ais_bench/ais_bench/infer/{__main__,io_oprations,utils,summary}.py``):

- ``--input``: one folder per model input (in the model's input order), or a list of files
  split evenly over the inputs; a folder's ``.bin``/``.npy`` files (any case) are naturally
  sorted (``img2`` before ``img10``); no ``--input`` is pure inference on zeros (or random
  bytes), with outputs named ``pure_infer_data_{k}``;
- files per batch = the byte size of input 0's tensor / the byte size of input 0's first file
  (it must divide); ``--batchsize`` does *not* change that, it only feeds the throughput
  figure. On onnxruntime a symbolic batch dim is set from ``--dymBatch``, else ``--batchsize``,
  else 1 (the ONNX file stands in for an OM compiled at that batch). Without ``--batchsize`` the
  throughput uses ais_bench's ``get_batchsize``: dim 0 of the first input as it runs
  (:func:`default_batchsize`);
- a short last batch is padded with the batch's *first* file (not zeros) and the outputs of
  the padding are dropped;
- outputs ``OUT/D/{name}_{k}.{bin|npy|txt}``: ``name`` is input 0's file name before its first
  dot, ``k`` the 0-based model output index (Wseg: ``_0`` cls, ``_1`` mask); each output is
  split along ``output_batchsize_axis`` (default 0) into one part per file; TXT writes the
  values as rows of the last dim, ``%f`` for floats and ``%d`` otherwise, each value followed by
  a space;
- a rerun into an existing output folder overwrites the files of the same names;
- outputs go to ``os.path.join(OUT, D)`` and the summary to that + ``_summary.json``
  (:mod:`graphkit.runtime.infer_paths`: a relative ``D`` is a sub-path; ``filesinfo`` holds
  the paths as ais_bench joins them);
- ``OUT/D_summary.json`` (``D`` defaults to a timestamp): the timing keys of
  :func:`graphkit.runtime.perf.timing_summary` (ais_bench's meaning; host backends say what they
  measure), ``throughput``, ``npu_compute_time_list`` on a device backend, ``filesinfo``
  (per sample: input and output files), ``args`` and ``pid``. ``sumary_json=True`` also writes
  ``OUT/D/sumary.json``, the older ais_infer name and place (Ascend/tools
  ``ais-bench_workload/tool/ais_infer/frontend/summary.py``) that some ModelZoo scripts read.

Reading and writing the tensor files: :mod:`graphkit.runtime.tensor_files`. The core, :func:`run_batches`, takes planned batches (lists of files) and writes outputs, so
a caller can shard the batches over workers. Outputs are staged in a hidden folder and moved
into place at the end: a failed run leaves the output folder as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graphkit.runtime.backend import Backend, TensorInfo, open_backend
from graphkit.runtime.feeds import check_allocatable
from graphkit.runtime.infer_paths import check_output_dirname, input_texts, output_prefix, summary_path
from graphkit.runtime.perf import timing_summary
from graphkit.runtime.tensor_files import (
    OUTFMTS,
    PURE_INFER_NAME,
    file_bytes,
    input_file_lists,
    load_npy,
    output_stem,
    read_input,
    save_output,
)
from graphkit.util.errors import InputError
from graphkit.util.files import write_text_atomic


@dataclass
class Batch:
    """One run: the files of each input (``None`` entries are padding) and their sample ids."""

    index: int
    files: list[list[Path | None]]  # [input][file in batch]
    first_sample: int


@dataclass
class InferPlan:
    """What :func:`run_batches` needs: shapes per input, files per batch, the batches."""

    shapes: list[tuple[int, ...]]
    files_per_batch: int
    batches: list[Batch]
    pure: bool = False
    auto_shapes: bool = False
    notes: list[str] = field(default_factory=list)
    texts: dict[Path, str] = field(default_factory=dict)  # each input file's text in filesinfo (ais_bench's)


def dims_option(text: str, flag: str) -> dict[str, list[int]]:
    """``"a:1,3,224,224;b:1,4"`` (ais_bench --dymDims / --dymShape) -> {name: dims}."""
    shapes: dict[str, list[int]] = {}
    for part in text.split(";"):
        name, sep, dims = part.strip().rpartition(":")
        if not sep or not name:
            raise InputError(f"{flag} {text!r}: '{part}' is not 'input_name:d0,d1,...'")
        try:
            values = [int(d) for d in dims.split(",")]
        except ValueError as exc:
            raise InputError(f"{flag} {text!r}: dims '{dims}' are not integers") from exc
        if any(v <= 0 for v in values):
            raise InputError(f"{flag} {text!r}: dims of '{name}' must be > 0")
        shapes[name] = values
    return shapes


def hw_option(text: str) -> list[int]:
    """``"H,W"`` (ais_bench --dymHW) -> [H, W]; InputError unless two positive integers."""
    try:
        hw = [int(v) for v in text.split(",")]
    except ValueError as exc:
        raise InputError(f"--dymHW {text!r}: expected 'H,W'") from exc
    if len(hw) != 2 or min(hw) <= 0:
        raise InputError(f"--dymHW {text!r}: expected two positive sizes 'H,W'")
    return hw


def resolve_shapes(
    inputs: Sequence[TensorInfo],
    batch: int | None,
    strict_batch: bool = False,
    dym_hw: str | None = None,
    dym_dims: str | None = None,
    dym_shape: str | None = None,
) -> list[tuple[int, ...]]:
    """Concrete input shapes: the model's dims, with ais_bench's dynamic options applied.

    ``batch`` sets symbolic batch dims (dim 0); a static batch stays as it is unless
    ``strict_batch`` (``--dymBatch``), where a different value is an error (``--batchsize`` only
    feeds the throughput figure). ``dym_hw`` ("H,W") sets the last two dims of 4-D inputs;
    ``dym_dims``/``dym_shape`` whole shapes by input name. A static dim that an option
    contradicts, or a dim still symbolic, is an InputError naming the input and axis.
    """
    given = None
    flag = "--dymDims" if dym_dims else "--dymShape"
    if dym_dims or dym_shape:
        given = dims_option(dym_dims or dym_shape, flag)
        names = [i.name for i in inputs]
        unknown = [n for n in given if n not in names]
        if unknown:
            raise InputError(f"{flag}: '{unknown[0]}' is not a model input (inputs: {', '.join(names)})")
    hw = hw_option(dym_hw) if dym_hw else None
    shapes = []
    for info in inputs:
        dims = list(info.shape)
        wanted: dict[int, int] = {}
        if given is not None and info.name in given:
            if len(given[info.name]) != len(dims):
                raise InputError(
                    f"{flag}: '{info.name}' has {len(dims)} dims in the model, {len(given[info.name])} given"
                )
            wanted = dict(enumerate(given[info.name]))
        else:
            if batch is not None and dims:
                wanted[0] = batch
            if hw is not None and len(dims) == 4:
                wanted[2], wanted[3] = hw
        for axis, value in wanted.items():
            current = dims[axis]
            if isinstance(current, int) and current > 0 and current != value:
                if axis == 0 and given is None and not strict_batch:
                    continue  # a static batch stays; --batchsize only feeds the throughput figure
                raise InputError(f"input '{info.name}' axis {axis} is {current} in the model; {value} was asked for")
            dims[axis] = value
        for axis, dim in enumerate(dims):
            if not isinstance(dim, int) or dim <= 0:
                raise InputError(
                    f"input '{info.name}' axis {axis} is symbolic ({dim}); give its size with --dymBatch/--batchsize "
                    "(dim 0), --dymHW, --dymDims or --dymShape"
                )
        shapes.append(tuple(dims))
    return shapes


def plan_batches(
    inputs: Sequence[TensorInfo], shapes: Sequence[tuple[int, ...]], file_lists: list[list[Path]] | None
) -> InferPlan:
    """Split the files into batches the ais_bench way (see the module doc); checks every file size."""
    check_allocatable(  # every batch tensor has these shapes (padding included): check they fit first
        {info.name: shape for info, shape in zip(inputs, shapes)},
        {info.name: info.dtype for info in inputs},
        "the pure-inference inputs" if file_lists is None else "one batch of inputs",
    )
    if file_lists is None:
        return InferPlan(list(shapes), 1, [Batch(0, [[None] for _ in inputs], 0)], pure=True)
    tensor_bytes = [int(np.prod(shape)) * info.dtype.itemsize for info, shape in zip(inputs, shapes)]
    first = file_lists[0][0]
    first_bytes = file_bytes(first, inputs[0].dtype)
    if first_bytes == 0 or tensor_bytes[0] % first_bytes:
        raise InputError(
            f"input {first}: {first_bytes} bytes do not divide input '{inputs[0].name}' {list(shapes[0])} "
            f"({tensor_bytes[0]} bytes of {inputs[0].dtype}): a file must hold a whole fraction of the tensor"
        )
    per_batch = tensor_bytes[0] // first_bytes
    for info, shape, files, size in zip(inputs, shapes, file_lists, tensor_bytes):
        expected = size // per_batch
        for file in files:
            got = file_bytes(file, info.dtype)
            if got != expected or size % per_batch:
                raise InputError(
                    f"input {file}: {got} bytes do not fit input '{info.name}' {list(shape)}: "
                    f"{per_batch} file(s) per batch need {expected} bytes each ({info.dtype})"
                )
    stems: dict[str, Path] = {}
    for file in file_lists[0]:
        other = stems.setdefault(output_stem(file), file)
        if other != file:
            # ais_bench would silently overwrite one sample's outputs with the other's.
            raise InputError(
                f"input files {other.name} and {file.name} both give outputs named '{output_stem(file)}_<k>' "
                "(names are the part before the first dot); rename one"
            )
    total = len(file_lists[0])
    batches = []
    for b, start in enumerate(range(0, total, per_batch)):
        files = [list(fl[start : start + per_batch]) for fl in file_lists]
        for chunk in files:
            chunk.extend([None] * (per_batch - len(chunk)))  # padding: read as the batch's first file
        batches.append(Batch(b, files, start))
    return InferPlan(list(shapes), per_batch, batches)


def _feeds(session: Backend, plan: InferPlan, batch: Batch, pure_data: str, rng) -> dict[str, np.ndarray]:
    feeds = {}
    for info, shape, files in zip(session.inputs, plan.shapes, batch.files):
        if plan.pure:
            if pure_data == "random":
                raw = rng.integers(0, 256, size=int(np.prod(shape)) * info.dtype.itemsize, dtype=np.uint8)
                feeds[info.name] = raw.view(info.dtype).reshape(shape)
            else:
                feeds[info.name] = np.zeros(shape, dtype=info.dtype)
            continue
        if plan.auto_shapes:
            feeds[info.name] = load_npy(files[0])
            continue
        real = [f for f in files if f is not None]  # padding (None) is at the end
        parts = [read_input(f, info.dtype) for f in real]
        if len(real) < len(files):  # padding reads as the batch's first file: one repeat, not a read per slot
            parts.append(np.tile(parts[0], len(files) - len(real)))
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        feeds[info.name] = data.reshape(shape)
    return feeds


def run_batches(
    session: Backend,
    plan: InferPlan,
    out_dir: Path | None,
    outfmt: str = "BIN",
    loop: int = 1,
    output_axis: int = 0,
    pure_data: str = "zero",
    batches: Sequence[Batch] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    outfile_prefix: str | None = None,
) -> dict[str, Any]:
    """Run ``batches`` (default: all of ``plan``'s) and write their outputs into ``out_dir``.

    Each batch runs ``loop`` times (each run timed); outputs of padding files are dropped.
    ``filesinfo`` records input files by their ``plan.texts`` and output files as
    ``os.path.join(outfile_prefix, name)`` (ais_bench's text; the bare name without a prefix).
    Returns ``{"host_ms": [...], "device_ms": [...] | None, "h2d_ms"/"d2h_ms": [...] | None,
    "filesinfo": {...}}``; the copy times come from a device backend's ``memcpy_times_ms``.
    """
    batches = plan.batches if batches is None else batches
    extension = outfmt.lower()
    device_time = getattr(session, "device_time_ms", None) if getattr(session, "device", False) else None
    memcpy = getattr(session, "memcpy_times_ms", None) if device_time is not None else None
    if memcpy is not None:
        memcpy()  # drop the warm-up copies (ais_bench resets MemorySummary after its warm-up)
    host_ms: list[float] = []
    device_ms: list[float] = []
    filesinfo: dict[str, dict[str, list[str]]] = {}
    rng = np.random.default_rng(0)
    for done, batch in enumerate(batches, 1):
        feeds = _feeds(session, plan, batch, pure_data, rng)
        for _ in range(loop):
            start = time.perf_counter()
            results = session.run(feeds)
            host_ms.append((time.perf_counter() - start) * 1000.0)
            if device_time is not None:
                device_ms.append(device_time())
        count = plan.files_per_batch  # the time follows the files: only real ones are cut out and written
        real = count if plan.pure else sum(1 for f in batch.files[0] if f is not None)
        for k, value in enumerate(results.values()):
            value = np.asarray(value)
            if count > 1 and (value.ndim <= output_axis or value.shape[output_axis] % count):
                raise InputError(
                    f"output {k} has shape {list(value.shape)}: axis {output_axis} cannot be split into {count} parts, "
                    "one per input file"
                )
            rows = value.shape[output_axis] // count if count > 1 else 0
            for j in range(real):  # the padding's parts (at the end) are never cut out
                part = value[(slice(None),) * output_axis + (slice(j * rows, (j + 1) * rows),)] if count > 1 else value
                source = batch.files[0][j]
                if source is None and not plan.pure:
                    continue  # padding
                sample = str(batch.first_sample + j)
                info = filesinfo.setdefault(sample, {"infiles": [], "outfiles": []})
                if not info["infiles"]:
                    infiles = [plan.texts.get(files[j], str(files[j])) for files in batch.files]
                    info["infiles"] = infiles if not plan.pure else [PURE_INFER_NAME]
                if out_dir is None:
                    continue
                stem = PURE_INFER_NAME if plan.pure else output_stem(source)
                path = out_dir / f"{stem}_{k}.{extension}"
                save_output(path, part, outfmt)
                info["outfiles"].append(os.path.join(outfile_prefix, path.name) if outfile_prefix else path.name)
        if on_batch is not None:
            on_batch(done, len(batches))
    h2d, d2h = memcpy() if memcpy is not None else (None, None)
    return {
        "host_ms": host_ms,
        "device_ms": device_ms if device_time is not None else None,
        "h2d_ms": h2d,
        "d2h_ms": d2h,
        "filesinfo": filesinfo,
    }


def infer_files(
    model: str | os.PathLike,
    inputs: Sequence[str | os.PathLike] | None,
    output: str | os.PathLike | None,
    output_dirname: str | None = None,
    outfmt: Literal["BIN", "NPY", "TXT"] = "BIN",
    batchsize: int | None = None,
    backend: str = "ort",
    backend_options: dict[str, Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    loop: int = 1,
    warmup_count: int = 1,
    dym_batch: int | None = None,
    dym_hw: str | None = None,
    dym_dims: str | None = None,
    dym_shape: str | None = None,
    auto_set_dymshape_mode: bool = False,
    auto_set_dymdims_mode: bool = False,
    output_batchsize_axis: int = 0,
    pure_data_type: Literal["zero", "random"] = "zero",
    sumary_json: bool = False,
    args: list[str] | None = None,
    debug: bool = False,
) -> dict[str, Any]:
    """Run ``model`` over input files ais_bench-style; returns the summary (written when ``output``).

    ``inputs`` None is pure inference. See the module doc for the conventions; user errors are
    InputError (one line, exit 2) and leave the output folder as it was.
    """
    outfmt = str(outfmt).upper()
    if outfmt not in OUTFMTS:
        raise InputError(f"--outfmt {outfmt}: expected one of {', '.join(OUTFMTS)}")
    for flag, value, low in (("--batchsize", batchsize, 1), ("--loop", loop, 1), ("--dymBatch", dym_batch, 1)):
        if value is not None and value < low:
            raise InputError(f"{flag} {value}: must be >= {low}")
    if warmup_count < 0 or output_batchsize_axis < 0:
        raise InputError("--warmup_count and --output_batchsize_axis must be >= 0")
    if sum(bool(v) for v in (dym_batch, dym_hw, dym_dims, dym_shape)) > 1:
        raise InputError("give at most one of --dymBatch, --dymHW, --dymDims, --dymShape (ais_bench uses one)")
    auto = auto_set_dymshape_mode or auto_set_dymdims_mode
    if auto and (dym_batch or dym_hw or dym_dims or dym_shape):
        raise InputError("--auto_set_dymshape_mode/--auto_set_dymdims_mode take each file's own shape; drop --dym*")
    # The option texts are checked before any backend opens: a device session receives them as they are.
    if dym_hw:
        hw_option(dym_hw)
    for flag, text in (("--dymDims", dym_dims), ("--dymShape", dym_shape)):
        if text:
            dims_option(text, flag)
    if output_dirname is not None and output is None:
        raise InputError("--output_dirname needs --output (ais_bench: it names a folder under --output)")
    output_dirname = check_output_dirname(output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S"))

    with open_backend(backend, model, **(backend_options or {})) as session:
        if debug:
            for kind, infos in (("input", session.inputs), ("output", session.outputs)):
                for info in infos:
                    print(f"[debug] {kind} {info.name} {list(info.shape)} {info.dtype}", file=sys.stderr)
        file_lists = input_file_lists(inputs, len(session.inputs)) if inputs else None
        batch = dym_batch or batchsize or 1  # a symbolic batch dim runs at this size
        if auto:
            plan = _auto_shape_plan(session.inputs, file_lists)
        else:
            shapes = resolve_shapes(session.inputs, batch, bool(dym_batch), dym_hw, dym_dims, dym_shape)
            plan = plan_batches(session.inputs, shapes, file_lists)
        if file_lists is not None:
            plan.texts = input_texts(inputs, file_lists)
        if batchsize is None:
            batchsize = default_batchsize(plan)
        if warmup_count:
            warm = _feeds(session, plan, plan.batches[0], pure_data_type, np.random.default_rng(0))
            for _ in range(warmup_count):
                session.run(warm)
        out_root = Path(output) if output is not None else None
        prefix = output_prefix(output, output_dirname) if output is not None else None
        target = Path(prefix) if prefix is not None else None
        staging = None
        if out_root is not None:
            try:
                out_root.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=".graphkit-infer.partial-", dir=out_root))
            except OSError as exc:
                raise InputError(f"--output {out_root}: cannot write there ({exc.strerror or exc})") from exc
        try:
            timing = run_batches(
                session,
                plan,
                staging,
                outfmt,
                loop,
                output_batchsize_axis,
                pure_data_type,
                on_batch=on_batch,
                outfile_prefix=prefix,
            )
            summary = _summary(plan, timing, batchsize, session, backend, model, args, loop)
            if staging is not None:
                if sumary_json:
                    write_text_atomic(staging / "sumary.json", json.dumps(summary, indent=2) + "\n")
                try:
                    target.mkdir(parents=True, exist_ok=True)
                    for item in staging.iterdir():
                        os.replace(item, target / item.name)  # a rerun overwrites files of the same name
                except OSError as exc:
                    raise InputError(f"output folder {target}: cannot write there ({exc.strerror or exc})") from exc
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
    if prefix is not None:
        written = write_text_atomic(Path(summary_path(prefix)), json.dumps(summary, indent=2) + "\n")
        summary["summary_path"] = str(written)
        summary["output_dir"] = str(target)
        if sumary_json:
            summary["sumary_path"] = str(target / "sumary.json")
    return summary


def _auto_shape_plan(inputs: Sequence[TensorInfo], file_lists: list[list[Path]] | None) -> InferPlan:
    """ais_bench's auto_set_dymshape/dymdims mode: each .npy file is one whole input tensor."""
    if file_lists is None:
        raise InputError("--auto_set_dymshape_mode/--auto_set_dymdims_mode need --input (.npy files)")
    for info, files in zip(inputs, file_lists):
        for file in files:
            if file.suffix.lower() != ".npy":
                raise InputError(f"input {file}: the auto shape modes need .npy files (a .bin file has no shape)")
            file_bytes(file, info.dtype)
    batches = [Batch(i, [[files[i]] for files in file_lists], i) for i in range(len(file_lists[0]))]
    return InferPlan([()] * len(inputs), 1, batches, auto_shapes=True)


def default_batchsize(plan: InferPlan) -> float:
    """ais_bench's batchsize when ``--batchsize`` is not given (``miscellaneous.get_batchsize``):
    dim 0 of the first input as it runs, which is the model's own, the ``--dymBatch`` value, or
    the first input's dim 0 in ``--dymDims``/``--dymShape``. In the auto shape modes ais_bench
    averages dim 0 of the first input over the runs (``summary.add_batchsize``); so does this."""
    if plan.auto_shapes:
        sizes = [load_npy(b.files[0][0], mmap_mode="r").shape[:1] or (1,) for b in plan.batches]
        mean = sum(s[0] for s in sizes) / len(sizes)
        return int(mean) if mean == int(mean) else mean
    return plan.shapes[0][0] if plan.shapes and plan.shapes[0] else 1


def _summary(plan, timing, batchsize, session, backend, model, args, loop) -> dict[str, Any]:
    device = timing["device_ms"]
    summary: dict[str, Any] = {
        **timing_summary(batchsize, timing["host_ms"], device, timing["h2d_ms"], timing["d2h_ms"]),
        "batchsize": batchsize,
        "model_batch": plan.shapes[0][0] if plan.shapes and plan.shapes[0] else None,
        "files_per_batch": plan.files_per_batch,
        "loop": loop,
        "backend": backend,
        "model": os.fspath(model),
        "input_files": sum(1 for b in plan.batches for f in b.files[0] if f is not None) if not plan.pure else 0,
        "batches": len(plan.batches),
        "filesinfo": timing["filesinfo"],
        "args": args if args is not None else [],
        "pid": os.getpid(),
    }
    if device is not None:
        summary["npu_compute_time_list"] = device
    else:
        summary["host_run_time_list"] = timing["host_ms"]
    return summary
