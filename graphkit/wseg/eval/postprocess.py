"""The per-image work after inference, run in the worker pool: merge, argmax, CRF, metrics, files.

A job is a plain picklable :class:`ImageJob`; :func:`postprocess_image` returns a small
:class:`ImageRecord` and, last of all, writes the image's state file (``state/<name>.npz``).
A state file therefore means "this image is fully done"; a resumed run skips exactly those.

A state file carries a ``digest`` (SHA-256, :func:`graphkit.util.integrity.arrays_digest`) of
its arrays bound to the image's name and to the run record ``run.json`` (model fingerprint and
result settings): a state file edited after it was written (a zeroed confusion matrix), copied
from another image or from a run with another model or settings does not verify, and a resumed
run recomputes that image with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphkit.util.files import atomic_path
from graphkit.util.integrity import arrays_digest, file_digest
from graphkit.wseg.eval.crf import CrfParams, crf_labels
from graphkit.wseg.eval.merge import class_presence, finish_merge
from graphkit.wseg.eval.metrics import confusion_matrix
from graphkit.wseg.eval.outputs import overlay_panel, save_index_png, save_panel

STATE_DIR = "state"
RUN_FILE = "run.json"
MASK_DIR = "masks"
CRF_MASK_DIR = "masks_crf"
OVERLAY_DIR = "overlays"


@dataclass
class ImageJob:
    """Everything the worker needs for one image (no view tensors: only their running sum)."""

    name: str
    image: np.ndarray  # [H, W, 3] uint8, the original image
    gt: np.ndarray  # [H, W] uint8 class indices, 255 ignored
    view_sum: np.ndarray  # [C, H, W] float32, sum of the cut/resized/un-flipped view masks
    cls_logits: np.ndarray  # [V, C-1] float32
    out_dir: str
    num_classes: int
    fp_cut_score: float
    bg_pow: float
    crf: CrfParams | None
    save_masks: bool
    save_overlay: bool


@dataclass
class ImageRecord:
    """What the main process keeps per image."""

    name: str
    conf: np.ndarray
    conf_crf: np.ndarray | None
    present: np.ndarray


def state_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / STATE_DIR / f"{name}.npz"


@dataclass
class ImageResult:
    """A finished image before anything is written: its record and the masks to save."""

    record: ImageRecord
    image_hw: tuple[int, int]
    pred: np.ndarray | None  # [H, W] uint8 (None when masks are not saved)
    pred_crf: np.ndarray | None
    overlay: np.ndarray | None  # image | mask | CRF mask | GT panel, when asked


def compute_image(job: ImageJob) -> ImageResult:
    """Merge, predict, refine and score one image; writes nothing."""
    present = class_presence(job.cls_logits, job.fp_cut_score)
    merged = finish_merge(job.view_sum, present, len(job.cls_logits), job.bg_pow)
    pred = np.argmax(merged, axis=0).astype(np.uint8)
    conf = confusion_matrix(job.gt, pred, job.num_classes)
    pred_crf = conf_crf = None
    if job.crf is not None:
        pred_crf = crf_labels(job.image, merged, job.crf)
        conf_crf = confusion_matrix(job.gt, pred_crf, job.num_classes)
    overlay = None
    if job.save_overlay:
        overlay = overlay_panel(job.image, [pred] + ([pred_crf] if pred_crf is not None else []) + [job.gt])
    return ImageResult(
        ImageRecord(job.name, conf, conf_crf, present),
        tuple(job.image.shape[:2]),
        pred if job.save_masks else None,
        pred_crf if job.save_masks else None,
        overlay,
    )


def write_image_outputs(out_dir: str | Path, result: ImageResult) -> None:
    """The image's mask PNGs and overlay, then (last) its state file: the record of a done image."""
    out = Path(out_dir)
    name = result.record.name
    if result.pred is not None:
        save_index_png(out / MASK_DIR / f"{name}.png", result.pred)
    if result.pred_crf is not None:
        save_index_png(out / CRF_MASK_DIR / f"{name}.png", result.pred_crf)
    if result.overlay is not None:
        save_panel(out / OVERLAY_DIR / f"{name}.png", result.overlay)
    write_state(out, result.record, result.image_hw)


def postprocess_image(job: ImageJob) -> ImageRecord:
    """Merge, predict, refine, score and write one image (the local pool's task); its record."""
    result = compute_image(job)
    write_image_outputs(job.out_dir, result)
    return result.record


def _binding(out_dir: str | Path, name: str) -> dict:
    """What a state file's digest is bound to: the image and the run record (model, settings)."""
    try:
        run = file_digest(Path(out_dir) / RUN_FILE)
    except OSError:
        run = None
    return {"image": name, "run": run}


def write_state(out_dir: Path, record: ImageRecord, image_hw) -> None:
    arrays = {"conf": record.conf, "present": record.present, "hw": np.asarray(image_hw, dtype=np.int64)}
    if record.conf_crf is not None:
        arrays["conf_crf"] = record.conf_crf
    arrays["digest"] = np.asarray(arrays_digest(arrays, _binding(out_dir, record.name)))

    with atomic_path(state_path(out_dir, record.name)) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


class StateError(Exception):
    """A state file that cannot be trusted (unreadable, wrong keys, shapes, dtypes or values)."""


def read_state(out_dir: str | Path, name: str, num_classes: int | None = None, crf: bool | None = None) -> ImageRecord:
    """The record of a finished image; :class:`StateError` when the file is not one we wrote.

    Checked: a readable npz without pickles; its ``digest`` (the arrays, this image's name and
    the run record ``run.json``); ``conf`` (and ``conf_crf`` exactly when ``crf``)
    [C, C] non-negative integers whose total fits ``hw``; ``present`` [C-1] of 0/1; ``hw`` two
    positive integers.
    """
    path = state_path(out_dir, name)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:  # noqa: BLE001 - zip, zlib, npy header, OS errors: all mean "unreadable"
        raise StateError(f"{path}: unreadable ({exc.__class__.__name__}: {exc})") from exc
    digest = arrays.pop("digest", None)
    if digest is None or digest.shape != () or digest.dtype.kind != "U":
        raise StateError(f"{path}: no digest (written by an older graphkit, or edited)")
    if str(digest) != arrays_digest(arrays, _binding(out_dir, name)):
        raise StateError(
            f"{path}: does not match its digest (edited after it was written, or from another image or run)"
        )
    return _checked_record(path, name, arrays, num_classes, crf)


def _checked_record(path: Path, name: str, arrays: dict, num_classes: int | None, crf: bool | None) -> ImageRecord:
    missing = {"conf", "present", "hw"} - set(arrays)
    if missing:
        raise StateError(f"{path}: missing {', '.join(sorted(missing))}")
    hw = arrays["hw"]
    if hw.shape != (2,) or hw.dtype.kind not in "iu" or (hw <= 0).any():
        raise StateError(f"{path}: hw must be two positive integers")
    classes = num_classes if num_classes is not None else len(arrays["conf"])
    if crf is not None and ("conf_crf" in arrays) != crf:
        raise StateError(f"{path}: {'lacks' if crf else 'has'} a CRF confusion matrix")
    for key in ("conf", "conf_crf"):
        if key not in arrays:
            continue
        conf = arrays[key]
        if conf.shape != (classes, classes) or conf.dtype.kind not in "iu":
            raise StateError(
                f"{path}: {key} must be [{classes}, {classes}] integers, got {list(conf.shape)} {conf.dtype}"
            )
        if (conf < 0).any() or int(conf.sum()) > int(hw[0]) * int(hw[1]):
            raise StateError(f"{path}: {key} counts are negative or exceed the image's pixels")
    present = arrays["present"]
    if present.shape != (classes - 1,) or not np.isin(present, (0, 1)).all():
        raise StateError(f"{path}: present must be {classes - 1} values of 0 or 1")
    return ImageRecord(name, arrays["conf"], arrays.get("conf_crf"), present)
