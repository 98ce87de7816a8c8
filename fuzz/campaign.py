"""Many attempts: run them in parallel, check them, keep the failing ones, summarize.

Each attempt runs in its own sandbox under a work folder (removed afterwards unless kept). A
failing attempt is saved under ``<findings>/<seed>-<index>/``: ``attempt.json`` (command line,
labels, violations), ``stdout.txt``/``stderr.txt``, the inputs in ``sandbox/`` and ``repro.sh``
(the graphkit command in that sandbox); its one-line reproducer is
``python -m fuzz --seed S --replay I`` (``--signals 1`` for signal mode).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.attempts import Attempt
from fuzz.invariants import Violation, check
from fuzz.runner import ForkRunner, Outcome, SubprocessRunner, kill_all
from fuzz.sandbox import WORK, compare, environment, make_writable, materialize, resolve, snapshot
from graphkit.util.console import progress
from graphkit.util.files import write_text_atomic

CRASH_KINDS = {"traceback", "killed", "memory"}


@dataclass
class Result:
    """One attempt, how it ended, and what it broke."""

    attempt: Attempt
    outcome: Outcome
    violations: list[Violation] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.violations


def reproducer(attempt: Attempt) -> str:
    """The one-line command that replays ``attempt`` on any checkout."""
    mode = " --signals 1" if attempt.signal else ""  # --signals takes a count; any count selects signal mode
    return f"python -m fuzz --seed {attempt.seed} --replay {attempt.index}{mode}"


def signature(attempt: Attempt, violation: Violation) -> str:
    """A root-cause key: tracebacks by exception and innermost graphkit frame, others by command and evidence."""
    if violation.kind in ("traceback", "memory") and violation.detail:
        return f"{violation.kind}: {violation.detail}"
    detail = re.sub(r"\d+", "N", violation.detail)[:90]
    return f"{violation.kind}: {attempt.command}: {detail}"


def run_attempt(attempt: Attempt, runner, workdir: Path, keep: bool = False) -> Result:
    """Materialize, run and check one attempt in a fresh sandbox under ``workdir``."""
    root = workdir / f"{attempt.seed}-{attempt.index}{'-sig' if attempt.signal else ''}"
    logs = workdir / f"{root.name}.logs"
    shutil.rmtree(root, ignore_errors=True)
    materialize(root, attempt.files, attempt.modes)
    before = snapshot(root)
    argv = [resolve(a, root) for a in attempt.argv]
    env = {**environment(root), **{k: resolve(v, root) for k, v in attempt.env.items()}}
    if "PYTHONPATH" in attempt.env and os.environ.get("PYTHONPATH"):  # the checkout under test stays first
        env["PYTHONPATH"] = os.environ["PYTHONPATH"] + os.pathsep + env["PYTHONPATH"]
    if attempt.subprocess or isinstance(runner, SubprocessRunner):
        sub = runner if isinstance(runner, SubprocessRunner) else SubprocessRunner(runner.memory, entry=runner.entry)
        outcome = sub.run(argv, root / WORK, env, logs, attempt.timeout, attempt.signal, attempt.signal_delay)
    else:
        outcome = runner.run(argv, root / WORK, env, logs, attempt.timeout)
    changes = compare(before, snapshot(root))
    violations = check(attempt, outcome, root, changes)
    if not keep:
        make_writable(root)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)
    return Result(attempt, outcome, violations)


def save_finding(result: Result, findings: Path) -> Path:
    """Write a failing attempt's evidence and inputs under ``findings``; returns its folder."""
    attempt = result.attempt
    folder = findings / f"{attempt.seed}-{attempt.index}{'-sig' if attempt.signal else ''}"
    shutil.rmtree(folder, ignore_errors=True)
    sandbox = folder / "sandbox"
    materialize(sandbox, attempt.files, attempt.modes)
    record = {
        **attempt.describe(),
        "reproducer": reproducer(attempt),
        "returncode": result.outcome.returncode,
        "seconds": round(result.outcome.seconds, 2),
        "violations": [
            {"kind": v.kind, "detail": v.detail, "signature": signature(attempt, v)} for v in result.violations
        ],
    }
    write_text_atomic(folder / "attempt.json", json.dumps(record, indent=2))
    write_text_atomic(folder / "stdout.txt", result.outcome.stdout)
    write_text_atomic(folder / "stderr.txt", result.outcome.stderr)
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in environment(sandbox.resolve()).items())
    argv = " ".join(shlex.quote(resolve(a, sandbox.resolve())) for a in attempt.argv)
    write_text_atomic(
        folder / "repro.sh",
        "#!/bin/sh\n"
        f"# graphkit-fuzz attempt {attempt.key} ({attempt.command}): "
        + "; ".join(v.kind for v in result.violations)
        + f"\n# on any checkout: {reproducer(attempt)}\n"
        f'cd "{(sandbox / WORK).resolve()}" && env {env} graphkit {argv}\n',
        mode=0o755,
    )
    return folder


@dataclass
class Summary:
    """Counts over a campaign, JSON-ready."""

    seed: int
    results: list[Result]
    seconds: float
    findings_dir: str | None = None
    harness_errors: list[str] = field(default_factory=list)  # attempts the generators could not build

    def to_dict(self) -> dict:
        by_class: Counter = Counter()
        by_command: dict[str, Counter] = {}
        groups: dict[str, dict] = {}
        for result in self.results:
            command = result.attempt.command + (" (signal)" if result.attempt.signal else "")
            counts = by_command.setdefault(command, Counter())
            counts["attempts"] += 1
            counts["mishandled"] += not result.clean
            for kind in {v.kind for v in result.violations}:
                by_class[kind] += 1
            for violation in result.violations:
                key = signature(result.attempt, violation)
                group = groups.setdefault(key, {"signature": key, "count": 0, "reproducer": reproducer(result.attempt)})
                group["count"] += 1
        mishandled = sum(not r.clean for r in self.results)
        return {
            "seed": self.seed,
            "attempts": len(self.results),
            "clean": len(self.results) - mishandled,
            "mishandled": mishandled,
            "crashes": sum(any(v.kind in CRASH_KINDS for v in r.violations) for r in self.results),
            "timeouts": sum(r.outcome.timed_out for r in self.results),
            "harness_errors": len(self.harness_errors),
            "by_class": dict(by_class.most_common()),
            "by_command": {k: dict(v) for k, v in sorted(by_command.items())},
            "signatures": sorted(groups.values(), key=lambda g: -g["count"]),
            "seconds": round(self.seconds, 1),
            "findings_dir": self.findings_dir,
        }


def run_campaign(
    attempts: Iterable[Attempt | Callable[[], Attempt]],
    *,
    seed: int,
    jobs: int = 2,
    findings: Path | None = None,
    time_budget: float | None = None,
    subprocess_every: int = 0,
    memory: int | None = None,
    workdir: Path | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> Summary:
    """Run ``attempts`` (or attempt factories, built when their turn comes) ``jobs`` at a time.

    Stops starting attempts after ``time_budget`` seconds. An attempt whose generator raises is
    counted in ``harness_errors``, not as mishandled.
    """
    started = time.perf_counter()
    fork = ForkRunner(**({"memory": memory} if memory else {}))
    sub = SubprocessRunner(**({"memory": memory} if memory else {}))
    results: list[Result] = []
    harness_errors: list[str] = []
    stopping = threading.Event()
    own_workdir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="graphkit-fuzz-")) if own_workdir else workdir
    workdir.mkdir(parents=True, exist_ok=True)

    def one(item: Attempt | Callable[[], Attempt]) -> Result | None:
        if stopping.is_set() or (time_budget is not None and time.perf_counter() - started > time_budget):
            return None
        try:
            attempt = item() if callable(item) else item
        except Exception as exc:  # a generator failed: the harness's problem, not graphkit's
            harness_errors.append(f"{type(exc).__name__}: {exc}")
            print(f"fuzz: harness error while generating an attempt: {exc!r}", file=sys.stderr)
            return None
        use_sub = attempt.subprocess or (subprocess_every and attempt.index % subprocess_every == 0)
        result = run_attempt(attempt, sub if use_sub else fork, workdir)
        if findings is not None and not result.clean:
            save_finding(result, findings)
        if on_result:
            on_result(result)
        return result

    attempts = list(attempts)
    try:
        with (
            ThreadPoolExecutor(max_workers=max(1, jobs)) as pool,
            progress(total=len(attempts), desc="fuzz", unit="attempt") as bar,
        ):
            try:
                for result in pool.map(one, attempts):
                    bar.update(1)
                    if result is not None:
                        results.append(result)
                        bar.set_postfix_str(f"mishandled {sum(not r.clean for r in results)}")
            except BaseException:  # interrupted: stop what runs, then let the pool wind down
                stopping.set()
                kill_all(fork, sub)
                raise
    finally:
        if own_workdir:
            make_writable(workdir)
            shutil.rmtree(workdir, ignore_errors=True)
    return Summary(seed, results, time.perf_counter() - started, str(findings) if findings else None, harness_errors)


def print_result(result: Result, stream=sys.stderr) -> None:
    """One line per mishandled attempt: what broke and the reproducer."""
    if result.clean:
        return
    kinds = ", ".join(sorted({v.kind for v in result.violations}))
    first = result.violations[0]
    print(
        f"MISHANDLED {result.attempt.key} {result.attempt.command}: {kinds} ({first.detail[:120]}) "
        f"-> {reproducer(result.attempt)}",
        file=stream,
        flush=True,
    )
