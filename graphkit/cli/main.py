"""Command-line shell around the library.

Each subcommand lives in ``graphkit/cli/<name>.py`` and exposes ``NAME``, ``EXAMPLES``, ``EXIT_CODES``,
``add_arguments(parser)`` and ``run(args) -> int``. The CLI owns no defaults: every flag maps
onto one library argument, and ``None`` means "the library's default".

A :class:`~graphkit.util.errors.GraphkitError` becomes one line on stderr and exit code 2 (its
``exit_code``); SIGINT/SIGTERM exit 130/143 without a traceback (:mod:`graphkit.util.signals`).

``-v``/``-q`` are accepted before or after the command name on every command: they set the
level of the ``graphkit`` loggers once (:func:`graphkit.util.console.configure_logging`);
messages go to stderr, so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import signal
import sys

from graphkit import __version__
from graphkit.util.signals import (
    SIGNALS,
    Terminated,
    exit_code_of,
    handle_signals,
    received,
)  # light: imported before anything else

# Everything else is imported once the signal handlers are in place (see main).

# onnxruntime (1.32) writes a telemetry device id under ~/.cache/Microsoft on its first session;
# graphkit writes nothing outside the run folder and its own cache, so the CLI opts out (before
# onnxruntime is imported; a user's explicit ORT_DISABLE_TELEMETRY=0 is kept). Ray's workers
# inherit it.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

# Every command, with its one-line help: the top-level --help, --version and completion read
# this table, so they import no command module (start-up under 0.5 s, benchmarks/startup.py).
# The command ``NAME`` lives in ``graphkit/cli/<NAME with - as _>.py``.
COMMANDS = {
    "passes": "list registered passes, or show one pass's documentation and options",
    "apply": "run a pipeline or passes on a model: golden, passes validated one by one, output model, report",
    "inspect": "describe a model: opset, inputs/outputs with symbolic dims, op counts, parameters, MACs",
    "golden": "record golden inputs/outputs for a model (make) or describe a golden set (show)",
    "validate": "run MODEL on a golden set's inputs (onnxruntime, optimized by default) and compare outputs",
    "diff": "show what changed between two ONNX models (nodes, initializers, I/O, opsets, op counts)",
    "localize": "find the first tensor (in topological order) where model B diverges from model A",
    "precision": "emulate ATC's fp16 on the CPU: output errors, the nodes responsible, the fp32 keep-list",
    "atc": "ATC pre-check, ATC command lines per batch size / dynamic batch, run ATC if on PATH",
    "perf": "pure-inference throughput and latency per batch size (table, JSON, PNG plot)",
    "infer": "file-based inference with ais_bench's flags (--model M --input DIR[,DIR] --output OUT ...)",
    "eval": "VOC segmentation accuracy (mIoU with and without dense CRF) of an ONNX model",
    "export": "export the 1-stage-wseg model (checkpoint or seeded random weights) to ONNX",
    "new-pass": "write a new rule-based pass file and its unit test (both pass as written)",
    "cache": "list or clear graphkit's cache (golden sets) in the user's cache folder",
    "completion": "print a shell completion script for bash, zsh or fish",
}
COMMAND_MODULES = tuple(name.replace("-", "_") for name in COMMANDS)

# The exit codes every command shares; a command's EXIT_CODES adds its own meaning of 1.
COMMON_EXIT_CODES = "2 bad input (one 'graphkit: error:' line), 130/143 interrupted by SIGINT/SIGTERM"


def add_verbosity_flags(parser: argparse.ArgumentParser) -> None:
    """Add the global ``-v``/``-q`` flags to ``parser`` and to its sub-commands' parsers.

    Their default is SUPPRESS so that a command's parser does not reset a flag given before
    the command name.
    """
    for action in parser._actions:  # argparse keeps sub-parsers only there
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                add_verbosity_flags(sub)
    group = parser.add_argument_group("output")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="also print debug messages on stderr (a failed pass's traceback, every onnxruntime forward)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print only warnings and errors on stderr (no progress messages)",
    )


def verbosity(args: argparse.Namespace) -> int:
    """-1 with -q, 0 by default, 1 with -v; both flags at once is a GraphkitError."""
    from graphkit.util.errors import GraphkitError

    verbose, quiet = getattr(args, "verbose", 0), getattr(args, "quiet", False)
    if verbose and quiet:
        raise GraphkitError("-v/--verbose and -q/--quiet: give one of them, not both")
    return -1 if quiet else min(verbose, 1)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every command with its full flags when ``only`` is None and
    ``load_all``, else only command ``only``'s module (the others as bare names with their help).

    Importing one command module keeps start-up fast (``graphkit diff`` never imports torch;
    ``graphkit --version`` and ``--help`` import none).
    """
    return _parser(loaded=[only] if only in COMMANDS else [])


def build_full_parser() -> argparse.ArgumentParser:
    """The parser with every command's flags (shell completion, documentation checks)."""
    return _parser(loaded=list(COMMANDS))


def _parser(loaded: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphkit",
        description="Transform ONNX graphs with passes that are validated one by one.",
        epilog="Example:\n  graphkit apply model.onnx model.opt.onnx --preset generic\n\n"
        f"Exit codes: 0 ok, 1 a failed check, {COMMON_EXIT_CODES}.\n"
        "Run 'graphkit COMMAND --help' for a command's flags.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"graphkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        if name not in loaded:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        module = importlib.import_module(f"graphkit.cli.{name.replace('-', '_')}")
        command = sub.add_parser(
            name,
            help=help_text,
            description=getattr(module, "DESCRIPTION", help_text),
            epilog=command_epilog(module),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    add_verbosity_flags(parser)
    return parser


def command_epilog(module) -> str:
    """The ``--help`` epilog of a command module: its ``EXAMPLES`` and its exit codes."""
    examples = "\n".join(f"  {line}" for line in module.EXAMPLES.strip().splitlines())
    codes = ", ".join(code for code in ("0 ok", module.EXIT_CODES, COMMON_EXIT_CODES) if code)
    return f"Examples:\n{examples}\n\nExit codes: {codes}."


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``graphkit`` console script; returns the exit code.

    SIGINT and SIGTERM, at any moment (start-up imports included), end the command without a
    traceback and without temporary files, with exit code 130 or 143.
    """
    with handle_signals():
        try:
            try:
                return _main(sys.argv[1:] if argv is None else argv)
            finally:
                files = sys.modules.get("graphkit.util.files")  # not imported: nothing was written
                if files is not None:
                    files.remove_temporaries()
        except (KeyboardInterrupt, Terminated) as interrupt:
            print(f"graphkit: {'terminated' if isinstance(interrupt, Terminated) else 'interrupted'}", file=sys.stderr)
            return exit_code_of(interrupt)
        except Exception:
            signum = received()
            if signum is None:
                raise
            # The signal hit code that turned it into its own error (onnxruntime's extension init
            # raises "ImportError: initialization failed"): it is still the interrupt.
            print(f"graphkit: {'terminated' if signum == signal.SIGTERM else 'interrupted'}", file=sys.stderr)
            return 128 + signum


def _main(argv: list[str]) -> int:
    from graphkit.util.errors import GraphkitError, one_line

    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(command)  # imports the command's module (torch, onnx...): interruptible too
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):  # no command, or a command group without its subcommand
            where = f"graphkit {args.command}" if getattr(args, "command", None) else "graphkit"
            raise GraphkitError(f"no command given (choose from {', '.join(COMMANDS)}; see '{where} --help')")
        from graphkit.util.console import allow_progress, configure_logging  # tqdm: not for --version/--help

        configure_logging(verbosity(args))
        if getattr(args, "json", False):  # stdout is for the JSON; stderr carries no bar either
            allow_progress(False)
        return int(args._run(args) or 0)
    except GraphkitError as exc:
        print(f"graphkit: error: {one_line(exc, 2000)}", file=sys.stderr)  # ANSI and control characters stripped
        return exc.exit_code
    except MemoryError as exc:  # past the up-front size checks (a model's own working set): one line
        detail = f": {one_line(exc, 300)}" if str(exc) else ""
        print(f"graphkit: error: out of memory{detail}; give smaller dims, batch sizes or inputs", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `graphkit diff A B | head`: the reader left, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def console_main() -> int:
    """The ``graphkit`` console script and ``python -m graphkit``: :func:`main`, with SIGINT and
    SIGTERM exiting 130/143 at once (output flushed) outside :func:`main`'s own handlers too.

    From here until main installs its handlers an immediate exit is in place (main restores it
    on return). After main, the atexit functions run with it still in place, and the process
    exits with main's code without the interpreter's finalization: that would reset the handlers
    to the default (death by the signal) while torch and friends tear down for seconds. Every
    file graphkit writes is complete (atomic renames) by then.
    """
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _exit_at_once)  # main's handle_signals restores this one on exit
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _exit_at_once(number: int, frame) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(128 + number)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
