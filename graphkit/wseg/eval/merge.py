"""Merging the views' outputs into one score map per image, as the 1-stage-wseg reference does.

Class presence: ``sigmoid(cls)`` [V, 20] -> max over the V views -> kept where > FP_CUT_SCORE.
Masks, per view: cut the padding off (``pads``), bilinear resize to the image size
(``align_corners=False``, PyTorch's ``F.interpolate`` semantics), un-flip the flipped views.
Then foreground channels of absent classes are zeroed, the views averaged, and the background
channel raised to BG_POW. The plain prediction is the argmax of that map.

:class:`ViewAccumulator` does the per-view part as the views arrive (so the V full-size mask
tensors are never held together). Zeroing absent classes is a multiplication by 0 or 1 per
channel, so applying it to the sum instead of to each view gives the same numbers.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, float32 in -> float32 out."""
    x = np.asarray(x, dtype=np.float32)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def class_presence(cls_logits: np.ndarray, fp_cut_score: float) -> np.ndarray:
    """[V, C-1] logits -> [C-1] float32 of 0/1: sigmoid, max over views, > ``fp_cut_score``."""
    scores = sigmoid(cls_logits).max(axis=0)
    return (scores > fp_cut_score).astype(np.float32)


def _source_index(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # PyTorch's area_pixel_compute_source_index for align_corners=False (no scale_factor given).
    scale = np.float32(in_size / out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = (src - i0).astype(np.float32)
    return i0, i1, frac


def resize_bilinear(x: np.ndarray, out_hw) -> np.ndarray:
    """[C, h, w] -> [C, H, W] float32, bilinear with align_corners=False (no antialias)."""
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    x = np.asarray(x, dtype=np.float32)
    _, in_h, in_w = x.shape
    if (in_h, in_w) == (out_h, out_w):
        return x.copy()
    r0, r1, fy = _source_index(out_h, in_h)
    rows = x[:, r0, :] * (1 - fy)[None, :, None] + x[:, r1, :] * fy[None, :, None]
    c0, c1, fx = _source_index(out_w, in_w)
    return rows[:, :, c0] * (1 - fx)[None, None, :] + rows[:, :, c1] * fx[None, None, :]


def view_to_image(mask: np.ndarray, pad: np.ndarray, flipped: bool, image_hw) -> np.ndarray:
    """One view's [C, H_pad, W_pad] mask -> [C, h, w] at the image size: cut, resize, un-flip."""
    top, left, h, w = (int(v) for v in pad)
    cut = mask[:, top : top + h, left : left + w]
    out = resize_bilinear(cut, image_hw)
    return out[:, :, ::-1] if flipped else out


class ViewAccumulator:
    """Sums the views of one image as they arrive; :meth:`finish` gives the merged map."""

    def __init__(self, num_classes: int, image_hw, num_views: int):
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        self.num_views = num_views
        self.sum = np.zeros((num_classes, *self.image_hw), dtype=np.float32)
        self.cls: list[np.ndarray] = []

    def add(self, cls_logits: np.ndarray, mask: np.ndarray, pad: np.ndarray, flipped: bool) -> None:
        """Add one view: its [C-1] class logits and [C, H_pad, W_pad] mask."""
        if mask.shape[0] != self.sum.shape[0]:
            raise ValueError(f"mask has {mask.shape[0]} channels, expected {self.sum.shape[0]}")
        self.sum += view_to_image(mask, pad, flipped, self.image_hw)
        self.cls.append(np.asarray(cls_logits, dtype=np.float32))

    @property
    def complete(self) -> bool:
        return len(self.cls) == self.num_views


def finish_merge(view_sum: np.ndarray, present: np.ndarray, num_views: int, bg_pow: float) -> np.ndarray:
    """Summed views [C, h, w] + class presence [C-1] -> merged map [C, h, w] float32."""
    merged = view_sum.copy()
    merged[1:] *= present[:, None, None]
    merged /= np.float32(num_views)
    merged[0] = np.power(merged[0], np.float32(bg_pow))
    return merged
