"""``graphkit localize --html``: the path from the inputs to the first divergent node, drawn.

The page draws B's nodes that feed the first divergent node (its ancestors, nearest first, at
most :data:`MAX_PATH_NODES`), each coloured by its comparison with A (within tolerance,
diverges, not compared), every edge labelled with the max abs error of its tensor, and a table
of every compared tensor. Without a divergence it draws the last compared nodes. Same page
frame as the diff page (:mod:`graphkit.diff.page_assets`): self-contained, loads nothing.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import onnx

from graphkit.diff.matching import node_info
from graphkit.diff.page_assets import page_head, page_tail
from graphkit.diff.region_svg import SideGraph, draw_side, layout_available
from graphkit.ir.provenance import provenance_by_index
from graphkit.util.errors import GraphkitError
from graphkit.util.files import write_text_atomic

MAX_PATH_NODES = 60


def _error_text(c) -> str:
    if c.note:
        return c.note
    if c.max_abs is None:
        return f"mismatch {100 * (c.mismatch_fraction or 0):.3g}%"
    return f"err {c.max_abs:.3g}"


def path_nodes(b: onnx.ModelProto, target: int, limit: int = MAX_PATH_NODES) -> list[int]:
    """Indices of ``target`` and its nearest ancestors in B (breadth-first, at most ``limit``), in graph order."""
    producer = {t: i for i, n in enumerate(b.graph.node) for t in n.output if t}
    seen, frontier = {target}, [target]
    while frontier and len(seen) < limit:
        following = []
        for index in frontier:
            for tensor in b.graph.node[index].input:
                source = producer.get(tensor)
                if source is not None and source not in seen and len(seen) < limit:
                    seen.add(source)
                    following.append(source)
        frontier = following
    return sorted(seen)


def render_localize_html(result, b: onnx.ModelProto, title: str = "graphkit localize") -> str:
    """The page for a :class:`~graphkit.check.localize_result.LocalizeResult` of models A and ``b``."""
    nodes = [node_info(n, i) for i, n in enumerate(b.graph.node)]
    by_node = {}
    for c in result.compared:
        by_node.setdefault(c.position, []).append(c)
    first = result.first_divergent
    if first is not None:
        indices = path_nodes(b, first.position)
    else:
        indices = sorted({c.position for c in result.compared[-MAX_PATH_NODES:]})
    indices = [i for i in indices if 0 <= i < len(nodes)]
    kinds = {}
    for index in indices:
        compared = by_node.get(index, [])
        kinds[index] = "plain" if not compared else ("ok" if all(c.passed for c in compared) else "diverges")
    labels = {c.tensor: _error_text(c) for c in result.compared}
    made_by = provenance_by_index(b)
    parts = [*page_head(title), f'<p class="summary" id="summary">{html.escape(result.summary_line())}</p>']
    what = "the nodes that feed the first divergent node" if first else "the last compared nodes"
    parts.append(
        f'<h2 id="path">Path: {html.escape(what)} ({len(indices)} nodes; green within tolerance, '
        f"red diverges, white not compared; edges: max abs error)</h2>"
    )
    svg = None
    if layout_available():
        svg = draw_side(indices, SideGraph.of(b, nodes), kinds, "b", "path", labels)
    if svg is None:
        parts.append("<p>(install grandalf to draw the path: pip install graphkit-onnx[diff])</p>")
    else:
        parts += ['<div class="sides" style="grid-template-columns: minmax(0, 1fr)"><div class="side">', svg]
        parts.append("</div></div>")
    node_data = {}
    for index in indices:
        node = nodes[index]
        node_data[f"b{index}"] = {
            "side": "B",
            "name": node.name,
            "op": node.qualified_op,
            "index": index,
            "kind": kinds[index],
            "made_by": made_by[index].label if index in made_by else "",
            "changes": [
                f"{c.tensor}: {_error_text(c)}, {'ok' if c.passed else 'DIVERGES'}" for c in by_node.get(index, [])
            ],
            "attributes": node.attributes,
            "inputs": list(node.inputs),
            "outputs": list(node.outputs),
            "initializers": [],
        }
    rows = "".join(
        f'<tr class="{"added" if c.passed else "removed"}"><td class="mono">{c.position}</td>'
        f'<td class="mono">{html.escape(c.tensor)}</td><td class="mono">{html.escape(c.op_type)}</td>'
        f'<td class="mono">{html.escape(_error_text(c))}</td><td>{"ok" if c.passed else "DIVERGES"}</td></tr>'
        for c in result.compared
    )
    parts.append(f'<h2 id="compared">Compared tensors ({len(result.compared)})</h2>')
    parts.append(
        '<div class="scroll"><table><tr><th>#</th><th>tensor</th><th>op</th><th>error</th><th>result</th></tr>'
        f"{rows}</table></div>"
    )
    parts += page_tail(node_data)
    return "\n".join(parts)


def write_localize_html(result, b: onnx.ModelProto, path: str | os.PathLike, title: str = "graphkit localize") -> Path:
    """Render the page and write it atomically to ``path``."""
    path = Path(path)
    try:
        return write_text_atomic(path, render_localize_html(result, b, title))
    except OSError as exc:
        raise GraphkitError(f"{path}: cannot write HTML ({exc.strerror or exc})") from exc
