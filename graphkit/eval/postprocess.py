"""The per-image work after inference, run in the worker pool: merge, argmax, CRF, metrics, files.

A job is a plain picklable :class:`ImageJob`; :func:`postprocess_image` returns a small
:class:`ImageRecord` and, last of all, writes the image's state file (``state/<name>.npz``).
A state file therefore means "this image is fully done"; a resumed run skips exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphkit.eval.crf import CrfParams, crf_labels
from graphkit.eval.merge import class_presence, finish_merge
from graphkit.eval.metrics import confusion_matrix
from graphkit.eval.outputs import atomic_write, save_index_png, save_overlay

STATE_DIR = "state"
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


def postprocess_image(job: ImageJob) -> ImageRecord:
    """Merge, predict, refine, score and write one image; returns its record."""
    present = class_presence(job.cls_logits, job.fp_cut_score)
    merged = finish_merge(job.view_sum, present, len(job.cls_logits), job.bg_pow)
    pred = np.argmax(merged, axis=0).astype(np.uint8)
    conf = confusion_matrix(job.gt, pred, job.num_classes)
    pred_crf = conf_crf = None
    if job.crf is not None:
        pred_crf = crf_labels(job.image, merged, job.crf)
        conf_crf = confusion_matrix(job.gt, pred_crf, job.num_classes)
    out = Path(job.out_dir)
    if job.save_masks:
        save_index_png(out / MASK_DIR / f"{job.name}.png", pred)
        if pred_crf is not None:
            save_index_png(out / CRF_MASK_DIR / f"{job.name}.png", pred_crf)
    if job.save_overlay:
        masks = [pred] + ([pred_crf] if pred_crf is not None else []) + [job.gt]
        save_overlay(out / OVERLAY_DIR / f"{job.name}.png", job.image, masks)
    record = ImageRecord(job.name, conf, conf_crf, present)
    write_state(out, record, job.image.shape[:2])
    return record


def write_state(out_dir: Path, record: ImageRecord, image_hw) -> None:
    arrays = {"conf": record.conf, "present": record.present, "hw": np.asarray(image_hw, dtype=np.int64)}
    if record.conf_crf is not None:
        arrays["conf_crf"] = record.conf_crf

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(state_path(out_dir, record.name), write)


def read_state(out_dir: str | Path, name: str) -> ImageRecord:
    with np.load(state_path(out_dir, name)) as data:
        conf_crf = data["conf_crf"] if "conf_crf" in data.files else None
        return ImageRecord(name, data["conf"], conf_crf, data["present"])
