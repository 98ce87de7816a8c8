"""Settings that were silently accepted are one-line errors (exit 2), wherever the flag exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphkit.ir.model_io import save_model
from graphkit.pipeline.demo_model import demo_model


@pytest.fixture
def model(tmp_path):
    return save_model(demo_model(), tmp_path / "m.onnx")


@pytest.mark.parametrize("command", ["perf", "localize", "infer"])
def test_negative_threads_is_exit_2_in_every_command(tmp_path, model, cli, command):
    args = {
        "perf": ["perf", model, "--batch-sizes", "1", "--loop", "1", "--output", tmp_path / "perf"],
        "localize": ["localize", model, model, "--dims", "batch=1"],
        "infer": ["infer", model, "--input", tmp_path / "bins", "--output", tmp_path / "out"],
    }[command]
    (tmp_path / "bins").mkdir()
    np.save(tmp_path / "bins" / "a.npy", np.zeros((1, 3, 16, 16), dtype=np.float32))
    result = cli(*args, "--threads", "-1")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "graphkit: error: threads: must be an integer >= 0 (0 or unset: the runtime's default), got -1"
    )
    assert not (tmp_path / "perf").exists() and not (tmp_path / "out").exists()


def test_threads_check_is_in_the_library_for_every_backend():
    from graphkit.runtime.ort import session_options
    from graphkit.runtime.torch_backend import TorchBackend
    from graphkit.util.errors import InputError

    with pytest.raises(InputError, match="got -2"):
        session_options(threads=-2)
    with pytest.raises(InputError, match="got True"):
        session_options(threads=True)
    with pytest.raises(InputError, match="got -1"):
        TorchBackend("torch.nn:Identity", threads=-1)
    assert session_options(threads=0).intra_op_num_threads == 0  # 0: onnxruntime's default


def test_error_lines_carry_no_ansi_or_control_characters(cli):
    result = cli("passes", "abc\x1b[31mred\x07")
    assert result.returncode == 2
    assert result.stderr == "graphkit: error: pass: unknown pass 'abcred '; see 'graphkit passes'\n"


def test_a_fifo_as_input_model_is_refused_not_read_forever(tmp_path, cli):
    import os

    fifo = tmp_path / "m.onnx"
    os.mkfifo(fifo)
    demo = Path(__file__).resolve().parents[1] / "pipelines" / "demo.yaml"
    result = cli("apply", demo, "--input", fifo, "--output", tmp_path / "run", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"graphkit: error: {fifo}: not a regular file (a device, FIFO or socket)"


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_export_seed_out_of_range_is_exit_2(tmp_path, cli, seed):
    result = cli("export", "-o", tmp_path / "m.onnx", "--width", "0.03125", "--input-size", "32", "32", "--seed", seed)
    assert result.returncode == 2
    assert result.stderr.strip() == f"graphkit: error: export.seed: must be an integer in 0..2**32-1, got {seed}"
    assert not (tmp_path / "m.onnx").exists()


def test_no_command_is_one_error_line_and_exit_2(cli):
    result = cli()  # was the help text and exit 2 with no error line
    assert result.returncode == 2
    assert result.stderr.startswith("graphkit: error: no command given") and len(result.stderr.splitlines()) == 1


def test_fix_input_shape_naming_an_unknown_input_is_bad_input_exit_2(tmp_path, cli):
    """The option contradicts the model: exit 2 with one error line (was exit 1, 'failed'); no model."""
    save_model(demo_model(), tmp_path / "m.onnx")
    (tmp_path / "p.yaml").write_text(
        f"source:\n  onnx: {tmp_path / 'm.onnx'}\npasses:\n  - fix-input-shape:\n      shapes: {{nope: [1, 3]}}\n"
    )
    result = cli("apply", tmp_path / "p.yaml", "-o", tmp_path / "run")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("graphkit: error:")]
    assert len(errors) == 1 and "input 'nope' that the model does not have" in errors[0]
    assert not (tmp_path / "run" / "model.onnx").exists()
