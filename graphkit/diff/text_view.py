"""The terminal view of a model diff (``graphkit diff`` without ``--json``): :func:`render_text`."""

from __future__ import annotations

import os
import sys

from graphkit.diff.formatting import or_dash, short
from graphkit.diff.records import ModelDiff, NodeChange, NodeInfo
from graphkit.util.errors import printable


def render_text(diff: ModelDiff, color: bool = False) -> str:
    """``diff`` as a human-readable report; ANSI colors when ``color``."""
    return TextReport(diff, color).render()


def use_color(stream=None) -> bool:
    """ANSI colors only on a terminal and when NO_COLOR is unset."""
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


_COLORS = {"+": "\033[32m", "-": "\033[31m", "~": "\033[33m", "h": "\033[1m"}
_RESET = "\033[0m"


class TextReport:
    """A :class:`~graphkit.diff.records.ModelDiff` as text: one section per kind of change."""

    def __init__(self, diff: ModelDiff, color: bool):
        self.diff = diff
        self.color = color
        self.lines: list[str] = []

    def paint(self, kind: str, text: str) -> str:
        text = printable(text)  # names from the files never reach the terminal as control codes
        return f"{_COLORS[kind]}{text}{_RESET}" if self.color else text

    def head(self, text: str) -> None:
        self.lines.append(self.paint("h", text))

    def item(self, kind: str, text: str) -> None:
        self.lines.append(self.paint(kind, f"  {kind} {text}"))

    def render(self) -> str:
        d = self.diff
        self.head(f"summary: {d.summary_line()}")
        if d.ir_version or d.opsets:
            self.head("model:")
            if d.ir_version:
                self.item("~", f"ir_version {d.ir_version.before} -> {d.ir_version.after}")
            for domain, change in d.opsets.items():
                self.item("~", f"opset {domain} {or_dash(change.before)} -> {or_dash(change.after)}")
        for title, io in (("inputs", d.inputs), ("outputs", d.outputs)):
            if io.is_empty():
                continue
            self.head(f"{title}:")
            for v in io.removed:
                self.item("-", f"{v.name} {v.describe()}")
            for v in io.added:
                self.item("+", f"{v.name} {v.describe()}")
            for c in io.changed:
                self.item("~", f"{c.name} {c.before.describe()} -> {c.after.describe()}")
        if d.nodes_removed or d.nodes_added or d.nodes_changed:
            self.head("nodes:")
            for n in d.nodes_removed:
                self.item("-", f"{n.label} {_io_text(n)}")
            for n in d.nodes_added:
                self.item("+", f"{n.label}{_attrs_text(n)} {_io_text(n)}{d.made_by_text(n.index)}")
            for c in d.nodes_changed:
                self.item(
                    "~",
                    f"{c.after.label} [matched by {c.matched_by}]: {_changes_text(c)}{d.made_by_text(c.after.index)}",
                )
        if d.tensors_renamed:
            self.head("tensors renamed:")
            for ta, tb in d.tensors_renamed.items():
                self.item("~", f"{ta} -> {tb}")
        if d.initializers_removed or d.initializers_added or d.initializers_changed or d.initializers_renamed:
            self.head("initializers:")
            for i in d.initializers_removed:
                self.item("-", f"{i.name} {i.describe()}")
            for i in d.initializers_added:
                self.item("+", f"{i.name} {i.describe()}")
            for c in d.initializers_changed:
                name = c.after.name if c.before.name == c.after.name else f"{c.before.name} -> {c.after.name}"
                text = f"{name} {c.before.describe()} -> {c.after.describe()} ({', '.join(c.fields)})"
                if c.max_abs_change is not None:
                    text += f" max abs change {c.max_abs_change:.6g}"
                self.item("~", text)
            for ta, tb in d.initializers_renamed.items():
                self.item("~", f"{ta} -> {tb} (same values)")
        delta = d.op_count_delta()
        if delta:
            self.head("op counts (changed only):")
            rows = [(op, b, a, f"{a - b:+d}") for op, (b, a) in sorted(delta.items())]
            width = max(len(r[0]) for r in rows)
            self.lines.append(f"  {'op'.ljust(width)}  before  after  delta")
            for op, b, a, change in rows:
                kind = "+" if a > b else "-"
                self.lines.append(self.paint(kind, f"  {op.ljust(width)}  {b:>6}  {a:>5}  {change:>5}"))
        return "\n".join(self.lines)


def _io_text(n: NodeInfo) -> str:
    return f"({', '.join(n.inputs)}) -> ({', '.join(n.outputs)})"


def _attrs_text(n: NodeInfo) -> str:
    return (" {" + ", ".join(f"{k}={short(v)}" for k, v in n.attributes.items()) + "}") if n.attributes else ""


def _changes_text(c: NodeChange) -> str:
    parts = []
    for key, value in c.changes.items():
        if key == "attributes":
            parts += [f"{k} {short(or_dash(v.before))} -> {short(or_dash(v.after))}" for k, v in value.items()]
        elif key in ("inputs", "outputs"):
            parts.append(f"{key} ({', '.join(value.before)}) -> ({', '.join(value.after)})")
        else:
            parts.append(f"{key} {value.before or '<unnamed>'} -> {value.after or '<unnamed>'}")
    return "; ".join(parts)
