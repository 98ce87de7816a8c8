"""A pipeline's eval: section runs after apply, on the pipeline's own output model."""

from __future__ import annotations

import json
from pathlib import Path

from graphkit.testing import run_cli

REPO = Path(__file__).resolve().parents[2]


def test_apply_runs_the_eval_section_on_the_written_model(tiny_voc, tmp_path):
    eval_section = json.dumps({"data_root": str(tiny_voc), "pad_size": [64, 64], "workers": 0, "overlays": 1})
    result = run_cli(
        "apply",
        REPO / "pipelines" / "wseg_tiny.yaml",
        "--output",
        tmp_path / "run",
        "--set",
        f"golden.dir={tmp_path / 'golden'}",
        "--set",
        "source.export.input_size=[64, 64]",
        "--set",
        f"eval={eval_section}",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    evaluation = report["eval"]
    assert evaluation["images"]["evaluated"] == 5
    assert 0.0 <= evaluation["miou_21_with_background"] <= 1.0
    assert "random" in evaluation["note"]  # seeded weights: the number is flagged as meaningless
    assert (tmp_path / "run" / "eval" / "metrics.json").exists()
    assert "eval:" in result.stdout and "meaningless" in result.stdout.lower()


def test_bad_eval_section_fails_before_any_work(tmp_path):
    result = run_cli(
        "apply",
        REPO / "pipelines" / "wseg_tiny.yaml",
        "--output",
        tmp_path / "run",
        "--set",
        "eval={data_root: x, pad_sise: [64, 64]}",
    )
    assert result.returncode == 2
    assert "eval: unknown key 'pad_sise' (did you mean: pad_size" in result.stderr
    assert not (tmp_path / "run").exists()


def test_the_eval_section_takes_the_executor_settings(tmp_path):
    from graphkit.wseg.eval.spec import eval_spec_from_mapping

    spec = eval_spec_from_mapping(
        {
            "data_root": "x",
            "executor": "ray",
            "ray": {"address": "10.0.0.1:6379", "workers": 8, "num_cpus_per_worker": 2, "num_gpus_per_worker": 1},
        }
    )
    assert (spec.executor, spec.ray.address, spec.ray.workers) == ("ray", "10.0.0.1:6379", 8)
    assert (spec.ray.num_cpus_per_worker, spec.ray.num_gpus_per_worker) == (2.0, 1.0)
    assert "executor" not in spec.result_settings() and "ray" not in spec.result_settings()  # resumable anywhere
    result = run_cli(
        "apply",
        REPO / "pipelines" / "wseg_tiny.yaml",
        "--output",
        tmp_path / "run",
        "--set",
        "eval={data_root: x, executor: ray, ray: {num_cpus_per_worker: .nan}}",
    )
    assert result.returncode == 2
    assert "eval.ray.num_cpus_per_worker (--ray-num-cpus-per-worker): must be a finite number > 0" in result.stderr
    assert not (tmp_path / "run").exists()
