"""What a model is, in figures: the contract behind ``graphkit inspect`` and apply's before/after table.

:func:`summarize` reads a loaded model (weights are counted from their dims, never read):
opsets and producer, inputs and outputs with symbolic dims, op-type counts (subgraph nodes
counted apart), parameters (elements and bytes of the initializers), external data files, and
multiply-accumulates of Conv/ConvTranspose/Gemm/MatMul at given dim sizes (batch 1 by default),
from shapes inferred on the graph skeleton (:func:`graphkit.ir.shapes.infer_value_types`).

MACs follow the usual convention (onnx-tool, fvcore): one MAC per multiply of a weight by an
input element; Conv ``prod(Y) * prod(W.dims[1:])``, ConvTranspose ``prod(X) * prod(W.dims[1:])``,
Gemm ``M*N*K``, MatMul ``prod(Y) * K``. A node whose shapes stay unknown is counted in
``macs_unknown`` rather than guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from graphkit.ir.shapes import Dim, ValueType, dims_of, format_dims, infer_value_types, symbolic_value_types
from graphkit.util.errors import PassError

MAC_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class TensorSummary:
    """One graph input or output: name, element type name and dims (None: rank unknown)."""

    name: str
    dtype: str
    dims: tuple[Dim, ...] | None

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.dims is None else list(self.dims)}


@dataclass
class ModelSummary:
    """The figures of one model (see the module docstring); ``to_dict`` is the ``--json`` form."""

    ir_version: int
    opsets: dict[str, int]
    producer: str
    inputs: list[TensorSummary]
    outputs: list[TensorSummary]
    nodes: int
    subgraph_nodes: int
    op_counts: dict[str, int]
    parameters: int
    parameter_bytes: int
    initializers: int
    external_data: dict[str, int] = field(default_factory=dict)  # file -> bytes
    macs: dict[str, int] = field(default_factory=dict)  # op type -> MACs
    macs_unknown: int = 0  # Conv/Gemm/MatMul nodes whose shapes are unknown at mac_dims
    mac_dims: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    def to_dict(self) -> dict:
        return {
            "ir_version": self.ir_version,
            "opsets": self.opsets,
            "producer": self.producer,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "nodes": self.nodes,
            "subgraph_nodes": self.subgraph_nodes,
            "op_counts": self.op_counts,
            "parameters": self.parameters,
            "parameter_bytes": self.parameter_bytes,
            "initializers": self.initializers,
            "external_data": self.external_data,
            "macs": {"by_op": self.macs, "total": self.total_macs, "unknown_nodes": self.macs_unknown},
            "mac_dims": self.mac_dims,
            "notes": self.notes,
        }


def summarize(model: onnx.ModelProto, dims: Mapping[str, int] | None = None, thorough: bool = True) -> ModelSummary:
    """The :class:`ModelSummary` of ``model``; MACs at ``dims`` (name -> size; ``batch`` defaults to 1).

    Where ONNX shape inference leaves a MAC node's shapes unknown, ``thorough`` asks onnxruntime's
    symbolic shape inference as well (seconds on some graphs); without it such nodes are counted
    in ``macs_unknown``.
    """
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    parameters = parameter_bytes = 0
    external: Counter = Counter()
    for tensor in graph.initializer:
        count = 1
        for d in tensor.dims:
            count *= d
        parameters += count
        parameter_bytes += count * _itemsize(tensor.data_type)
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            info = {entry.key: entry.value for entry in tensor.external_data}
            external[info.get("location", "?")] += int(info.get("length") or count * _itemsize(tensor.data_type))
    counts = Counter(_op_name(node) for node in graph.node)
    summary = ModelSummary(
        ir_version=model.ir_version,
        opsets={(entry.domain or "ai.onnx"): entry.version for entry in model.opset_import},
        producer=" ".join(p for p in (model.producer_name, model.producer_version) if p),
        inputs=[_tensor(v) for v in graph.input if v.name not in init_names],
        outputs=[_tensor(v) for v in graph.output],
        nodes=len(graph.node),
        subgraph_nodes=sum(_subgraph_nodes(node) for node in graph.node),
        op_counts=dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
        parameters=parameters,
        parameter_bytes=parameter_bytes,
        initializers=len(graph.initializer),
        external_data=dict(external),
    )
    _count_macs(model, summary, {"batch": 1, **dict(dims or {})}, thorough)
    return summary


def _count_macs(model: onnx.ModelProto, summary: ModelSummary, dims: dict[str, int], thorough: bool) -> None:
    graph = model.graph
    mac_nodes = [node for node in graph.node if node.op_type in MAC_OPS and node.domain in ("", "ai.onnx")]
    shapes, unresolved = {}, []
    for value in graph.input:
        if value.name in {t.name for t in graph.initializer}:
            continue
        resolved = _resolve(dims_of(value), value.name, dims)
        if resolved is None:
            unresolved.append(value.name)
        else:
            shapes[value.name] = resolved
    summary.mac_dims = {name: size for name, size in dims.items() if _used(model, name)}
    if not mac_nodes:
        return
    try:
        types = infer_value_types(model, input_shapes=shapes)
    except PassError as exc:
        summary.macs_unknown = len(mac_nodes)
        summary.notes.append(f"MACs not counted: {exc}")
        return
    second_opinion = None
    for node in mac_nodes:
        macs = _node_macs(node, types)
        if (
            macs is None and thorough
        ):  # ONNX inference gave up (a computed Resize size...): onnxruntime's symbolic inference
            if second_opinion is None:
                second_opinion = {**types, **symbolic_value_types(model, input_shapes=shapes)}
            macs = _node_macs(node, second_opinion)
        if macs is None:
            summary.macs_unknown += 1
        else:
            summary.macs[node.op_type] = summary.macs.get(node.op_type, 0) + macs
    if summary.macs_unknown and unresolved:
        summary.notes.append(
            f"{summary.macs_unknown} node(s) have unknown shapes: give the symbolic dims of "
            f"{', '.join(unresolved)} with --dim NAME=N"
        )


def _node_macs(node: onnx.NodeProto, types: Mapping[str, ValueType]) -> int | None:
    def static(name: str) -> tuple[int, ...] | None:
        value = types.get(name)
        if value is None or value.dims is None or not all(isinstance(d, int) for d in value.dims):
            return None
        return tuple(value.dims)

    if len(node.input) < 2:
        return None
    a, b, y = static(node.input[0]), static(node.input[1]), static(node.output[0])
    if node.op_type == "Conv" and b and y:
        return _prod(y) * _prod(b[1:])
    if node.op_type == "ConvTranspose" and a and b:
        return _prod(a) * _prod(b[1:])
    if node.op_type == "Gemm" and a and b and len(a) == 2 and len(b) == 2:
        attrs = {attr.name: attr.i for attr in node.attribute}
        m, k = (a[1], a[0]) if attrs.get("transA") else a
        n = b[0] if attrs.get("transB") else b[1]
        return m * n * k
    if node.op_type == "MatMul" and a and y is not None:
        return _prod(y) * a[-1]
    return None


def _resolve(declared: tuple[Dim, ...] | None, name: str, dims: Mapping[str, int]) -> tuple[int, ...] | None:
    if declared is None:
        return None
    shape = []
    for axis, dim in enumerate(declared):
        if isinstance(dim, int):
            shape.append(dim)
            continue
        size = next((dims[k] for k in (f"{name}:{axis}", dim, "batch" if axis == 0 else None) if k in dims), None)
        if size is None:
            return None
        shape.append(size)
    return tuple(shape)


def _used(model: onnx.ModelProto, name: str) -> bool:
    """Whether dim ``name`` names a symbolic input dim (``batch`` is any input's symbolic axis 0)."""
    for value in model.graph.input:
        for axis, dim in enumerate(dims_of(value) or ()):
            if not isinstance(dim, int) and (name in (dim, f"{value.name}:{axis}") or (name == "batch" and axis == 0)):
                return True
    return False


def _tensor(value: onnx.ValueInfoProto) -> TensorSummary:
    elem = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else 0
    dtype = onnx.TensorProto.DataType.Name(elem).lower() if elem else "?"
    return TensorSummary(value.name, dtype, dims_of(value))


def _op_name(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def _subgraph_nodes(node: onnx.NodeProto) -> int:
    total = 0
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            total += len(sub.node) + sum(_subgraph_nodes(inner) for inner in sub.node)
    return total


def _itemsize(data_type: int) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return 0


def _prod(dims) -> int:
    total = 1
    for d in dims:
        total *= d
    return total


def human_count(value: int) -> str:
    """1234567 -> '1.23M' (k, M, G, T)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return str(value)


def human_bytes(size: int) -> str:
    """1536 -> '1.5 KiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def text_report(summary: ModelSummary, title: str | Path = "") -> str:
    """The terminal form of ``summary`` (fits 100 columns)."""
    lines = [f"model {title}".rstrip()] if title else []
    opsets = ", ".join(f"{domain} {version}" for domain, version in summary.opsets.items())
    lines.append(
        f"  ir {summary.ir_version}, opset {opsets}" + (f", producer {summary.producer}" if summary.producer else "")
    )
    for label, tensors in (("input", summary.inputs), ("output", summary.outputs)):
        for tensor in tensors:
            lines.append(f"  {label:<6} {tensor.name} {tensor.dtype}{format_dims(tensor.dims)}")
    sub = f" (+{summary.subgraph_nodes} in subgraphs)" if summary.subgraph_nodes else ""
    lines.append(f"  nodes  {summary.nodes}{sub}, {len(summary.op_counts)} op types")
    lines.extend(_wrap("  ops    ", [f"{op} {n}" for op, n in summary.op_counts.items()]))
    lines.append(
        f"  params {human_count(summary.parameters)} ({summary.parameters:,}) in {summary.initializers} "
        f"initializers, {human_bytes(summary.parameter_bytes)}"
    )
    for location, size in summary.external_data.items():
        lines.append(f"  external data {location}: {human_bytes(size)}")
    at = ", ".join(f"{name}={size}" for name, size in summary.mac_dims.items()) or "declared shapes"
    by_op = ", ".join(f"{op} {human_count(n)}" for op, n in summary.macs.items())
    macs = f"{human_count(summary.total_macs)}" + (f" ({by_op})" if by_op else "")
    unknown = f", {summary.macs_unknown} node(s) unknown" if summary.macs_unknown else ""
    lines.append(f"  MACs   {macs} at {at}{unknown}")
    lines.extend(f"  note: {note}" for note in summary.notes)
    return "\n".join(lines)


def _wrap(prefix: str, items: list[str], width: int = 100) -> list[str]:
    lines, current = [], prefix
    for item in items:
        piece = item if current == prefix else ", " + item
        if len(current) + len(piece) > width and current != prefix:
            lines.append(current + ",")
            current = " " * len(prefix) + item
        else:
            current += piece
    if current.strip():
        lines.append(current)
    return lines
