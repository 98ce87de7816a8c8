"""Issue 28 items 4 and 7, from the hostile side: importing a plug-in cannot end the command
(``sys.exit(0)``, its own ``KeyboardInterrupt``), a real Ctrl-C still does, and importing a
user's pass folder writes nothing into it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest

from graphkit.pipeline.demo_model import demo_model

ENTRY_POINTS = """
[graphkit.stages]
handoff.exiter = exits_on_import:STAGE

[graphkit.backends]
interrupter = interrupts_on_import:Backend
sleeper = sleeps_on_import:Backend
"""


@pytest.fixture
def hostile_site(make_distribution, monkeypatch) -> Path:
    """An installed distribution whose plug-ins misbehave when imported (on PYTHONPATH)."""
    site = make_distribution(
        "hostile",
        ENTRY_POINTS,
        {
            "exits_on_import": "import sys\nsys.exit(0)\n",
            "interrupts_on_import": "raise KeyboardInterrupt\n",
            "sleeps_on_import": "import time\nopen(__file__ + '.started', 'w').close()\ntime.sleep(60)\n",
        },
    )
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def assert_one_line_exit_2(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("graphkit: error: ") and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def test_a_stage_that_calls_sys_exit_0_on_import_does_not_end_apply_with_success(hostile_site, tmp_path, cli):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "name: p\nsource: {builtin: demo}\ngolden: {batch_sizes: [1]}\npasses: [eliminate-noops]\n"
        "handoff:\n  exiter: {}\n"
    )
    result = cli("apply", pipeline, "-o", tmp_path / "run")
    assert_one_line_exit_2(result, "stage 'handoff.exiter'", "exits_on_import:STAGE", "SystemExit: 0")
    assert not (tmp_path / "run").exists()


def test_a_backend_that_raises_keyboardinterrupt_on_import_is_an_error_not_a_ctrl_c(hostile_site, tmp_path, cli):
    model = tmp_path / "m.onnx"
    onnx.save(demo_model(), str(model))
    result = cli("perf", model, "--backend", "interrupter", "--output", tmp_path / "perf")
    assert_one_line_exit_2(result, "backend 'interrupter'", "KeyboardInterrupt (raised by the plug-in itself")
    assert "interrupted" not in result.stderr


def test_a_real_ctrl_c_during_a_plugin_import_still_interrupts(hostile_site, tmp_path):
    model = tmp_path / "m.onnx"
    onnx.save(demo_model(), str(model))
    env = {**os.environ, "GRAPHKIT_NO_PROGRESS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "graphkit", "perf", str(model), "--backend", "sleeper", "--output", str(tmp_path / "p")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    started = hostile_site / "sleeps_on_import.py.started"
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert started.exists(), process.communicate()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "graphkit: interrupted"


def test_importing_a_pass_folder_writes_no_bytecode_into_it(tmp_path, user_pass_dir):
    folder = tmp_path / "passes"
    folder.mkdir()
    (folder / "mine.py").write_text((user_pass_dir / "my_passes.py").read_text())
    package = folder / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .helpers import VALUE\n")
    (package / "helpers.py").write_text("VALUE = 1\n")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(
        [sys.executable, "-m", "graphkit", "passes", "--passes-dir", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "break-relu" in result.stdout  # the folder was imported
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert written == ["mine.py", "pkg", "pkg/__init__.py", "pkg/helpers.py"]
