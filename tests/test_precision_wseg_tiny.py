"""The precision preview on pipelines/wseg_tiny.yaml: mask argmax agreement and cls error under fp16 emulation.

The golden set is recorded into a temporary folder (from the torch reference), so the test does not
depend on the committed set's content hash matching this CPU's export.
"""

from __future__ import annotations

import json
import shlex

import pytest

pytest.importorskip("graphkit.wseg.network")

from graphkit.cli.main import main  # noqa: E402


def test_wseg_tiny_fp16_preview(tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "apply",
        "pipelines/wseg_tiny.yaml",
        "-q",
        "--set",
        f"output.dir={run}",
        "--set",
        f"golden.dir={tmp_path / 'g'}",
    ]
    assert main([*args, "--set", "precision.precision_mode=force_fp16"]) == 0
    report = json.loads((run / "report.json").read_text())["precision"]
    outputs = {o["name"]: o for o in report["outputs"]}
    assert report["cases"] == 2 and report["fp16_nodes"] == 207
    # the mask's per-pixel class under fp16 storage: the golden set declares argmax_axis 1
    assert outputs["mask"]["argmax_agreement"] >= 0.999
    # cls: seeded random weights give scores of order 1; fp16's 11-bit significand keeps them within 1e-2
    assert 0 < outputs["cls"]["max_abs"] < 1e-2 and outputs["cls"]["top1_agreement"] == 1.0
    assert report["passed"] and report["keep_list"] == [] and report["first_nonfinite"] is None
    assert not (run / "precision" / "keep_dtype.cfg").exists()
    script = (run / "atc" / "atc_commands.sh").read_text()
    assert not any(
        a.startswith("--keep_dtype")
        for line in script.splitlines()
        if line.startswith('"$ATC"')
        for a in shlex.split(line)
    )
    capsys.readouterr()
