"""``graphkit cache ls|clear``: what graphkit keeps in the user's cache folder, and removing it."""

from __future__ import annotations

from graphkit.util.console import format_table, print_json
from graphkit.util.errors import printable
from graphkit.util.user_cache import cache_root, list_entries, remove_entries

NAME = "cache"
EXAMPLES = """\
graphkit cache ls --json
graphkit cache clear
"""
EXIT_CODES = ""  # never 1
DESCRIPTION = """The cache folder is $GRAPHKIT_CACHE when set, else $XDG_CACHE_HOME/graphkit, else
~/.cache/graphkit. 'ls' lists its entries with their sizes; 'clear' removes every entry, or only
the paths given (each must be an entry inside the cache folder), and prints what it removed.
Only what graphkit wrote is listed or removed: a folder without graphkit's CACHEDIR.TAG that holds
other things is refused, and items graphkit did not write are left alone (and counted)."""


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _print_foreign(foreign: list[str]) -> None:
    if foreign:
        shown = ", ".join(printable(p) for p in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        print(f"left alone: {len(foreign)} item(s) graphkit did not write ({shown})")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    ls = sub.add_parser("ls", help="list cache entries (kind, name, size, path)")
    ls.add_argument("--json", action="store_true", help="print the cache root and entries as JSON")
    clear = sub.add_parser("clear", help="remove cache entries (all, or the PATHs given) and print them")
    clear.add_argument("paths", nargs="*", metavar="PATH", help="entries to remove (default: all)")
    clear.add_argument("--json", action="store_true", help="print the removed entries as JSON")


def run(args) -> int:
    root = cache_root()
    if args.cache_command == "ls":
        listing = list_entries()
        entries = listing.entries
        if args.json:
            print_json({"root": str(root), "entries": [vars(e) for e in entries], "left_alone": listing.foreign})
            return 0
        print(f"cache: {printable(str(root))}")
        _print_foreign(listing.foreign)
        if not entries:
            print("(empty)")
            return 0
        rows = [[printable(e.kind), printable(e.name), _human(e.bytes), printable(e.path)] for e in entries]
        print(format_table(["kind", "entry", "size", "path"], rows))
        print(f"total {_human(sum(e.bytes for e in entries))} in {len(entries)} entries")
        return 0
    removed, foreign = remove_entries(args.paths or None)
    if args.json:
        print_json({"root": str(root), "removed": [vars(e) for e in removed], "left_alone": foreign})
        return 0
    _print_foreign(foreign)
    for entry in removed:
        print(f"removed {printable(entry.path)} ({_human(entry.bytes)})")
    print(f"removed {len(removed)} entries, {_human(sum(e.bytes for e in removed))} from {printable(str(root))}")
    return 0
