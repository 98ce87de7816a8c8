"""The accuracy run end to end on a synthetic VOC set: outputs, resume, --limit, errors, CRF, workers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from graphkit.util.errors import GraphkitError, SpecError
from graphkit.wseg.eval.crf import crf_labels
from graphkit.wseg.eval.runner import RANDOM_WEIGHTS_NOTE, run_eval
from graphkit.wseg.eval.spec import EvalSpec, eval_spec_from_mapping
from graphkit.wseg.eval.voc import EvalDataError, read_samples


def spec_for(root, **overrides) -> EvalSpec:
    return eval_spec_from_mapping({"data_root": str(root), "pad_size": [64, 64], "workers": 0, **overrides})


def test_crf_runs_and_keeps_the_label_range(helpers):
    rng = np.random.default_rng(0)
    image, gt = helpers.draw_sample(40, 30, seed=1)
    probs = rng.random((21, 30, 40)).astype(np.float32) * 0.1
    probs[np.where(gt == 255, 0, gt), np.arange(30)[:, None], np.arange(40)[None, :]] += 1.0  # confident on the GT
    probs /= probs.sum(0, keepdims=True)
    labels = crf_labels(image, probs)
    assert labels.shape == (30, 40) and labels.dtype == np.uint8
    assert labels.max() < 21
    valid = gt != 255
    assert (labels[valid] == gt[valid]).mean() > 0.95


def test_full_run_writes_every_output_and_recovers_the_gt(tiny_voc, classifier_model, tmp_path):
    out = tmp_path / "run"
    summary = run_eval(spec_for(tiny_voc, overlays=2), classifier_model, out, progress=False)
    assert summary["images"]["evaluated"] == 5 and summary["images"]["computed_this_run"] == 5
    # the colour classifier recovers the GT almost perfectly, through all 8 views and the CRF
    assert summary["miou_21_with_background"] > 0.9
    assert summary["miou_21_with_background_crf"] > 0.9
    assert summary["note"] is None
    names = [s.name for s in read_samples(tiny_voc)]
    for name in names:
        plain = np.array(Image.open(out / "masks" / f"{name}.png"))
        assert Image.open(out / "masks" / f"{name}.png").mode == "P"
        assert (out / "masks_crf" / f"{name}.png").is_file()
        assert plain.max() < 21
    assert sorted(p.stem for p in (out / "overlays").iterdir()) == names[:2]
    overlay = Image.open(out / "overlays" / f"{names[0]}.png")
    assert overlay.size == (4 * 30, 24)  # image | mask | CRF mask | GT
    for file in ("metrics.json", "metrics.txt", "scores.jsonl", "iou_per_class.png", "run.json"):
        assert (out / file).is_file(), file
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["metrics"]["plain"]["per_class"]) >= {"background", "aeroplane", "person"}
    table = (out / "metrics.txt").read_text()
    assert "21 classes with background" in table and "20 classes without background" in table
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [s["name"] for s in scores] == names and "crf" in scores[0]
    assert not list(out.rglob("*.tmp*"))


def test_limit_then_resume_does_not_recount(tiny_voc, classifier_model, tmp_path):
    out = tmp_path / "run"
    first = run_eval(spec_for(tiny_voc, limit=2, crf=False), classifier_model, out, progress=False)
    assert first["images"]["evaluated"] == 2 and first["images"]["computed_this_run"] == 2
    second = run_eval(spec_for(tiny_voc, limit=3, crf=False), classifier_model, out, progress=False)
    assert second["images"]["computed_this_run"] == 1 and second["images"]["resumed"] == 2
    third = run_eval(spec_for(tiny_voc, crf=False), classifier_model, out, progress=False)
    assert third["images"]["computed_this_run"] == 2 and third["images"]["evaluated"] == 5
    fresh = run_eval(spec_for(tiny_voc, crf=False), classifier_model, tmp_path / "fresh", progress=False)
    assert fresh["metrics"]["plain"]["per_class"] == third["metrics"]["plain"]["per_class"]
    # a resumed run with other settings refuses instead of mixing numbers
    with pytest.raises(GraphkitError, match="different settings bg_pow"):
        run_eval(spec_for(tiny_voc, crf=False, bg_pow=1.0), classifier_model, out, progress=False)
    again = run_eval(spec_for(tiny_voc, crf=False, bg_pow=1.0, resume=False), classifier_model, out, progress=False)
    assert again["images"]["computed_this_run"] == 5


def test_worker_pool_gives_the_same_numbers(tiny_voc, classifier_model, tmp_path):
    serial = run_eval(spec_for(tiny_voc, limit=3), classifier_model, tmp_path / "a", progress=False)
    pooled = run_eval(spec_for(tiny_voc, limit=3, workers=2), classifier_model, tmp_path / "b", progress=False)
    assert pooled["metrics"] == serial["metrics"]


def test_missing_files_are_errors_or_counted_never_silent(tiny_voc, classifier_model, tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(tiny_voc, root)
    voc = root / "VOCdevkit" / "VOC2012"
    names = [s.name for s in read_samples(root)]
    (voc / "JPEGImages" / f"{names[1]}.jpg").unlink()
    (voc / "SegmentationClass" / f"{names[3]}.png").unlink()
    with pytest.raises(EvalDataError, match=rf"image .*{names[1]}\.jpg: no such file"):
        run_eval(spec_for(root), classifier_model, tmp_path / "out", progress=False)
    summary = run_eval(spec_for(root, skip_missing=True, crf=False), classifier_model, tmp_path / "out", progress=False)
    assert summary["images"]["skipped_missing"] == 2 and summary["images"]["evaluated"] == 3
    assert any(names[3] in p for p in summary["images"]["missing_files"])
    assert "skipped (missing files): 2" in (tmp_path / "out" / "metrics.txt").read_text()


def test_bad_list_lines_and_paths_are_clear_errors(tiny_voc, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("a.jpg b.png c\n")
    with pytest.raises(EvalDataError, match=r"bad\.txt:1: expected"):
        read_samples(tiny_voc, bad)
    with pytest.raises(EvalDataError, match="no such folder"):
        read_samples(tmp_path / "nowhere")
    with pytest.raises(EvalDataError, match="no such file"):
        read_samples(tiny_voc, tmp_path / "missing.txt")
    with pytest.raises(SpecError, match="eval.pad_size"):
        eval_spec_from_mapping({"data_root": "x", "pad_size": [64]})
    with pytest.raises(SpecError, match="unknown key 'scale'"):
        eval_spec_from_mapping({"data_root": "x", "scale": [1]})


def test_two_column_reference_list_and_names_from_paths(tiny_voc, classifier_model, tmp_path):
    names = [s.name for s in read_samples(tiny_voc)][:2]
    lines = [f"VOCdevkit/VOC2012/JPEGImages/{n}.jpg /VOCdevkit/VOC2012/SegmentationClass/{n}.png" for n in names]
    listing = tmp_path / "val_voc.txt"
    listing.write_text("\n".join(lines) + "\n")
    samples = read_samples(tiny_voc, listing)
    assert [s.name for s in samples] == names and all(s.mask_path.is_file() for s in samples)
    summary = run_eval(
        spec_for(tiny_voc, image_list=str(listing), crf=False), classifier_model, tmp_path / "o", progress=False
    )
    assert summary["images"]["evaluated"] == 2


def test_random_weights_are_flagged_next_to_the_number(tiny_voc, classifier_model, tmp_path):
    spec = spec_for(tiny_voc, limit=1, crf=False, weights_description="random (seed 0)")
    summary = run_eval(spec, classifier_model, tmp_path / "r", progress=False)
    assert summary["note"] == RANDOM_WEIGHTS_NOTE
    mean_lines = [line for line in (tmp_path / "r" / "metrics.txt").read_text().splitlines() if line.startswith("mIoU")]
    assert mean_lines and all("meaningless" in line for line in mean_lines)


def test_pad_size_must_match_the_model_and_batch_padding(tiny_voc, classifier_model, tmp_path, helpers):
    with pytest.raises(SpecError, match="pad_size"):
        run_eval(spec_for(tiny_voc, pad_size=[128, 128]), classifier_model, tmp_path / "x", progress=False)
    # batch of 3 views: views of consecutive images share batches, the last one is zero-padded
    a = run_eval(
        spec_for(tiny_voc, limit=2, crf=False, batch_size=3), classifier_model, tmp_path / "b3", progress=False
    )
    b = run_eval(spec_for(tiny_voc, limit=2, crf=False), classifier_model, tmp_path / "b1", progress=False)
    assert a["metrics"] == b["metrics"]


def test_dump_bins_writes_ais_bench_inputs(tiny_voc, classifier_model, tmp_path):
    bins = tmp_path / "bins"
    run_eval(
        spec_for(tiny_voc, limit=2, crf=False, dump_bins_dir=str(bins), dump_bins_count=1),
        classifier_model,
        tmp_path / "o",
        progress=False,
    )
    files = sorted(p.name for p in bins.glob("*.bin"))
    name = read_samples(tiny_voc)[0].name
    assert files == [f"{name}_{v}.bin" for v in range(8)]
    data = np.fromfile(bins / f"{name}_0.bin", dtype=np.float32)
    assert data.size == 3 * 64 * 64
    manifest = json.loads((bins / "views.json").read_text())
    assert manifest["images"][name]["hw"] == [24, 30]
