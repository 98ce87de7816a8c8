"""fuse-parallel-matmuls: MatMuls that read the same input with constant weights become one MatMul and a Split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from graphkit.ir.external_data import tensor_array
from graphkit.ir.model_io import clone, default_opset, remove_initializers, subgraph_reads
from graphkit.ir.opset import LATEST_OPSET
from graphkit.ir.shapes import fresh_name
from graphkit.transform.pass_base import Declined, Pass, PassResult, option
from graphkit.transform.registry import register
from graphkit.util.tolerance import Tolerance


@register("fuse-parallel-matmuls")
class FuseParallelMatmuls(Pass):
    """Fuse MatMuls that share their first input and have 2-D constant weights (Q/K/V projections).

    Rewrite: ``MatMul(x, W1) ... MatMul(x, Wn)`` (n >= ``min_group``, every ``Wi`` an initializer
    [K, Ni] of one dtype read by that MatMul only) becomes ``MatMul(x, concat(W1..Wn, axis=1))``
    followed by ``Split(axis=-1, sizes N1..Nn)`` that writes the original outputs (their names are
    kept, graph outputs included): n nodes become 2. The fused MatMul sits where the first one was.

    Not exact: each output column is the same dot product, but a runtime may pick another kernel or
    blocking for the wider weight, so the rounding can change; declared tolerance atol 1e-5,
    rtol 1e-4 (onnxsim's QKV fusion changes the same). Declined, with the reason: a weight that
    another node (or a subgraph) also reads or that is a graph input (fusing would store it twice or
    freeze an input), and a group whose fused weight would exceed ``max_weight_bytes``. Groups of
    fewer than ``min_group`` MatMuls are left alone without a reason (no node would be saved).

    On onnxruntime's CPU provider the fused result is bit-for-bit the separate MatMuls' on the
    corpus (``benchmarks/fused_matmul_bits.py``; docs/corpus.md), but that is one kernel
    library's summation order, so the declared tolerance stays and the pass is opt-in. Weights are
    read with ``tensor_array`` (a weight may be a memory-mapped external-data stub).
    """

    @dataclass
    class Options:
        min_group: int = option(3, doc="fewest MatMuls on one input that are fused (3 saves a node; 2 saves none)")
        max_weight_bytes: int = option(1 << 26, doc="largest fused weight (bytes); larger groups are declined")

    exact = False
    tolerance = Tolerance(atol=1e-5, rtol=1e-4)
    opset_range = (1, LATEST_OPSET)

    def run(self, model: onnx.ModelProto) -> PassResult:
        graph = model.graph
        weights = {t.name: t for t in graph.initializer}
        readers: dict[str, int] = {}
        for node in graph.node:
            for name in [*node.input, *subgraph_reads(node)]:
                readers[name] = readers.get(name, 0) + 1
        fed = {v.name for v in graph.input}
        groups: dict[str, list[int]] = {}
        for index, node in enumerate(graph.node):
            matmul = node.op_type == "MatMul" and node.domain in ("", "ai.onnx") and len(node.input) == 2
            if matmul and node.input[1] in weights and len(weights[node.input[1]].dims) == 2:
                groups.setdefault(node.input[0], []).append(index)
        declined: list[Declined] = []
        chosen: list[list[int]] = []
        for first_input, members in groups.items():
            if len(members) < self.options.min_group:
                continue
            reason = self._decline_reason(graph, members, weights, readers, fed)
            if reason:
                declined.append(Declined(f"MatMuls on {first_input}", reason))
            else:
                chosen.append(members)
        if not chosen:
            return PassResult(model, False, declined=declined)
        work = clone(model)
        fused = self._fuse(work, chosen, default_opset(model))
        return PassResult(work, True, counts={"fused_groups": len(chosen), "matmuls_fused": fused}, declined=declined)

    def _decline_reason(self, graph, members, weights, readers, fed) -> str | None:
        nodes = [graph.node[i] for i in members]
        names = [n.input[1] for n in nodes]
        for name in names:
            if name in fed:
                return f"weight {name} is also a graph input (it can be fed at run time)"
            if readers.get(name, 0) > 1 or names.count(name) > 1:
                return f"weight {name} is also read elsewhere (fusing would store it twice)"
        tensors = [weights[n] for n in names]
        if len({t.data_type for t in tensors}) > 1 or len({t.dims[0] for t in tensors}) > 1:
            return "the weights differ in dtype or in their first dim"
        total = sum(int(np.prod(t.dims)) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize for t in tensors)
        if total > self.options.max_weight_bytes:
            return f"the fused weight would take {total} bytes (max_weight_bytes {self.options.max_weight_bytes})"
        return None

    @staticmethod
    def _fuse(model: onnx.ModelProto, groups: list[list[int]], opset: int) -> int:
        graph = model.graph
        weights = {t.name: t for t in graph.initializer}
        taken = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output}
        replaced: dict[int, list[onnx.NodeProto]] = {}
        dropped: set[int] = set()
        old_weights: set[str] = set()
        for members in groups:
            nodes = [graph.node[i] for i in members]
            arrays = [tensor_array(weights[n.input[1]]) for n in nodes]
            first = nodes[0]
            stem = first.name or first.output[0]
            weight_name = fresh_name(f"{stem}_fused_weight", taken)
            fused_name = fresh_name(f"{stem}_fused", taken)
            graph.initializer.append(numpy_helper.from_array(np.concatenate(arrays, axis=1), weight_name))
            sizes = [a.shape[1] for a in arrays]
            split_inputs, split_attrs = [fused_name], {"axis": -1}
            if opset >= 13:
                sizes_name = fresh_name(f"{stem}_fused_sizes", taken)
                graph.initializer.append(numpy_helper.from_array(np.array(sizes, np.int64), sizes_name))
                split_inputs.append(sizes_name)
            else:
                split_attrs["split"] = sizes
            replaced[members[0]] = [
                helper.make_node("MatMul", [first.input[0], weight_name], [fused_name], name=f"{stem}_fused"),
                helper.make_node(
                    "Split", split_inputs, [n.output[0] for n in nodes], name=f"{stem}_split", **split_attrs
                ),
            ]
            dropped.update(members[1:])
            old_weights.update(n.input[1] for n in nodes)
        kept = []
        for index, node in enumerate(graph.node):
            kept.extend(replaced.get(index, [node]) if index not in dropped else [])
        del graph.node[:]
        graph.node.extend(kept)
        remove_initializers(graph, old_weights)
        return sum(len(m) for m in groups)
