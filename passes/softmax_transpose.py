"""Fold Transpose(p) -> Softmax -> Transpose(p^-1) into one Softmax over the original axis.

Rewrite: ``y = Transpose(q)(Softmax(axis=a)(Transpose(p)(x)))`` with ``q`` the inverse of
``p`` becomes ``y = Softmax(axis=j)(x)``; the new node writes ``y`` (the name of the last
Transpose's output) and takes the Softmax's node name, so downstream names survive. The
Softmax core may also be the ``Flatten(k) -> Softmax(last) -> Reshape(Shape(.))`` wrapper that
onnx's version converter emits for a pre-13 Softmax. LogSoftmax is handled the same way. Any
rank, any permutation. A first Transpose with other consumers stays for them.

Math (ONNX semantics). Let ``C`` be the axes of the transposed tensor that the softmax
normalizes over: ``{a}`` from opset 13, all of ``a..r-1`` (flattened) before 13, ``k..r-1``
for the Flatten wrapper. Transposing back maps them to the original axes ``S = {p[c] : c in C}``
and the result is the softmax of ``x`` normalized jointly over ``S`` (a joint softmax does not
depend on the order of its axes). One Softmax node computes exactly that when
- ``S = {j}`` and the opset is >= 13: ``Softmax(axis=j)``;
- ``S = {r-1}`` at any opset: ``Softmax(axis=r-1)``;
- ``S = {j..r-1}`` (a trailing range) and the opset is < 13: the legacy ``Softmax(axis=j)``.
``S = {j}`` with ``j < r-1`` before opset 13 (the wseg export: opset 11,
``Transpose(0,2,3,1) -> Softmax(axis=3) -> Transpose(0,3,1,2)``, S = {1}) has no pre-13 form:
the pass first raises the whole model to opset 13 with onnx's version converter (shape
inference first; other pre-13 Softmax nodes are wrapped by the converter, so they keep their
meaning), then folds it to an opset-13 ``Softmax(axis=1)``. The rewrite reorders no arithmetic:
it is bit-exact on onnxruntime.

It never emits the ModelZoo form, an opset-11 ``Softmax(axis=1)`` on a 4-D tensor for a
channel softmax: under opset 11 that normalizes over C*H*W jointly and changes the outputs.
There is deliberately no option to emit it for ATC versions that might read it channel-wise;
raise the opset instead (CANN 6.0 accepts opsets 9 to 13).

Declines (model unchanged at that site, reason given):
- the second Transpose is not the inverse of the first;
- a tensor inside the pattern has other consumers or is a graph output;
- ``S`` is neither a single axis nor (before opset 13) a trailing range;
- the fold needs opset 13 and ``allow_opset_upgrade`` is false, or the converter refuses;
- an axis attribute is out of range, or a Transpose has no perm and its rank is unknown.
Only the main graph is rewritten; subgraphs and custom-domain nodes pass through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx_graphsurgeon as gs

from graphkit.ir.graph import is_default_domain, node_index, node_site, producer, remove_nodes, to_graph, to_model
from graphkit.ir.model_io import default_opset
from graphkit.ir.opset import LATEST_OPSET, ConversionRefused, convert_model
from graphkit.transform.pass_base import Declined, Pass, PassResult, option
from graphkit.transform.registry import register

SOFTMAX_OPS = ("Softmax", "LogSoftmax")
SINGLE_AXIS_OPSET = 13


@dataclass
class SoftmaxTransposeOptions:
    """Options of softmax-transpose."""

    allow_opset_upgrade: bool = option(
        True,
        doc="raise a model below opset 13 to opset 13 (onnx version converter) when a fold needs a "
        "single-axis Softmax over a non-last axis; off: decline those sites",
    )


@dataclass
class _Fold:
    """A matched site: replace ``nodes`` (first Transpose .. last Transpose) by one Softmax."""

    site: str
    softmax: gs.Node
    first: gs.Node
    last: gs.Node
    inner: list[gs.Node]  # the Softmax core, consumers before producers
    axis: int
    needs_upgrade: bool


@register("softmax-transpose")
class SoftmaxTranspose(Pass):
    """Fold Transpose -> Softmax -> inverse Transpose into one Softmax over the original axis.

    See the module docstring for the rewrite, the math and when it declines.
    """

    Options = SoftmaxTransposeOptions
    exact = True
    opset_range = (1, LATEST_OPSET)
    changes_opset = True  # may raise a pre-13 model to opset 13
    changes_io = False

    def run(self, model: onnx.ModelProto) -> PassResult:
        opset = default_opset(model)
        if not _any_candidate(model.graph):
            return PassResult(model=model, modified=False)  # what _fold_all finds then: skip the graph import
        graph = to_graph(model)
        folded, pending, declined = _fold_all(graph, opset)
        if not pending:
            if not folded:
                return PassResult(model=model, modified=False, declined=declined)
            return PassResult(to_model(graph, like=model), True, counts={"folded": folded}, declined=declined)
        if not self.options.allow_opset_upgrade:
            declined += [
                Declined(
                    f.site,
                    f"needs a single-axis Softmax(axis={f.axis}), which only exists from opset 13; "
                    f"the model is at opset {opset} and allow_opset_upgrade is false",
                )
                for f in pending
            ]
            if not folded:
                return PassResult(model=model, modified=False, declined=declined)
            return PassResult(to_model(graph, like=model), True, counts={"folded": folded}, declined=declined)
        current = to_model(graph, like=model) if folded else model
        try:
            upgraded = convert_model(current, SINGLE_AXIS_OPSET)
        except ConversionRefused as exc:
            declined += [Declined(f.site, f"needs opset 13 but {exc}") for f in pending]
            if not folded:
                return PassResult(model=model, modified=False, declined=declined)
            return PassResult(current, True, counts={"folded": folded}, declined=declined)
        graph = to_graph(upgraded)
        more, still_pending, declined = _fold_all(graph, SINGLE_AXIS_OPSET)
        assert not still_pending, "opset-13 folds never need an upgrade"
        return PassResult(
            model=to_model(graph, like=upgraded),
            modified=True,
            counts={"folded": folded + more, "opset_upgraded": 1},
            declined=declined,
            notes=[f"raised opset {opset} -> {SINGLE_AXIS_OPSET} with onnx.version_converter for single-axis folds"],
        )


def _any_candidate(graph: onnx.GraphProto) -> bool:
    """Whether some Softmax/LogSoftmax reads a Transpose or Flatten output or feeds a Transpose:
    without one, :func:`_match` finds nothing to fold or to decline anywhere."""
    producers = {name: node.op_type for node in graph.node for name in node.output if name}
    softmax_outputs = set()
    for node in graph.node:
        if node.op_type in SOFTMAX_OPS:
            if node.input and producers.get(node.input[0]) in ("Transpose", "Flatten"):
                return True
            softmax_outputs.update(node.output)
    return any(node.op_type == "Transpose" and set(node.input) & softmax_outputs for node in graph.node)


def _fold_all(graph: gs.Graph, opset: int) -> tuple[int, list[_Fold], list[Declined]]:
    """Fold every site foldable at ``opset``; return (folded count, sites needing 13, declined)."""
    folded, pending, declined = 0, [], []
    output_names = {t.name for t in graph.outputs}
    for node in list(graph.nodes):
        if node.op not in SOFTMAX_OPS or not is_default_domain(node) or node_index(graph, node) is None:
            continue
        match = _match(node, opset, output_names)
        if match is None:
            continue
        if isinstance(match, Declined):
            declined.append(match)
        elif match.needs_upgrade:
            pending.append(match)
        else:
            _apply(graph, match, output_names)
            folded += 1
    return folded, pending, declined


def _match(softmax: gs.Node, opset: int, output_names: set[str]) -> _Fold | Declined | None:
    """The fold at ``softmax``, a Declined near miss, or None when no Transpose is adjacent."""
    site = node_site(softmax)
    wrapper = _match_flatten_wrapper(softmax, output_names)
    if wrapper is not None:
        x, out, inner, flatten_axis = wrapper
    else:
        x, out, inner, flatten_axis = softmax.inputs[0], softmax.outputs[0], [softmax], None
    first = producer(x)
    first = first if first is not None and first.op == "Transpose" and is_default_domain(first) else None
    consumers = list(out.outputs)
    last = consumers[0] if len(consumers) == 1 and consumers[0].op == "Transpose" else None
    last = last if last is not None and is_default_domain(last) else None
    if first is None and last is None:
        return None
    if first is None:
        return Declined(site, f"output goes to Transpose '{last.name}' but input '{x.name}' is not a Transpose output")
    if last is None:
        if out.name in output_names:
            return Declined(
                site, f"input comes from Transpose '{first.name}' but output '{out.name}' is a graph output"
            )
        ops = ", ".join(sorted({c.op for c in consumers})) or "nothing"
        return Declined(
            site,
            f"input comes from Transpose '{first.name}' but output '{out.name}' has {len(consumers)} consumer(s) "
            f"({ops}), not exactly one Transpose",
        )
    if out.name in output_names:
        return Declined(site, f"output '{out.name}' is a graph output; folding would remove it")
    p = _perm(first)
    if p is None:
        return Declined(site, f"Transpose '{first.name}' has no perm and the rank of its input is unknown")
    rank = len(p)
    q = _perm(last, rank)
    if q is None or len(q) != rank or any(p[q[i]] != i for i in range(rank)):
        return Declined(site, f"Transpose perms {p} and {q} do not cancel (the second is not the inverse of the first)")
    if flatten_axis is not None:
        start = flatten_axis + rank if flatten_axis < 0 else flatten_axis
        if not 0 <= start < rank:
            return Declined(
                site, f"Flatten axis {flatten_axis} does not leave a non-empty trailing block of rank {rank}"
            )
        covered = range(start, rank)
        kind = f"Flatten(axis={flatten_axis}) -> {softmax.op}"
    else:
        axis = softmax.attrs.get("axis", 1 if opset < SINGLE_AXIS_OPSET else -1)
        if not -rank <= axis < rank:
            return Declined(site, f"{softmax.op} axis {axis} is out of range for rank {rank}")
        axis = axis + rank if axis < 0 else axis
        covered = range(axis, rank) if opset < SINGLE_AXIS_OPSET else range(axis, axis + 1)
        kind = f"{softmax.op}(axis={axis}) at opset {opset}"
    axes = sorted(p[c] for c in covered)
    if len(axes) == 1:
        j = axes[0]
        needs_upgrade = opset < SINGLE_AXIS_OPSET and j != rank - 1
        return _Fold(site, softmax, first, last, inner, j, needs_upgrade)
    if opset < SINGLE_AXIS_OPSET and axes == list(range(axes[0], rank)):
        return _Fold(site, softmax, first, last, inner, axes[0], False)
    where = "before opset 13 only a trailing range is" if opset < SINGLE_AXIS_OPSET else "from opset 13 no"
    return Declined(
        site,
        f"{kind} normalizes jointly over original axes {axes} of rank {rank}; {where} a single Softmax",
    )


def _match_flatten_wrapper(softmax: gs.Node, output_names: set[str]):
    """(x, out, inner nodes, flatten axis) for Flatten(x) -> Softmax -> Reshape(., Shape(x)), else None."""
    flatten = producer(softmax.inputs[0])
    if flatten is None or flatten.op != "Flatten" or not is_default_domain(flatten):
        return None
    if softmax.attrs.get("axis", 1) not in (1, -1):  # a Flatten output is 2-D; only its last axis counts
        return None
    flat, soft_out = softmax.inputs[0], softmax.outputs[0]
    if len(flat.outputs) != 1 or len(soft_out.outputs) != 1 or {flat.name, soft_out.name} & output_names:
        return None
    reshape = soft_out.outputs[0]
    if reshape.op != "Reshape" or not is_default_domain(reshape) or len(reshape.inputs) < 2:
        return None
    x = flatten.inputs[0]
    shape_node = producer(reshape.inputs[1])
    restores = (
        shape_node is not None
        and shape_node.op == "Shape"
        and shape_node.inputs[0] is x
        and shape_node.attrs.get("start", 0) == 0
        and "end" not in shape_node.attrs
    )
    if not restores:
        target = reshape.inputs[1]
        static = x.shape is not None and all(isinstance(d, int) and d > 0 for d in x.shape)
        restores = isinstance(target, gs.Constant) and static and [int(v) for v in target.values] == list(x.shape)
        shape_node = None
    if not restores:
        return None
    inner = [reshape, softmax, flatten] + ([shape_node] if shape_node is not None else [])
    return x, reshape.outputs[0], inner, flatten.attrs.get("axis", 1)


def _apply(graph: gs.Graph, fold: _Fold, output_names: set[str]) -> None:
    """Replace the matched chain by one Softmax writing the last Transpose's output tensor."""
    x, y = fold.first.inputs[0], fold.last.outputs[0]
    position = node_index(graph, fold.last)
    fold.last.inputs.clear()
    fold.last.outputs.clear()
    graph.nodes[position] = gs.Node(
        op=fold.softmax.op, name=fold.softmax.name, attrs={"axis": fold.axis}, inputs=[x], outputs=[y]
    )
    for node in [*fold.inner, fold.first]:
        unused = all(not t.outputs and t.name not in output_names for t in node.outputs)
        if unused:
            remove_nodes(graph, [node])


def _perm(node: gs.Node, rank: int | None = None) -> list[int] | None:
    """A Transpose's perm; without the attribute it reverses the axes (needs the rank)."""
    perm = node.attrs.get("perm")
    if perm is not None:
        return [int(v) for v in perm]
    if rank is None:
        shape = node.inputs[0].shape
        rank = len(shape) if shape is not None else None
    return None if rank is None else list(range(rank - 1, -1, -1))
