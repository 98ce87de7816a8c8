"""Fixtures for the eval tests: a synthetic VOC-layout data set and tiny ONNX models built in code.

The data set: JPEGs made of coloured rectangles (one colour per class) on a background colour,
with GT palette PNGs that label the rectangles and draw a 255 ("ambiguous") outline around
them, like VOC's boundaries. The "colour classifier" model maps each pixel to the class of the
nearest class colour with a 1x1 convolution + softmax, so a correct pipeline recovers the GT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from graphkit.wseg.eval.views import MEAN, STD
from graphkit.wseg.eval.voc import voc_palette

# class -> RGB colour of its pixels in the synthetic images (well separated)
CLASS_COLOURS = {0: (20, 20, 20), 1: (230, 40, 40), 7: (40, 220, 60), 15: (50, 60, 235), 12: (240, 230, 60)}
PRESENT_LOGIT, ABSENT_LOGIT = 5.0, -5.0


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


def _normalized(rgb) -> np.ndarray:
    return (np.asarray(rgb, dtype=np.float64) / 255.0 - MEAN) / STD


def _cls_constant(n_classes_fg: int, present) -> np.ndarray:
    logits = np.full((1, n_classes_fg), ABSENT_LOGIT, dtype=np.float32)
    for c in present:
        logits[0, c - 1] = PRESENT_LOGIT
    return logits


def build_model(
    weight: np.ndarray, bias: np.ndarray, cls_logits: np.ndarray, pad: int, softmax: bool
) -> onnx.ModelProto:
    """image [N,3,pad,pad] -> mask = (softmax of) 1x1 conv [N,C,pad,pad]; cls = constant [N,C-1]."""
    n_out = weight.shape[0]
    nodes = [
        helper.make_node("Conv", ["image", "W", "B"], ["logits"] if softmax else ["mask"], kernel_shape=[1, 1]),
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["m0"]),
        helper.make_node("Unsqueeze", ["m0", "ax1"], ["col"]),
        helper.make_node("Add", ["col", "cls_const"], ["cls"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["mask"], axis=1))
    inits = [
        numpy_helper.from_array(weight.reshape(n_out, 3, 1, 1).astype(np.float32), "W"),
        numpy_helper.from_array(bias.astype(np.float32), "B"),
        numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(cls_logits.astype(np.float32), "cls_const"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_seg",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, pad, pad])],
        [
            helper.make_tensor_value_info("cls", TensorProto.FLOAT, ["N", cls_logits.shape[1]]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", n_out, pad, pad]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def colour_classifier(pad: int, num_classes: int = 21, beta: float = 4.0) -> onnx.ModelProto:
    """Softmax over classes of -beta * ||x - colour_k||^2 (written linearly); unused classes ~ 0."""
    weight = np.zeros((num_classes, 3))
    bias = np.full(num_classes, -1e3)
    for cls, rgb in CLASS_COLOURS.items():
        centre = _normalized(rgb)
        weight[cls] = 2 * beta * centre
        bias[cls] = -beta * float(centre @ centre)
    present = [c for c in CLASS_COLOURS if c]
    return build_model(weight, bias, _cls_constant(num_classes - 1, present), pad, softmax=True)


def linear_model(
    pad: int, seed: int = 0, num_classes: int = 21, present=(1, 3, 7)
) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray, np.ndarray]:
    """mask_c = w_c . x + b_c per pixel (no softmax): linear, so the merge is predictable."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(num_classes, 3)).astype(np.float32)
    bias = rng.normal(size=num_classes).astype(np.float32)
    cls = _cls_constant(num_classes - 1, present)
    return build_model(weight, bias, cls, pad, softmax=False), weight, bias, cls


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
