"""The typed settings of a VOC accuracy run (CLI flags and the pipeline ``eval:`` section map onto it).

Defaults reproduce the 1-stage-wseg test procedure (``configs/voc_resnet38.yaml``, ``TEST``):
scales 1, 0.5, 1.5, 2.0 with flips (8 views), 1024x1024 centre pad, FP_CUT_SCORE 0.1,
BG_POW 3, class scores from the model (not the GT labels), dense CRF with 10 iterations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from graphkit.errors import SpecError
from graphkit.typed import from_mapping


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
        _check(len(self.scales) >= 1 and all(s > 0 for s in self.scales), "scales", "must be positive, at least one")
        _check(self.num_classes >= 2, "num_classes", "must be at least 2")
        _check(self.crf_iterations >= 1, "crf_iterations", "must be at least 1")
        _check(self.workers is None or self.workers >= 0, "workers", "must be >= 0")
        _check(self.limit is None or self.limit >= 1, "limit", "must be at least 1")
        _check(self.overlays >= 0, "overlays", "must be >= 0")
        _check(self.dump_bins_count >= 0, "dump_bins_count", "must be >= 0")
        _check(self.threads is None or self.threads >= 1, "threads", "must be at least 1")

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
    return from_mapping(EvalSpec, data, where)
