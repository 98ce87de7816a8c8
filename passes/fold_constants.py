"""fold-constants: evaluate every node whose inputs are all constants, under a size limit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.ir.external_data import tensor_array
from graphkit.ir.model_io import ONNX_DOMAINS, clone, remove_initializers, remove_nodes_at, subgraph_reads
from graphkit.ir.shape_eval import NEVER_FOLD, constant_value
from graphkit.runtime.node_eval import evaluate_node
from graphkit.transform.pass_base import Declined, Pass, PassResult, option
from graphkit.transform.registry import register
from graphkit.util.errors import one_line


@register("fold-constants")
class FoldConstants(Pass):
    """Evaluate every node whose inputs are all constants, and turn Constant nodes into initializers.

    Rewrite, in topological order: a default-domain ``Constant`` node becomes an initializer of
    the same name (``constants_to_initializers``); a default-domain node whose inputs are all
    constants (initializers that are not graph inputs, or values folded before it) is evaluated
    with onnxruntime (optimizations off) and its outputs become initializers of the same names
    (``nodes_folded``); inputs nothing reads any more are removed. Exact: the values are the ones
    onnxruntime computes for the node at run time, bit for bit.

    Size limit: a result larger than ``size_limit_bytes`` *and* larger than the constant inputs
    it replaces is not created (the node stays, declined with its size): folding a broadcast
    (``Expand``, ``Tile``, ``ConstantOfShape``) would otherwise grow the model.

    Never folded: random ops, If/Loop/Scan and other nodes with subgraphs, sequence and optional
    ops, custom-domain nodes (passed through untouched), nodes that produce a graph output (its
    producer is part of the interface), sparse or string ``Constant`` values; a node onnxruntime
    cannot evaluate is declined with its error. Shape-dependent folding (``Shape`` of a tensor
    with symbolic dims) is fold-shapes' job.
    """

    @dataclass
    class Options:
        size_limit_bytes: int = option(
            1 << 20, doc="largest folded constant (bytes) to create when it is larger than the constants it replaces"
        )
        constants_to_initializers: bool = option(True, doc="turn Constant nodes into initializers of the same name")

    exact = True
    opset_range = (7, 10**6)

    def run(self, model: onnx.ModelProto) -> PassResult:
        graph = model.graph
        inputs = {v.name for v in graph.input} if model.ir_version >= 4 else set()
        outputs = {o.name for o in graph.output}
        initial = {t.name for t in graph.initializer if t.name not in inputs}
        known: dict[str, np.ndarray] = {}
        new_values: dict[str, np.ndarray] = {}
        removed: set[int] = set()
        declined: list[Declined] = []
        counts = {"constants_to_initializers": 0, "nodes_folded": 0}
        tensors = {t.name: t for t in graph.initializer}

        def value(name: str) -> np.ndarray:
            if name not in known:
                known[name] = tensor_array(tensors[name])
            return known[name]

        def is_const(name: str) -> bool:
            return name in new_values or name in initial

        for index, node in enumerate(graph.node):
            if node.domain not in ONNX_DOMAINS or any(o in outputs for o in node.output):
                continue
            if node.op_type == "Constant":
                array = constant_value(node)
                if array is not None and self.options.constants_to_initializers:
                    new_values[node.output[0]] = array
                    known[node.output[0]] = array
                    removed.add(index)
                    counts["constants_to_initializers"] += 1
                continue
            if node.op_type in NEVER_FOLD or node.op_type.startswith("Sequence") or _has_subgraph(node):
                continue
            names = [i for i in node.input if i]
            if not names or not all(is_const(i) for i in names):
                continue
            arrays = {i: value(i) for i in names}
            site = f"{node.op_type} {node.name or node.output[0]}"
            try:
                results = evaluate_node(node, arrays, model)
            except Exception as exc:  # noqa: BLE001 - any evaluation failure means: do not fold
                declined.append(Declined(site, f"onnxruntime cannot evaluate it: {one_line(exc, 160)}"))
                continue
            size = sum(a.nbytes for a in results.values())
            input_bytes = sum(a.nbytes for a in arrays.values())
            if size > max(self.options.size_limit_bytes, input_bytes):
                declined.append(
                    Declined(
                        site,
                        f"folding would create {size} bytes of constants, over the {self.options.size_limit_bytes}-byte "
                        f"limit and larger than its {input_bytes}-byte constant inputs; node kept (raise "
                        "size_limit_bytes to fold it)",
                    )
                )
                continue
            for name, array in results.items():
                new_values[name] = array
                known[name] = array
            removed.add(index)
            counts["nodes_folded"] += 1
        if not removed:
            return PassResult(model, False, {}, declined)
        work = clone(model)
        graph = work.graph
        remove_nodes_at(graph, removed)
        read = (
            {i for node in graph.node for i in node.input}
            | outputs
            | {name for node in graph.node for name in subgraph_reads(node)}
        )
        new_inits = [
            numpy_helper.from_array(np.array(a, order="C", copy=True), n) for n, a in new_values.items() if n in read
        ]
        graph.initializer.extend(new_inits)
        if work.ir_version < 4:
            graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in new_inits)
        unread = {t.name for t in graph.initializer if t.name not in read and t.name in initial}
        remove_initializers(graph, unread)
        if work.ir_version < 4:
            kept = [v for v in graph.input if v.name not in unread]
            del graph.input[:]
            graph.input.extend(kept)
        constants = {t.name for t in graph.initializer}
        info = [v for v in graph.value_info if v.name not in constants]
        del graph.value_info[:]
        graph.value_info.extend(info)
        counts["initializers_removed"] = len(unread)
        return PassResult(work, True, {k: v for k, v in counts.items() if v}, declined)


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
