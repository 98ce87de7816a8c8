"""Fixtures for the eval tests: a synthetic VOC-layout data set and tiny ONNX models built in code.

The data set: JPEGs made of coloured rectangles (one colour per class) on a background colour,
with GT palette PNGs that label the rectangles and draw a 255 ("ambiguous") outline around
them, like VOC's boundaries. The "colour classifier" model maps each pixel to the class of the
nearest class colour with a 1x1 convolution + softmax, so a correct pipeline recovers the GT
(the models are built by :mod:`benchmarks.models`, which the eval benchmarks share).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from benchmarks.models import CLASS_COLOURS, colour_classifier, linear_model
from graphkit.wseg.eval.voc import voc_palette


def draw_sample(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image [H, W, 3] and its GT [H, W] (two rectangles of random classes, 255 outlines)."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = CLASS_COLOURS[0]
    gt = np.zeros((height, width), dtype=np.uint8)
    classes = rng.choice([c for c in CLASS_COLOURS if c], size=2, replace=False)
    boxes = [(0.08, 0.1, 0.5, 0.55), (0.5, 0.45, 0.92, 0.9)]
    for cls, (x0, y0, x1, y1) in zip(classes, boxes):
        left, t, r, b = int(x0 * width), int(y0 * height), int(x1 * width), int(y1 * height)
        image[t:b, left:r] = CLASS_COLOURS[int(cls)]
        gt[max(t - 1, 0) : b + 1, max(left - 1, 0) : r + 1] = 255
        gt[t + 1 : b - 1, left + 1 : r - 1] = cls
    return image, gt


def save_palette_png(path: Path, labels: np.ndarray) -> None:
    image = Image.fromarray(labels, mode="P")
    image.putpalette(voc_palette().reshape(-1).tolist())
    image.save(path)


def make_voc(root: Path, sizes, names=None) -> Path:
    """A VOCdevkit/VOC2012 tree under ``root`` with one image per (width, height); returns root."""
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    names = names or [f"2007_{i:06d}" for i in range(len(sizes))]
    for i, (name, (w, h)) in enumerate(zip(names, sizes)):
        image, gt = draw_sample(w, h, seed=i)
        Image.fromarray(image).save(voc / "JPEGImages" / f"{name}.jpg", quality=95)
        save_palette_png(voc / "SegmentationClass" / f"{name}.png", gt)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_voc(tmp_path_factory) -> Path:
    """Five small images (all fit a 64 pad at scale 2), VOC layout under VOCdevkit/VOC2012."""
    return make_voc(tmp_path_factory.mktemp("voc"), [(30, 24), (28, 32), (32, 20), (25, 31), (32, 32)])


@pytest.fixture(scope="session")
def classifier_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "classifier64.onnx"
    onnx.save(colour_classifier(64), path)
    return path


def smooth_image(width: int, height: int) -> Image.Image:
    """A smooth RGB gradient (resampling-friendly)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([x / width * 200 + 20, y / height * 180 + 30, (x + y) / (width + height) * 150 + 60], axis=-1)
    return Image.fromarray(np.round(rgb).astype(np.uint8))


def confusion_matrix_loop(gt: np.ndarray, pred: np.ndarray, num_classes: int = 21) -> np.ndarray:
    """The naive per-pixel loop of the reference's ``eval_seg.py``: the slow reference the vectorized
    ``graphkit.wseg.eval.metrics.confusion_matrix`` is checked against (here and in benchmarks)."""
    conf = np.zeros((num_classes, num_classes))
    gt_flat, pred_flat = np.asarray(gt).reshape(-1), np.asarray(pred).reshape(-1)
    for i in range(len(gt_flat)):
        if gt_flat[i] < num_classes:
            conf[gt_flat[i], pred_flat[i]] += 1.0
    return conf


@pytest.fixture(scope="session")
def helpers():
    """The builders of this file, for tests that need parameters (test modules do not import conftest)."""
    import types

    return types.SimpleNamespace(
        linear_model=linear_model,
        colour_classifier=colour_classifier,
        make_voc=make_voc,
        smooth_image=smooth_image,
        draw_sample=draw_sample,
        save_palette_png=save_palette_png,
        confusion_matrix_loop=confusion_matrix_loop,
    )
