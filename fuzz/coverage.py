"""Coverage-guided mode: atheris (libFuzzer) mutates the bytes that drive the generators.

``python -m fuzz --coverage --time-budget 600 --findings DIR`` (needs the optional
extra ``fuzz``: ``pip install 'graphkit-onnx[fuzz]'``). Each input becomes an attempt through
:class:`~fuzz.choices.DataChoices`; it runs **in this process** (coverage has to be
seen by libFuzzer), in a fresh sandbox, with the same invariants as the seeded mode. Findings
are saved like the seeded ones, the first of each signature (plus the driving bytes in
``input.bin``); the
run continues after a finding, and ``summary.json`` in the findings folder is rewritten every
50 attempts. Limits come from libFuzzer (``-rss_limit_mb``, ``-timeout``). In-process runs
share module state (e.g. registered user passes) between attempts, which the seeded mode's
forks do not: confirm a coverage finding with its ``repro.sh``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from fuzz.attempt_builders import build_attempt
from fuzz.campaign import Result, Summary, save_finding, signature
from fuzz.choices import DataChoices
from fuzz.invariants import check
from fuzz.runner import Outcome
from fuzz.sandbox import WORK, compare, environment, make_writable, materialize, resolve, snapshot
from graphkit.util.files import write_bytes_atomic, write_text_atomic


def run_in_process(argv: list[str], cwd: Path, env: dict[str, str]) -> Outcome:
    """``graphkit.cli.main.main(argv)`` here, with fd-level capture, restoring cwd and environment."""
    import tempfile as tempfile_module
    import traceback

    from graphkit.cli.main import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    captured = {}
    saved_fds = {fd: os.dup(fd) for fd in (1, 2)}
    # closed in the finally clause below
    files = {fd: tempfile_module.TemporaryFile() for fd in (1, 2)}  # noqa: SIM115
    started = time.perf_counter()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, handle in files.items():
            os.dup2(handle.fileno(), fd)
        os.environ.update(env)
        sys.dont_write_bytecode = False  # as in real use (a user's Python writes __pycache__)
        tempfile_module.tempdir = None
        os.chdir(cwd)
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        for fd, copy in saved_fds.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        tempfile_module.tempdir = None
        for fd, handle in files.items():
            handle.seek(0)
            captured[fd] = handle.read().decode("utf-8", errors="replace")
            handle.close()
    return Outcome(int(code or 0), captured[1], captured[2], time.perf_counter() - started)


def _import_instrumented(atheris) -> None:
    """Import graphkit again with coverage instrumentation (only graphkit, not its dependencies)."""
    own = ("graphkit", "graphkit_passes")
    for name in list(sys.modules):
        if name.split(".")[0] in own:
            del sys.modules[name]
    with atheris.instrument_imports(include=list(own)):
        import graphkit.cli.main

        for command in graphkit.cli.main.COMMAND_MODULES:
            with contextlib.suppress(ImportError):
                __import__(f"graphkit.cli.{command}")


def run_coverage(args) -> int:
    """Run atheris until ``args.time_budget`` (default 600 s); findings go to ``args.findings``."""
    try:
        import atheris
    except ImportError:
        print("fuzz: error: --coverage needs atheris: pip install 'graphkit-onnx[fuzz]'", file=sys.stderr)
        return 2
    _import_instrumented(atheris)

    findings = args.findings or Path("fuzz-findings/coverage")
    findings.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="graphkit-fuzz-cov-"))
    results: list[Result] = []
    seen: set[str] = set()
    started = time.perf_counter()

    def one_input(data: bytes) -> None:
        index = len(results)
        attempt = build_attempt(DataChoices(atheris.FuzzedDataProvider(data)), -1, index)
        if attempt.command == "export" or attempt.signal:
            return  # torch export is too slow for in-process coverage; signals need a subprocess
        root = workdir / f"cov-{index}"
        materialize(root, attempt.files, attempt.modes)
        before = snapshot(root)
        outcome = run_in_process([resolve(a, root) for a in attempt.argv], root / WORK, environment(root))
        result = Result(attempt, outcome, check(attempt, outcome, root, compare(before, snapshot(root))))
        results.append(result)
        fresh = {signature(attempt, v) for v in result.violations} - seen
        if fresh:  # keep the first attempt of each root-cause signature
            seen.update(fresh)
            folder = save_finding(result, findings)
            write_bytes_atomic(folder / "input.bin", data)
            print(f"MISHANDLED cov:{index} {attempt.command}: {result.violations[0].kind} -> {folder}", file=sys.stderr)
        make_writable(root)
        shutil.rmtree(root, ignore_errors=True)
        if len(results) % 50 == 0:
            summary = Summary(-1, results, time.perf_counter() - started, str(findings)).to_dict()
            write_text_atomic(findings / "summary.json", json.dumps(summary, indent=2))

    budget = int(args.time_budget or 600)
    libfuzzer = [
        sys.argv[0],
        f"-max_total_time={budget}",
        f"-rss_limit_mb={args.memory_mb}",
        f"-timeout={int(args.timeout or 60)}",
        "-max_len=4096",
        f"-artifact_prefix={findings}/",
    ]
    atheris.Setup(libfuzzer, one_input)
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        summary = Summary(-1, results, time.perf_counter() - started, str(findings)).to_dict()
        write_text_atomic(findings / "summary.json", json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
    return 0


__all__ = ["run_coverage", "run_in_process"]
