"""``graphkit passes [NAME]``: list registered passes, or show one pass's doc and options."""

from __future__ import annotations

import dataclasses
import inspect
import typing

from graphkit.transform.registry import all_passes, get_pass, load_pass_dir, origin_of
from graphkit.util.console import format_table, print_json
from graphkit.util.typed_config import type_name

NAME = "passes"
EXAMPLES = """\
graphkit passes
graphkit passes fold-shapes --json
graphkit passes --presets
"""
EXIT_CODES = ""  # never 1


def add_arguments(parser):
    parser.add_argument("name", nargs="?", help="a pass name: show its docstring, options and contract")
    parser.add_argument(
        "--passes-dir", action="append", default=[], metavar="DIR", help="also load passes from DIR (repeatable)"
    )
    parser.add_argument(
        "--presets",
        action="store_true",
        help="list the built-in presets (for 'graphkit apply MODEL --preset') and their passes",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def describe(cls) -> dict:
    """Everything a user needs to know about one pass class."""
    hints = typing.get_type_hints(cls.Options)
    options = [
        {
            "name": f.name,
            "type": type_name(hints[f.name]),
            "default": None if f.default is dataclasses.MISSING else f.default,
            "doc": f.metadata.get("doc", ""),
        }
        for f in dataclasses.fields(cls.Options)
    ]
    for entry, f in zip(options, dataclasses.fields(cls.Options)):
        if f.default_factory is not dataclasses.MISSING:
            entry["default"] = f.default_factory()
    return {
        "name": cls.name,
        "summary": cls.summary(),
        "exact": cls.exact,
        "tolerance": {"atol": cls.tolerance.atol, "rtol": cls.tolerance.rtol} if cls.tolerance else None,
        "opset_range": list(cls.opset_range),
        "changes_io": cls.changes_io,
        "changes_opset": cls.changes_opset,
        "options": options,
        "doc": inspect.cleandoc(cls.__doc__ or ""),
        "file": origin_of(cls.name),
    }


def _shown_items(items: list) -> str:
    """Preset items on one line: ``name``, ``name {options}``, ``(a; b) until a fixed point``."""
    shown = []
    for item in items:
        if isinstance(item, str):
            shown.append(item)
        elif "group" in item:
            group = item["group"]
            repeat = (
                f" until a fixed point (at most {group.get('max_iterations', 10)}x)"
                if group.get("until_fixed_point")
                else ""
            )
            shown.append(f"({_shown_items(group['passes'])}){repeat}")
        else:
            shown.append(", ".join(f"{k} {v}" for k, v in item.items()))
    return "; ".join(shown)


def run_presets(args) -> int:
    """Print each preset with its passes (options shown inline)."""
    from graphkit.transform.presets import PRESETS

    if args.json:
        print_json(PRESETS)
        return 0
    rows = [[name, _shown_items(items)] for name, items in PRESETS.items()]
    print(format_table(["preset", "passes (in order)"], rows))
    return 0


def run(args) -> int:
    for directory in args.passes_dir:
        load_pass_dir(directory)
    if args.presets:
        return run_presets(args)
    if args.name:
        info = describe(get_pass(args.name))
        if args.json:
            print_json(info)
            return 0
        low, high = info["opset_range"]
        print(f"{info['name']}: {info['summary']}")
        print(f"exact: {info['exact']}" + (f" (tolerance {info['tolerance']})" if info["tolerance"] else ""))
        print(
            f"opsets: {low}..{high if high < 10**6 else 'any'}; changes graph I/O: {info['changes_io']}; "
            f"changes opset: {info['changes_opset']}"
        )
        print(f"file: {info['file']}\n")
        if info["options"]:
            rows = [[o["name"], o["type"], repr(o["default"]), o["doc"]] for o in info["options"]]
            print(format_table(["option", "type", "default", "doc"], rows) + "\n")
        else:
            print("options: none\n")
        print(info["doc"])
        return 0
    passes = [describe(cls) for cls in all_passes().values()]
    if args.json:
        print_json([{k: p[k] for k in ("name", "summary", "exact", "file")} for p in passes])
        return 0
    print(
        format_table(
            ["pass", "exact", "summary"], [[p["name"], "yes" if p["exact"] else "no", p["summary"]] for p in passes]
        )
    )
    return 0
