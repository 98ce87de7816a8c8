"""Region validation: compare only the part of the graph a pass rewrote, on random boundary data.

Three modules: finding the region (:mod:`graphkit.check.region_find`), extracting and running
each side (:mod:`graphkit.check.region_extract`), and checking it (this module).

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
prove anything, :class:`RegionUnavailable` says why (a non-default opset change, graph input or
output change, nothing to compare, boundary mismatch, integer graph input at the boundary, control
flow, unknown shapes, region too large, extraction failure); the caller then validates end to
end instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from graphkit.check.compare import Comparison, compare_array, not_compared
from graphkit.check.region_extract import RegionRunFailed, SideRunner
from graphkit.check.region_find import (
    DEFAULT_MAX_FRACTION,
    NothingToCompare,
    Region,
    RegionOutOfScope,
    RegionUnavailable,
    Side,
    find_region,
    region_types,
    schema_changed_regions,
)
from graphkit.diff.model_diff import diff_models
from graphkit.diff.records import ModelDiff
from graphkit.ir.shapes import symbolic_value_types
from graphkit.runtime.feeds import seeded_array
from graphkit.runtime.ort import ValidationRuntime
from graphkit.util.errors import InputError, one_line
from graphkit.util.tolerance import Tolerance

__all__ = ["RegionCheck", "RegionUnavailable", "check_region"]  # RegionUnavailable: what check_region raises


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


def check_region(
    a: onnx.ModelProto,
    b: onnx.ModelProto,
    cases: Sequence[tuple[str, Mapping[str, Sequence[int]]]],
    tolerance: Tolerance,
    seed: int = 0,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    diff: ModelDiff | None = None,
    runtime: ValidationRuntime | None = None,
    scope: Callable[[Region, Mapping, Mapping], str] | None = None,
    hashes: tuple[Mapping[str, str], Mapping[str, str]] | None = None,
) -> RegionCheck:
    """Compare the region of ``a`` -> ``b`` on seeded random boundary data, once per case.

    ``cases`` are (label, graph input shapes) pairs, e.g. the golden cases' input shapes: the
    boundary shapes come from shape inference with those input shapes. A change of the default
    opset alone does not stop the check: besides the rewritten region, every unchanged node
    whose schema version differs between the two opsets is checked as its own one-node region
    at the real shapes (one check per distinct op, attributes, constants and shapes), so an op
    that changed meaning is caught. Raises RegionUnavailable when the region check cannot decide
    (the caller then validates end to end). ``scope`` (region, types before, types after ->
    reason or '') restricts the check to the regions it accepts: RegionOutOfScope otherwise,
    before anything runs (e.g. :func:`graphkit.check.region_scope.not_shape_edit`). ``diff`` and
    ``hashes`` (initializer value hashes of ``a`` and ``b`` by name) save hashing every weight again
    when the caller has them.
    """
    start = time.perf_counter()
    if not cases:
        raise RegionUnavailable("no case to check the region on")
    runtime = runtime or ValidationRuntime()
    diff = diff if diff is not None else diff_models(a, b)
    opset_change = bool(diff.opsets)
    if set(diff.opsets) - {"ai.onnx"} or not diff.inputs.is_empty() or diff.outputs.added or diff.outputs.removed:
        find_region(a, b, diff, max_fraction, {}, {}, allow_opset_change=True)  # raises with the reason
    per_case = [(label, shapes, region_types(a, shapes), region_types(b, shapes)) for label, shapes in cases]
    types_a, types_b = per_case[0][2], per_case[0][3]
    try:
        region = find_region(a, b, diff, max_fraction, types_a, types_b, allow_opset_change=True, hashes=hashes)
    except RegionUnavailable as exc:
        if not (opset_change and isinstance(exc, NothingToCompare)):
            raise
        region = Region(Side(a, [], [], []), Side(b, [], [], []), [], {}, len(b.graph.node))  # only the opset moved
    if scope is not None:
        if opset_change:
            raise RegionOutOfScope("the opset changed")
        reason = scope(region, types_a, types_b)
        if reason:
            raise RegionOutOfScope(reason)
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
    runner_a = SideRunner(region.a, per_case[0][2], runtime)
    runner_b = SideRunner(region.b, per_case[0][3], runtime)
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
            try:
                data = seeded_array(rng, vtype.dims, dtype, name=tb)
            except InputError as exc:
                raise RegionUnavailable(f"case {label}: boundary {one_line(exc)}") from exc
            feeds_b[tb] = feeds_a[ta] = data
        try:
            want = runner_a.run(feeds_a)
        except RegionRunFailed as exc:
            raise RegionUnavailable(f"case {label}: the region before the pass did not run: {exc}") from exc
        absent = [ta for ta, _ in region.outputs if ta not in want]
        if absent:
            raise RegionUnavailable(f"case {label}: the region before the pass does not produce '{absent[0]}'")
        try:
            got = runner_b.run(feeds_b)
        except RegionRunFailed as exc:  # the original runs on this data, the rewrite does not: a failure
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
