"""The accuracy run on the tiny wseg variant (seeded random weights) exported at 64x64."""

from __future__ import annotations

import pytest

from graphkit.wseg.eval.runner import RANDOM_WEIGHTS_NOTE, run_eval
from graphkit.wseg.eval.spec import EvalSpec


def test_tiny_wseg_runs_through_the_whole_pipeline(tiny_voc, tmp_path):
    export = pytest.importorskip("graphkit.wseg.export")
    path = tmp_path / "tiny_wseg64.onnx"
    result = export.export_from_spec(export.ExportSpec(width=0.03125, input_size=[64, 64], opset=13), path)
    spec = EvalSpec(data_root=str(tiny_voc), pad_size=[64, 64], workers=0, limit=2, weights_description=result.weights)
    summary = run_eval(spec, path, tmp_path / "out", progress=False)
    assert summary["images"]["evaluated"] == 2
    assert summary["note"] == RANDOM_WEIGHTS_NOTE  # seeded random weights: the number is flagged
    assert 0.0 <= summary["miou_21_with_background_crf"] <= 1.0
    assert len(list((tmp_path / "out" / "masks_crf").iterdir())) == 2
