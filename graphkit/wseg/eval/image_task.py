"""One image's work on an inference session: decode, views, inference, merge, CRF, scores.

This is what a Ray worker runs per image (:func:`evaluate_image`), and the pieces the local
runner shares with it: :func:`check_backend` (the model fits the settings), :func:`run_views`
(one inference call with its output checks) and :func:`load_views` (an image, its GT and its
views). The task carries the image and GT *file bytes*, read by the driver, so workers need no
access to the data folder; the result carries the masks, and only the driver writes files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graphkit.util.errors import SpecError
from graphkit.wseg.eval.crf import CrfParams
from graphkit.wseg.eval.merge import ViewAccumulator
from graphkit.wseg.eval.postprocess import ImageJob, ImageResult, compute_image
from graphkit.wseg.eval.spec import EvalSpec
from graphkit.wseg.eval.views import View, make_views, view_plan
from graphkit.wseg.eval.voc import EvalDataError, Sample, load_image, load_mask


def check_backend(backend, spec: EvalSpec) -> int:
    """Check the model's input/outputs against ``spec``; returns the views per inference call."""
    inputs = {i.name: i for i in backend.inputs}
    outputs = {o.name for o in backend.outputs}
    if spec.input_name not in inputs:
        raise SpecError(f"eval.input_name: the model has no input '{spec.input_name}' (inputs: {', '.join(inputs)})")
    for key in ("cls_output", "mask_output"):
        if getattr(spec, key) not in outputs:
            raise SpecError(
                f"eval.{key}: the model has no output '{getattr(spec, key)}' (outputs: {', '.join(outputs)})"
            )
    shape = inputs[spec.input_name].shape
    if len(shape) != 4:
        raise SpecError(f"eval.input_name: input '{spec.input_name}' has rank {len(shape)}, expected [N, 3, H, W]")
    fixed_hw = [d for d in shape[2:] if isinstance(d, int)]
    if len(fixed_hw) == 2 and list(fixed_hw) != list(spec.pad_size):
        raise SpecError(f"eval.pad_size {list(spec.pad_size)} does not match the model input {list(shape)}")
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    if batch is not None and spec.batch_size is not None and spec.batch_size != batch:
        raise SpecError(f"eval.batch_size {spec.batch_size}: the model input has a fixed batch of {batch}")
    return batch or spec.batch_size or 1


def run_views(backend, spec: EvalSpec, feed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One inference call on a batch of views: ``(cls [N, C-1], mask [N, C, H, W])``, shapes checked."""
    result = backend.run({spec.input_name: feed})
    cls, mask = result[spec.cls_output], result[spec.mask_output]
    if mask.ndim != 4 or mask.shape[1] != spec.num_classes or list(mask.shape[2:]) != list(spec.pad_size):
        raise SpecError(
            f"model output '{spec.mask_output}' has shape {list(mask.shape)}, expected "
            f"[N, {spec.num_classes}, {spec.pad_size[0]}, {spec.pad_size[1]}] (eval.num_classes, eval.pad_size)"
        )
    if cls.ndim != 2 or cls.shape[1] != spec.num_classes - 1:
        raise SpecError(
            f"model output '{spec.cls_output}' has shape {list(cls.shape)}, expected [N, {spec.num_classes - 1}]"
        )
    return cls, mask


@dataclass
class LoadedImage:
    """An image whose views are being inferred."""

    index: int
    sample: Sample
    image: np.ndarray
    gt: np.ndarray
    pads: np.ndarray
    acc: ViewAccumulator
    views: np.ndarray | None = field(default=None, repr=False)


def load_views(
    index: int,
    sample: Sample,
    spec: EvalSpec,
    plan: list[View],
    image_bytes: bytes | None = None,
    gt_bytes: bytes | None = None,
) -> LoadedImage:
    """Decode the image and GT (from their files, or from their bytes when given) and build the views."""
    image = load_image(sample.image_path, image_bytes)
    gt = load_mask(sample.mask_path, gt_bytes)
    if gt.shape != (image.height, image.width):
        raise EvalDataError(
            f"mask {sample.mask_path}: size {gt.shape[1]}x{gt.shape[0]} differs from its image {image.width}x{image.height}"
        )
    views, pads = make_views(image, plan, spec.pad_size, name=str(sample.image_path))
    acc = ViewAccumulator(spec.num_classes, (image.height, image.width), len(plan))
    return LoadedImage(index, sample, np.array(image), gt, pads, acc, views)


def image_job(item: LoadedImage, spec: EvalSpec, crf: CrfParams | None, out_dir: str = "") -> ImageJob:
    """The postprocess job of an image whose views are all accumulated."""
    return ImageJob(
        name=item.sample.name,
        image=item.image,
        gt=item.gt,
        view_sum=item.acc.sum,
        cls_logits=np.stack(item.acc.cls),
        out_dir=out_dir,
        num_classes=spec.num_classes,
        fp_cut_score=spec.fp_cut_score,
        bg_pow=spec.bg_pow,
        crf=crf,
        save_masks=spec.save_masks,
        save_overlay=item.index < spec.overlays,
    )


@dataclass
class ImageTask:
    """One image for a remote worker: the file bytes and the settings (small, picklable)."""

    index: int
    sample: Sample
    image_bytes: bytes
    gt_bytes: bytes
    spec: EvalSpec
    crf: CrfParams | None
    batch_size: int


def read_task(index: int, sample: Sample, spec: EvalSpec, crf: CrfParams | None, batch_size: int) -> ImageTask:
    """Read the image and GT files (on the driver) into a task."""
    data = []
    for kind, path in (("image", sample.image_path), ("mask", sample.mask_path)):
        try:
            data.append(path.read_bytes())
        except OSError as exc:
            raise EvalDataError(f"{kind} {path}: cannot read ({exc.strerror or exc})") from exc
    return ImageTask(index, sample, data[0], data[1], spec, crf, batch_size)


def evaluate_image(backend, task: ImageTask) -> ImageResult:
    """All of one image on ``backend``: its views in batches (the last padded with zero views),
    the merge, CRF and scores. Writes nothing; the caller writes the result."""
    spec = task.spec
    plan = view_plan(spec.scales, spec.flip)
    item = load_views(task.index, task.sample, spec, plan, task.image_bytes, task.gt_bytes)
    for start in range(0, len(plan), task.batch_size):
        chunk = range(start, min(start + task.batch_size, len(plan)))
        feed = np.zeros((task.batch_size, 3, *spec.pad_size), dtype=np.float32)
        feed[: len(chunk)] = item.views[chunk.start : chunk.stop]
        cls, mask = run_views(backend, spec, feed)
        for k, v in enumerate(chunk):
            item.acc.add(cls[k], mask[k], item.pads[v], plan[v].flipped)
    item.views = None
    return compute_image(image_job(item, spec, task.crf))
