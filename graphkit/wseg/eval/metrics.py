"""Segmentation metrics: confusion matrix, per-class IoU / precision / recall, the two mIoU figures.

The confusion matrix has GT classes as rows and predicted classes as columns; only pixels with
GT < num_classes count (255, "ambiguous", is ignored), like ``eval_seg.py`` of the reference,
but computed with one ``bincount`` instead of a per-pixel Python loop.

Two mean IoU figures, always labelled:

- ``miou_21_with_background``: the standard VOC figure (the published 62.7 with CRF is this);
- ``miou_20_without_background``: what ``eval_seg.py`` prints first as "mIoU".

A class that appears neither in the GT nor in the predictions of the evaluated images has no
IoU (``None``) and is left out of the means; ``eval_seg.py`` would count it as 0. On the full
VOC val set every class occurs, so both conventions give the same figure.
"""

from __future__ import annotations

import numpy as np

from graphkit.wseg.eval.voc import class_names as voc_class_names


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int = 21) -> np.ndarray:
    """[num_classes, num_classes] int64 counts of (GT row, prediction column); GT >= C ignored."""
    gt = np.asarray(gt).reshape(-1)
    pred = np.asarray(pred).reshape(-1)
    if gt.shape != pred.shape:
        raise ValueError(f"GT has {gt.size} pixels, prediction {pred.size}")
    valid = gt < num_classes
    gt_v = gt[valid].astype(np.int64)
    pred_v = pred[valid].astype(np.int64)
    if pred_v.size and (pred_v.max() >= num_classes or pred_v.min() < 0):
        raise ValueError(f"prediction labels must be in [0, {num_classes})")
    counts = np.bincount(gt_v * num_classes + pred_v, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float | None]:
    return [float(n / d) if d > 0 else None for n, d in zip(num, den)]


def class_scores(conf: np.ndarray) -> dict:
    """Per-class IoU / precision / recall (fractions in [0, 1], None where undefined) and counts."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    gt_count = conf.sum(axis=1)
    pred_count = conf.sum(axis=0)
    union = gt_count + pred_count - tp
    return {
        "iou": _ratio(tp, union),
        "precision": _ratio(tp, pred_count),
        "recall": _ratio(tp, gt_count),
        "gt_pixels": [int(v) for v in gt_count],
        "pred_pixels": [int(v) for v in pred_count],
    }


def _mean(values) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def summarize(conf: np.ndarray) -> dict:
    """The metrics of one confusion matrix: per-class scores, both mIoU figures, pixel accuracy."""
    scores = class_scores(conf)
    num = len(scores["iou"])
    names = voc_class_names(num)
    total = float(np.asarray(conf).sum())
    return {
        "miou_21_with_background": _mean(scores["iou"]),
        "miou_20_without_background": _mean(scores["iou"][1:]),
        "mean_precision_21": _mean(scores["precision"]),
        "mean_recall_21": _mean(scores["recall"]),
        "pixel_accuracy": float(np.trace(conf) / total) if total else None,
        "classes_without_iou": [names[i] for i, v in enumerate(scores["iou"]) if v is None],
        "per_class": {
            names[i]: {
                "iou": scores["iou"][i],
                "precision": scores["precision"][i],
                "recall": scores["recall"][i],
                "gt_pixels": scores["gt_pixels"][i],
                "pred_pixels": scores["pred_pixels"][i],
            }
            for i in range(num)
        },
    }


def image_scores(conf: np.ndarray) -> dict:
    """Small per-image figures: mean IoU over the classes in GT or prediction, pixel accuracy,
    and the reference's per-class score TP - FN - FP for every GT class."""
    conf = np.asarray(conf, dtype=np.int64)
    tp = np.diag(conf)
    gt_count, pred_count = conf.sum(axis=1), conf.sum(axis=0)
    union = gt_count + pred_count - tp
    total = int(conf.sum())
    present = np.flatnonzero(union > 0)
    return {
        "miou": float(np.mean(tp[present] / union[present])) if present.size else None,
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "tp_minus_fn_fp": {int(c): int(3 * tp[c] - gt_count[c] - pred_count[c]) for c in np.flatnonzero(gt_count)},
    }
