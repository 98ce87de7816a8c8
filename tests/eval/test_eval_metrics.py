"""Confusion matrix, per-class scores and the two mIoU figures."""

from __future__ import annotations

import numpy as np
import pytest

from graphkit.wseg.eval.metrics import confusion_matrix, image_scores, summarize


def test_confusion_matrix_equals_naive_loop_with_ignore_label(helpers):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 21, size=(37, 53)).astype(np.uint8)
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, 21, size=gt.shape).astype(np.uint8)
    fast = confusion_matrix(gt, pred, 21)
    assert fast.dtype == np.int64
    np.testing.assert_array_equal(fast, helpers.confusion_matrix_loop(gt, pred, 21))
    assert fast.sum() == int((gt != 255).sum())


def test_confusion_matrix_rejects_out_of_range_predictions_and_shape_mismatch():
    gt = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="prediction labels"):
        confusion_matrix(gt, np.full((4, 4), 21, np.uint8), 21)
    with pytest.raises(ValueError, match="pixels"):
        confusion_matrix(gt, np.zeros((4, 5), np.uint8), 21)


def test_iou_precision_recall_on_known_masks():
    # 3 classes, 2x4 image; GT row 0 = class 0, row 1 = class 1, one pixel ignored.
    gt = np.array([[0, 0, 0, 0], [1, 1, 1, 255]], np.uint8)
    pred = np.array([[0, 0, 1, 2], [1, 1, 0, 2]], np.uint8)
    conf = confusion_matrix(gt, pred, 3)
    np.testing.assert_array_equal(conf, [[2, 1, 1], [1, 2, 0], [0, 0, 0]])
    s = summarize(conf)
    # class 0: TP 2, FN 2, FP 1 -> IoU 2/5; class 1: TP 2, FN 1, FP 1 -> 2/4; class 2: TP 0, FP 1 -> 0
    assert s["per_class"]["background"]["iou"] == pytest.approx(2 / 5, abs=1e-12)
    assert s["per_class"]["aeroplane"]["iou"] == pytest.approx(2 / 4, abs=1e-12)
    assert s["per_class"]["bicycle"]["iou"] == pytest.approx(0.0, abs=1e-12)
    assert s["per_class"]["background"]["precision"] == pytest.approx(2 / 3, abs=1e-12)
    assert s["per_class"]["background"]["recall"] == pytest.approx(2 / 4, abs=1e-12)
    assert s["per_class"]["bicycle"]["recall"] is None  # no GT pixel of class 2
    assert s["miou_21_with_background"] == pytest.approx((0.4 + 0.5 + 0.0) / 3, abs=1e-12)
    assert s["miou_20_without_background"] == pytest.approx((0.5 + 0.0) / 2, abs=1e-12)
    assert s["pixel_accuracy"] == pytest.approx(4 / 7, abs=1e-12)


def test_classes_absent_everywhere_have_no_iou_and_are_left_out_of_the_means():
    conf = np.zeros((21, 21), np.int64)
    conf[0, 0], conf[5, 5], conf[5, 0] = 10, 3, 1
    s = summarize(conf)
    assert s["per_class"]["cat"]["iou"] is None
    assert "cat" in s["classes_without_iou"] and len(s["classes_without_iou"]) == 19
    assert s["miou_21_with_background"] == pytest.approx((10 / 11 + 3 / 4) / 2, abs=1e-12)
    assert s["miou_20_without_background"] == pytest.approx(3 / 4, abs=1e-12)


def test_image_scores_reference_score_is_tp_minus_fn_minus_fp():
    gt = np.array([[0, 0, 1, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1]], np.uint8)
    scores = image_scores(confusion_matrix(gt, pred, 21))
    assert scores["tp_minus_fn_fp"] == {0: 1 - 1 - 0, 1: 2 - 0 - 1}
    assert scores["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-12)
