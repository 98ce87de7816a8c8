"""The typed settings of a VOC accuracy run (CLI flags and the pipeline ``eval:`` section map onto it).

Defaults reproduce the 1-stage-wseg test procedure (``configs/voc_resnet38.yaml``, ``TEST``):
scales 1, 0.5, 1.5, 2.0 with flips (8 views), 1024x1024 centre pad, FP_CUT_SCORE 0.1,
BG_POW 3, class scores from the model (not the GT labels), dense CRF with 10 iterations.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

from graphkit.runtime.ray_executor import RaySettings
from graphkit.util.errors import SpecError
from graphkit.util.typed_config import from_mapping

MAX_VIEW_BATCH_BYTES = 16 * 2**30
"""Views of one image (or one batch) above this many bytes are refused before allocating."""


@dataclass
class EvalSpec:
    """One accuracy run; build it from a mapping with :func:`eval_spec_from_mapping`."""

    data_root: str
    """VOC data: the ``VOC2012`` folder or a folder above it (``VOCdevkit`` or its parent).
    Relative paths in a two-column ``image_list`` are joined onto this folder as given."""
    image_list: str | None = None
    """A list file: one image name per line (VOC ``ImageSets`` style) or ``image_path mask_path``
    per line (the reference's ``data/val_voc.txt`` style). Default: VOC's own
    ``ImageSets/Segmentation/<split>.txt``."""
    split: str = "val"
    """The VOC split read when ``image_list`` is not given."""
    mask_dir: str = "SegmentationClass"
    """Ground-truth folder inside ``VOC2012`` for one-column lists (class-index or palette PNGs)."""
    backend: str = "ort"
    """Inference backend, by name (see ``graphkit.runtime.backend.BACKENDS``)."""
    threads: int | None = None
    """Intra-op threads for the backend (None: the backend's default)."""
    batch_size: int | None = None
    """Views per inference call. None: the model's fixed batch if it declares one, else 1. The
    last call of the run is padded with zero views to a full batch (their outputs dropped)."""
    input_name: str = "image"
    cls_output: str = "cls"
    mask_output: str = "mask"
    scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 1.5, 2.0])
    flip: bool = True
    """Add a horizontally flipped view for every scale (views ordered s0, s0 flipped, s1, ...)."""
    pad_size: list[int] = field(default_factory=lambda: [1024, 1024])
    """[height, width] every view is centre-padded to; must match the model input."""
    fp_cut_score: float = 0.1
    """A class is kept when its sigmoid score, max over the views, is above this."""
    bg_pow: float = 3.0
    """The merged background channel is raised to this power."""
    num_classes: int = 21
    crf: bool = True
    crf_iterations: int = 10
    crf_gaussian_sxy: float = 3.0
    crf_gaussian_compat: float = 3.0
    crf_bilateral_sxy: float = 80.0
    crf_bilateral_srgb: float = 13.0
    crf_bilateral_compat: float = 10.0
    workers: int | None = None
    """Postprocess/CRF worker processes. None: the number of CPU cores; 0: in the main process."""
    executor: Literal["local", "ray"] = "local"
    """Where the images run: "local" (this process + the ``workers`` pool) or "ray" (Ray worker
    actors, each holding one session and doing all of an image's work; see ``ray``)."""
    ray: RaySettings = field(default_factory=RaySettings)
    """Ray cluster address and per-worker resources (used with ``executor: ray``)."""
    limit: int | None = None
    """Evaluate only the first N images of the list."""
    resume: bool = True
    """Continue a partial run in the same output folder (finished images are not recomputed)."""
    skip_missing: bool = False
    """Skip images whose JPEG or GT mask is missing (counted and reported) instead of failing."""
    save_masks: bool = True
    """Write the mask PNGs (plain and CRF) with the VOC palette."""
    overlays: int = 10
    """How many images get an overlay picture (image | mask | CRF mask | GT)."""
    dump_bins_dir: str | None = None
    """Write ais_bench-style float32 ``.bin`` inputs (one per view) for the first images here."""
    dump_bins_count: int = 0
    """How many images ``dump_bins_dir`` receives."""
    weights_description: str = ""
    """Where the weights come from; one starting with "random" marks the mIoU as meaningless."""

    def __post_init__(self) -> None:
        _check(self.batch_size is None or self.batch_size >= 1, "batch_size", "must be at least 1")
        _check(len(self.pad_size) == 2 and min(self.pad_size) >= 1, "pad_size", "must be [height, width], both >= 1")
        _check(
            len(self.scales) >= 1 and all(math.isfinite(s) and s > 0 for s in self.scales),
            "scales",
            f"must be finite and > 0, at least one (got {self.scales})",
        )
        _check(2 <= self.num_classes <= 255, "num_classes", "must be 2..255 (masks are uint8, 255 is 'ignore')")
        _check(
            math.isfinite(self.fp_cut_score) and 0 <= self.fp_cut_score < 1,
            "fp_cut_score",
            f"must be a sigmoid score threshold in [0, 1), got {self.fp_cut_score}",
        )
        _check(math.isfinite(self.bg_pow) and self.bg_pow > 0, "bg_pow", f"must be finite and > 0, got {self.bg_pow}")
        _check(1 <= self.crf_iterations <= 1000, "crf_iterations", f"must be 1..1000, got {self.crf_iterations}")
        for key in ("crf_gaussian_sxy", "crf_bilateral_sxy", "crf_bilateral_srgb"):
            value = getattr(self, key)
            _check(math.isfinite(value) and value > 0, key, f"must be finite and > 0, got {value}")
        for key in ("crf_gaussian_compat", "crf_bilateral_compat"):
            value = getattr(self, key)
            _check(math.isfinite(value) and value >= 0, key, f"must be finite and >= 0, got {value}")
        _check(self.workers is None or self.workers >= 0, "workers", "must be >= 0")
        _check(self.limit is None or self.limit >= 1, "limit", "must be at least 1")
        _check(self.overlays >= 0, "overlays", "must be >= 0")
        _check(self.dump_bins_count >= 0, "dump_bins_count", "must be >= 0")
        _check(self.threads is None or self.threads >= 1, "threads", "must be at least 1")
        views = max(self.num_views, self.batch_size or 1)
        size = 4 * 3 * views * self.pad_size[0] * self.pad_size[1]
        _check(
            size <= MAX_VIEW_BATCH_BYTES,
            "pad_size",
            f"{views} views of {self.pad_size[0]}x{self.pad_size[1]} would need {size / 2**30:.1f} GiB "
            f"(limit {MAX_VIEW_BATCH_BYTES // 2**30} GiB)",
        )

    @property
    def num_views(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)

    def result_settings(self) -> dict:
        """The settings that change the numbers; a resumed run must match them."""
        keep = [
            "scales",
            "flip",
            "pad_size",
            "fp_cut_score",
            "bg_pow",
            "num_classes",
            "crf",
            "crf_iterations",
            "crf_gaussian_sxy",
            "crf_gaussian_compat",
            "crf_bilateral_sxy",
            "crf_bilateral_srgb",
            "crf_bilateral_compat",
            "input_name",
            "cls_output",
            "mask_output",
        ]
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in keep}


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise SpecError(f"eval.{key}: {message}")


def eval_spec_from_mapping(data: dict, where: str = "eval") -> EvalSpec:
    """An :class:`EvalSpec` from a plain mapping; errors name ``where`` and the key."""
    try:
        return from_mapping(EvalSpec, data, where)
    except SpecError as exc:
        if str(exc).startswith("ray."):  # raised by RaySettings itself, which does not know ``where``
            raise SpecError(f"{where}.{exc}") from None
        raise
