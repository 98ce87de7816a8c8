"""What the terminal shows: a progress bar on a TTY (passes and each validation forward), plain lines
otherwise, nothing under -q or --json; grouped declines; a summary that fits 100 columns (issue 25)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios

from graphkit.pipeline.summary import declines_line
from tests.cli.test_apply_forms import relu_model


def model_file(tmp_path):
    return relu_model(tmp_path / "m.onnx")


def run_on_a_terminal(args, cwd, env):
    """Run graphkit with stderr on a pseudo-terminal; returns (exit code, stdout, what the terminal got)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # a 100-column terminal
    process = subprocess.Popen(
        [sys.executable, "-m", "graphkit", *map(str, args)], stdout=subprocess.PIPE, stderr=follower, cwd=cwd, env=env
    )
    os.close(follower)
    screen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process is done
            break
        if not chunk:
            break
        screen += chunk
    stdout = process.stdout.read()
    code = process.wait(timeout=120)
    os.close(leader)
    return code, stdout.decode(), screen.decode(errors="replace")


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GRAPHKIT_NO_PROGRESS"}
    env["GRAPHKIT_CACHE"] = str(tmp_path / "cache")
    return env


def test_tty_shows_a_bar_with_the_pass_and_its_forwards(tmp_path):
    model = model_file(tmp_path)
    code, stdout, screen = run_on_a_terminal(
        ["apply", model, tmp_path / "o.onnx", "--passes", "eliminate-noops"], tmp_path, _env(tmp_path)
    )
    assert code == 0, screen
    assert "\r" in screen and "passes:" in screen  # tqdm redraws the line in place
    assert "eliminate-noops: forward b1" in screen
    assert "graphkit apply: m - OK" in stdout


def test_quiet_and_json_draw_no_bar(tmp_path):
    model = model_file(tmp_path)
    for extra in (["-q"], ["--json"]):
        code, stdout, screen = run_on_a_terminal(
            ["apply", model, "-o", tmp_path / f"run{len(extra[0])}", "--passes", "eliminate-noops", *extra],
            tmp_path,
            _env(tmp_path),
        )
        assert code == 0, screen
        assert "passes:" not in screen and "forward" not in screen
        if extra == ["--json"]:
            assert json.loads(stdout)["status"] == "ok"


def test_not_a_tty_gives_plain_lines(tmp_path):
    model = model_file(tmp_path)
    env = _env(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphkit",
            "apply",
            str(model),
            "-o",
            str(tmp_path / "r"),
            "--passes",
            "eliminate-noops",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0
    assert "\r" not in result.stderr and "[1/1] eliminate-noops ..." in result.stderr


def test_declines_are_grouped_by_reason_with_names_apart():
    declined = [
        {"site": "a", "reason": "input 'x1' is symbolic"},
        {"site": "b", "reason": "input 'x2' is symbolic"},
        {"site": "c", "reason": "rank unknown"},
    ]
    assert declines_line(declined) == 'declined 3 sites: 2 "input \'…\' is symbolic", 1 "rank unknown"'


def test_summary_fits_100_columns_and_shows_figures(tmp_path, cli):
    model = model_file(tmp_path)
    result = cli("apply", model, tmp_path / "o.onnx", "--preset", "generic", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    too_wide = [line for line in lines if len(line) > 100 and "/" not in line]  # a long path cannot be folded
    assert not too_wide
    assert any(line.startswith("model:   figures") for line in lines)
    report = json.loads((tmp_path / "o.graphkit" / "report.json").read_text())
    assert report["figures"]["source"]["nodes"] == 3 and report["figures"]["final"]["nodes"] == 2
    assert report["figures"]["final"]["macs"]["total"] == 16  # one 1x4 @ 4x4 MatMul at batch 1
