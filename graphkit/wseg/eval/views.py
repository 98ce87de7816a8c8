"""Multi-scale, flipped views of one image, as the 1-stage-wseg test loader builds them.

Per view, in the reference's order (scale s0 plain, s0 flipped, s1 plain, ...):

1. bicubic resize (PIL) to ``(round(w * s), round(h * s))`` with Python's ``round`` (ties to
   even: 187.5 -> 188, 166.5 -> 166);
2. horizontal flip for the odd views;
3. centre pad to ``pad_size``: top = (H_pad - h) // 2, left = (W_pad - w) // 2;
4. ImageNet normalization ``(x / 255 - mean) / std`` computed in float64, stored as float32;
   the padded area is zero after normalization.

``pads`` keeps ``[top, left, h, w]`` per view so the merge can cut the padding off again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from graphkit.util.errors import GraphkitError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class View:
    """One view: its scale and whether it is flipped."""

    scale: float
    flipped: bool


def view_plan(scales, flip: bool) -> list[View]:
    """The views in the reference's order: each scale, then its flipped copy when ``flip``."""
    return [View(float(s), f) for s in scales for f in ((False, True) if flip else (False,))]


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) after scaling, rounded like the reference (Python ``round``)."""
    return int(round(width * scale)), int(round(height * scale))


def normalize(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 -> [3, H, W] float32 ImageNet-normalized (float64 arithmetic)."""
    out = np.empty((3, *rgb.shape[:2]), dtype=np.float32)
    for c in range(3):
        out[c] = (rgb[..., c] / 255.0 - MEAN[c]) / STD[c]
    return out


def make_views(image: Image.Image, plan: list[View], pad_hw, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """The views of an RGB image: ``(batch [V, 3, H_pad, W_pad] float32, pads [V, 4] int64)``.

    ``pads[i] = [top, left, h, w]`` of view i's image inside the padded frame. A view larger
    than the pad is an error naming the image.
    """
    pad_h, pad_w = (int(v) for v in pad_hw)
    batch = np.zeros((len(plan), 3, pad_h, pad_w), dtype=np.float32)
    pads = np.zeros((len(plan), 4), dtype=np.int64)
    resized: dict[float, np.ndarray] = {}
    for i, view in enumerate(plan):
        if view.scale not in resized:
            size = scaled_size(image.width, image.height, view.scale)
            if size[0] < 1 or size[1] < 1:
                raise GraphkitError(f"{name}: {image.width}x{image.height} at scale {view.scale} is empty")
            resized[view.scale] = np.asarray(image.resize(size, resample=Image.Resampling.BICUBIC))
        rgb = resized[view.scale]
        if view.flipped:
            rgb = rgb[:, ::-1]
        h, w = rgb.shape[:2]
        if h > pad_h or w > pad_w:
            raise GraphkitError(
                f"{name}: {image.width}x{image.height} at scale {view.scale} is {w}x{h}, larger than the pad "
                f"{pad_w}x{pad_h} (eval.pad_size is [height, width])"
            )
        top, left = (pad_h - h) // 2, (pad_w - w) // 2
        batch[i, :, top : top + h, left : left + w] = normalize(rgb)
        pads[i] = (top, left, h, w)
    return batch, pads
