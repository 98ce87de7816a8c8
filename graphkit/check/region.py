"""Region validation: compare only the part of the graph a pass rewrote, on random boundary data.

Given the model before a pass (A) and after it (B), :func:`find_region` uses
:func:`graphkit.diff.model_diff.diff_models` to split B's nodes into *unchanged* ones (matched with an A
node, same op, attributes and inputs, same constant contents) and the rest. An unchanged node
computes the same function as its partner, so B equals A as soon as every tensor an unchanged
node or a graph output reads equals its A counterpart. The tensors where that is not already
true by construction are the region's *outputs* (A tensor, B tensor pairs, taken slot by slot
from the unchanged consumers and from the graph outputs).

Each side's region is the backward slice from its outputs, stopping at *boundary inputs*: float
tensors made by unchanged nodes, or graph inputs. Initializers and constant-only producers go
inside the slice; an integer or bool tensor made by an unchanged node (a shape chain) pulls its
producer into the slice too, so only float tensors are fed random data. Both slices are
extracted as standalone models (each keeps its own opset), fed the same seeded random boundary
data and compared (:func:`check_region`). When the default opset changed, every unchanged node
whose schema version differs between the two opsets is also checked as its own one-node region
at the real shapes (:func:`schema_changed_regions`): an op that changed meaning is caught there,
and the final end-to-end check stays the backstop.

A graph output whose declared dims were only filled in (symbolic -> static) does not stop the
region check (strict shape inference in Verify checks declared shapes). When the region cannot
prove anything, :class:`RegionUnavailable` says why (a non-default opset change, graph input or output change, nothing to compare, boundary mismatch, integer graph input at the boundary, control
flow, unknown shapes, region too large, extraction failure); the caller then validates end to
end instead.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.check.compare import Comparison, Tolerance, compare_array, not_compared
from graphkit.check.golden import ort_error_text
from graphkit.diff.model_diff import ModelDiff, diff_models, tensor_hash
from graphkit.ir.shapes import RANDOM_OPS, ValueType, infer_value_types, symbolic_value_types
from graphkit.runtime.ort import ValidationRuntime, create_session, run_session
from graphkit.util.errors import PassError, one_line

DEFAULT_MAX_FRACTION = 0.5


class RegionUnavailable(Exception):
    """The region check cannot decide this pass; the message says why (validate end to end)."""


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


@dataclass
class RegionCheck:
    """The result of comparing a region on random boundary data, per case (batch size)."""

    region: Region
    cases: list[tuple[str, Comparison]] = field(default_factory=list)
    seconds: float = 0.0
    schema_nodes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for _, c in self.cases)

    def first_failure(self) -> str:
        """``case b1, region output 'x' (A: 'y'): MISMATCH ...`` for the first failing output, or ''."""
        a_of = {b: a for a, b in self.region.outputs}
        for label, comparison in self.cases:
            for out in comparison.failures():
                before = a_of.get(out.name, out.name)
                where = f"region output '{out.name}'" + (
                    f" (before the pass: '{before}')" if before != out.name else ""
                )
                return f"case {label}, {where}: {out.describe()[len(out.name) + 2 :]}"
        return ""

    def max_abs(self) -> dict[str, float]:
        worst: dict[str, float] = {}
        for _, comparison in self.cases:
            for out in comparison.outputs:
                worst[out.name] = max(worst.get(out.name, 0.0), out.max_abs)
        return worst


# ---------------------------------------------------------------------------------------------
# Finding the region


def find_region(
    a: onnx.ModelProto,
    b: onnx.ModelProto,
    diff: ModelDiff | None = None,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    types_a: Mapping[str, ValueType] | None = None,
    types_b: Mapping[str, ValueType] | None = None,
    allow_opset_change: bool = False,
) -> Region:
    """The region a pass rewrote (see the module docstring); raises RegionUnavailable.

    ``types_a``/``types_b`` are inferred tensor types of the two models (inferred when None).
    An opset change raises unless ``allow_opset_change`` (the caller then checks every unchanged
    node whose schema version changed, see :func:`schema_changed_regions`).
    """
    diff = diff if diff is not None else diff_models(a, b)
    if diff.opsets and not (allow_opset_change and set(diff.opsets) == {"ai.onnx"}):
        changes = ", ".join(f"{d or 'ai.onnx'} {c.before}->{c.after}" for d, c in diff.opsets.items())
        raise RegionUnavailable(f"opset changed ({changes}): unchanged nodes may change meaning")
    if not diff.inputs.is_empty():
        raise RegionUnavailable("graph inputs changed")
    if diff.outputs.added or diff.outputs.removed or not all(_refines(c) for c in diff.outputs.changed):
        raise RegionUnavailable("graph outputs changed (beyond filling in open dims)")
    types_a = types_a if types_a is not None else _types(a)
    types_b = types_b if types_b is not None else _types(b)
    unchanged = _unchanged_pairs(a, b, diff)  # B index -> A index
    partner_of_a = {ia: ib for ib, ia in unchanged.items()}
    nodes_a, nodes_b = list(a.graph.node), list(b.graph.node)
    prod_a, prod_b = _producers(nodes_a), _producers(nodes_b)
    inits_a, inits_b = _initializer_hashes(a), _initializer_hashes(b)
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
        raise RegionUnavailable("no tensor read by an unchanged node or a graph output differs: nothing to compare")
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


# ---------------------------------------------------------------------------------------------
# Shapes


def _types(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, ValueType]:
    """Element types and dims of every tensor, with graph inputs fixed to ``input_shapes``."""
    try:
        return infer_value_types(model, keep_value_info=False, input_shapes=input_shapes)
    except PassError as exc:
        raise RegionUnavailable(str(exc)) from exc


def _static_boundary_types(region: Region, a, b, types_a, types_b, input_shapes, label: str) -> None:
    """Fill in (in place) static shapes of boundary inputs that ONNX inference left open."""
    missing = [tb for tb in region.inputs if not (types_b.get(tb) and types_b[tb].is_static)]
    if not missing:
        return
    symbolic = symbolic_value_types(b, input_shapes)
    for tb in missing:
        if tb in symbolic and symbolic[tb].is_static:
            types_b[tb] = symbolic[tb]
            continue
        ta = region.inputs[tb]
        if ta not in types_a or not types_a[ta].is_static:
            types_a.update({k: v for k, v in symbolic_value_types(a, input_shapes).items() if v.is_static})
        if ta in types_a and types_a[ta].is_static:
            types_b[tb] = types_a[ta]
        else:
            raise RegionUnavailable(f"case {label}: the shape of boundary input '{tb}' is not known statically")


# ---------------------------------------------------------------------------------------------
# Extraction and comparison


def extract_side(side: Side, types: Mapping[str, ValueType]) -> onnx.ModelProto | None:
    """The side's region as a standalone model (None when it has no nodes: outputs are inputs).

    Inputs and outputs are declared with their element type and rank, every dim open, so one
    extracted model serves every case (batch size).
    """
    if not side.nodes:
        return None
    source = side.model
    nodes = [source.graph.node[i] for i in side.nodes]
    produced = {t for n in nodes for t in n.output if t}
    read = {t for n in nodes for t in n.input if t}
    inits = [t for t in source.graph.initializer if t.name in read and t.name not in produced]
    inputs = [t for t in side.inputs if t in read]
    outputs = [t for t in side.outputs if t in produced]
    model = onnx.ModelProto()
    model.ir_version = source.ir_version
    model.opset_import.extend(source.opset_import)
    model.functions.extend(source.functions)
    graph = model.graph
    graph.name = "region"
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    for name in inputs:
        graph.input.append(_any_shape(name, types[name]))
    for name in outputs:
        vtype = types.get(name)
        if vtype is None or not vtype.elem_type:
            raise RegionUnavailable(f"the type of region output '{name}' is unknown")
        graph.output.append(_any_shape(name, vtype))
    return model


def _any_shape(name: str, vtype: ValueType) -> onnx.ValueInfoProto:
    """A value info with the element type and rank of ``vtype`` and every dim left open."""
    dims = None if vtype.dims is None else [None] * len(vtype.dims)
    return onnx.helper.make_tensor_value_info(name, vtype.elem_type, dims)


class _RegionRunFailed(Exception):
    """An extracted region failed to run on the boundary data."""


class _SideRunner:
    """Runs one side's extracted region; outputs that are boundary inputs come from the feeds."""

    def __init__(self, side: Side, types: Mapping[str, ValueType], runtime: ValidationRuntime):
        self.side = side
        model = extract_side(side, types)
        try:
            options = {"threads": runtime.threads, "optimization": runtime.optimization}
            self.session = create_session(model, **options) if model is not None else None
        except Exception as exc:  # onnxruntime raises its own exception types
            reason = one_line(exc, 200)
            raise RegionUnavailable(f"onnxruntime cannot load the extracted region: {reason}") from exc
        self.inputs = [i.name for i in self.session.get_inputs()] if self.session else []
        wanted = set(side.outputs)
        self.initializers = {t.name: t for t in side.model.graph.initializer if t.name in wanted}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = {}
        if self.session is not None:
            try:
                results = run_session(self.session, {name: feeds[name] for name in self.inputs})
            except Exception as exc:  # InputError, or any onnxruntime failure while running
                raise _RegionRunFailed(ort_error_text(exc)) from exc
        for name in self.side.outputs:
            if name in results:
                continue
            if name in feeds:
                results[name] = feeds[name]
            elif name in self.initializers:
                results[name] = numpy_helper.to_array(self.initializers[name])
        return results


def check_region(
    a: onnx.ModelProto,
    b: onnx.ModelProto,
    cases: Sequence[tuple[str, Mapping[str, Sequence[int]]]],
    tolerance: Tolerance,
    seed: int = 0,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    diff: ModelDiff | None = None,
    runtime: ValidationRuntime | None = None,
) -> RegionCheck:
    """Compare the region of ``a`` -> ``b`` on seeded random boundary data, once per case.

    ``cases`` are (label, graph input shapes) pairs, e.g. the golden cases' input shapes: the
    boundary shapes come from shape inference with those input shapes. A change of the default
    opset alone does not stop the check: besides the rewritten region, every unchanged node
    whose schema version differs between the two opsets is checked as its own one-node region
    at the real shapes (one check per distinct op, attributes, constants and shapes), so an op
    that changed meaning is caught. Raises RegionUnavailable when the region check cannot decide
    (the caller then validates end to end).
    """
    start = time.perf_counter()
    if not cases:
        raise RegionUnavailable("no case to check the region on")
    runtime = runtime or ValidationRuntime()
    diff = diff if diff is not None else diff_models(a, b)
    opset_change = bool(diff.opsets)
    if set(diff.opsets) - {"ai.onnx"} or not diff.inputs.is_empty() or diff.outputs.added or diff.outputs.removed:
        find_region(a, b, diff, max_fraction, {}, {}, allow_opset_change=True)  # raises with the reason
    per_case = [(label, shapes, _types(a, shapes), _types(b, shapes)) for label, shapes in cases]
    types_a, types_b = per_case[0][2], per_case[0][3]
    try:
        region = find_region(a, b, diff, max_fraction, types_a, types_b, allow_opset_change=True)
    except RegionUnavailable as exc:
        if not (opset_change and "nothing to compare" in str(exc)):
            raise
        region = Region(Side(a, [], [], []), Side(b, [], [], []), [], {}, len(b.graph.node))  # only the opset moved
    check = RegionCheck(region)
    comparisons: dict[str, list] = {label: [] for label, _ in cases}
    _run_region(region, a, b, per_case, tolerance, seed, runtime, comparisons, "")
    if opset_change:
        known = {tb: ta for ta, tb in region.outputs}
        for name, node_region in schema_changed_regions(a, b, diff, per_case, known):
            check.schema_nodes.append(name)
            _run_region(node_region, a, b, per_case, tolerance, seed, runtime, comparisons, f"{name}: ")
    check.cases = [(label, Comparison(comparisons[label])) for label, _ in cases]
    check.seconds = time.perf_counter() - start
    return check


def _run_region(region, a, b, per_case, tolerance, seed, runtime, comparisons, prefix: str) -> None:
    """Run both sides of ``region`` on the same random boundary data for each case; the
    comparisons of its outputs (named ``prefix`` + B tensor) go into ``comparisons[label]``."""
    runner_a = _SideRunner(region.a, per_case[0][2], runtime)
    runner_b = _SideRunner(region.b, per_case[0][3], runtime)
    for index, (label, input_shapes, types_a, types_b) in enumerate(per_case):
        _static_boundary_types(region, a, b, types_a, types_b, input_shapes, label)
        rng = np.random.default_rng(seed + index)
        feeds_b, feeds_a = {}, {}
        for tb in sorted(region.inputs):
            ta = region.inputs[tb]
            vtype = types_b.get(tb)
            other = types_a.get(ta)
            if vtype is None or not vtype.is_static:
                raise RegionUnavailable(f"case {label}: the shape of boundary input '{tb}' is not known statically")
            if other is not None and other.is_static and other.dims != vtype.dims:
                raise RegionUnavailable(f"case {label}: boundary input '{tb}' has different shapes on the two sides")
            dtype = onnx.helper.tensor_dtype_to_np_dtype(vtype.elem_type)
            data = rng.standard_normal(vtype.dims, dtype=np.float32).astype(dtype, copy=False)
            feeds_b[tb] = feeds_a[ta] = data
        try:
            want = runner_a.run(feeds_a)
        except _RegionRunFailed as exc:
            raise RegionUnavailable(f"case {label}: the region before the pass did not run: {exc}") from exc
        absent = [ta for ta, _ in region.outputs if ta not in want]
        if absent:
            raise RegionUnavailable(f"case {label}: the region before the pass does not produce '{absent[0]}'")
        try:
            got = runner_b.run(feeds_b)
        except _RegionRunFailed as exc:  # the original runs on this data, the rewrite does not: a failure
            problem = f"the rewritten region failed to run where the original runs: {exc}"
            outputs = [not_compared(prefix + tb, np.shape(want[ta]), tolerance, problem) for ta, tb in region.outputs]
        else:
            outputs = [
                compare_array(prefix + tb, np.asarray(got[tb]), np.asarray(want[ta]), tolerance)
                if tb in got
                else not_compared(
                    prefix + tb, np.shape(want[ta]), tolerance, "the rewritten region does not produce it"
                )
                for ta, tb in region.outputs
            ]
        comparisons[label].extend(outputs)


def schema_changed_regions(a, b, diff: ModelDiff, per_case, known: Mapping[str, str]) -> list[tuple[str, Region]]:
    """One-node regions for the unchanged nodes whose schema version differs between the default
    opsets of ``a`` and ``b``: ``(description, region)``, one per distinct signature (op,
    attributes, constant inputs, input element types and ranks), the node of that signature
    with the fewest input elements, at its real shapes (a schema's meaning depends on its
    attributes, inputs' types and ranks, not on the sizes). Integer inputs made by other nodes
    pull their producers in (as in a region slice); the boundary is float tensors only, each an
    unchanged node's output, a graph input or a rewritten region's output (``known``: B -> A)."""
    version_a, version_b = _default_opset(a), _default_opset(b)
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


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _since_version(op_type: str, opset: int) -> int:
    """The version of ``op_type``'s schema in effect at ``opset`` (0 when unknown)."""
    try:
        return onnx.defs.get_schema(op_type, opset, "").since_version
    except onnx.defs.SchemaError:
        return 0
