"""One self-contained HTML page for a :class:`~graphkit.diff.records.ModelDiff` (no external resources).

The page shows the summary, model-level changes, graph I/O changes, the changed regions of the
graph side by side (A on the left, B on the right), initializer changes and the op-count table.
A changed region is a connected group of removed, added and changed nodes; each side lists its
nodes in graph order, interleaved with a few unchanged producers and consumers greyed out as
context.
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from pathlib import Path

import onnx

from graphkit.diff.matching import node_info
from graphkit.diff.records import ModelDiff, NodeInfo
from graphkit.util.errors import GraphkitError
from graphkit.util.files import write_text_atomic

MAX_REGIONS = 500  # beyond this the page lists the count only
CONTEXT = 3  # unchanged neighbours shown on each side of a region

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
code, td.mono { font-family: ui-monospace, monospace; font-size: 12px; }
table { border-collapse: collapse; margin: .4em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.added { background: #e6ffec; } .removed { background: #ffebe9; } .changed { background: #fff8c5; }
.context { color: #888; }
.region { margin: 1em 0; padding: .5em; border: 1px solid #ccc; border-radius: 4px; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.sides table { width: 100%; }
.summary { font-weight: bold; }
"""


def render_html(diff: ModelDiff, a: onnx.ModelProto, b: onnx.ModelProto, title: str = "graphkit diff") -> str:
    """The page as a string; ``a`` and ``b`` are the models ``diff`` was computed from."""
    nodes_a = [node_info(n, i) for i, n in enumerate(a.graph.node)]
    nodes_b = [node_info(n, i) for i, n in enumerate(b.graph.node)]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="summary" id="summary">{_e(diff.summary_line())}</p>',
    ]
    parts += _model_section(diff)
    parts += _io_section(diff)
    parts += _regions_section(diff, nodes_a, nodes_b)
    parts += _initializer_section(diff)
    parts += _op_count_section(diff)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(
    diff: ModelDiff, a: onnx.ModelProto, b: onnx.ModelProto, path: str | os.PathLike, title: str | None = None
) -> Path:
    """Render the page and write it atomically to ``path`` (temp file + rename)."""
    path = Path(path)
    text = render_html(diff, a, b, title=title or "graphkit diff")
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise GraphkitError(f"{path}: cannot write HTML ({exc.strerror or exc})") from exc
    return path


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers, rows, row_classes=None) -> list[str]:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f'<td class="mono">{_e(c)}</td>' for c in row) + "</tr>")
    out.append("</table>")
    return out


def _model_section(diff: ModelDiff) -> list[str]:
    rows = []
    if diff.ir_version:
        rows.append(("ir_version", diff.ir_version.before, diff.ir_version.after))
    for domain, change in diff.opsets.items():
        rows.append((f"opset {domain}", change.before, change.after))
    if not rows:
        return []
    return ['<h2 id="model">Model</h2>', *_table(("field", "A", "B"), rows, ["changed"] * len(rows))]


def _io_section(diff: ModelDiff) -> list[str]:
    rows, classes = [], []
    for kind, io in (("input", diff.inputs), ("output", diff.outputs)):
        for v in io.removed:
            rows.append((kind, v.name, v.describe(), ""))
            classes.append("removed")
        for v in io.added:
            rows.append((kind, v.name, "", v.describe()))
            classes.append("added")
        for c in io.changed:
            rows.append((kind, c.name, c.before.describe(), c.after.describe()))
            classes.append("changed")
    if not rows:
        return []
    return ['<h2 id="io">Graph inputs and outputs</h2>', *_table(("kind", "name", "A", "B"), rows, classes)]


class _UnionFind:
    def __init__(self):
        self.parent = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, x, y):
        self.parent[self.find(x)] = self.find(y)


def changed_regions(
    diff: ModelDiff, nodes_a: list[NodeInfo], nodes_b: list[NodeInfo]
) -> list[tuple[list[int], list[int]]]:
    """Connected groups of touched nodes: (A node indices, B node indices), in graph order."""
    uf = _UnionFind()
    kind_a = {n.index: "removed" for n in diff.nodes_removed}
    kind_b = {n.index: "added" for n in diff.nodes_added}
    for c in diff.nodes_changed:
        kind_a[c.before.index] = kind_b[c.after.index] = "changed"
        uf.union(("a", c.before.index), ("b", c.after.index))
    touching = defaultdict(set)  # B-side tensor name -> touched nodes (either side) reading/writing it
    graph_io = set()
    for side, kinds, nodes, rename in (("a", kind_a, nodes_a, diff.tensor_map), ("b", kind_b, nodes_b, None)):
        for index in kinds:
            uf.find((side, index))
            node = nodes[index]
            for tensor in (*node.inputs, *node.outputs):
                if tensor:
                    touching[rename.get(tensor, "a:" + tensor) if rename is not None else tensor].add((side, index))
    for value in (*diff.inputs.added, *diff.inputs.removed):
        graph_io.add(value.name)
    for tensor, members in touching.items():
        if tensor in graph_io:
            continue
        members = sorted(members)
        for other in members[1:]:
            uf.union(members[0], other)
    groups = defaultdict(lambda: ([], []))
    for key in list(uf.parent):
        side, index = key
        groups[uf.find(key)][0 if side == "a" else 1].append(index)
    regions = [(sorted(ga), sorted(gb)) for ga, gb in groups.values()]
    regions.sort(key=lambda r: (r[1][0] if r[1] else len(nodes_b), r[0][0] if r[0] else 0))
    return regions


def _context(indices: list[int], nodes: list[NodeInfo]) -> tuple[list[int], list[int]]:
    """Unchanged producers of the region's inputs and consumers of its outputs (a few each)."""
    members = set(indices)
    produced = {t for i in indices for t in nodes[i].outputs}
    read = {t for i in indices for t in nodes[i].inputs}
    before = [n.index for n in nodes if n.index not in members and read & set(n.outputs)]
    after = [n.index for n in nodes if n.index not in members and produced & set(n.inputs)]
    # nearest to the region: the latest producers, the earliest consumers
    return before[-CONTEXT:], after[:CONTEXT]


def _side(
    indices: list[int], nodes: list[NodeInfo], kinds: dict[int, str], label: str, made_by: dict | None = None
) -> list[str]:
    """One side of a region; a "made by" column when ``made_by`` (node index -> Provenance) has entries."""
    before, after = _context(indices, nodes)
    rows, classes = [], []
    for index in sorted({*before, *indices, *after}):
        node = nodes[index]
        attrs = ", ".join(f"{k}={v if len(v) <= 60 else v[:57] + '...'}" for k, v in node.attributes.items())
        rows.append(
            (index, node.name or "<unnamed>", node.qualified_op, attrs, ", ".join(node.inputs), ", ".join(node.outputs))
        )
        if made_by:
            rows[-1] += (made_by[index].label if index in made_by else "",)
        classes.append(kinds.get(index, "context") if index in indices else "context")
    out = [f'<div class="side"><div>{_e(label)}</div>']
    headers = ("#", "name", "op", "attributes", "inputs", "outputs", *(("made by",) if made_by else ()))
    out += _table(headers, rows, classes) if rows else ["<p>(nothing)</p>"]
    out.append("</div>")
    return out


def _regions_section(diff: ModelDiff, nodes_a: list[NodeInfo], nodes_b: list[NodeInfo]) -> list[str]:
    regions = changed_regions(diff, nodes_a, nodes_b)
    if not regions:
        return []
    kind_a = {n.index: "removed" for n in diff.nodes_removed}
    kind_b = {n.index: "added" for n in diff.nodes_added}
    for c in diff.nodes_changed:
        kind_a[c.before.index] = kind_b[c.after.index] = "changed"
    out = [f'<h2 id="regions">Changed regions ({len(regions)})</h2>']
    if diff.tensors_renamed:
        out.append(
            "<p>Tensors renamed: " + _e(", ".join(f"{a} -> {b}" for a, b in diff.tensors_renamed.items())) + "</p>"
        )
    for number, (ia, ib) in enumerate(regions[:MAX_REGIONS], start=1):
        ops = ", ".join(sorted({nodes_a[i].qualified_op for i in ia} | {nodes_b[i].qualified_op for i in ib}))
        out.append(
            f'<section class="region" id="region-{number}"><h3>Region {number}: {_e(ops)}</h3><div class="sides">'
        )
        out += _side(ia, nodes_a, kind_a, f"A ({len(ia)} nodes)")
        out += _side(ib, nodes_b, kind_b, f"B ({len(ib)} nodes)", diff.made_by)
        out.append("</div></section>")
    if len(regions) > MAX_REGIONS:
        out.append(f"<p>{len(regions) - MAX_REGIONS} more regions not shown (see --json).</p>")
    return out


def _initializer_section(diff: ModelDiff) -> list[str]:
    rows, classes = [], []
    for i in diff.initializers_removed:
        rows.append((i.name, i.describe(), "", ""))
        classes.append("removed")
    for i in diff.initializers_added:
        rows.append((i.name, "", i.describe(), ""))
        classes.append("added")
    for c in diff.initializers_changed:
        name = c.after.name if c.before.name == c.after.name else f"{c.before.name} -> {c.after.name}"
        note = ", ".join(c.fields) + ("" if c.max_abs_change is None else f"; max abs change {c.max_abs_change:.6g}")
        rows.append((name, c.before.describe(), c.after.describe(), note))
        classes.append("changed")
    for ta, tb in diff.initializers_renamed.items():
        rows.append((f"{ta} -> {tb}", "", "", "renamed, same values"))
        classes.append("changed")
    if not rows:
        return []
    return ['<h2 id="initializers">Initializers</h2>', *_table(("name", "A", "B", "change"), rows, classes)]


def _op_count_section(diff: ModelDiff) -> list[str]:
    rows, classes = [], []
    for op, (before, after) in sorted(diff.op_counts.items()):
        rows.append((op, before, after, f"{after - before:+d}" if after != before else ""))
        classes.append("" if after == before else ("added" if after > before else "removed"))
    return ['<h2 id="op-counts">Op counts</h2>', *_table(("op", "A", "B", "delta"), rows, classes)]
