"""PASCAL VOC data: class names, the palette, image lists, and reading images and GT masks.

Two list formats are read:

- one name per line (VOC's ``ImageSets/Segmentation/val.txt``): the image is
  ``VOC2012/JPEGImages/<name>.jpg`` and the mask ``VOC2012/<mask_dir>/<name>.png``;
- ``image_path mask_path`` per line (the reference's ``data/val_voc.txt``), relative paths
  joined onto the data root.

Image names come from the image path (its stem), never from fixed slicing. A missing file is
an :class:`EvalDataError` naming it, unless the caller asks to skip and count missing files.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from graphkit.util.errors import GraphkitError

CLASS_NAMES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
IGNORE_LABEL = 255


def class_names(num_classes: int) -> list[str]:
    """Names for ``num_classes`` labels: the VOC names, then ``class<i>`` beyond them."""
    return list(CLASS_NAMES[:num_classes]) + [f"class{i}" for i in range(len(CLASS_NAMES), num_classes)]


class EvalDataError(GraphkitError):
    """The evaluation data is missing or malformed (list file, image, mask)."""


def voc_palette() -> np.ndarray:
    """The standard VOC colour map: [256, 3] uint8 (bit-interleaved label bits)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in range(256):
        value, r, g, b = label, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[label] = (r, g, b)
    return palette


@dataclass(frozen=True)
class Sample:
    """One image of the list: its name (the image file stem) and the two paths."""

    name: str
    image_path: Path
    mask_path: Path


def find_voc2012(data_root: str | os.PathLike) -> Path:
    """The ``VOC2012`` folder at or under ``data_root`` (checks the usual nestings)."""
    root = Path(data_root)
    if not root.is_dir():
        raise EvalDataError(f"data_root {root}: no such folder")
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012", root / "voc" / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise EvalDataError(
        f"data_root {root}: no JPEGImages folder found (expected VOC2012 or VOCdevkit/VOC2012 under it)"
    )


def read_samples(
    data_root: str | os.PathLike,
    image_list: str | os.PathLike | None = None,
    split: str = "val",
    mask_dir: str = "SegmentationClass",
) -> list[Sample]:
    """The samples of a list file (see the module doc for the two formats), in list order."""
    root = Path(data_root)
    voc = None
    if image_list is None:
        voc = find_voc2012(root)
        list_path = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
    else:
        list_path = Path(image_list)
    if not list_path.is_file():
        raise EvalDataError(f"image list {list_path}: no such file")
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    try:
        text = list_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"image list {list_path}: not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise EvalDataError(f"image list {list_path}: cannot read it ({exc.strerror or exc})") from exc
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) == 1:
            if voc is None:
                voc = find_voc2012(root)
            name = Path(fields[0]).stem
            sample = Sample(name, voc / "JPEGImages" / f"{name}.jpg", voc / mask_dir / f"{name}.png")
        elif len(fields) == 2:
            image_path, mask_path = (_join(root, f) for f in fields)
            sample = Sample(image_path.stem, image_path, mask_path)
        else:
            raise EvalDataError(
                f"{list_path}:{number}: expected 'name' or 'image_path mask_path', got {len(fields)} fields: {line[:80]!r}"
            )
        if sample.name in seen:
            raise EvalDataError(f"{list_path}:{number}: image name '{sample.name}' repeats line {seen[sample.name]}")
        seen[sample.name] = number
        samples.append(sample)
    if not samples:
        raise EvalDataError(f"image list {list_path}: no entries")
    return samples


def _join(root: Path, text: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() and path.exists() else root / text.lstrip("/")


def missing_files(sample: Sample) -> list[Path]:
    """The sample's files that do not exist."""
    return [p for p in (sample.image_path, sample.mask_path) if not p.is_file()]


def load_image(path: Path, data: bytes | None = None) -> Image.Image:
    """An RGB PIL image (decoded from ``data`` when given, the file's bytes), or EvalDataError naming the file."""
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as image:
            return image.convert("RGB")
    except FileNotFoundError as exc:
        raise EvalDataError(f"image {path}: no such file") from exc
    except OSError as exc:
        raise EvalDataError(f"image {path}: cannot read ({exc})") from exc


def load_mask(path: Path, data: bytes | None = None) -> np.ndarray:
    """A GT mask as uint8 class indices [H, W] (palette or grey PNG; from ``data`` when given), or EvalDataError."""
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as image:
            if image.mode not in ("P", "L"):
                raise EvalDataError(f"mask {path}: mode {image.mode}, expected a palette or greyscale index PNG")
            return np.array(image, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise EvalDataError(f"mask {path}: no such file") from exc
    except OSError as exc:
        raise EvalDataError(f"mask {path}: cannot read ({exc})") from exc
