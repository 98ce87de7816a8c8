"""Remove nodes that compute their input unchanged (Identity, inference Dropout, no-op Cast/Reshape/Transpose,
one-input Concat, one-piece Split, zero Pad, shape-keeping Expand).

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
- ``Transpose`` with the identity permutation;
- ``Concat`` of a single input, ``Split`` into a single output (ONNX requires the piece to be
  the whole axis);
- ``Pad`` whose amounts (attribute before opset 11, constant input from 11) are all 0, any mode;
- ``Expand`` to a constant shape that broadcasting leaves equal to the input's shape (at most the
  input's rank, each dim 1 or the input's static dim there).
No arithmetic changes, so the pass is bit-exact.

Declines (node kept, reason given): the output is a graph output fed directly by a graph
input, initializer or another graph output (removing it would rename an output); Dropout in
training mode, with a non-constant ``training_mode`` or a used mask; Cast whose input type is
unknown; a same-rank Reshape that cannot be proven a no-op (symbolic dims); a Pad whose amounts
or an Expand whose shape is not a constant; an Expand whose shape may broadcast the input up
(a symbolic or unknown input dim against a dim > 1). Only the main
graph is rewritten (subgraph uses of its tensors are rewired); custom-domain nodes are never
touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from graphkit.ir.broadcast import broadcast_keeps_shape
from graphkit.ir.graph import (
    ValueTypes,
    bypass_node,
    constant_value,
    is_default_domain,
    is_removed,
    node_site,
    producer,
    remove_dead,
    to_graph,
    to_model,
)
from graphkit.ir.model_io import default_opset
from graphkit.ir.opset import LATEST_OPSET
from graphkit.transform.pass_base import Declined, Pass, PassResult, option
from graphkit.transform.registry import register
from graphkit.transform.rules import Rule, apply_rules


def _keep_input(op, x, **_):
    return x


def _dropout_check(ctx, x, ratio=None, mode=None):
    if ctx.opset < 7 and ctx.node.attrs.get("is_test", 0) != 1:
        return "Dropout before opset 7 without is_test=1 runs in training mode"
    if mode is not None:
        value = ctx.constant(mode)
        if value is None:
            return f"Dropout training_mode '{mode.name}' is not a constant"
        if bool(value.reshape(-1)[0]):
            return "Dropout training_mode is true"
    for mask in ctx.node.outputs[1:]:
        if mask.name and (mask.outputs or ctx.is_graph_output(mask)):
            return f"Dropout mask output '{mask.name}' is used"
    return True


def _cast_check(ctx, x, to):
    elem = ctx.dtype(x)
    return f"Cast input '{x.name}' has an unknown element type" if elem is None else elem == to


def _pad_check(ctx, x, pads=None, value=None, axes=None):
    amounts = ctx.node.attrs.get("pads") if pads is None else ctx.constant(pads)
    if amounts is None and pads is None:
        return False  # no amounts at all (an invalid Pad from opset 11): not a site
    if amounts is None:
        return f"Pad amounts '{pads.name}' are not a constant (folding them first would show whether all are 0)"
    return bool(np.all(np.asarray(amounts) == 0)) or False


def _split_check(ctx, x, split=None):
    return len(ctx.node.outputs) == 1  # one piece: ONNX requires it to be the whole axis


def _expand_check(ctx, x, shape):
    target = ctx.constant(shape)
    if target is None:
        return f"Expand shape '{shape.name}' is not a constant (folding it first would make the node removable)"
    reason = broadcast_keeps_shape(ctx.shape(x), target.reshape(-1), f"Expand shape {target.reshape(-1).tolist()}")
    return True if reason is None else f"'{x.name}': {reason}"


# Identity, inference Dropout and same-type Cast as rules (graphkit.transform.rules); counts are by kind.
NOOP_RULES = {
    "identity": [Rule(lambda op, x: op.Identity(x), _keep_input, name="identity")],
    "dropout": [  # ratio and training_mode are optional trailing inputs: one rule for every arity
        Rule(
            lambda op, x, ratio=None, mode=None: op.Dropout(x, ratio, mode), _keep_input, _dropout_check, name="dropout"
        ),
    ],
    "cast": [Rule(lambda op, x, to: op.Cast(x, to=to), _keep_input, _cast_check, name="cast")],
    "concat": [Rule(lambda op, x: op.Concat(x), _keep_input, name="concat")],
    "pad": [  # pads (an attribute before opset 11), value and axes are optional trailing inputs
        Rule(
            lambda op, x, pads=None, value=None, axes=None: op.Pad(x, pads, value, axes),
            _keep_input,
            _pad_check,
            name="pad",
        ),
    ],
    "expand": [Rule(lambda op, x, shape: op.Expand(x, shape), _keep_input, _expand_check, name="expand")],
    "split": [Rule(lambda op, x, split=None: op.Split(x, split), _keep_input, _split_check, name="split")],
}


@dataclass
class EliminateNoopsOptions:
    """Options of eliminate-noops: one switch per kind of no-op."""

    identity: bool = option(True, doc="remove Identity nodes")
    dropout: bool = option(True, doc="remove Dropout in inference mode whose mask output is unused")
    cast: bool = option(True, doc="remove Cast to the element type the input already has")
    concat: bool = option(True, doc="remove Concat of a single input")
    pad: bool = option(True, doc="remove Pad whose amounts are all 0 (a constant)")
    expand: bool = option(True, doc="remove Expand to a constant shape that keeps the input's shape")
    split: bool = option(True, doc="remove Split into a single piece (the whole axis)")
    reshape: bool = option(True, doc="remove Reshape whose result shape provably equals its input shape")
    transpose: bool = option(True, doc="remove identity-permutation Transposes and consecutive Transposes that cancel")
    compose_transposes: bool = option(
        True, doc="merge two consecutive Transposes that do not cancel into one (first one used only by the second)"
    )


@register("eliminate-noops")
class EliminateNoops(Pass):
    """Remove nodes that compute their input unchanged (Identity, inference Dropout, no-op Cast/Reshape/Transpose,
    one-input Concat, one-piece Split, zero Pad, shape-keeping Expand).

        See the module docstring for the rewrite, the math and when it declines.
    """

    Options = EliminateNoopsOptions
    exact = True
    opset_range = (1, LATEST_OPSET)
    changes_opset = False
    changes_io = False

    def run(self, model: onnx.ModelProto) -> PassResult:
        self._opset = default_opset(model)
        self._types = ValueTypes(model)
        graph = to_graph(model)
        rules = [rule for kind, kind_rules in NOOP_RULES.items() if getattr(self.options, kind) for rule in kind_rules]
        counts: dict[str, int] = {}
        declined: dict[str, Declined] = {}
        while True:
            outcome = apply_rules(graph, rules, model, types=self._types)
            for kind, count in outcome.counts.items():
                counts[kind] = counts.get(kind, 0) + count
            if not self._remove_reshapes_and_transposes(graph, counts, declined):
                break
        declined_all = [*outcome.declined, *declined.values()]
        if not counts:
            return PassResult(model=model, modified=False, declined=declined_all)
        return PassResult(to_model(graph, like=model), True, counts=counts, declined=declined_all)

    def _remove_reshapes_and_transposes(self, graph: gs.Graph, counts: dict, declined: dict) -> bool:
        """Remove no-op Reshapes and Transposes until none is left; True when anything changed."""
        any_change, changed = False, True
        while changed:
            changed = False
            outputs = {t.name for t in graph.outputs}
            for node in list(graph.nodes):
                if is_removed(node) or not is_default_domain(node):
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
                    refusal = bypass_node(graph, node, source)
                    if refusal:
                        declined[site] = Declined(site, refusal)
                        continue
                counts[kind] = counts.get(kind, 0) + 1
                declined.pop(site, None)
                changed = any_change = True
        return any_change

    def _classify(self, node: gs.Node, outputs: set[str]):
        """('kind', source tensor) for a no-op Reshape or Transpose, a Declined near miss, or None."""
        if node.op == "Reshape" and self.options.reshape:
            return self._reshape_verdict(node)
        if node.op == "Transpose" and self.options.transpose:
            return self._transpose_verdict(node, outputs)
        return None

    def _reshape_verdict(self, node: gs.Node):
        source, target = node.inputs[0], node.inputs[1]
        dims = self._types.shape(source)
        writer = producer(target)
        whole_shape = writer is not None and writer.attrs.get("start", 0) == 0 and "end" not in writer.attrs
        if whole_shape and writer.op == "Shape" and writer.inputs[0] is source:
            return "reshape", source
        out_dims = self._types.shape(node.outputs[0])
        if dims is not None and out_dims is not None and _static(dims) and list(dims) == list(out_dims):
            return "reshape", source
        shape = _as_list(constant_value(target))
        if shape is None or dims is None:
            return None
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
        rank = self._types.rank(source)
        perm = _perm(node, rank)
        if perm is None:
            return None
        if perm == list(range(len(perm))):
            return "transpose", source
        first = producer(source)
        if first is None or first.op != "Transpose" or not is_default_domain(first):
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


def _compose(graph: gs.Graph, node: gs.Node, composed: list[int]) -> None:
    """Transpose(q)(Transpose(p)(x)) -> Transpose(c)(x) with c[i] = p[q[i]]; the first one is removed."""
    middle = node.inputs[0]
    node.attrs["perm"] = composed
    node.inputs[0] = producer(middle).inputs[0]
    remove_dead(graph, [middle])


def _static(dims: list) -> bool:
    return all(isinstance(d, int) and d > 0 for d in dims)


def _as_list(value) -> list[int] | None:
    return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


def _perm(node: gs.Node, rank: int | None) -> list[int] | None:
    perm = node.attrs.get("perm")
    if perm is not None:
        return [int(v) for v in perm]
    return None if rank is None else list(range(rank - 1, -1, -1))


_site = node_site
