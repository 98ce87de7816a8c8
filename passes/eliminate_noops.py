"""Remove nodes that compute their input unchanged (Identity, inference Dropout, no-op Cast/Reshape/Transpose).

Rewrite: a no-op node ``b = Op(a, ...)`` is removed and every consumer of ``b`` reads ``a``.
When ``b`` is a graph output, the output name is kept: the node producing ``a`` writes ``b``
directly and the consumers of ``a`` read ``b``. Consecutive Transposes are handled as a pair:
``Transpose(q)(Transpose(p)(x))`` is ``x`` when the composed permutation ``c[i] = p[q[i]]`` is
the identity, and one ``Transpose(c)`` otherwise (``compose_transposes``; only when the first
Transpose has no other consumer, so no work is added). The pass repeats until nothing changes.

Math: each removed node is the identity map on its input under ONNX semantics:
- ``Identity``;
- ``Dropout`` in inference: before opset 7 only with ``is_test=1``; from opset 12 when
  ``training_mode`` is absent or a constant false; its ``mask`` output must be unused;
- ``Cast`` to the element type its input already has (type from graph inputs, initializers,
  value_info or shape inference);
- ``Reshape`` whose result shape provably equals its input shape: the target is ``Shape(a)``,
  or a constant whose entries are each the same static dim, ``0`` (copy, ``allowzero=0``) or a
  single ``-1`` while all other entries match, or both shapes are fully static and equal;
- ``Transpose`` with the identity permutation.
No arithmetic changes, so the pass is bit-exact.

Declines (node kept, reason given): the output is a graph output fed directly by a graph
input, initializer or another graph output (removing it would rename an output); Dropout in
training mode, with a non-constant ``training_mode`` or a used mask; Cast whose input type is
unknown; a same-rank Reshape that cannot be proven a no-op (symbolic dims). Only the main
graph is rewritten (subgraph uses of its tensors are rewired); custom-domain nodes are never
touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from graphkit_passes.convert_opset import LATEST_OPSET

from graphkit.errors import PassError
from graphkit.ir import to_graph, to_model
from graphkit.model import default_opset, infer_shapes
from graphkit.pass_base import Declined, Pass, PassResult, option
from graphkit.registry import register
from graphkit.shapes import skeleton


@dataclass
class EliminateNoopsOptions:
    """Options of eliminate-noops: one switch per kind of no-op."""

    identity: bool = option(True, doc="remove Identity nodes")
    dropout: bool = option(True, doc="remove Dropout in inference mode whose mask output is unused")
    cast: bool = option(True, doc="remove Cast to the element type the input already has")
    reshape: bool = option(True, doc="remove Reshape whose result shape provably equals its input shape")
    transpose: bool = option(True, doc="remove identity-permutation Transposes and consecutive Transposes that cancel")
    compose_transposes: bool = option(
        True, doc="merge two consecutive Transposes that do not cancel into one (first one used only by the second)"
    )


@register("eliminate-noops")
class EliminateNoops(Pass):
    """Remove nodes that compute their input unchanged (Identity, inference Dropout, no-op Cast/Reshape/Transpose).

    See the module docstring for the rewrite, the math and when it declines.
    """

    Options = EliminateNoopsOptions
    exact = True
    opset_range = (1, LATEST_OPSET)
    changes_opset = False
    changes_io = False

    def run(self, model: onnx.ModelProto) -> PassResult:
        self._opset = default_opset(model)
        self._types = _known_types(model)
        graph = to_graph(model)
        counts: dict[str, int] = {}
        declined: dict[str, Declined] = {}
        changed = True
        while changed:
            changed = False
            outputs = {t.name for t in graph.outputs}
            for node in list(graph.nodes):
                if node not in graph.nodes or node.domain not in (None, "", "ai.onnx"):
                    continue
                site = _site(node)
                verdict = self._classify(node, outputs)
                if verdict is None:
                    continue
                if isinstance(verdict, Declined):
                    declined[verdict.site] = verdict
                    continue
                kind, source = verdict
                if kind == "transpose_composed":
                    _compose(graph, node, source)
                else:
                    refusal = _bypass(graph, node, source, outputs)
                    if refusal:
                        declined[site] = Declined(site, refusal)
                        continue
                counts[kind] = counts.get(kind, 0) + 1
                declined.pop(site, None)
                changed = True
        if not counts:
            return PassResult(model=model, modified=False, declined=list(declined.values()))
        return PassResult(to_model(graph, like=model), True, counts=counts, declined=list(declined.values()))

    def _classify(self, node: gs.Node, outputs: set[str]):
        """('kind', source tensor) for a no-op, a Declined near miss, or None."""
        options = self.options
        if node.op == "Identity" and options.identity:
            return "identity", node.inputs[0]
        if node.op == "Dropout" and options.dropout:
            reason = self._dropout_refusal(node, outputs)
            return Declined(_site(node), reason) if reason else ("dropout", node.inputs[0])
        if node.op == "Cast" and options.cast:
            source = node.inputs[0]
            elem = self._types.get(source.name, (None, None))[0]
            if elem is None:
                return Declined(_site(node), f"Cast input '{source.name}' has an unknown element type")
            return ("cast", source) if elem == node.attrs.get("to") else None
        if node.op == "Reshape" and options.reshape:
            return self._reshape_verdict(node)
        if node.op == "Transpose" and options.transpose:
            return self._transpose_verdict(node, outputs)
        return None

    def _dropout_refusal(self, node: gs.Node, outputs: set[str]) -> str | None:
        if self._opset < 7 and node.attrs.get("is_test", 0) != 1:
            return "Dropout before opset 7 without is_test=1 runs in training mode"
        if len(node.inputs) > 2 and node.inputs[2].name:
            mode = _constant(node.inputs[2])
            if mode is None:
                return f"Dropout training_mode '{node.inputs[2].name}' is not a constant"
            if bool(np.asarray(mode).reshape(-1)[0]):
                return "Dropout training_mode is true"
        for mask in node.outputs[1:]:
            if mask.name and (mask.outputs or mask.name in outputs):
                return f"Dropout mask output '{mask.name}' is used"
        return None

    def _reshape_verdict(self, node: gs.Node):
        source, target = node.inputs[0], node.inputs[1]
        dims = self._types.get(source.name, (None, None))[1]
        producer = target.inputs[0] if len(target.inputs) == 1 else None
        whole_shape = producer is not None and producer.attrs.get("start", 0) == 0 and "end" not in producer.attrs
        if whole_shape and producer.op == "Shape" and producer.inputs[0] is source:
            return "reshape", source
        out_dims = self._types.get(node.outputs[0].name, (None, None))[1]
        if dims is not None and out_dims is not None and _static(dims) and list(dims) == list(out_dims):
            return "reshape", source
        shape = _constant(target)
        if shape is None or dims is None:
            return None
        shape = [int(v) for v in np.asarray(shape).reshape(-1)]
        if len(shape) != len(dims):
            return None
        allowzero = node.attrs.get("allowzero", 0)
        unproven = []
        for axis, (want, have) in enumerate(zip(shape, dims)):
            if (want == 0 and not allowzero) or (isinstance(have, int) and want == have and want > 0):
                continue
            if want > 0 and not isinstance(have, int):
                unproven.append(axis)
            elif want != -1:
                return None  # a real reshape
        if shape.count(-1) > 1:
            return None
        if unproven:
            return Declined(
                _site(node), f"Reshape to {shape} may be a no-op but input dims {dims} at axes {unproven} are symbolic"
            )
        return "reshape", source

    def _transpose_verdict(self, node: gs.Node, outputs: set[str]):
        source = node.inputs[0]
        rank = _rank(source, self._types)
        perm = _perm(node, rank)
        if perm is None:
            return None
        if perm == list(range(len(perm))):
            return "transpose", source
        first = source.inputs[0] if len(source.inputs) == 1 else None
        if first is None or first.op != "Transpose" or first.domain not in (None, "", "ai.onnx"):
            return None
        inner = _perm(first, len(perm))
        if inner is None or len(inner) != len(perm):
            return None
        composed = [inner[q] for q in perm]
        if composed == list(range(len(perm))):
            return "transpose_pairs", first.inputs[0]
        if self.options.compose_transposes and len(source.outputs) == 1 and source.name not in outputs:
            return "transpose_composed", composed
        return None


def _bypass(graph: gs.Graph, node: gs.Node, source: gs.Tensor, outputs: set[str]) -> str | None:
    """Remove ``node`` so that its first output's readers read ``source``; None, or why not."""
    result = node.outputs[0]
    if result.name in outputs:
        producer = source.inputs[0] if len(source.inputs) == 1 else None
        graph_inputs = {t.name for t in graph.inputs}
        if producer is None or source.name in outputs or source.name in graph_inputs:
            what = "graph output" if source.name in outputs else "graph input or constant"
            return f"output '{result.name}' is a graph output fed directly by {what} '{source.name}'; removing would rename it"
        node.outputs.clear()
        index = producer.outputs.index(source)
        producer.outputs[index] = result
        for consumer in list(source.outputs):
            _replace_input(consumer, source, result)
    else:
        node.outputs.clear()
        for consumer in list(result.outputs):
            _replace_input(consumer, result, source)
    inputs = list(node.inputs)
    node.inputs.clear()
    graph.nodes.remove(node)
    _drop_dead(graph, inputs, outputs)
    return None


def _compose(graph: gs.Graph, node: gs.Node, composed: list[int]) -> None:
    """Transpose(q)(Transpose(p)(x)) -> Transpose(c)(x) with c[i] = p[q[i]]; the first one is removed."""
    middle = node.inputs[0]
    first = middle.inputs[0]
    node.attrs["perm"] = composed
    node.inputs[0] = first.inputs[0]
    _drop_dead(graph, [middle], {t.name for t in graph.outputs})


def _replace_input(consumer: gs.Node, old: gs.Tensor, new: gs.Tensor) -> None:
    for index, tensor in enumerate(consumer.inputs):
        if tensor is old:
            consumer.inputs[index] = new


def _drop_dead(graph: gs.Graph, tensors: list[gs.Tensor], outputs: set[str]) -> None:
    """Remove default-domain producers of ``tensors`` that no longer feed anything (transitively)."""
    stack = list(tensors)
    while stack:
        tensor = stack.pop()
        if tensor.outputs or tensor.name in outputs or len(tensor.inputs) != 1:
            continue
        producer = tensor.inputs[0]
        if producer.domain not in (None, "", "ai.onnx") or producer not in graph.nodes:
            continue
        if any(t.outputs or t.name in outputs for t in producer.outputs):
            continue
        inputs = list(producer.inputs)
        producer.inputs.clear()
        producer.outputs.clear()
        graph.nodes.remove(producer)
        stack.extend(inputs)


def _known_types(model: onnx.ModelProto) -> dict[str, tuple[int | None, list | None]]:
    """Element type and dims (int, str or None per axis) of every tensor shape inference knows."""
    try:  # on the graph without its large weights: they keep their type and dims as graph inputs
        inferred = infer_shapes(skeleton(model), strict=False)
    except PassError:
        inferred = model
    known: dict[str, tuple[int | None, list | None]] = {}
    graph = inferred.graph
    for tensor in graph.initializer:
        known[tensor.name] = (tensor.data_type, list(tensor.dims))
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not tensor_type.elem_type:
            continue
        dims = None
        if tensor_type.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim]
        known[value.name] = (tensor_type.elem_type, dims)
    for node in graph.node:  # Constant nodes are not in value_info when inference is off
        if node.op_type == "Constant" and node.output[0] not in known:
            for attr in node.attribute:
                if attr.name == "value":
                    known[node.output[0]] = (attr.t.data_type, list(attr.t.dims))
    return known


def _constant(tensor: gs.Tensor):
    """The value of a constant tensor (initializer or Constant node output), else None."""
    if isinstance(tensor, gs.Constant):
        return tensor.values
    producer = tensor.inputs[0] if len(tensor.inputs) == 1 else None
    if producer is not None and producer.op == "Constant" and isinstance(producer.attrs.get("value"), gs.Constant):
        return producer.attrs["value"].values
    return None


def _static(dims: list) -> bool:
    return all(isinstance(d, int) and d > 0 for d in dims)


def _rank(tensor: gs.Tensor, types: dict) -> int | None:
    dims = types.get(tensor.name, (None, None))[1]
    if dims is not None:
        return len(dims)
    return len(tensor.shape) if tensor.shape is not None else None


def _perm(node: gs.Node, rank: int | None) -> list[int] | None:
    perm = node.attrs.get("perm")
    if perm is not None:
        return [int(v) for v in perm]
    return None if rank is None else list(range(rank - 1, -1, -1))


def _site(node: gs.Node) -> str:
    return node.name or node.outputs[0].name
