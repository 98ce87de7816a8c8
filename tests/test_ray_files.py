"""Issue 28 items 8-9: a private local Ray instance writes nothing to $HOME (no
~/.ray/auth_token) and leaves nothing in $TMPDIR, after a clean run and after a Ctrl-C while a
worker holds its copy of the model. Each test starts Ray once in a fresh process (slowish)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.test_ray_executor import affine_model, write_inputs

pytest.importorskip("ray")

SLOW_BACKEND = """
import os, time
from pathlib import Path

def SlowBackend(model_path, **options):
    '''Opens nothing: announces the model copy it was given, then sleeps (a worker stuck starting).'''
    Path(os.environ["GK_TEST_MARKER"]).write_text(str(model_path))
    time.sleep(600)
"""


@pytest.fixture
def sandbox(tmp_path):
    """An empty HOME and a short empty TMPDIR (Ray's socket paths must fit 107 bytes)."""
    home = tmp_path / "home"
    home.mkdir()
    tmp = Path(tempfile.mkdtemp(prefix="gkt-", dir="/tmp"))
    yield home, tmp
    shutil.rmtree(tmp, ignore_errors=True)


def environment(home: Path, tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "HOME": str(home), "TMPDIR": str(tmp), "GRAPHKIT_NO_PROGRESS": "1", **extra}


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_ray_run_writes_nothing_to_home_or_tmpdir(sandbox, tmp_path):
    home, tmp = sandbox
    model = affine_model(tmp_path / "m.onnx")
    inputs = write_inputs(tmp_path / "in", 6)
    result = subprocess.run(
        [sys.executable, "-m", "graphkit", "infer", str(model), "--input", str(inputs), "--output", str(tmp_path / "out"),
         "--output-dirname", "r", "--executor", "ray", "--ray-workers", "1"],
        capture_output=True,
        text=True,
        env=environment(home, tmp),
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out" / "r").iterdir())) == 12
    assert everything_under(home) == []  # no .ray/auth_token
    assert everything_under(tmp) == []  # no ray/ session folder, no graphkit-ray-* left


def test_ctrl_c_while_a_worker_holds_the_model_copy_leaves_nothing_behind(sandbox, tmp_path, make_distribution):
    home, tmp = sandbox
    entry_points = "[graphkit.backends]\nslow = slow_backend:SlowBackend\n"
    site = make_distribution("slow", entry_points, {"slow_backend": SLOW_BACKEND})
    marker = tmp_path / "worker-started"
    model = affine_model(tmp_path / "m.onnx")
    inputs = write_inputs(tmp_path / "in", 4)
    process = subprocess.Popen(
        [sys.executable, "-m", "graphkit", "infer", str(model), "--input", str(inputs), "--output", str(tmp_path / "out"),
         "--executor", "ray", "--ray-workers", "1", "--backend", "slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(home, tmp, PYTHONPATH=str(site), GK_TEST_MARKER=str(marker)),
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), process.communicate(timeout=60)
    copy = Path(marker.read_text())
    assert copy.parent.name.startswith("graphkit-ray-model-") and tmp in copy.parents  # under our own folder
    assert copy.exists()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "graphkit: interrupted"
    assert not copy.exists()
    assert everything_under(tmp) == [] and everything_under(home) == []
    assert not (tmp_path / "out").exists() or everything_under(tmp_path / "out") == []
