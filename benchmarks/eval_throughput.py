"""Eval throughput, printed as JSON.

Three measurements in one run:

1. ``end_to_end``: images/s of ``run_eval`` (8 views, merge, CRF, metrics, files) on a
   synthetic VOC set with a tiny model: the tiny wseg variant (seeded random weights) when
   ``graphkit.wseg.export`` is available, else a 1x1-conv colour classifier;
2. ``postprocess``: merge finish + argmax + CRF + confusion matrices alone, per image at VOC
   size (500x375), without inference;
3. ``confusion_matrix``: the vectorized confusion matrix against the per-pixel Python loop of
   the reference's ``eval_seg.py`` on the same 500x375 masks (target: >= 100x faster).

Usage: ``python -m benchmarks.eval_throughput [--images 6] [--pad 64] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from graphkit.wseg.eval.crf import CrfParams
from graphkit.wseg.eval.metrics import confusion_matrix
from graphkit.wseg.eval.postprocess import ImageJob, postprocess_image
from graphkit.wseg.eval.runner import run_eval
from graphkit.wseg.eval.spec import EvalSpec
from graphkit.wseg.eval.voc import voc_palette

TESTS_EVAL = Path(__file__).resolve().parents[1] / "tests" / "eval"  # the suite's slow reference implementations


def synthetic_voc(root: Path, count: int, max_side: int) -> Path:
    """A VOC2012 tree of ``count`` images up to ``max_side`` px: rectangles of class colours."""
    rng = np.random.default_rng(0)
    voc = root / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    names = []
    palette = voc_palette()
    for i in range(count):
        w, h = int(rng.integers(max_side // 2, max_side + 1)), int(rng.integers(max_side // 2, max_side + 1))
        gt = np.zeros((h, w), np.uint8)
        for cls in rng.choice(np.arange(1, 21), size=2, replace=False):
            x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            gt[y0 : y0 + h // 2, x0 : x0 + w // 2] = cls
        image = palette[gt].astype(np.int16) + rng.integers(-10, 10, size=(h, w, 3))
        name = f"2099_{i:06d}"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(voc / "JPEGImages" / f"{name}.jpg")
        mask = Image.fromarray(gt, mode="P")
        mask.putpalette(palette.reshape(-1).tolist())
        mask.save(voc / "SegmentationClass" / f"{name}.png")
        names.append(name)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(names) + "\n")
    return root


def tiny_model(path: Path, pad: int) -> tuple[str, str]:
    """Export the tiny wseg variant (or fall back to a 1x1-conv model); returns (kind, weights)."""
    try:
        from graphkit.wseg.export import ExportSpec, export_from_spec
    except ImportError:
        export_from_spec = None
    if export_from_spec is not None:
        result = export_from_spec(ExportSpec(width=0.03125, input_size=[pad, pad], opset=13), path)
        return "wseg width 0.03125", result.weights
    import onnx

    from benchmarks.models import colour_classifier  # the eval tests' 1x1-conv model

    onnx.save(colour_classifier(pad), path)
    return "1x1-conv colour classifier", "synthetic"


def bench_end_to_end(tmp: Path, images: int, pad: int, workers: int | None) -> dict:
    root = synthetic_voc(tmp / "voc", images, pad // 2)
    model = tmp / "tiny.onnx"
    kind, weights = tiny_model(model, pad)
    spec = EvalSpec(data_root=str(root), pad_size=[pad, pad], workers=workers, weights_description=weights)
    start = time.perf_counter()
    summary = run_eval(spec, model, tmp / "out", progress=False)
    seconds = time.perf_counter() - start
    return {
        "model": kind,
        "pad_size": pad,
        "images": images,
        "workers": workers,
        "seconds": round(seconds, 3),
        "images_per_second": round(images / seconds, 3),
        "miou_21_with_background_crf": summary["miou_21_with_background_crf"],
        "note": summary["note"],
    }


def voc_sized_job(tmp: Path, rng) -> ImageJob:
    h, w = 375, 500
    gt = np.zeros((h, w), np.uint8)
    gt[100:300, 150:400] = 15
    gt[95:100, 150:400] = 255
    # a natural-looking image (flat regions + mild noise): the bilateral lattice of pure noise
    # is far larger than a photo's and would overstate the CRF cost
    noisy = voc_palette()[np.where(gt == 255, 0, gt)].astype(np.int16) + rng.integers(-8, 8, size=(h, w, 3))
    image = np.clip(noisy + 60, 0, 255).astype(np.uint8)
    view_sum = rng.random((21, h, w), dtype=np.float32) * 8
    cls = rng.normal(size=(8, 20)).astype(np.float32) - 2.0
    return ImageJob("bench", image, gt, view_sum, cls, str(tmp / "post"), 21, 0.1, 3.0, CrfParams(), True, False)


def bench_postprocess(tmp: Path, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    job = voc_sized_job(tmp, rng)
    postprocess_image(job)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        postprocess_image(job)
        times.append(time.perf_counter() - start)
    best = min(times)
    return {"image_size": [500, 375], "crf_iterations": 10, "seconds_per_image": round(best, 4),
            "images_per_second_per_core": round(1 / best, 3)}  # fmt: skip


def bench_confusion(repeats: int) -> dict:
    sys.path.insert(0, str(TESTS_EVAL))
    from conftest import confusion_matrix_loop  # the slow reference lives with the tests

    rng = np.random.default_rng(1)
    gt = rng.integers(0, 21, size=(375, 500)).astype(np.uint8)
    gt[rng.random(gt.shape) < 0.05] = 255
    pred = rng.integers(0, 21, size=gt.shape).astype(np.uint8)
    start = time.perf_counter()
    slow = confusion_matrix_loop(gt, pred, 21)
    loop_s = time.perf_counter() - start
    fast_times = []
    for _ in range(max(repeats, 5)):
        start = time.perf_counter()
        fast = confusion_matrix(gt, pred, 21)
        fast_times.append(time.perf_counter() - start)
    if not np.array_equal(fast, slow):
        raise SystemExit("confusion matrices differ")
    fast_s = min(fast_times)
    return {"pixels": int(gt.size), "loop_seconds": round(loop_s, 4), "vectorized_seconds": round(fast_s, 6),
            "speedup": round(loop_s / fast_s, 1), "target_speedup": 100, "equal": True}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=6, help="synthetic images for the end-to-end run")
    parser.add_argument("--pad", type=int, default=64, help="model input / pad size of the tiny model")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats for the postprocess timing (best kept)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRAPHKIT_NO_PROGRESS", "1")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        result = {
            "cpu_cores": len(os.sched_getaffinity(0)),
            "end_to_end": bench_end_to_end(tmp, args.images, args.pad, args.workers),
            "postprocess": bench_postprocess(tmp, args.repeats),
            "confusion_matrix": bench_confusion(args.repeats),
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
