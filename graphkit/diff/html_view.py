"""One self-contained HTML page for a :class:`~graphkit.diff.records.ModelDiff` (no external resources).

The page shows the summary with a bar chart of the op-count deltas, model-level changes, graph
I/O changes, the changed regions of the graph side by side (A on the left, B on the right),
initializer changes and the op-count table. A changed region is a connected group of removed,
added and changed nodes; each side is drawn as a small layered graph
(:mod:`graphkit.diff.region_svg`) whose nodes show their attributes, tensors, provenance and
initializer changes when clicked. Regions are collapsible and filtered by pass and op type;
single removed nodes are grouped into one line per op ("30 Add removed"). Without the optional
layout library (grandalf), each side is a table of its nodes with a few unchanged producers and
consumers greyed out as context. A Content-Security-Policy forbids every request, so the page
works offline and cannot load anything.
"""

from __future__ import annotations

import html
import logging
import os
from collections import defaultdict
from pathlib import Path

import onnx

from graphkit.diff.matching import node_info
from graphkit.diff.page_assets import op_delta_chart, page_head, page_tail
from graphkit.diff.records import ModelDiff, NodeInfo
from graphkit.diff.region_svg import SideGraph, draw_side, layout_available, shape_label
from graphkit.util.errors import GraphkitError
from graphkit.util.files import write_text_atomic

logger = logging.getLogger(__name__)

MAX_REGIONS = 500  # drawn regions beyond this are counted only (single removed nodes are always listed)
OPEN_REGIONS = 40  # the first regions are expanded, the rest start collapsed
CONTEXT = 3  # unchanged neighbours shown on each side of a region (table fallback)
NO_PASS = "(no record)"


def render_html(diff: ModelDiff, a: onnx.ModelProto, b: onnx.ModelProto, title: str = "graphkit diff") -> str:
    """The page as a string; ``a`` and ``b`` are the models ``diff`` was computed from."""
    nodes_a = [node_info(n, i) for i, n in enumerate(a.graph.node)]
    nodes_b = [node_info(n, i) for i, n in enumerate(b.graph.node)]
    regions = _RegionsView(diff, a, b, nodes_a, nodes_b)
    parts = [
        *page_head(title),
        f'<p class="summary" id="summary">{_e(diff.summary_line())}</p>',
        op_delta_chart(diff.op_count_delta()),
    ]
    parts += _model_section(diff)
    parts += _io_section(diff)
    parts += regions.section()
    parts += _initializer_section(diff)
    parts += _op_count_section(diff)
    parts += page_tail(regions.node_data)
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
    out = ['<div class="scroll"><table><tr>' + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f'<td class="mono">{_e(c)}</td>' for c in row) + "</tr>")
    out.append("</table></div>")
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
    """Connected groups of touched nodes: (A node indices, B node indices), in graph order.

    Touched: removed, added, changed, and matched nodes that read a changed initializer (a
    folded BatchNorm's Conv, whose weights absorbed it).
    """
    uf = _UnionFind()
    kind_a, kind_b = node_kinds(diff, nodes_b)
    for index_a, index_b, _ in diff.node_pairs:
        if kind_b.get(index_b) in ("changed", "weights"):
            uf.union(("a", index_a), ("b", index_b))
    touching = defaultdict(set)  # B-side tensor name -> touched nodes (either side) reading/writing it
    producing = defaultdict(set)  # B-side tensor name -> touched nodes (either side) writing it
    for side, kinds, nodes, rename in (("a", kind_a, nodes_a, diff.tensor_map), ("b", kind_b, nodes_b, None)):
        for index in kinds:
            uf.find((side, index))
            node = nodes[index]
            for tensor in (*node.inputs, *node.outputs):
                if tensor:
                    key = rename.get(tensor, "a:" + tensor) if rename is not None else tensor
                    touching[key].add((side, index))
                    if tensor in node.outputs:
                        producing[key].add((side, index))
    # reading the same graph input, initializer or Constant does not connect nodes
    wired = {t for n in nodes_b if n.op_type != "Constant" for t in n.outputs}
    wired |= {diff.tensor_map.get(t, "a:" + t) for n in nodes_a if n.op_type != "Constant" for t in n.outputs}
    weights = {("a", i) for i, kind in kind_a.items() if kind == "weights"}
    weights |= {("b", i) for i, kind in kind_b.items() if kind == "weights"}
    for tensor, members in touching.items():
        if tensor not in wired:
            continue
        # nodes that only read new weights join through their producers and consumers, not co-readers
        readers_too = sorted(m for m in members if m not in weights or m in producing[tensor])
        for other in readers_too[1:]:
            uf.union(readers_too[0], other)
        for member in members & weights:
            for producer in producing[tensor]:
                uf.union(member, producer)
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


def node_kinds(diff: ModelDiff, nodes_b: list[NodeInfo]) -> tuple[dict[int, str], dict[int, str]]:
    """Node index -> "removed" | "added" | "changed" | "weights" (matched, reads a changed initializer), per side."""
    kind_a = {n.index: "removed" for n in diff.nodes_removed}
    kind_b = {n.index: "added" for n in diff.nodes_added}
    for c in diff.nodes_changed:
        kind_a[c.before.index] = kind_b[c.after.index] = "changed"
    changed_weights = {c.after.name for c in diff.initializers_changed}
    for index_a, index_b, _ in diff.node_pairs:
        if index_b not in kind_b and changed_weights & set(nodes_b[index_b].inputs):
            kind_a[index_a] = kind_b[index_b] = "weights"
    return kind_a, kind_b


class _RegionsView:
    """The "Changed regions" section and the details of every node it draws (``node_data``)."""

    def __init__(self, diff: ModelDiff, a: onnx.ModelProto, b: onnx.ModelProto, nodes_a, nodes_b):
        self.diff, self.nodes_a, self.nodes_b = diff, nodes_a, nodes_b
        self.kind_a, self.kind_b = node_kinds(diff, nodes_b)
        self.regions = changed_regions(diff, nodes_a, nodes_b)
        self.draw = bool(self.regions) and layout_available()
        if self.regions and not self.draw:
            logger.warning(
                "grandalf is not installed: changed regions shown as tables (pip install graphkit-onnx[diff])"
            )
        self.node_data: dict[str, dict] = {}
        if self.draw:
            self.graph_a, self.graph_b = SideGraph.of(a, nodes_a), SideGraph.of(b, nodes_b)
            self.changes_b = {c.after.index: c for c in diff.nodes_changed}
            self.changes_a = {c.before.index: c for c in diff.nodes_changed}
            self.init_changes = {}
            for c in diff.initializers_changed:
                note = ", ".join(c.fields)
                if c.max_abs_change is not None:
                    note += f"; max abs change {c.max_abs_change:.6g}"
                self.init_changes[c.before.name] = self.init_changes[c.after.name] = f"{c.after.name}: {note}"

    def _passes(self, ib: list[int]) -> list[str]:
        return sorted({self.diff.made_by[i].pass_name for i in ib if i in self.diff.made_by}) or [NO_PASS]

    def _removal_passes(self) -> dict[int, str]:
        """A removed node -> the pass that removed it, where B's nodes next to it (writing or reading
        the tensors it read or wrote, renames followed) name exactly one pass: provenance records the
        nodes a pass made, and a pass that drops a node rewires (and so stamps) its neighbours."""
        touching = defaultdict(set)  # B tensor -> passes of the B nodes that read or write it
        for node in self.nodes_b:
            if node.index in self.diff.made_by:
                for tensor in (*node.inputs, *node.outputs):
                    touching[tensor].add(self.diff.made_by[node.index].pass_name)
        found = {}
        for removed in self.diff.nodes_removed:
            tensors = (*removed.inputs, *removed.outputs)
            passes = set().union(*(touching.get(self.diff.tensor_map.get(t, t), set()) for t in tensors if t))
            if len(passes) == 1:
                found[removed.index] = passes.pop()
        return found

    def section(self) -> list[str]:
        if not self.regions:
            return []
        trivial = defaultdict(list)  # (op, pass) -> [A node index] of regions that are one removed node
        drawn = []
        removed_by = self._removal_passes()
        for ia, ib in self.regions:
            if len(ia) == 1 and not ib:  # one removed node
                trivial[self.nodes_a[ia[0]].qualified_op, removed_by.get(ia[0], NO_PASS)].append(ia[0])
            else:
                drawn.append((ia, ib))
        hidden = max(0, len(drawn) - MAX_REGIONS)
        drawn = drawn[:MAX_REGIONS]
        shown = [*drawn, *(([i], []) for indices in trivial.values() for i in indices)]
        ops = sorted(
            {self.nodes_a[i].qualified_op for ia, _ in shown for i in ia}
            | {self.nodes_b[i].qualified_op for _, ib in shown for i in ib}
        )
        passes = sorted({p for _, ib in drawn for p in self._passes(ib)} | {p for _, p in trivial})
        out = [f'<h2 id="regions">Changed regions ({len(self.regions)})</h2>', '<div class="filters">']
        out.append(_select("filter-pass", "pass", passes) + _select("filter-op", "op type", ops) + "</div>")
        if self.diff.tensors_renamed:
            renames = ", ".join(f"{a} -> {b}" for a, b in self.diff.tensors_renamed.items())
            out.append(
                f"<details><summary>{len(self.diff.tensors_renamed)} tensors renamed</summary><p>{_e(renames)}</p></details>"
            )
        for (op, by), indices in sorted(trivial.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            names = ", ".join(self.nodes_a[i].name or f"#{i}" for i in indices)
            by_text = "" if by == NO_PASS else f" by {by}"
            out.append(
                f'<details class="trivial" data-ops="{_e(op)}" data-passes="{_e(by)}"><summary>'
                f"{len(indices)} {_e(op)} removed{_e(by_text)}</summary><p>{_e(names)}</p></details>"
            )
        for number, (ia, ib) in enumerate(drawn, start=1):
            out += self._region(number, ia, ib)
        if hidden:
            out.append(f"<p>{hidden} more regions not drawn (see --json).</p>")
        return out

    def _region(self, number: int, ia: list[int], ib: list[int]) -> list[str]:
        region_ops = sorted({self.nodes_a[i].qualified_op for i in ia} | {self.nodes_b[i].qualified_op for i in ib})
        passes = self._passes(ib)
        made = "" if passes == [NO_PASS] else f" — made by {', '.join(passes)}"
        opened = " open" if number <= OPEN_REGIONS else ""
        out = [
            f'<details class="region" id="region-{number}" data-ops="{_e("|".join(region_ops))}" '
            f'data-passes="{_e("|".join(passes))}" data-nodes-a="{len(ia)}" data-nodes-b="{len(ib)}"{opened}>'
            f"<summary><h3>Region {number}: {_e(', '.join(region_ops))}</h3> "
            f"({len(ia)} → {len(ib)} nodes{_e(made)})</summary>",
            '<div class="sides">',
        ]
        out += self._side(ia, "a")
        out += self._side(ib, "b")
        out.append("</div></details>")
        return out

    def _side(self, indices: list[int], side: str) -> list[str]:
        nodes, kinds = (self.nodes_a, self.kind_a) if side == "a" else (self.nodes_b, self.kind_b)
        label = f"{side.upper()} ({len(indices)} nodes)"
        svg = None
        if self.draw:
            svg = draw_side(indices, self.graph_a if side == "a" else self.graph_b, kinds, side, label)
        if svg is None:
            return _side(indices, nodes, kinds, label, self.diff.made_by if side == "b" else None)
        for index in indices:
            self.node_data[f"{side}{index}"] = self._details(nodes[index], side, kinds)
        return [f'<div class="side"><div class="label">{_e(label)}</div>', svg, "</div>"]

    def _details(self, node: NodeInfo, side: str, kinds: dict[int, str]) -> dict:
        shapes = (self.graph_a if side == "a" else self.graph_b).shapes
        change = (self.changes_a if side == "a" else self.changes_b).get(node.index)
        made_by = self.diff.made_by.get(node.index) if side == "b" else None
        changes = []
        if change is not None:
            for key, value in change.changes.items():
                if key == "attributes":
                    changes += [f"attribute {k}: {v.before} -> {v.after}" for k, v in value.items()]
                else:
                    changes.append(f"{key}: {value.before} -> {value.after}")
        return {
            "side": side.upper(),
            "name": node.name,
            "op": node.qualified_op,
            "index": node.index,
            "kind": kinds.get(node.index, "changed"),
            "made_by": made_by.label if made_by else "",
            "changes": changes,
            "attributes": node.attributes,
            "inputs": [_tensor_text(t, shapes) for t in node.inputs],
            "outputs": [_tensor_text(t, shapes) for t in node.outputs],
            "initializers": [self.init_changes[t] for t in node.inputs if t in self.init_changes],
        }


def _tensor_text(tensor: str, shapes: dict) -> str:
    if not tensor:
        return "(omitted)"
    shape = shapes.get(tensor)
    return tensor if shape is None else f"{tensor} {shape_label(shape)}"


def _select(element_id: str, what: str, values: list[str]) -> str:
    options = "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
    return f'<label>{_e(what)}: <select id="{element_id}"><option value="">all</option>{options}</select></label> '


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
