"""Files an accuracy run writes: palette mask PNGs, overlays, the IoU bar chart, metrics JSON/table.

Every file goes through :mod:`graphkit.util.files` (``atomic_path`` / ``write_text_atomic``, utf-8
text), so an interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from graphkit.util.console import format_table
from graphkit.util.files import atomic_path, write_text_atomic
from graphkit.wseg.eval.voc import voc_palette

_PALETTE = voc_palette()


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` then rename the temp file to ``path``; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write(str(tmp))
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_text_atomic(path, text)


def write_json(path: str | os.PathLike, data) -> Path:
    return write_text(path, json.dumps(data, indent=2) + "\n")


def save_index_png(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Class indices [H, W] as a palette PNG (pixel values are the class indices)."""
    image = Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="P")
    image.putpalette(_PALETTE.reshape(-1).tolist())
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def colorize(labels: np.ndarray) -> np.ndarray:
    """Class indices [H, W] -> RGB [H, W, 3] uint8 with the VOC palette."""
    return _PALETTE[np.asarray(labels, dtype=np.uint8)]


def overlay_panel(image: np.ndarray, masks, alpha: float = 0.3) -> np.ndarray:
    """Side by side: the image, then each mask blended over it (``alpha`` image, 1 - alpha colour)."""
    image_f = image.astype(np.float32)
    tiles = [image]
    for mask in masks:
        blend = alpha * image_f + (1 - alpha) * colorize(mask).astype(np.float32)
        tiles.append(np.round(blend).astype(np.uint8))
    return np.concatenate(tiles, axis=1)


def save_overlay(path: str | os.PathLike, image: np.ndarray, masks) -> Path:
    """An overlay PNG: image | mask | CRF mask | GT (whichever masks are given, in that order)."""
    return save_panel(path, overlay_panel(image, masks))


def save_panel(path: str | os.PathLike, panel: np.ndarray) -> Path:
    """An RGB array [H, W, 3] uint8 as a PNG."""
    picture = Image.fromarray(panel)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return Path(path)


def save_iou_chart(path: str | os.PathLike, class_names, series: dict[str, list[float | None]], title: str) -> Path:
    """Per-class IoU bars (one bar group per class, one series per label), Agg backend, PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    x = np.arange(len(class_names))
    width = 0.8 / max(1, len(series))
    for k, (label, values) in enumerate(series.items()):
        heights = [100.0 * v if v is not None else 0.0 for v in values]
        axes.bar(x + (k - (len(series) - 1) / 2) * width, heights, width, label=label)
    axes.set_xticks(x)
    axes.set_xticklabels(class_names, rotation=60, ha="right", fontsize=8)
    axes.set_ylabel("IoU (%)")
    axes.set_ylim(0, 100)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}"


def metrics_table(summary: dict) -> str:
    """A text table of per-class IoU / precision / recall (plain and CRF) and the mean figures."""
    plain = summary["metrics"]["plain"]
    crf = summary["metrics"].get("crf")
    headers = ["class", "GT pixels", "IoU", "Pr", "Re"] + (["IoU CRF", "Pr CRF", "Re CRF"] if crf else [])
    rows = []
    for name, scores in plain["per_class"].items():
        row = [name, scores["gt_pixels"], _pct(scores["iou"]), _pct(scores["precision"]), _pct(scores["recall"])]
        if crf:
            c = crf["per_class"][name]
            row += [_pct(c["iou"]), _pct(c["precision"]), _pct(c["recall"])]
        rows.append(row)
    lines = [format_table(headers, rows), ""]
    note = f"  [{summary['note']}]" if summary.get("note") else ""
    for label, metrics in (("without CRF", plain), ("with CRF", crf)):
        if metrics:
            lines.append(
                f"mIoU {label}: {_pct(metrics['miou_21_with_background'])} (21 classes with background, the VOC figure); "
                f"{_pct(metrics['miou_20_without_background'])} (20 classes without background){note}"
            )
    lines.append(
        f"images evaluated: {summary['images']['evaluated']}, skipped (missing files): "
        f"{summary['images']['skipped_missing']}"
    )
    return "\n".join(lines) + "\n"
