"""``--dim NAME=N``: the one spelling of a symbolic dim's size on every command.

Not a command itself (``graphkit.cli.main.COMMANDS`` does not list it). ``NAME`` is a dim's name
(``seq``), ``<input>:<axis>`` or ``batch``; items repeat (``--dim seq=32 --dim batch=1``) or
comma-separate (``--dim h=64,w=64``). The older spelling ``--dims`` (localize) is kept as an
alias for one release.
"""

from __future__ import annotations

import argparse

from graphkit.util.errors import InputError


def add_dim_argument(parser: argparse.ArgumentParser, help_text: str, aliases: tuple[str, ...] = ()) -> None:
    """Add ``--dim`` (and its old ``aliases``) collecting NAME=N items into ``args.dim``."""
    parser.add_argument("--dim", *aliases, dest="dim", action="append", default=[], metavar="NAME=N", help=help_text)


def parse_dim_items(items: list[str] | None) -> dict[str, int]:
    """``["batch=1", "h=64,w=64"]`` -> ``{"batch": 1, "h": 64, "w": 64}``; a bad item is one InputError line."""
    dims: dict[str, int] = {}
    for item in items or ():
        for part in filter(None, item.split(",")):
            name, sep, size = part.partition("=")
            if not sep or not name.strip() or not size.strip().isdigit() or int(size) < 1:
                raise InputError(f"--dim: expected NAME=N with an integer N >= 1, got '{part}'")
            dims[name.strip()] = int(size)
    return dims
