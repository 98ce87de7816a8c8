"""cse: common-subexpression elimination (identical nodes and identical constants computed once)."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from graphkit.ir.model_io import ONNX_DOMAINS, clone, remove_initializers, remove_nodes_at
from graphkit.ir.shapes import RANDOM_OPS
from graphkit.transform.pass_base import Pass, PassResult, option
from graphkit.transform.registry import register


@register("cse")
class CommonSubexpressions(Pass):
    """Compute identical nodes and identical constants once.

    Rewrite, in topological order: two initializers (or ``Constant`` nodes) with the same type,
    dims and bytes become one (the first; up to ``max_constant_bytes`` each); then two
    default-domain nodes with the same op type, inputs (after the merges so far) and attributes
    become one: the later node is removed and its readers read the earlier node's outputs.
    Chains collapse in one run because the inputs are compared after earlier merges. Exact: ONNX
    ops are pure functions of their inputs and attributes.

    Never merged: random ops (``RandomNormal``, ``Dropout`` in training form, ...), nodes with
    subgraphs (If/Loop/Scan), custom-domain nodes, a node whose output is a graph output (its
    name is part of the interface; the earlier twin is kept instead only when it comes first),
    and initializers that are also graph inputs (they can be fed at run time) or graph outputs.
    """

    @dataclass
    class Options:
        max_constant_bytes: int = option(
            1 << 20, doc="largest constant (bytes) compared for merging; larger ones are left alone"
        )

    exact = True

    def run(self, model: onnx.ModelProto) -> PassResult:
        graph = model.graph
        outputs = {o.name for o in graph.output}
        inputs = {v.name for v in graph.input}
        rename: dict[str, str] = {}
        seen_consts: dict[tuple, str] = {}
        for tensor in graph.initializer:
            if tensor.name in inputs or tensor.name in outputs or _nbytes(tensor) > self.options.max_constant_bytes:
                continue
            key = (tensor.data_type, tuple(tensor.dims), _payload(tensor))
            if key in seen_consts:
                rename[tensor.name] = seen_consts[key]
            else:
                seen_consts[key] = tensor.name
        seen_nodes: dict[tuple, list[str]] = {}
        dropped: set[int] = set()
        for index, node in enumerate(graph.node):
            key = self._key(node, rename)
            if key is None:
                continue
            outs = list(node.output)
            if key in seen_nodes and not any(o in outputs for o in outs):
                for old, new in zip(outs, seen_nodes[key]):
                    if old:
                        rename[old] = new
                dropped.add(index)
            elif key not in seen_nodes:
                seen_nodes[key] = outs
        if not rename:
            return PassResult(model, False)
        work = clone(model)
        graph = work.graph
        remove_nodes_at(graph, dropped)
        for node in graph.node:
            _rename_inputs(node, rename)
        merged_inits = {name for name in rename if name in {t.name for t in graph.initializer}}
        remove_initializers(graph, merged_inits)
        if work.ir_version < 4:
            kept = [v for v in graph.input if v.name not in merged_inits]
            del graph.input[:]
            graph.input.extend(kept)
        info = [v for v in graph.value_info if v.name not in rename]
        del graph.value_info[:]
        graph.value_info.extend(info)
        counts = {"nodes_merged": len(dropped), "initializers_merged": len(merged_inits)}
        return PassResult(work, True, {k: v for k, v in counts.items() if v})

    def _key(self, node: onnx.NodeProto, rename: dict[str, str]) -> tuple | None:
        if node.domain not in ONNX_DOMAINS or node.op_type in RANDOM_OPS:
            return None
        if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
            return None  # training_mode given: may draw a random mask
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            return None
        if node.op_type == "Constant":
            value = node.attribute[0] if len(node.attribute) == 1 else None
            if value is None or value.type != onnx.AttributeProto.TENSOR:
                return _attrs_key(node)  # value_float(s)/value_int(s): compared by serialization
            if _nbytes(value.t) > self.options.max_constant_bytes:
                return None
            return ("Constant", value.t.data_type, tuple(value.t.dims), _payload(value.t))
        inputs = tuple(rename.get(name, name) for name in node.input)
        return (node.op_type, node.domain or "", inputs, len(node.output), _attrs_key(node))


def _attrs_key(node: onnx.NodeProto) -> tuple:
    return tuple(sorted((a.name, a.SerializeToString(deterministic=True)) for a in node.attribute))


def _payload(tensor: onnx.TensorProto) -> bytes:
    """The tensor's values as bytes, whatever field holds them (name excluded)."""
    copy = onnx.TensorProto()
    copy.CopyFrom(tensor)
    copy.name = ""
    copy.doc_string = ""
    return copy.SerializeToString(deterministic=True)


def _nbytes(tensor: onnx.TensorProto) -> int:
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return 1 << 62  # never compared: the bytes live in another file
    return tensor.ByteSize()


def _rename_inputs(node: onnx.NodeProto, rename: dict[str, str]) -> None:
    for slot, name in enumerate(node.input):
        if name in rename:
            node.input[slot] = rename[name]
    for attribute in node.attribute:
        graphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for graph in graphs:  # outer-scope reads inside subgraphs, unless the subgraph shadows the name
            local = {v.name for v in graph.input} | {t.name for t in graph.initializer}
            local |= {o for inner in graph.node for o in inner.output}
            inner_rename = {k: v for k, v in rename.items() if k not in local}
            for inner in graph.node:
                _rename_inputs(inner, inner_rename)
