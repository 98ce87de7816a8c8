"""Command-line shell around the library.

Each subcommand lives in ``graphkit/cli/<name>.py`` and exposes ``NAME``, ``HELP``,
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

COMMAND_MODULES = (
    "passes",
    "apply",
    "golden",
    "validate",
    "diff",
    "localize",
    "atc",
    "perf",
    "infer",
    "eval",
    "export",
    "new_pass",
    "cache",
)


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
    """The argument parser: every command module, or only the module of command ``only``.

    Importing one command module keeps start-up fast (``graphkit diff`` never imports torch).
    """
    parser = argparse.ArgumentParser(
        prog="graphkit",
        description="Transform ONNX graphs with passes that are validated one by one.",
    )
    add_verbosity_flags(parser)
    parser.add_argument("--version", action="version", version=f"graphkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in [only] if only in COMMAND_MODULES else COMMAND_MODULES:
        try:
            module = importlib.import_module(f"graphkit.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"graphkit.cli.{module_name}":
                continue  # command not built yet
            raise
        command = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        add_verbosity_flags(command)
        command.set_defaults(_run=module.run)
    return parser


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
    from graphkit.util.console import configure_logging
    from graphkit.util.errors import GraphkitError, one_line

    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)  # imports the command's module (torch, onnx...): interruptible too
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):  # no command, or a command group without its subcommand
        where = f"graphkit {args.command}" if getattr(args, "command", None) else "graphkit"
        print(f"graphkit: error: no command given (see '{where} --help')", file=sys.stderr)
        return 2
    try:
        configure_logging(verbosity(args))
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
