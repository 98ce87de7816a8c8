"""Data files for ``infer`` (ais_bench-style .bin/.npy inputs) and ``eval`` (a tiny VOC tree).

Each generator returns files relative to the folder it describes, plus a label. Corruptions:
wrong sizes and dtypes, truncated and empty files, pipes, JPEGs and PNGs cut short, image lists
that name files outside the tree or are not UTF-8, and a corrupt eval resume state (``run.json``,
``state/*.npz``) planted in the output folder.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from fuzz.choices import Choices
from fuzz.models import corrupt_bytes
from fuzz.sandbox import FIFO, Content


@dataclass
class DataCase:
    """Generated files (relative paths) and what was done to them."""

    files: dict[str, Content]
    label: str
    resume_state: dict[str, Content] = field(default_factory=dict)  # planted in the output folder


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def infer_inputs(choices: Choices, shape: tuple[int, ...]) -> DataCase:
    """Input files for one model input of ``shape`` (batch 1), some of them corrupted."""
    count = choices.integer(1, 3)
    sample = np.random.default_rng(choices.integer(0, 9)).standard_normal(shape).astype(np.float32)
    use_npy = choices.chance(0.4)
    files: dict[str, Content] = {
        f"{i}.{'npy' if use_npy else 'bin'}": _npy(sample) if use_npy else sample.tobytes() for i in range(count)
    }
    kind = choices.pick(["valid", "valid", "short", "bytes", "dtype", "fifo", "empty", "other-ext", "none"])
    name = choices.pick(sorted(files))
    if kind == "short":
        files[name] = sample.tobytes()[:-4] if name.endswith(".bin") else _npy(sample[..., :-1])
    elif kind == "bytes":
        files[name], kind = corrupt_bytes(choices, files[name] if isinstance(files[name], bytes) else b"")
    elif kind == "dtype":
        files[name.replace(".bin", ".npy")] = _npy(sample.astype(choices.pick([np.float64, np.int8, np.complex64])))
        files.pop(name) if name.endswith(".bin") else None
    elif kind == "fifo":
        files["9.bin"] = FIFO
    elif kind == "empty":
        files[name] = b""
    elif kind == "other-ext":
        files["notes.txt"] = b"not an input"
    elif kind == "none":
        files = {}
    return DataCase(files, f"infer-inputs-{kind}")


def _jpeg(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _png(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 21, (height, width), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(labels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def voc_tree(choices: Choices) -> DataCase:
    """A two-image VOC2012 tree (folder ``VOCdevkit/VOC2012``), sometimes corrupted."""
    voc = "VOCdevkit/VOC2012"
    names = ["2007_000001", "2007_000002"]
    files: dict[str, Content] = {}
    for i, name in enumerate(names):
        width, height = choices.pick([(20, 16), (12, 18)])
        files[f"{voc}/JPEGImages/{name}.jpg"] = _jpeg(width, height, i)
        files[f"{voc}/SegmentationClass/{name}.png"] = _png(width, height, i)
    files[f"{voc}/ImageSets/Segmentation/val.txt"] = ("\n".join(names) + "\n").encode()
    kind = choices.pick(
        ["valid", "valid", "jpeg", "png", "png-size", "list-escape", "list-utf8", "list-empty", "missing"]
    )
    target = names[choices.integer(0, 1)]
    if kind == "jpeg":
        path = f"{voc}/JPEGImages/{target}.jpg"
        files[path], how = corrupt_bytes(choices, files[path])
        kind = f"jpeg-{how}"
    elif kind == "png":
        path = f"{voc}/SegmentationClass/{target}.png"
        files[path], how = corrupt_bytes(choices, files[path])
        kind = f"png-{how}"
    elif kind == "png-size":
        files[f"{voc}/SegmentationClass/{target}.png"] = _png(7, 5, 3)
    elif kind == "list-escape":
        files[f"{voc}/ImageSets/Segmentation/val.txt"] = b"../../../../secret\n"
    elif kind == "list-utf8":
        files[f"{voc}/ImageSets/Segmentation/val.txt"] = b"\xff\xfe\n"
    elif kind == "list-empty":
        files[f"{voc}/ImageSets/Segmentation/val.txt"] = b""
    elif kind == "missing":
        del files[f"{voc}/JPEGImages/{target}.jpg"]
    resume: dict[str, Content] = {}
    if choices.chance(0.25):
        resume = choices.pick(
            [
                {"run.json": b"{not json"},
                {"run.json": b"[]"},
                {"run.json": b"\xff"},
                {f"state/{names[0]}.npz": b"PK\x03\x04truncated"},
                {f"state/{names[0]}.npz": _npy(np.zeros(3))},
            ]
        )
        kind += "+corrupt-resume-state"
    return DataCase(files, f"voc-{kind}", resume)
