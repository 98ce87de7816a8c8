"""The streaming accuracy run: preprocess -> infer -> merge -> (worker pool) CRF, metrics, files.

Per image, the main process builds the views in memory, runs them through the backend in
batches (views of consecutive images share a batch; the very last batch is padded with zero
views) and folds each view's mask into a running sum at the image size as soon as it comes
back. Nothing per-view touches the disk. The sum, the class logits, the image and its GT go
to a worker process that finishes the merge, runs the CRF, scores the image and writes its
files. At most ``2 x workers`` images are in flight, so memory stays bounded.

Output folder layout::

    run.json            settings + model fingerprint (a resumed run must match them)
    state/<name>.npz    per-image confusion matrices: the record of a finished image
    masks/, masks_crf/  palette PNGs (class indices)        overlays/  image|mask|CRF|GT
    metrics.json        summary (per-class IoU/precision/recall, both mIoU figures)
    metrics.txt         the same as a table           scores.jsonl   per-image figures
    iou_per_class.png   bar chart
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import xxhash

from graphkit.util.console import progress as progress_bar
from graphkit.util.errors import GraphkitError, ModelLoadError, one_line
from graphkit.util.files import make_folder, write_bytes_atomic, write_text_atomic
from graphkit.wseg.eval.crf import CrfParams, require_pydensecrf
from graphkit.wseg.eval.image_task import LoadedImage, check_backend, image_job, load_views, run_views
from graphkit.wseg.eval.metrics import image_scores, summarize
from graphkit.wseg.eval.outputs import metrics_table, save_iou_chart, write_json
from graphkit.wseg.eval.postprocess import (
    RUN_FILE,
    STATE_DIR,
    ImageRecord,
    StateError,
    postprocess_image,
    read_state,
    state_path,
    write_image_outputs,
)
from graphkit.wseg.eval.spec import EvalSpec
from graphkit.wseg.eval.views import make_views, view_plan
from graphkit.wseg.eval.voc import EvalDataError, Sample, class_names, load_image, missing_files, read_samples

RANDOM_WEIGHTS_NOTE = "seeded random weights: this mIoU is meaningless, it only shows the pipeline runs"


def run_eval(spec: EvalSpec, model_path: str | os.PathLike, out_dir: str | os.PathLike, progress: bool = True) -> dict:
    """Evaluate ``model_path`` on the VOC data of ``spec``; write the outputs under ``out_dir``.

    Returns the summary that is also written to ``out_dir/metrics.json``.
    """
    started = time.perf_counter()
    model_path, out = Path(model_path), Path(out_dir)
    if not model_path.is_file():
        raise ModelLoadError(f"{model_path}: no such file")
    listed = read_samples(spec.data_root, spec.image_list, spec.split, spec.mask_dir)
    selected = listed[: spec.limit] if spec.limit else listed
    samples, missing = _check_files(selected, spec.skip_missing)
    crf = _crf_params(spec)
    _prepare_out_dir(out, spec, model_path)
    if spec.dump_bins_dir and spec.dump_bins_count:
        dump_bins(samples[: spec.dump_bins_count], spec, spec.dump_bins_dir)

    bad_state = _drop_untrusted_state(out, samples, spec)
    todo = [(i, s) for i, s in enumerate(samples) if not state_path(out, s.name).is_file()]
    computed, executor = 0, {"kind": spec.executor}
    if todo and spec.executor == "ray":
        computed, executor = _run_images_ray(todo, spec, crf, model_path, out, progress)
    elif todo:
        computed, timing = _run_images(todo, spec, crf, model_path, out, progress)
        executor |= timing
    if spec.executor == "local":
        executor["workers"] = _local_workers(spec)

    records = [read_state(out, s.name, spec.num_classes, spec.crf) for s in samples]
    summary = _summarize(spec, model_path, out, records, listed, selected, missing, computed)
    summary["images"]["recomputed_untrusted_state"] = bad_state
    summary["executor"] = executor
    summary["timing"] = {
        "seconds": round(time.perf_counter() - started, 3),
        "images_per_second": round(computed / (time.perf_counter() - started), 4) if computed else None,
    }
    _write_reports(out, summary, records)
    return summary


def _drop_untrusted_state(out: Path, samples: list[Sample], spec: EvalSpec) -> list[str]:
    """Remove state files that fail :func:`read_state`'s checks, so their images are recomputed.

    A state file is written atomically and last, so a bad one was damaged after the fact (disk,
    hand edits); recomputing that image is always right, and a warning names the file.
    """
    dropped = []
    for sample in samples:
        path = state_path(out, sample.name)
        if not (path.exists() or path.is_symlink()):
            continue
        try:
            if path.is_symlink() or not path.is_file():
                raise StateError(f"{path}: not a regular file")
            read_state(out, sample.name, spec.num_classes, spec.crf)
        except StateError as exc:
            print(f"graphkit: warning: {one_line(exc, 250)}; recomputing '{sample.name}'", file=sys.stderr)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            dropped.append(sample.name)
    return dropped


def _crf_params(spec: EvalSpec) -> CrfParams | None:
    if not spec.crf:
        return None
    require_pydensecrf()
    return CrfParams(
        spec.crf_iterations,
        spec.crf_gaussian_sxy,
        spec.crf_gaussian_compat,
        spec.crf_bilateral_sxy,
        spec.crf_bilateral_srgb,
        spec.crf_bilateral_compat,
    )


def _check_files(samples: list[Sample], skip_missing: bool) -> tuple[list[Sample], list[str]]:
    kept, missing = [], []
    for sample in samples:
        gone = missing_files(sample)
        if not gone:
            kept.append(sample)
            continue
        if not skip_missing:
            kind = "image" if gone[0] == sample.image_path else "GT mask"
            raise EvalDataError(f"{kind} {gone[0]}: no such file (of '{sample.name}'; use --skip-missing to skip)")
        missing.extend(str(p) for p in gone)
    if not kept:
        raise EvalDataError(f"none of the {len(samples)} listed images has both its image and GT mask")
    return kept, missing


def model_fingerprint(path: Path) -> str:
    """xxh3-128 of the model file's bytes (streamed)."""
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _prepare_out_dir(out: Path, spec: EvalSpec, model_path: Path) -> None:
    run = {"model_fingerprint": model_fingerprint(model_path), "settings": spec.result_settings()}
    run_file = out / RUN_FILE
    if out.exists() and not out.is_dir():
        raise GraphkitError(f"output {out}: exists and is not a folder")
    for path, kind in ((run_file, "a regular file"), (out / STATE_DIR, "a folder")):
        ok = path.is_file() if kind == "a regular file" else path.is_dir()
        if (path.exists() or path.is_symlink()) and (path.is_symlink() or not ok):
            raise GraphkitError(
                f"{path}: expected {kind} (not a link or anything else); remove it or use another --out"
            )
    if run_file.exists() and spec.resume:
        previous = _read_run_file(run_file)
        if previous != json.loads(json.dumps(run)):
            changed = [k for k in run["settings"] if previous["settings"].get(k) != run["settings"][k]]
            what = f"settings {', '.join(changed)}" if changed else "the model file"
            raise GraphkitError(
                f"output {out}: holds a partial run with different {what}; use another output folder or --no-resume"
            )
    elif (out / STATE_DIR).is_dir():
        shutil.rmtree(out / STATE_DIR)  # not resuming: forget the previous run's images
    make_folder(out / STATE_DIR)
    write_json(run_file, run)


def _read_run_file(path: Path) -> dict:
    """The previous run's record; a damaged one refuses the resume (its images' origin is unknown)."""
    hint = "use --no-resume to start over, or another output folder"
    try:
        previous = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise GraphkitError(f"{path}: unreadable resume record ({one_line(exc, 120)}); {hint}") from exc
    if not isinstance(previous, dict) or not isinstance(previous.get("settings"), dict):
        raise GraphkitError(f"{path}: not a resume record (expected a mapping with 'settings'); {hint}")
    return previous


def _open(spec: EvalSpec, model_path: Path):
    from graphkit.runtime.backend import open_backend

    backend = open_backend(spec.backend, model_path, **_backend_options(spec))
    try:
        return backend, check_backend(backend, spec)
    except BaseException:
        backend.close()
        raise


def _backend_options(spec: EvalSpec) -> dict:
    return {"threads": spec.threads} if spec.threads is not None else {}


def _local_workers(spec: EvalSpec) -> int:
    return spec.workers if spec.workers is not None else (len(os.sched_getaffinity(0)) or 1)


def _run_images_ray(todo, spec: EvalSpec, crf: CrfParams | None, model_path: Path, out: Path, progress: bool):
    """The images on Ray workers (one session each); the driver writes every file, state last."""
    from graphkit.runtime.ray_executor import RayExecutor
    from graphkit.wseg.eval.image_task import evaluate_image, read_task

    done, driver_seconds = 0, 0.0

    def tasks(batch_size: int):
        nonlocal driver_seconds
        for index, sample in todo:
            started = time.perf_counter()
            task = read_task(index, sample, spec, crf, batch_size)
            driver_seconds += time.perf_counter() - started
            yield task

    with RayExecutor(spec.ray, model_path, spec.backend, _backend_options(spec)) as executor:
        batch_size = executor.start(check=check_backend, argument=spec)[0]["check"]
        desc = f"eval on {executor.workers} Ray workers"
        bar = progress_bar(total=len(todo), desc=desc, unit="img") if progress else nullcontext()
        with bar:
            for _, result in executor.imap_unordered(evaluate_image, tasks(batch_size)):
                started = time.perf_counter()
                write_image_outputs(out, result)
                driver_seconds += time.perf_counter() - started
                done += 1
                if progress:
                    bar.update(1)
        stats = executor.stats(unit="images", driver_seconds=driver_seconds)
    return done, stats


def _run_images(todo, spec: EvalSpec, crf: CrfParams | None, model_path: Path, out: Path, progress: bool):
    """The images in this process + the local pool; returns (images done, timing)."""
    plan = view_plan(spec.scales, spec.flip)
    opened = time.perf_counter()
    backend, batch_size = _open(spec, model_path)
    started = time.perf_counter()
    workers = _local_workers(spec)
    pool = (
        ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) if workers else None
    )
    in_flight: set[Future] = set()
    done = 0
    bar = progress_bar(total=len(todo), desc="eval", unit="img") if progress else nullcontext()
    queue: list[tuple[LoadedImage, int]] = []  # (image, view index) waiting for a batch

    def collect(block: bool) -> None:
        nonlocal done
        if not in_flight:
            return
        finished, _ = wait(in_flight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in finished:
            in_flight.discard(future)
            future.result()  # re-raises a worker's error here
            done += 1
            if progress:
                bar.update(1)

    def submit(item: LoadedImage) -> None:
        job = image_job(item, spec, crf, str(out))
        if pool is None:
            postprocess_image(job)
            nonlocal done
            done += 1
            if progress:
                bar.update(1)
            return
        while len(in_flight) >= 2 * workers:
            collect(block=True)
        in_flight.add(pool.submit(postprocess_image, job))

    def infer(batch_items: list[tuple[LoadedImage, int]]) -> None:
        feed = np.zeros((batch_size, 3, *spec.pad_size), dtype=np.float32)
        for k, (item, v) in enumerate(batch_items):
            feed[k] = item.views[v]
        cls, mask = run_views(backend, spec, feed)
        for k, (item, v) in enumerate(batch_items):
            item.acc.add(cls[k], mask[k], item.pads[v], plan[v].flipped)
            if item.acc.complete:
                item.views = None
                submit(item)

    try:
        with bar:
            for index, sample in todo:
                item = load_views(index, sample, spec, plan)
                queue.extend((item, v) for v in range(len(plan)))
                while len(queue) >= batch_size:
                    infer(queue[:batch_size])
                    del queue[:batch_size]
                collect(block=False)
            if queue:
                infer(queue)
            while in_flight:
                collect(block=True)
    finally:
        if pool is not None:
            for future in in_flight:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        backend.close()
    timing = {"startup_seconds": round(started - opened, 3), "run_seconds": round(time.perf_counter() - started, 3)}
    return done, timing


def dump_bins(samples: list[Sample], spec: EvalSpec, out_dir: str | os.PathLike) -> Path:
    """ais_bench-style inputs: ``<name>_<view>.bin`` (raw float32 [1, 3, H, W]) + ``views.json``.

    ais_bench sorts input files naturally and concatenates them into batches, so the views of
    one image stay together and in view order. ``views.json`` records what the merge needs.
    """
    folder = Path(out_dir)
    plan = view_plan(spec.scales, spec.flip)
    manifest = {"pad_size": list(spec.pad_size), "views": [vars(v) for v in plan], "images": {}}
    for sample in samples:
        image = load_image(sample.image_path)
        views, pads = make_views(image, plan, spec.pad_size, name=str(sample.image_path))
        for v in range(len(plan)):
            write_bytes_atomic(folder / f"{sample.name}_{v}.bin", views[v : v + 1].tobytes())
        manifest["images"][sample.name] = {"hw": [image.height, image.width], "pads": pads.tolist()}
    write_json(folder / "views.json", manifest)
    return folder


def _summarize(spec, model_path, out, records: list[ImageRecord], listed, selected, missing, computed) -> dict:
    conf = sum(r.conf for r in records)
    metrics = {"plain": summarize(conf), "crf": None}
    if spec.crf:
        metrics["crf"] = summarize(sum(r.conf_crf for r in records))
    random_weights = spec.weights_description.strip().lower().startswith("random")
    summary = {
        "model": str(model_path),
        "backend": spec.backend,
        "weights_description": spec.weights_description,
        "note": RANDOM_WEIGHTS_NOTE if random_weights else None,
        "miou_21_with_background": metrics["plain"]["miou_21_with_background"],
        "miou_20_without_background": metrics["plain"]["miou_20_without_background"],
        "miou_21_with_background_crf": metrics["crf"]["miou_21_with_background"] if metrics["crf"] else None,
        "miou_20_without_background_crf": metrics["crf"]["miou_20_without_background"] if metrics["crf"] else None,
        "images": {
            "listed": len(listed),
            "selected": len(selected),
            "evaluated": len(records),
            "computed_this_run": computed,
            "resumed": len(records) - computed,
            "skipped_missing": len(selected) - len(records),
            "missing_files": missing,
        },
        "metrics": metrics,
        "settings": spec.result_settings(),
        "output_dir": str(out),
    }
    return summary


def _write_reports(out: Path, summary: dict, records: list[ImageRecord]) -> None:
    lines = []
    names = class_names(len(records[0].conf)) if records else []
    for record in records:
        entry = {"name": record.name, "present_classes": [names[i + 1] for i in np.flatnonzero(record.present)]}
        entry["plain"] = image_scores(record.conf)
        if record.conf_crf is not None:
            entry["crf"] = image_scores(record.conf_crf)
        lines.append(json.dumps(entry))
    write_text_atomic(out / "scores.jsonl", "\n".join(lines) + "\n")
    series = {"without CRF": [v["iou"] for v in summary["metrics"]["plain"]["per_class"].values()]}
    if summary["metrics"]["crf"]:
        series["with CRF"] = [v["iou"] for v in summary["metrics"]["crf"]["per_class"].values()]
    title = f"Per-class IoU, {summary['images']['evaluated']} images"
    if summary["note"]:
        title += f" ({summary['note']})"
    save_iou_chart(out / "iou_per_class.png", list(summary["metrics"]["plain"]["per_class"]), series, title)
    write_text_atomic(out / "metrics.txt", metrics_table(summary))
    write_json(out / "metrics.json", summary)
