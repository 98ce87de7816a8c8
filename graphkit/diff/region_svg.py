"""One side of a changed region drawn as a small graph: a layered (Sugiyama) layout to inline SVG.

:func:`draw_side` lays out the region's nodes (boxes with op type and short name, coloured by
kind: removed, added, changed) and its boundary tensors (ellipses: tensors the region reads from
outside it, and tensors it hands on to the rest of the graph or the graph outputs), with an edge
per tensor labelled with its shape where known. The layout is grandalf's ``SugiyamaLayout``, an
optional dependency (``pip install graphkit-onnx[diff]``): :func:`layout_available` says whether
it is installed, and the page falls back to tables when it is not. Initializers and Constant
outputs are not drawn (they would bury the graph); a node's details list them.
"""

from __future__ import annotations

import html
import importlib.util
from dataclasses import dataclass, field

import onnx

from graphkit.diff.matching import constant_outputs
from graphkit.diff.records import NodeInfo
from graphkit.diff.tensor_shapes import GRAPH_OUTPUTS, tensor_shapes

MAX_DRAWN_NODES = 1000  # a side with more nodes is listed, not drawn (641 nodes lay out in ~4 s)
FONT_PX = 11
CHAR_PX = 6.6  # average glyph width of the 11 px monospace font
BOX_H = 34
TENSOR_H = 22
GAP_X, GAP_Y = 18, 34
MARGIN = 8
NAME_CHARS = 22


def layout_available() -> bool:
    """True when grandalf (the layered layout library) is importable."""
    return importlib.util.find_spec("grandalf") is not None


@dataclass
class _Box:
    key: str  # "n<index>" for a node, "t:<tensor>" for a boundary tensor
    lines: tuple[str, ...]
    css: str
    w: float
    h: float
    title: str = ""
    node_id: str = ""  # the page-wide id of a node ("a12"), for the details panel
    xy: tuple[float, float] = (0.0, 0.0)


@dataclass
class _Edge:
    src: str
    dst: str
    label: str
    points: list[tuple[float, float]] = field(default_factory=list)


class _View:
    """What grandalf reads (w, h) and writes (xy) for a vertex."""

    def __init__(self, w: float, h: float):
        self.w, self.h, self.xy = w, h, (0.0, 0.0)


class _EdgeView:
    def __init__(self):
        self.points: list[tuple[float, float]] = []

    def setpath(self, points):
        self.points = [tuple(p) for p in points]


def short_name(name: str) -> str:
    """The last ``/``-part of a node or tensor name, at most NAME_CHARS characters."""
    tail = name.rstrip("/").rsplit("/", 1)[-1] or name
    return tail if len(tail) <= NAME_CHARS else tail[: NAME_CHARS - 1] + "…"


def _text_width(lines) -> float:
    return max(len(line) for line in lines) * CHAR_PX + 14


def readers_of(nodes: list[NodeInfo]) -> dict[str, set[int]]:
    """Tensor name -> indices of the nodes that read it."""
    readers: dict[str, set[int]] = {}
    for node in nodes:
        for tensor in node.inputs:
            if tensor:
                readers.setdefault(tensor, set()).add(node.index)
    return readers


@dataclass(frozen=True)
class SideGraph:
    """What drawing a region of one model needs: its nodes, the tensors not drawn (initializers,
    Constant outputs), tensor dims (plus ``GRAPH_OUTPUTS``) and the readers of each tensor."""

    nodes: list[NodeInfo]
    constants: set[str]
    shapes: dict
    readers: dict[str, set[int]]

    @classmethod
    def of(cls, model: onnx.ModelProto, nodes: list[NodeInfo]) -> SideGraph:
        constants = {i.name for i in model.graph.initializer} | set(constant_outputs(list(model.graph.node)))
        return cls(nodes, constants, tensor_shapes(model), readers_of(nodes))


def _region_graph(
    indices: list[int], graph: SideGraph, kinds: dict[int, str], side: str, edge_labels: dict[str, str] | None
) -> tuple[dict[str, _Box], list[_Edge]]:
    nodes, constants, shapes, readers = graph.nodes, graph.constants, graph.shapes, graph.readers
    members = [nodes[i] for i in indices]
    member_set = set(indices)
    producer = {t: f"n{n.index}" for n in members for t in n.outputs if t}
    boxes: dict[str, _Box] = {}
    edges: list[_Edge] = []
    for node in members:
        lines = (node.qualified_op, short_name(node.name) if node.name else f"#{node.index}")
        boxes[f"n{node.index}"] = _Box(
            f"n{node.index}",
            lines,
            f"node {kinds.get(node.index, 'changed')}",
            _text_width(lines),
            BOX_H,
            node.label,
            f"{side}{node.index}",
        )

    def label(tensor: str) -> str:
        return edge_labels.get(tensor, "") if edge_labels is not None else shape_label(shapes.get(tensor))

    def tensor_box(tensor: str, css: str) -> str:
        key = f"t:{tensor}"
        if key not in boxes:
            lines = (short_name(tensor),)
            boxes[key] = _Box(key, lines, f"tensor {css}", _text_width(lines), TENSOR_H, tensor)
        return key

    for node in members:
        for tensor in node.inputs:
            if not tensor or tensor in constants:
                continue
            src = producer.get(tensor) or tensor_box(tensor, "boundary-in")
            edges.append(_Edge(src, f"n{node.index}", label(tensor)))
    for tensor, src in producer.items():
        outside = readers.get(tensor, set()) - member_set
        if outside or tensor in shapes.get(GRAPH_OUTPUTS, ()) or not readers.get(tensor):
            edges.append(_Edge(src, tensor_box(tensor, "boundary-out"), label(tensor)))
    return boxes, edges


def shape_label(shape) -> str:
    """``[1,3,32,32]`` for a known shape, '' when unknown."""
    if shape is None:
        return ""
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _layout(boxes: dict[str, _Box], edges: list[_Edge]) -> tuple[float, float]:
    """Place boxes and route edges with grandalf; returns the drawing's (width, height)."""
    from grandalf.graphs import Edge, Vertex, graph_core
    from grandalf.layouts import SugiyamaLayout

    # connected components found here: grandalf's Graph() finds them in quadratic time
    parent = {key: key for key in boxes}

    def find(key):
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for edge in edges:
        parent[find(edge.src)] = find(edge.dst)
    components: dict[str, tuple[list, list]] = {}
    vertices = {}
    for key, box in boxes.items():
        vertices[key] = Vertex(key)
        vertices[key].view = _View(box.w, box.h)
        components.setdefault(find(key), ([], []))[0].append(vertices[key])
    for edge in edges:
        e = Edge(vertices[edge.src], vertices[edge.dst])
        e.view = _EdgeView()
        components[find(edge.src)][1].append((e, edge))
    offset_x = 0.0
    height = 0.0
    for members, component_edges in components.values():
        component = graph_core(members, [e for e, _ in component_edges])
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace, sugiyama.yspace = GAP_X, GAP_Y
        sugiyama.init_all()
        sugiyama.draw()
        left = min(v.view.xy[0] - v.view.w / 2 for v in members)
        top = min(v.view.xy[1] - v.view.h / 2 for v in members)
        shift_x, shift_y = offset_x - left + MARGIN, MARGIN - top
        right = 0.0
        for v in members:
            x, y = v.view.xy
            boxes[v.data].xy = (x + shift_x, y + shift_y)
            right = max(right, x + shift_x + v.view.w / 2)
            height = max(height, y + shift_y + v.view.h / 2)
        for e, edge in component_edges:
            edge.points = [(x + shift_x, y + shift_y) for x, y in e.view.points]
        offset_x = right + GAP_X
    return offset_x + MARGIN, height + MARGIN


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _svg(boxes: dict[str, _Box], edges: list[_Edge], width: float, height: float, label: str) -> str:
    out = [
        f'<svg class="region-graph" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{_e(label)}">'
    ]
    for edge in edges:
        points = edge.points or [boxes[edge.src].xy, boxes[edge.dst].xy]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f'<polyline class="edge" points="{path}"/>')
        if edge.label and len(points) >= 2:
            (x0, y0), (x1, y1) = points[-2], points[-1]
            out.append(
                f'<text class="shape" x="{(x0 + x1) / 2 + 4:.1f}" y="{(y0 + y1) / 2:.1f}">{_e(edge.label)}</text>'
            )
    for box in boxes.values():
        x, y = box.xy[0] - box.w / 2, box.xy[1] - box.h / 2
        attrs = f' data-id="{box.node_id}" tabindex="0"' if box.node_id else ""
        out.append(f'<g class="{box.css}"{attrs}><title>{_e(box.title)}</title>')
        if box.key.startswith("t:"):
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.w:.1f}" height="{box.h}" rx="11"/>')
        else:
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.w:.1f}" height="{box.h}" rx="3"/>')
        for i, line in enumerate(box.lines):
            baseline = y + 15 + i * 13
            weight = ' class="op"' if i == 0 and len(box.lines) == 2 else ""
            out.append(f'<text x="{box.xy[0]:.1f}" y="{baseline:.1f}"{weight}>{_e(line)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def draw_side(
    indices: list[int],
    graph: SideGraph,
    kinds: dict[int, str],
    side: str,
    label: str,
    edge_labels: dict[str, str] | None = None,
) -> str | None:
    """The SVG of one side of a region, or None when it has more than MAX_DRAWN_NODES nodes.

    ``side`` ("a" or "b") prefixes the node ids the details panel looks up; ``edge_labels`` (tensor -> text), when given, labels the edges instead of the shapes.
    """
    if len(indices) > MAX_DRAWN_NODES:
        return None
    boxes, edges = _region_graph(indices, graph, kinds, side, edge_labels)
    if not boxes:
        return f'<svg class="region-graph" width="120" height="30" aria-label="{_e(label)}"><text x="8" y="19">(nothing)</text></svg>'
    width, height = _layout(boxes, edges)
    width += max((len(e.label) for e in edges), default=0) * CHAR_PX * 10 / FONT_PX  # edge labels right of the edges
    return _svg(boxes, edges, width, height, label)
