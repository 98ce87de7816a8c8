"""``graphkit eval --precision fp16``: the VOC evaluation of the fp16 emulation, beside the fp32 one."""

from __future__ import annotations

import json

import onnx


def test_eval_fp16_emulation_against_fp32_on_the_same_images(cli, tiny_voc, classifier_model, tmp_path):
    common = ["--data-root", tiny_voc, "--pad-size", "64", "64", "--no-crf", "--limit", "3", "--workers", "0", "--json"]
    fp32 = cli("eval", classifier_model, "--out", tmp_path / "fp32", *common)
    assert fp32.returncode == 0, fp32.stderr
    fp16 = cli("eval", classifier_model, "--out", tmp_path / "fp16", "--precision", "fp16", *common)
    assert fp16.returncode == 0, fp16.stderr
    a, b = json.loads(fp32.stdout), json.loads(fp16.stdout)
    assert b["precision"] == {"emulated": "fp16 (ATC force_fp16)", "source_model": str(classifier_model)}
    emulated = onnx.load(tmp_path / "fp16" / "model_fp16.onnx")
    casts = [n for n in emulated.graph.node if n.op_type == "Cast"]
    assert casts and {a.i for n in casts for a in n.attribute} == {onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT}
    # the colour classifier's logits are +-5: fp16 keeps every pixel's class, so the mIoU is the same
    assert b["images"]["evaluated"] == a["images"]["evaluated"] == 3
    assert abs(b["miou_21_with_background"] - a["miou_21_with_background"]) < 1e-9
    # resuming recognises the same emulated model (same bytes)
    again = cli("eval", classifier_model, "--out", tmp_path / "fp16", "--precision", "fp16", *common)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["images"]["resumed"] == 3


def test_eval_keep_dtype_without_fp16_and_unknown_nodes_are_one_line(cli, tiny_voc, classifier_model, tmp_path):
    keep = tmp_path / "keep.cfg"
    keep.write_text("no_such_node\n")
    base = ["eval", classifier_model, "--data-root", tiny_voc, "--out", tmp_path / "o", "--keep-dtype", keep]
    only = cli(*base)
    assert only.returncode == 2 and only.stderr.strip() == "graphkit: error: --keep-dtype: only with --precision fp16"
    unknown = cli(*base, "--precision", "fp16")
    assert unknown.returncode == 2 and "no node named 'no_such_node'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
