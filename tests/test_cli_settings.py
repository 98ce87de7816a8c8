"""Settings that were silently accepted are one-line errors (exit 2), wherever the flag exists."""

from __future__ import annotations

import numpy as np
import pytest

from graphkit.demo import demo_model
from graphkit.model import save_model


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
    from graphkit.errors import InputError
    from graphkit.runtime.ort import session_options
    from graphkit.runtime.torch_backend import TorchBackend

    with pytest.raises(InputError, match="got -2"):
        session_options(threads=-2)
    with pytest.raises(InputError, match="got True"):
        session_options(threads=True)
    with pytest.raises(InputError, match="got -1"):
        TorchBackend("torch.nn:Identity", threads=-1)
    assert session_options(threads=0).intra_op_num_threads == 0  # 0: onnxruntime's default
