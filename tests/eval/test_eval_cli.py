"""``graphkit eval`` as a user runs it (subprocess)."""

from __future__ import annotations

import json
import shutil


def test_cli_eval_json_then_resume_and_table(cli, tiny_voc, classifier_model, tmp_path):
    out = tmp_path / "run"
    common = ["eval", classifier_model, "--data-root", tiny_voc, "--out", out, "--pad-size", "64", "64"]
    first = cli(*common, "--limit", "2", "--workers", "2", "--overlays", "1", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["images"]["evaluated"] == 2
    assert summary["miou_21_with_background_crf"] > 0.9
    assert len(list((out / "overlays").iterdir())) == 1
    second = cli(*common, "--workers", "0", "--weights-description", "random init, seed 0")
    assert second.returncode == 0, second.stderr
    assert "meaningless" in second.stdout and "21 classes with background" in second.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"]["resumed"] == 2 and metrics["images"]["computed_this_run"] == 3


def test_cli_missing_mask_is_one_line_exit_2_and_skip_missing_reports(cli, tiny_voc, classifier_model, tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(tiny_voc, root)
    mask = next((root / "VOCdevkit" / "VOC2012" / "SegmentationClass").glob("*.png"))
    mask.unlink()
    args = ["eval", classifier_model, "--data-root", root, "--out", tmp_path / "o", "--pad-size", "64", "64"]
    failed = cli(*args, "--workers", "0")
    assert failed.returncode == 2
    assert failed.stderr.strip().count("\n") == 0 and mask.name in failed.stderr and "GT mask" in failed.stderr
    skipped = cli(*args, "--workers", "0", "--skip-missing", "--no-crf", "--json")
    assert skipped.returncode == 0, skipped.stderr
    report = json.loads(skipped.stdout)["images"]
    assert report["skipped_missing"] == 1 and report["evaluated"] == 4


def test_cli_bad_options_exit_2(cli, tiny_voc, classifier_model, tmp_path):
    no_root = cli("eval", classifier_model, "--out", tmp_path / "o")
    assert no_root.returncode == 2 and "data_root" in no_root.stderr
    bad_pad = cli("eval", classifier_model, "--data-root", tiny_voc, "--out", tmp_path / "o", "--workers", "0")
    assert bad_pad.returncode == 2 and "pad_size" in bad_pad.stderr
    no_model = cli("eval", tmp_path / "none.onnx", "--data-root", tiny_voc, "--out", tmp_path / "o")
    assert no_model.returncode == 2 and "none.onnx" in no_model.stderr
