"""Every detector of the fuzz harness fires on a planted fault, and stays quiet on a clean run."""

from __future__ import annotations

import pytest

from fuzz.attempts import Attempt
from fuzz.campaign import run_attempt
from fuzz.runner import SubprocessRunner
from fuzz.sandbox import INPUTS, OUT


def _run(runner, tmp_path, fault, command="diff", **fields):
    attempt = Attempt(0, 0, command, [fault], files={f"{INPUTS}/model.onnx": b"model"}, **fields)
    return run_attempt(attempt, runner, tmp_path)


def _kinds(result) -> set[str]:
    return {v.kind for v in result.violations}


@pytest.mark.parametrize("fault", ["clean", "bad-input"])
def test_clean_runs_have_no_violation(fake_runner, tmp_path, fault):
    result = _run(fake_runner, tmp_path, fault)
    assert result.outcome.returncode in (0, 2)
    assert result.violations == []


def test_right_model_passes_the_oracle(fake_runner, tmp_path):
    checks = {"apply_out": OUT, "oracle_source": "builtin:demo"}
    assert _run(fake_runner, tmp_path, "right-model", command="apply", checks=checks).violations == []


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("traceback", "traceback"),
        ("exit3", "exit_code"),
        ("two-error-lines", "error_line"),
        ("ansi", "error_line"),
        ("temp-in-output", "leftover_temp"),
        ("tmpdir", "leftover_temp"),
        ("outside", "outside_write"),
        ("home", "home_write"),
        ("input", "input_modified"),
    ],
)
def test_planted_fault_is_flagged(fake_runner, tmp_path, fault, kind):
    result = _run(fake_runner, tmp_path, fault)
    assert kind in _kinds(result), result.violations


def test_traceback_signature_names_the_exception_and_frame(fake_runner, tmp_path):
    (violation,) = [v for v in _run(fake_runner, tmp_path, "traceback").violations if v.kind == "traceback"]
    assert violation.detail.startswith("ValueError at ")


def test_hang_is_a_timeout(fake_runner, tmp_path):
    result = _run(fake_runner, tmp_path, "hang", timeout=2.0)
    assert result.outcome.timed_out
    assert "timeout" in _kinds(result)


def test_memory_is_limited(fake_runner, tmp_path):
    result = _run(fake_runner, tmp_path, "memory")
    assert {"memory", "traceback"} <= _kinds(result)


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("model-on-failure", "model_on_failure"), ("no-report", "missing_report"), ("wrong-model", "wrong_model")],
)
def test_apply_oracles(fake_runner, tmp_path, fault, kind):
    checks = {"apply_out": OUT, "oracle_source": "builtin:demo"}
    result = _run(fake_runner, tmp_path, fault, command="apply", checks=checks)
    assert kind in _kinds(result), result.violations


def test_accepting_what_must_fail_is_flagged(fake_runner, tmp_path):
    assert "invalid_accepted" in _kinds(_run(fake_runner, tmp_path, "clean", "perf", checks={"invalid_model": True}))
    assert "bad_golden_accepted" in _kinds(_run(fake_runner, tmp_path, "clean", "validate", checks={"must_fail": True}))
    # the same exit 0 without those flags is fine
    assert _run(fake_runner, tmp_path, "clean", "perf").violations == []


def test_script_injection_is_run_and_caught(fake_runner, tmp_path):
    assert "script_injection" in _kinds(_run(fake_runner, tmp_path, "injection", checks={"injection": True}))
    assert _run(fake_runner, tmp_path, "quoted", checks={"injection": True}).violations == []


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_signal_mode(fake_program, tmp_path, name):
    runner = SubprocessRunner(entry=str(fake_program))
    ignoring = _run(runner, tmp_path, "slow-ignoring-signals", signal=name, signal_delay=0.5, subprocess=True)
    assert ignoring.outcome.signal_sent
    assert "killed" in _kinds(ignoring)  # Python's default: death by the signal
    if name == "SIGTERM":  # death by SIGTERM before a line was printed: the start-up window, allowed
        silent = _run(runner, tmp_path, "silent-start-up", signal=name, signal_delay=0.5, subprocess=True)
        assert silent.outcome.returncode == -15 and silent.violations == []
    handling = _run(runner, tmp_path, "slow-handling-signals", signal=name, signal_delay=0.5, subprocess=True)
    assert handling.outcome.returncode == {"SIGINT": 130, "SIGTERM": 143}[name]
    assert handling.violations == []


def test_exit_130_without_a_signal_is_flagged(fake_runner, tmp_path):
    result = run_attempt(Attempt(0, 0, "apply", ["exit3"]), fake_runner, tmp_path)
    assert "exit_code" in _kinds(result)


def test_a_status_the_forkserver_lost_is_read_from_the_childs_record(tmp_path):
    """Seen in CI under load: the forkserver reported 255 for a child that exited 2."""
    import subprocess
    import sys
    import time

    from fuzz.runner import ForkRunner

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)

    class LostStatus:  # a finished child whose exit status the forkserver could not reap
        pid = int(gone.stdout)  # a process that has exited: killing its group finds nothing
        exitcode = 255

        def join(self, timeout=None):
            return None

        def is_alive(self):
            return False

    for name, text in (("stdout", ""), ("stderr", "graphkit: error: bad\n"), ("exit-code", "2")):
        (tmp_path / name).write_text(text)
    runner = ForkRunner.__new__(ForkRunner)
    runner.live = set()
    outcome = runner.finish((LostStatus(), time.perf_counter(), tmp_path), timeout=5)
    assert outcome.returncode == 2
    (tmp_path / "exit-code").unlink()
    assert runner.finish((LostStatus(), time.perf_counter(), tmp_path), timeout=5).returncode == 255  # no record


def test_a_traceback_inside_a_json_report_is_data_not_a_crash():
    import json

    from fuzz.invariants import traceback_signature

    printed = "Traceback (most recent call last):\n  File \"/x/graphkit/a.py\", line 3, in f\nKeyError: 'k'\n"
    report = json.dumps({"passes": [{"traceback": printed}]}, indent=2)
    assert traceback_signature(report) == ""
    assert traceback_signature(report + "\n" + printed) == "KeyError at a.py:f"


# --- the surfaces of issue 28: each new detector fires on a planted fault ----------------------


def test_a_new_pass_file_that_does_not_load_is_flagged(fake_runner, tmp_path):
    checks = {"new_pass": {"name": "drop-x", "dir": "out/passes"}}
    assert "new_pass_broken" in _kinds(_run(fake_runner, tmp_path, "new-pass-broken", "new-pass", checks=checks))
    assert _run(fake_runner, tmp_path, "new-pass-right", "new-pass", checks=checks).violations == []


def test_a_cache_clear_that_deletes_what_graphkit_did_not_write_is_flagged(fake_runner, tmp_path):
    from fuzz.sandbox import CACHE

    files = {f"{INPUTS}/model.onnx": b"model", f"{CACHE}/src/main.py": b"print('mine')\n"}
    attempt = Attempt(0, 0, "cache", ["cache-clear-everything"], files=files, outputs=[OUT, CACHE])
    attempt.checks["foreign"] = {f"{CACHE}/src/main.py": "print('mine')\n"}
    assert "foreign_deleted" in _kinds(run_attempt(attempt, fake_runner, tmp_path))
    attempt.argv = ["clean"]
    assert run_attempt(attempt, fake_runner, tmp_path).violations == []


@pytest.mark.parametrize(
    ("fault", "flagged"), [("repro-good", False), ("repro-cd-dirname", True), ("repro-escape", True)]
)
def test_a_reproducer_run_the_hostile_way_is_checked(fake_runner, tmp_path, fault, flagged):
    """Copied under a '-name' folder and run through a link beside a decoy pipeline.yaml: the old
    ``cd "$(dirname "$0")"`` fails on the '-', and a script writing outside its folder is caught."""
    result = _run(fake_runner, tmp_path, fault, command="apply", checks={"apply_out": OUT})
    assert ("reproducer_escapes" in _kinds(result)) is flagged, result.violations


def test_bytecode_is_written_as_in_real_use(fake_runner, tmp_path):
    """The harness no longer turns bytecode off: a command importing a user's pass file the plain
    way leaves __pycache__ in the inputs, and that is flagged."""
    files = {f"{INPUTS}/model.onnx": b"model", f"{INPUTS}/passes/p.py": b"X = 1\n"}
    result = run_attempt(Attempt(0, 0, "apply", ["import-user-pass"], files=files), fake_runner, tmp_path)
    assert "input_modified" in _kinds(result) and "__pycache__" in str(result.violations)


def test_an_attempts_own_environment_reaches_the_command(fake_runner, tmp_path):
    files = {f"{INPUTS}/model.onnx": b"model", f"{INPUTS}/site/x.py": b""}
    attempt = Attempt(0, 0, "apply plug-in", ["env"], files=files, env={"FUZZ_PLANTED": f"@@ROOT@@/{INPUTS}/site"})
    assert run_attempt(attempt, fake_runner, tmp_path).violations == []


def test_rays_sigterm_handler_is_flagged(fake_program, tmp_path):
    """Ray's driver handler turns SIGTERM into exit 15: not 143, so flagged."""
    attempt = Attempt(0, 0, "infer ray", ["ray-like-sigterm"], files={f"{INPUTS}/model.onnx": b"model"})
    attempt.signal, attempt.signal_delay, attempt.subprocess = "SIGTERM", 1.5, True
    result = run_attempt(attempt, SubprocessRunner(entry=str(fake_program)), tmp_path)
    assert result.outcome.returncode == 15 and "exit_code" in _kinds(result)


def test_the_surface_builders_reach_each_surface():
    from fuzz.attempt_builders import make_attempt

    attempts = [
        make_attempt(3, i, [name]) for name in ("new-pass", "cache", "apply plug-in", "infer ray") for i in range(6)
    ]
    by = {}
    for attempt in attempts:
        by.setdefault(attempt.command, []).append(attempt)
    assert {a.argv[0] for a in by["new-pass"]} == {"new-pass"} and all("new_pass" in a.checks for a in by["new-pass"])
    assert {a.argv[:2][1] for a in by["cache"]} <= {"ls", "clear"} and any(a.checks["foreign"] for a in by["cache"])
    plugin = by["apply plug-in"][0]
    assert plugin.subprocess and plugin.env["PYTHONPATH"].endswith("inputs/site") and plugin.checks["apply_out"] == OUT
    assert any(path.endswith("entry_points.txt") for path in plugin.files)
    assert all("--executor" in a.argv and a.subprocess for a in by["infer ray"])
