"""``python -m fuzz``: run a fuzz campaign against this checkout and print a JSON summary.

Examples::

    python -m fuzz --attempts 2000 --seed 1 --findings fuzz-findings
    python -m fuzz --time-budget 600 --signals 40
    python -m fuzz --seed 1 --replay 17          # one attempt again, verbosely
    python -m fuzz --coverage --time-budget 600  # atheris (extra 'fuzz')

Exit code: 0 when every attempt was handled, 1 when some were mishandled.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from fuzz.attempt_builders import COMMANDS, make_attempt, signal_attempt
from fuzz.campaign import print_result, reproducer, run_attempt, run_campaign, save_finding
from fuzz.runner import DEFAULT_MEMORY, ForkRunner
from graphkit.util.files import write_text_atomic


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=200, help="number of attempts (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed; attempt i is the same for the same seed")
    parser.add_argument("--start", type=int, default=0, help="index of the first attempt (default 0)")
    parser.add_argument("--time-budget", type=float, help="stop starting attempts after this many seconds")
    parser.add_argument("--jobs", type=int, default=2, help="attempts run at the same time (default 2)")
    parser.add_argument(
        "--commands", help=f"comma-separated subset of: {', '.join(COMMANDS)} (default: all)", default=None
    )
    parser.add_argument("--signals", type=int, default=0, help="also run N signal-mode attempts (subprocesses)")
    parser.add_argument(
        "--subprocess-every", type=int, default=0, help="run every K-th attempt as a real subprocess (default: none)"
    )
    parser.add_argument("--timeout", type=float, help="seconds per attempt (default 60; export and signal mode 2.5x)")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY // 2**20, help="RLIMIT_AS per command")
    parser.add_argument("--findings", type=Path, help="save failing attempts (inputs, output, repro.sh) here")
    parser.add_argument("--summary", type=Path, help="also write the JSON summary to this file")
    parser.add_argument("--replay", type=int, metavar="INDEX", help="run only attempt INDEX of --seed, verbosely")
    parser.add_argument("--keep", action="store_true", help="with --replay: keep the sandbox and print its path")
    parser.add_argument("--coverage", action="store_true", help="coverage-guided mode with atheris (extra 'fuzz')")
    parser.add_argument("--quiet", action="store_true", help="no line per mishandled attempt")
    return parser


def replay(args) -> int:
    attempt = signal_attempt(args.seed, args.replay) if args.signals else make_attempt(args.seed, args.replay)
    workdir = Path(tempfile.mkdtemp(prefix="graphkit-fuzz-replay-"))
    result = run_attempt(attempt, ForkRunner(args.memory_mb * 2**20), workdir, keep=args.keep)
    print(json.dumps(attempt.describe(), indent=2))
    print(f"exit code {result.outcome.returncode} in {result.outcome.seconds:.2f} s")
    print("--- stdout\n" + result.outcome.stdout[-4000:] + "--- stderr\n" + result.outcome.stderr[-4000:])
    for violation in result.violations:
        print(f"VIOLATION {violation.kind}: {violation.detail}")
    if args.keep:
        print(f"sandbox kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.findings and not result.clean:
        print(f"saved {save_finding(result, args.findings)}")
    print("clean" if result.clean else f"mishandled; reproducer: {reproducer(attempt)}")
    return 0 if result.clean else 1


def _interrupt(number, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: running commands are killed
    if args.replay is not None:
        return replay(args)
    if args.coverage:
        from fuzz.coverage import run_coverage

        return run_coverage(args)
    commands = [c.strip() for c in args.commands.split(",")] if args.commands else None
    unknown = [c for c in commands or [] if c not in COMMANDS]
    if unknown:
        print(f"fuzz: error: unknown command(s) {unknown}", file=sys.stderr)
        return 2

    def timed(attempt):
        if args.timeout:
            attempt.timeout = args.timeout * (2.5 if attempt.command == "export" or attempt.signal else 1)
        return attempt

    attempts = [
        functools.partial(lambda i: timed(make_attempt(args.seed, i, commands)), i)
        for i in range(args.start, args.start + args.attempts)
    ]
    signals = [functools.partial(lambda i: timed(signal_attempt(args.seed, i)), i) for i in range(args.signals)]
    step = max(1, len(attempts) // max(1, len(signals)))
    for count, item in enumerate(signals):  # spread out, so that a time budget still reaches some
        attempts.insert(min(len(attempts), count * (step + 1)), item)
    summary = run_campaign(
        attempts,
        seed=args.seed,
        jobs=args.jobs,
        findings=args.findings,
        time_budget=args.time_budget,
        subprocess_every=args.subprocess_every,
        memory=args.memory_mb * 2**20,
        on_result=None if args.quiet else print_result,
    ).to_dict()
    text = json.dumps(summary, indent=2)
    print(text)
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.summary, text + "\n")
    return 0 if summary["mishandled"] == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("fuzz: interrupted", file=sys.stderr)
        sys.exit(130)
