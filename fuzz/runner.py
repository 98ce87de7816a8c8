"""Running one command line: forked in-process (fast) or as a real subprocess.

Both runners give the command a private working folder, HOME and TMPDIR (see
:mod:`fuzz.sandbox`), stdin from /dev/null, an address-space limit (``RLIMIT_AS``)
and a wall-clock timeout, and put it in its own process group so that a timeout kills
everything it started.

- :class:`ForkRunner` forks each attempt from a fork server that imported graphkit once
  (``multiprocessing``'s forkserver) and calls :func:`graphkit.cli.main.main` there, the way the
  ``graphkit`` script does: a few milliseconds of start-up instead of about a second, and no
  state shared between attempts.
- :class:`SubprocessRunner` runs ``python -m graphkit``: the real start-up, for signal mode
  (a signal can arrive during imports) and as a cross-check.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MEMORY = 3 * 2**30  # bytes of address space per command


@dataclass
class Outcome:
    """How a command ended."""

    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    signal_sent: bool = False


def _limit(memory: int) -> None:
    os.setpgrp()
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace") if path.exists() else ""


def _entry_point(entry: str | None):
    """``graphkit.cli.main.main``, or ``main`` of the Python file ``entry`` (the harness's own tests)."""
    if entry is None:
        from graphkit.cli.main import main

        return main
    import importlib.util

    spec = importlib.util.spec_from_file_location("graphkit_fuzz_entry", entry)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _child(
    argv: list[str], cwd: str, env: dict[str, str], stdout: str, stderr: str, memory: int, entry: str | None
) -> None:
    """Runs in the forked process: the ``graphkit`` console script, with its exit path."""
    import atexit
    import tempfile
    import traceback

    _limit(memory)
    for fd, path in ((1, stdout), (2, stderr)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.environ.update(env)
    sys.dont_write_bytecode = False  # as in real use: Python writes __pycache__ unless told not to
    tempfile.tempdir = None  # re-read TMPDIR
    os.chdir(cwd)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code: int
    try:
        code = _entry_point(entry)(argv)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter does with an exception that escapes main()
        traceback.print_exc()
        code = 1
    status = int(code) & 0xFF if isinstance(code, int) else 1
    try:
        atexit._run_exitfuncs()  # as at interpreter exit (temp-dir finalizers, logging)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # The child's own record of its exit code: the forkserver reports 255 when it could not
        # reap the child's status (seen under load), which is not the command's exit code.
        with contextlib.suppress(OSError):
            Path(stdout).with_name("exit-code").write_text(str(status))
        os._exit(status)


class ForkRunner:
    """Runs attempts as forks of a server that imported graphkit once."""

    def __init__(self, memory: int = DEFAULT_MEMORY, entry: str | None = None):
        self.memory = memory
        self.entry = entry  # a Python file whose main(argv) replaces graphkit's (tests only)
        self.live: set[int] = set()  # process groups of running commands
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["fuzz.preload"])

    def start(self, argv: list[str], cwd: Path, env: dict[str, str], logs: Path):
        """Start a command; returns a handle for :meth:`finish`."""
        logs.mkdir(parents=True, exist_ok=True)
        process = self._context.Process(
            target=_child,
            args=(argv, str(cwd), env, str(logs / "stdout"), str(logs / "stderr"), self.memory, self.entry),
            daemon=True,
        )
        process.start()
        self.live.add(process.pid)
        return process, time.perf_counter(), logs

    def finish(self, handle, timeout: float) -> Outcome:
        """Wait for a started command (killing its process group after ``timeout`` seconds)."""
        process, started, logs = handle
        process.join(max(0.0, timeout - (time.perf_counter() - started)))
        timed_out = process.is_alive()
        if timed_out:
            _kill_group(process.pid)
            process.join(10)
        code = process.exitcode if process.exitcode is not None else -9
        if code == 255 and not timed_out:  # the forkserver lost the status: take the child's record
            with contextlib.suppress(OSError, ValueError):
                code = int((logs / "exit-code").read_text())
        _kill_group(process.pid)  # anything it left running
        self.live.discard(process.pid)
        return Outcome(code, _read(logs / "stdout"), _read(logs / "stderr"), time.perf_counter() - started, timed_out)

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], logs: Path, timeout: float) -> Outcome:
        return self.finish(self.start(argv, cwd, env, logs), timeout)


class SubprocessRunner:
    """Runs ``python -m graphkit`` in a fresh interpreter (the real start-up)."""

    def __init__(self, memory: int = DEFAULT_MEMORY, python: str = sys.executable, entry: str | None = None):
        self.memory = memory
        self.python = python
        self.entry = entry  # a Python script run instead of ``-m graphkit`` (tests only)
        self.live: set[int] = set()  # process groups of running commands

    def run(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        logs: Path,
        timeout: float,
        send: str | None = None,
        delay: float = 0.0,
    ) -> Outcome:
        """Run a command; with ``send`` ('SIGINT'/'SIGTERM'), signal it after ``delay`` seconds."""
        logs.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
            process = subprocess.Popen(
                [self.python, *([self.entry] if self.entry else ["-m", "graphkit"]), *argv],
                cwd=cwd,
                env={**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=lambda: _limit(self.memory),
            )
            self.live.add(process.pid)
            sent = False
            if send:
                try:
                    process.wait(delay)
                except subprocess.TimeoutExpired:
                    number = getattr(signal, send)
                    # Ctrl-C reaches the whole foreground group; `kill` reaches the process
                    if number == signal.SIGINT:
                        os.killpg(process.pid, number)
                    else:
                        process.send_signal(number)
                    sent = True
            timed_out = False
            try:
                process.wait(max(0.0, timeout - (time.perf_counter() - started)))
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(process.pid)
                process.wait()
        _kill_group(process.pid)
        self.live.discard(process.pid)
        return Outcome(
            process.returncode,
            _read(logs / "stdout"),
            _read(logs / "stderr"),
            time.perf_counter() - started,
            timed_out,
            sent,
        )


def kill_all(*runners) -> None:
    """Kill every command the runners still run (the harness is stopping)."""
    for runner in runners:
        for pid in list(runner.live):
            _kill_group(pid)


def _kill_group(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
