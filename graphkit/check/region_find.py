"""Finding the region a pass rewrote: the nodes that differ between the model before (A) and after (B).

:func:`find_region` uses :func:`graphkit.diff.model_diff.diff_models` to split B's nodes into
*unchanged* ones (matched with an A node, same op, attributes and inputs, same constant
contents) and the rest. An unchanged node computes the same function as its partner, so B equals
A as soon as every tensor an unchanged node or a graph output reads equals its A counterpart.
The tensors where that is not already true by construction are the region's *outputs*.

Each side's region is the backward slice from its outputs, stopping at *boundary inputs*: float
tensors made by unchanged nodes, or graph inputs. Initializers and constant-only producers go
inside the slice; an integer or bool tensor made by an unchanged node (a shape chain) pulls its
producer into the slice too, so only float tensors are fed random data.
:func:`schema_changed_regions` gives the one-node regions of unchanged nodes whose schema
version differs between two default opsets. :class:`RegionUnavailable` says why no region can
be found. Checking a region is :mod:`graphkit.check.region`; extracting one,
:mod:`graphkit.check.region_extract`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from graphkit.diff.matching import tensor_hash
from graphkit.diff.model_diff import diff_models
from graphkit.diff.records import ModelDiff
from graphkit.ir.model_io import default_opset
from graphkit.ir.shapes import RANDOM_OPS, ValueType, infer_value_types
from graphkit.util.errors import PassError

DEFAULT_MAX_FRACTION = 0.5


class RegionUnavailable(Exception):
    """The region check cannot decide this pass; the message says why (validate end to end)."""


class RegionOutOfScope(RegionUnavailable):
    """The region is not of the kind the caller checks on regions (``check_region``'s ``scope``)."""


class NothingToCompare(RegionUnavailable):
    """Every tensor an unchanged node or a graph output reads is equal by construction before and
    after the pass (outputs of unchanged node pairs, the same graph inputs, initializers of equal
    value hash): the graph inputs and outputs and the opsets being the same, the two graphs compute
    the same outputs; the rewritten nodes, if any, are dead."""


@dataclass
class Side:
    """One side's region: node indices (topological order), boundary inputs, outputs."""

    model: onnx.ModelProto
    nodes: list[int]
    inputs: list[str]
    outputs: list[str]


@dataclass
class Region:
    """The rewritten region of a pass, on both sides.

    ``outputs`` pairs each A output tensor with its B counterpart; ``inputs`` maps every boundary
    input by its B name to its A name (an input may feed only one side).
    """

    a: Side
    b: Side
    outputs: list[tuple[str, str]]
    inputs: dict[str, str]
    total_nodes_b: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.a.nodes)} node(s) before, {len(self.b.nodes)} after, "
            f"{len(self.inputs)} boundary input(s), {len(self.outputs)} output(s)"
        )


def find_region(
    a: onnx.ModelProto,
    b: onnx.ModelProto,
    diff: ModelDiff | None = None,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    types_a: Mapping[str, ValueType] | None = None,
    types_b: Mapping[str, ValueType] | None = None,
    allow_opset_change: bool = False,
    hashes: tuple[Mapping[str, str], Mapping[str, str]] | None = None,
) -> Region:
    """The region a pass rewrote (see the module docstring); raises RegionUnavailable.

    ``types_a``/``types_b`` are inferred tensor types of the two models (inferred when None).
    An opset change raises unless ``allow_opset_change`` (the caller then checks every unchanged
    node whose schema version changed, see :func:`schema_changed_regions`). ``hashes`` are the
    two models' initializer value hashes by name when the caller has them (else each weight is
    hashed here).
    """
    diff = diff if diff is not None else diff_models(a, b)
    if diff.opsets and not (allow_opset_change and set(diff.opsets) == {"ai.onnx"}):
        changes = ", ".join(f"{d or 'ai.onnx'} {c.before}->{c.after}" for d, c in diff.opsets.items())
        raise RegionUnavailable(f"opset changed ({changes}): unchanged nodes may change meaning")
    if not diff.inputs.is_empty():
        raise RegionUnavailable("graph inputs changed")
    if diff.outputs.added or diff.outputs.removed or not all(_refines(c) for c in diff.outputs.changed):
        raise RegionUnavailable("graph outputs changed (beyond filling in open dims)")
    types_a = types_a if types_a is not None else region_types(a)
    types_b = types_b if types_b is not None else region_types(b)
    unchanged = _unchanged_pairs(a, b, diff)  # B index -> A index
    partner_of_a = {ia: ib for ib, ia in unchanged.items()}
    nodes_a, nodes_b = list(a.graph.node), list(b.graph.node)
    prod_a, prod_b = _producers(nodes_a), _producers(nodes_b)
    inits_a, inits_b = hashes if hashes is not None else (_initializer_hashes(a), _initializer_hashes(b))
    inputs_a, inputs_b = _graph_input_names(a), _graph_input_names(b)

    def natural(ta: str, tb: str) -> bool:
        """True when (ta, tb) are equal by construction (outputs of an unchanged pair, same input...)."""
        if tb in prod_b:
            ib, k = prod_b[tb]
            ia = unchanged.get(ib)
            return ia is not None and k < len(nodes_a[ia].output) and nodes_a[ia].output[k] == ta
        if tb in inputs_b:
            return ta == tb and ta in inputs_a
        if tb in inits_b:
            return ta in inits_a and inits_a[ta] == inits_b[tb]
        return False

    pairs: list[tuple[str, str]] = []
    for ib, ia in unchanged.items():
        for ta, tb in zip(nodes_a[ia].input, nodes_b[ib].input):
            if (ta or tb) and not natural(ta, tb):
                pairs.append((ta, tb))
    for out in b.graph.output:
        if not natural(out.name, out.name):
            pairs.append((out.name, out.name))
    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        raise NothingToCompare("no tensor read by an unchanged node or a graph output differs: nothing to compare")
    for ta, tb in pairs:
        if not ta or not tb:
            raise RegionUnavailable("an optional input was added or removed on an unchanged node")

    const_a = _constant_tensors(nodes_a, inits_a)
    const_b = _constant_tensors(nodes_b, inits_b)
    slice_a, leaves_a = _slice(nodes_a, [ta for ta, _ in pairs], prod_a, set(partner_of_a), const_a, types_a, inputs_a)
    slice_b, leaves_b = _slice(nodes_b, [tb for _, tb in pairs], prod_b, set(unchanged), const_b, types_b, inputs_b)

    limit = max_fraction * len(nodes_b)
    if len(slice_b) > limit or len(slice_a) > max_fraction * len(nodes_a):
        raise RegionUnavailable(
            f"region too large ({len(slice_a)} node(s) before, {len(slice_b)} after; "
            f"limit {max_fraction:.0%} of the graph's nodes)"
        )

    def counterpart_in_a(tb: str) -> str | None:
        if tb in inputs_b:
            return tb if tb in inputs_a else None
        ib, k = prod_b[tb]
        ia = unchanged.get(ib)
        return nodes_a[ia].output[k] if ia is not None and k < len(nodes_a[ia].output) else None

    def counterpart_in_b(ta: str) -> str | None:
        if ta in inputs_a:
            return ta if ta in inputs_b else None
        ia, k = prod_a[ta]
        ib = partner_of_a.get(ia)
        return nodes_b[ib].output[k] if ib is not None and k < len(nodes_b[ib].output) else None

    boundary: dict[str, str] = {}
    for tb in leaves_b:
        ta = counterpart_in_a(tb)
        if ta is None:
            raise RegionUnavailable(f"boundary input '{tb}' has no counterpart before the pass")
        boundary[tb] = ta
    for ta in leaves_a:
        tb = counterpart_in_b(ta)
        if tb is None:
            raise RegionUnavailable(f"boundary input '{ta}' (before the pass) has no counterpart after it")
        if boundary.setdefault(tb, ta) != ta:
            raise RegionUnavailable(f"boundary input '{tb}' corresponds to two tensors before the pass")
    for tb, ta in boundary.items():
        type_a, type_b = types_a.get(ta), types_b.get(tb)
        if type_a is None or type_b is None or type_a.elem_type != type_b.elem_type:
            raise RegionUnavailable(f"boundary input '{tb}': element type unknown or different on the two sides")
        if not _is_float(type_b.elem_type):
            raise RegionUnavailable(f"boundary input '{tb}' is not a float tensor (random data would be meaningless)")

    side_a = Side(a, slice_a, sorted(leaves_a), list(dict.fromkeys(ta for ta, _ in pairs)))
    side_b = Side(b, slice_b, sorted(leaves_b), list(dict.fromkeys(tb for _, tb in pairs)))
    return Region(side_a, side_b, pairs, boundary, len(nodes_b))


def _refines(change) -> bool:
    """True when an output change only fills in dims that were open (symbolic or unknown)."""
    before, after = change.before.shape, change.after.shape
    if set(change.fields) != {"shape"} or before is None or after is None or len(before) != len(after):
        return False
    return all(not isinstance(old, int) or old == new for old, new in zip(before, after))


def _unchanged_pairs(a: onnx.ModelProto, b: onnx.ModelProto, diff: ModelDiff) -> dict[int, int]:
    """Matched node pairs that compute the same function: B index -> A index."""
    changed = {(c.before.index, c.after.index) for c in diff.nodes_changed if not c.renamed_only}
    changed_inits = {c.before.name for c in diff.initializers_changed if c.before.name == c.after.name}
    pairs = {}
    for ia, ib, _ in diff.node_pairs:
        if (ia, ib) in changed:
            continue
        node_a, node_b = a.graph.node[ia], b.graph.node[ib]
        if any(t in changed_inits for t in (*node_a.input, *node_b.input)):
            continue  # same name, new content
        if _has_subgraph(node_a) or _has_subgraph(node_b):
            continue  # outer-scope reads are not slot inputs: treat as rewritten
        pairs[ib] = ia
    return pairs


def _slice(nodes, outputs, producers, unchanged, constants, types, graph_inputs) -> tuple[list[int], set[str]]:
    """Backward slice from ``outputs``: (node indices in order, boundary input names)."""
    chosen: set[int] = set()
    leaves: set[str] = set()
    stack = list(outputs)
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if not tensor or tensor in seen:
            continue
        seen.add(tensor)
        if tensor in graph_inputs:
            leaves.add(tensor)
            continue
        if tensor not in producers:
            continue  # an initializer
        index, _ = producers[tensor]
        vtype = types.get(tensor)
        is_float = vtype is not None and _is_float(vtype.elem_type)
        if index in unchanged and tensor not in constants and is_float:
            leaves.add(tensor)
            continue
        if index in unchanged and tensor not in constants and vtype is None:
            raise RegionUnavailable(f"the type of boundary tensor '{tensor}' is unknown")
        if _has_subgraph(nodes[index]):
            raise RegionUnavailable(f"node '{nodes[index].name or nodes[index].op_type}' has subgraphs (control flow)")
        chosen.add(index)
        stack.extend(nodes[index].input)
    return sorted(chosen), leaves


def _constant_tensors(nodes: Sequence[onnx.NodeProto], inits: Mapping[str, str]) -> set[str]:
    """Initializers and outputs of nodes that depend on nothing but constants."""
    constants = set(inits)
    for node in nodes:
        inputs = [t for t in node.input if t]
        if node.op_type in RANDOM_OPS or _has_subgraph(node):
            continue
        if (inputs and all(t in constants for t in inputs)) or (not inputs and node.op_type == "Constant"):
            constants.update(t for t in node.output if t)
    return constants


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for attr in node.attribute)


def _producers(nodes: Sequence[onnx.NodeProto]) -> dict[str, tuple[int, int]]:
    return {t: (i, k) for i, node in enumerate(nodes) for k, t in enumerate(node.output) if t}


def _initializer_hashes(model: onnx.ModelProto) -> dict[str, str]:
    return {t.name: tensor_hash(t) for t in model.graph.initializer}


def _graph_input_names(model: onnx.ModelProto) -> set[str]:
    inits = {t.name for t in model.graph.initializer}
    return {v.name for v in model.graph.input if v.name not in inits}


def _is_float(elem_type: int) -> bool:
    return elem_type in (
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
    )


def region_types(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, ValueType]:
    """Element types and dims of every tensor, with graph inputs fixed to ``input_shapes``."""
    try:
        return infer_value_types(model, keep_value_info=False, input_shapes=input_shapes)
    except PassError as exc:
        raise RegionUnavailable(str(exc)) from exc


def schema_changed_regions(a, b, diff: ModelDiff, per_case, known: Mapping[str, str]) -> list[tuple[str, Region]]:
    """One-node regions for the unchanged nodes whose schema version differs between the default
    opsets of ``a`` and ``b``: ``(description, region)``, one per distinct signature (op,
    attributes, constant inputs, input element types and ranks), the node of that signature
    with the fewest input elements, at its real shapes (a schema's meaning depends on its
    attributes, inputs' types and ranks, not on the sizes). Integer inputs made by other nodes
    pull their producers in (as in a region slice); the boundary is float tensors only, each an
    unchanged node's output, a graph input or a rewritten region's output (``known``: B -> A)."""
    version_a, version_b = default_opset(a) or 1, default_opset(b) or 1
    nodes_a, nodes_b = list(a.graph.node), list(b.graph.node)
    unchanged = _unchanged_pairs(a, b, diff)
    prod_a, prod_b = _producers(nodes_a), _producers(nodes_b)
    inits_a, inits_b = _initializer_hashes(a), _initializer_hashes(b)
    const_a, const_b = _constant_tensors(nodes_a, inits_a), _constant_tensors(nodes_b, inits_b)
    inputs_a, inputs_b = _graph_input_names(a), _graph_input_names(b)
    types_a, types_b = per_case[0][2], per_case[0][3]
    chosen: dict[tuple, tuple[float, int, int]] = {}  # signature -> (input elements, ib, ia)
    for ib, ia in sorted(unchanged.items()):
        node_a, node_b = nodes_a[ia], nodes_b[ib]
        if node_a.domain not in ("", "ai.onnx") or node_a.op_type == "Constant":
            continue
        if _since_version(node_a.op_type, version_a) == _since_version(node_b.op_type, version_b):
            continue
        inputs = [types_a.get(t) for t in node_a.input]
        signature = (
            node_a.op_type,
            tuple(attr.SerializeToString(deterministic=True) for attr in node_a.attribute),
            tuple(inits_a.get(t, "") for t in node_a.input),
            tuple((v.elem_type, None if v.dims is None else len(v.dims)) if v else None for v in inputs),
        )
        size = sum(_elements(v) for v in inputs)
        if signature not in chosen or size < chosen[signature][0]:
            chosen[signature] = (size, ib, ia)
    regions: list[tuple[str, Region]] = []
    for _, ib, ia in sorted(chosen.values(), key=lambda item: item[1]):
        node_a, node_b = nodes_a[ia], nodes_b[ib]
        others_a, others_b = _AllBut(ia), _AllBut(ib)
        outputs = [(ta, tb) for ta, tb in zip(node_a.output, node_b.output) if ta and tb]
        slice_a, leaves_a = _slice(nodes_a, [ta for ta, _ in outputs], prod_a, others_a, const_a, types_a, inputs_a)
        slice_b, leaves_b = _slice(nodes_b, [tb for _, tb in outputs], prod_b, others_b, const_b, types_b, inputs_b)
        boundary: dict[str, str] = {}
        for tb in leaves_b:
            ta = known.get(tb) or _counterpart(tb, prod_b, nodes_a, unchanged, inputs_a, inputs_b)
            if ta is None or ta not in leaves_a:
                raise RegionUnavailable(f"opset changed: input '{tb}' of node '{node_b.name}' has no counterpart")
            boundary[tb] = ta
        for tb in boundary:
            vtype = types_b.get(tb)
            if vtype is None or not _is_float(vtype.elem_type):
                raise RegionUnavailable(
                    f"opset changed: node '{node_b.name or node_b.op_type}' reads the non-float tensor '{tb}' "
                    "(random data would be meaningless)"
                )
        side_a = Side(a, slice_a, sorted(leaves_a), [ta for ta, _ in outputs])
        side_b = Side(b, slice_b, sorted(leaves_b), [tb for _, tb in outputs])
        name = f"{node_b.op_type} '{node_b.name}' (v{_since_version(node_a.op_type, version_a)}->"
        name += f"v{_since_version(node_b.op_type, version_b)})"
        regions.append((name, Region(side_a, side_b, outputs, boundary, len(nodes_b))))
    return regions


class _AllBut:
    """Every node index but one (the 'unchanged' set of a one-node slice)."""

    def __init__(self, index: int):
        self.index = index

    def __contains__(self, other: object) -> bool:
        return other != self.index


def _elements(vtype: ValueType | None) -> float:
    if vtype is None or vtype.dims is None or not all(isinstance(d, int) for d in vtype.dims):
        return float("inf")
    return float(np.prod(vtype.dims, dtype=np.float64))


def _counterpart(tb, prod_b, nodes_a, unchanged, inputs_a, inputs_b) -> str | None:
    if tb in inputs_b:
        return tb if tb in inputs_a else None
    ib, k = prod_b[tb]
    ia = unchanged.get(ib)
    return nodes_a[ia].output[k] if ia is not None and k < len(nodes_a[ia].output) else None


def _since_version(op_type: str, opset: int) -> int:
    """The version of ``op_type``'s schema in effect at ``opset`` (0 when unknown)."""
    try:
        return onnx.defs.get_schema(op_type, opset, "").since_version
    except onnx.defs.SchemaError:
        return 0
