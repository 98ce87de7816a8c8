"""fold-shapes: constant-fold shape computation and constant subgraphs.

The evaluation itself (constant nodes, shape vectors with symbolic dims) is
:mod:`graphkit.ir.shape_eval`; this module plans and applies the rewrites. Longer than 500 lines
because one folding round (``_FoldRound``) plans the Reshape/Expand/Resize/Concat-fill rewrites
against one shared state (constant values, partial shape vectors, readers of each tensor), and
splitting that state across modules would make each rewrite harder to follow.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.ir.external_data import tensor_array
from graphkit.ir.model_io import ONNX_DOMAINS, clone, default_opset, remove_initializers, subgraph_reads
from graphkit.ir.shape_eval import (
    NEVER_FOLD,
    Partial,
    Sym,
    as_partial,
    attr_value,
    const_list,
    constant_value,
    dims_in,
    evaluate_partial,
)
from graphkit.ir.shapes import (
    ValueType,
    apply_inferred_shapes,
    fresh_name,
    infer_value_types,
    output_refinements,
)
from graphkit.runtime.node_eval import evaluate_node
from graphkit.transform.pass_base import Declined, Pass, PassResult, option
from graphkit.transform.registry import register
from graphkit.util.errors import PassError, SpecError, one_line

EXACT_SCALE_MODES = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"}


@register("fold-shapes")
class FoldShapes(Pass):
    """Constant-fold shape computation and constant subgraphs given the declared input shapes.

    Rewrite: every node whose inputs are all constants (initializers, Constant nodes, or values
    folded before it) is evaluated with onnxruntime and replaced by an initializer under the same
    tensor name. ``Shape``/``Size`` of a tensor whose dims shape inference proves static fold the
    same way. Symbolic dims (e.g. the batch) are never baked: a shape vector that still holds a
    symbolic dim is tracked element by element through Shape, Gather, Slice, Concat, Unsqueeze,
    Squeeze, Cast and Identity, and its consumer is rewritten into a form that keeps the dim
    dynamic when that is provably the same:

    - ``Reshape(x, [.., s_i, ..])`` where ``s_i`` is axis i of ``x``: ``s_i`` -> 0 ("copy
      dim i"; needs ``allowzero`` = 0); one symbolic element that is not (e.g. ``batch*seq``)
      -> -1 when no other element is -1: the element count implies it, so this is exact; a -1
      or symbolic element where the output's inferred dim is static becomes that dim first
      (Swin's ``[Shape(h)[0], 16, -1]`` before a MatMul whose weight has 16 rows, seeded by
      :mod:`graphkit.ir.shape_seeds`, becomes ``[-1, 16, 16]``);
    - ``Expand(x, [.., s, ..])`` where ``s`` is the aligned axis of ``x``: ``s`` -> 1;
    - ``Resize(x, roi, _, sizes)`` (opset >= 11) -> ``Resize(x, roi, scales)`` with
      ``scales[i] = sizes[i] / dim_i(x)`` (1 for a symbolic dim copied from ``x``). Exact only
      when the float32 scale times the input dim is exactly the size (then every coordinate
      mode that reads the scale computes the same coordinates, and the output size
      ``floor(in * scale)`` equals ``sizes``); otherwise it declines.

    - ``Concat(.., ConstantOfShape(s, value=v), X, ..)`` on axis ``a`` (opset >= 11), where ``s``
      is static on axis ``a`` (extent ``k``) and every other element of ``s`` is provably the
      same dim of ``X`` (equal static dims, the same named dim, or a dim of a tensor that ``X``
      was only sliced from on axis ``a``) -> ``Pad(X, k before on axis a, constant v)``. A fill
      takes the next input to its right (padded before) or, at the end, the one to its left
      (padded after). Exact for every ``v`` and every value of ``X`` (inf and NaN included):
      Pad copies ``X`` and writes ``v``, nothing is computed. When one input is left the Pad
      takes the Concat's output name. The ``Shape``/``ConstantOfShape`` then die.

    Dead nodes and unused initializers are then removed, shape inference is rerun (stale
    ``value_info`` dropped), and rounds repeat until nothing changes. Graph inputs are never
    changed; output dims that are unknown (or named but proven static) are refined from
    inference (counted as ``output_dims_refined``), static output dims never change.

    Declines (reported per site): a folded tensor larger than both ``size_limit_bytes`` and the
    constant inputs it replaces (the producing node stays: folding never grows the model past
    the stated limit); a node onnxruntime cannot evaluate; a Resize whose scale is not exact or
    that uses ``axes``/``keep_aspect_ratio_policy``/``tf_crop_and_resize``; a Reshape with
    ``allowzero`` = 1; a symbolic element that is not a dim of the consumer's input; a Concat fill
    whose extent on the axis is symbolic, whose other dims are not provably the neighbour's,
    whose value differs from another fill padding the same input, that has no non-fill input to
    pad, below opset 11, or whose dtype Pad does not take at the model's opset. Custom
    domain nodes pass through untouched and block folding through them; If/Loop/Scan, random
    and sequence/optional ops are never folded; producers of graph outputs stay.
    """

    @dataclass
    class Options:
        size_limit_bytes: int = option(
            65536,
            doc="largest folded constant (bytes) to create when it is larger than the constants it replaces",
        )
        rewrite_resize: bool = option(True, doc="rewrite Resize 'sizes' computed from Shape into constant 'scales'")
        concat_fill_to_pad: bool = option(
            True, doc="rewrite Concat(ConstantOfShape(Shape(..)), X) into Pad(X) when the dims are provably equal"
        )
        max_rounds: int = option(8, doc="fold / re-infer rounds at most")
        pad_with_zero: bool = option(
            False,
            doc="a non-zero fill becomes Pad(X, 0) + Add(constant mask) instead of Pad(X, v) (ATC's Pad takes only 0)",
        )

        def __post_init__(self):
            if self.size_limit_bytes < 0:
                raise SpecError(f"fold-shapes option size_limit_bytes must be >= 0, got {self.size_limit_bytes}")
            if self.max_rounds < 1:
                raise SpecError(f"fold-shapes option max_rounds must be >= 1, got {self.max_rounds}")

    exact = True
    opset_range = (7, 10**6)
    changes_io = True  # only to refine unknown output dims; inputs and static dims never change

    def run(self, model: onnx.ModelProto) -> PassResult:
        work = model
        counts: Counter = Counter()
        declined: dict[tuple[str, str], Declined] = {}
        types = None  # the value types of ``work`` when the last round inferred them and changed nothing
        for _ in range(max(1, self.options.max_rounds)):
            round_ = _FoldRound(work, self.options)
            edits = round_.plan()
            # declines of the last round only: earlier ones may have been resolved by later rounds
            declined = {(item.site, item.reason): item for item in round_.declined}
            if not edits:
                types = getattr(round_, "types", None)
                break
            if work is model:
                work = clone(model)
            round_.apply(work)
            counts.update(round_.counts)
        try:
            refinable = output_refinements(work, types if types is not None else infer_value_types(work))
        except PassError:
            refinable = 0
        for node in work.graph.node:
            if node.op_type == "Shape" and node.domain in ONNX_DOMAINS:
                reason = (
                    "its value still depends on a symbolic dim that no consumer rewrite can keep dynamic; it "
                    "folds when that dim is made static (fix-input-shape) or when the value only feeds a Reshape, "
                    "Expand, Resize or Concat fill as a dim copied from the same tensor"
                )
                declined.setdefault((_site(node), reason), Declined(_site(node), reason))
        if work is model and refinable == 0:
            return PassResult(model, False, {}, list(declined.values()))
        if work is model:
            work = clone(model)
        try:
            counts["output_dims_refined"] += apply_inferred_shapes(work, strict=True)
        except PassError:  # the model was inconsistent before this pass: keep what inference can say
            counts["output_dims_refined"] += apply_inferred_shapes(work, strict=False)
        counts = {k: v for k, v in counts.items() if v}
        return PassResult(work, True, counts, list(declined.values()))


class _FoldRound:
    """One round: analyse ``model`` (read only), then apply the planned edits to a copy."""

    def __init__(self, model: onnx.ModelProto, options):
        self.model = model
        self.options = options
        self.opset = default_opset(model)
        self.declined: list[Declined] = []
        self.counts: Counter = Counter()
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.graph_inputs = {v.name for v in model.graph.input}
        self.graph_outputs = {v.name for v in model.graph.output}
        self.known: dict[str, np.ndarray] = {}
        self.partial: dict[str, Partial] = {}
        self.folded: set[int] = set()
        self.rewrites: dict[tuple[int, int], np.ndarray] = {}  # (node index, input slot) -> new constant
        self.resize_rewrites: dict[int, np.ndarray] = {}  # node index -> scales
        self.pad_rewrites: dict[int, _ConcatPads] = {}  # Concat node index -> fills absorbed by Pads
        self.materialize: dict[str, np.ndarray] = {}
        self.dead: set[int] = set()
        self.reuse: dict[str, str] = {}  # shape value -> an earlier value provably equal to it

    # --- analysis ------------------------------------------------------------------------------
    def value(self, name: str) -> np.ndarray | None:
        if name in self.known:
            return self.known[name]
        tensor = self.initializers.get(name)
        if tensor is not None and name not in self.graph_inputs_only():
            array = tensor_array(tensor)
            self.known[name] = array
            return array
        return None

    def graph_inputs_only(self) -> set[str]:
        # an initializer that is also a graph input can be overridden at run time: not constant
        return self.graph_inputs if self.model.ir_version >= 4 else set()

    def is_const(self, name: str) -> bool:
        return name in self.known or (name in self.initializers and name not in self.graph_inputs_only())

    def plan(self) -> bool:
        try:
            types = infer_value_types(self.model)
        except PassError as exc:
            self.declined.append(Declined("<model>", f"nothing folded: {exc}"))
            return False
        self.types = types
        nodes = self.model.graph.node
        self.producers = {name: index for index, node in enumerate(nodes) for name in node.output if name}
        for index, node in enumerate(nodes):
            if node.domain not in ONNX_DOMAINS:
                continue
            if node.op_type == "Constant":
                array = constant_value(node)
                if array is not None:
                    self.known[node.output[0]] = array
                continue
            if node.op_type in NEVER_FOLD or node.op_type.startswith("Sequence") or _has_subgraph(node):
                continue
            if any(o in self.graph_outputs for o in node.output):
                continue
            inputs = [i for i in node.input if i]
            if inputs and all(self.is_const(i) for i in inputs):
                self._fold_by_evaluation(index, node)
                continue
            self._track_partial(index, node, types)
        self._plan_consumer_rewrites(nodes, types)
        self._plan_value_reuse(nodes)
        self._plan_materialization(nodes)
        self._plan_dead_code(nodes)
        return bool(
            self.folded
            or self.rewrites
            or self.resize_rewrites
            or self.pad_rewrites
            or self.reuse
            or self.dead
            or self._unused_initializers()
        )

    def _plan_value_reuse(self, nodes) -> None:
        """Readers of a shape value equal element by element to an earlier one read the earlier one.

        Two tracked values with the same rank, dtype and elements (ints, the same named dim, the
        same axis of the same tensor, or copies of the same opaque element: each opaque value has
        its own key) are equal at run time, e.g.
        ``Gather(Shape(input_ids), 1)`` and ``Gather(Shape(hidden), 1)`` when both are ``seq``.
        """
        captured = set()
        for node in nodes:
            captured |= subgraph_reads(node)
        first: dict[tuple, str] = {}
        for index, node in enumerate(nodes):
            if index in self.folded or node.domain not in ONNX_DOMAINS or not node.output:
                continue
            name = node.output[0]
            value = self.partial.get(name)
            if value is None:
                continue
            key = (value.rank, value.dtype.str, tuple(e.key if isinstance(e, Sym) else int(e) for e in value.elems))
            if key not in first:
                first[key] = name
            elif name not in self.graph_outputs and name not in captured:
                self.reuse[name] = first[key]
        if self.reuse:
            self.counts["shape_values_reused"] += len(self.reuse)

    def _fold_by_evaluation(self, index: int, node: onnx.NodeProto) -> None:
        arrays = {i: self.value(i) for i in node.input if i}
        try:
            outputs = evaluate_node(node, arrays, self.model)
        except Exception as exc:  # noqa: BLE001 - any evaluation failure means: do not fold
            reason = f"onnxruntime cannot evaluate it: {one_line(exc, 160)}"
            self.declined.append(Declined(_site(node), reason))
            return
        for name, array in outputs.items():
            self.known[name] = array
        self.folded.add(index)

    def _track_partial(self, index: int, node: onnx.NodeProto, types: dict[str, ValueType]) -> None:
        result = evaluate_partial(node, self, types, self.opset)
        if result is None:
            return
        known = result.known()
        if known is not None:
            self.known[node.output[0]] = known
            self.folded.add(index)
        else:
            self.partial[node.output[0]] = result

    def _plan_consumer_rewrites(self, nodes, types: dict[str, ValueType]) -> None:
        for index, node in enumerate(nodes):
            if index in self.folded or node.domain not in ONNX_DOMAINS:
                continue
            if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in self.partial:
                self._rewrite_reshape(index, node, types)
            elif node.op_type == "Expand" and node.input[1] in self.partial:
                self._rewrite_expand(index, node, types)
            elif (
                node.op_type == "Resize"
                and self.options.rewrite_resize
                and self.opset >= 11
                and len(node.input) > 3
                and node.input[3] in self.partial
            ):
                self._rewrite_resize(index, node, types)
            elif node.op_type == "Concat" and self.options.concat_fill_to_pad:
                self._rewrite_concat_fills(index, node, nodes, types)

    def _rewrite_reshape(self, index: int, node: onnx.NodeProto, types) -> None:
        shape = self.partial[node.input[1]]
        data_dims = dims_in(types, node.input[0])
        if attr_value(node, "allowzero", 0) != 0:
            self.declined.append(Declined(_site(node), "allowzero=1: a 0 cannot stand for 'copy this dim'"))
            return
        if data_dims is None:
            self.declined.append(Declined(_site(node), "input rank unknown; cannot map symbolic dims to axes"))
            return
        new, unmatched = [], []
        for axis, elem in enumerate(shape.elems):
            if isinstance(elem, Sym):
                if axis < len(data_dims) and elem.matches(node.input[0], axis, data_dims[axis]):
                    new.append(0)
                    continue
                unmatched.append(axis)
                new.append(-1)
                continue
            new.append(int(elem))
        # an output dim inferred static is that element: Swin's [Shape(h)[0], 16, -1] whose -1 a
        # MatMul weight fixes to 16 becomes [-1, 16, 16]. Not on a graph output, whose declared
        # dims onnxruntime does not enforce (a wrong declaration would be baked in).
        declared = node.output[0] in {v.name for v in self.model.graph.output}
        out_dims = None if declared else dims_in(types, node.output[0])
        if out_dims is not None and len(out_dims) == len(new) and (len(unmatched) > 1 or new.count(-1) > 1):
            for axis, dim in enumerate(out_dims):
                if new[axis] == -1 and isinstance(dim, int) and dim > 0 and new.count(-1) > 1:
                    new[axis] = dim
                    if axis in unmatched:
                        unmatched.remove(axis)
        if len(unmatched) > 1 or (unmatched and new.count(-1) > 1):
            which = ", ".join(str(a) for a in unmatched)
            self.declined.append(
                Declined(
                    _site(node),
                    f"target elements {which} are symbolic and not the same axes of the input, and at most one "
                    "can become -1; the Shape computation stays (it folds when the exporter keeps those dims in "
                    "place, or when their input dims are made static, e.g. with fix-input-shape)",
                )
            )
            return
        self.rewrites[(index, 1)] = np.array(new, dtype=np.int64)
        self.counts["reshape_targets_rewritten"] += 1
        if unmatched:  # the one unknown element is implied by the element count: -1 is exact
            self.counts["reshape_symbolic_to_minus_one"] += 1

    def _rewrite_expand(self, index: int, node: onnx.NodeProto, types) -> None:
        shape = self.partial[node.input[1]]
        data_dims = dims_in(types, node.input[0])
        if data_dims is None:
            self.declined.append(Declined(_site(node), "input rank unknown; cannot align symbolic dims"))
            return
        new = []
        offset = len(data_dims) - len(shape.elems)
        for position, elem in enumerate(shape.elems):
            if isinstance(elem, Sym):
                axis = position + offset
                if 0 <= axis < len(data_dims) and elem.matches(node.input[0], axis, data_dims[axis]):
                    new.append(1)
                    continue
                self.declined.append(
                    Declined(
                        _site(node),
                        f"shape element {position} is symbolic and not the aligned axis of the input, so it cannot "
                        "become 1 (broadcast); the Shape computation stays (it folds when that input dim is static)",
                    )
                )
                return
            new.append(int(elem))
        self.rewrites[(index, 1)] = np.array(new, dtype=np.int64)
        self.counts["expand_shapes_rewritten"] += 1

    def _rewrite_resize(self, index: int, node: onnx.NodeProto, types) -> None:
        sizes = self.partial[node.input[3]]
        mode = attr_value(node, "coordinate_transformation_mode", b"half_pixel")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in EXACT_SCALE_MODES:
            self.declined.append(Declined(_site(node), f"coordinate mode {mode} reads roi; sizes kept"))
            return
        if attr_value(node, "axes", None) is not None:
            self.declined.append(Declined(_site(node), "Resize with 'axes' is not rewritten"))
            return
        policy = attr_value(node, "keep_aspect_ratio_policy", b"stretch")
        if (policy.decode() if isinstance(policy, bytes) else policy) != "stretch":
            self.declined.append(Declined(_site(node), "keep_aspect_ratio_policy is not 'stretch'"))
            return
        dims = dims_in(types, node.input[0])
        if dims is None or len(dims) != len(sizes.elems):
            self.declined.append(Declined(_site(node), "input rank unknown or different from len(sizes)"))
            return
        scales = []
        for axis, (size, dim) in enumerate(zip(sizes.elems, dims)):
            if isinstance(size, Sym):
                if size.matches(node.input[0], axis, dim):
                    scales.append(np.float32(1.0))
                    continue
                self.declined.append(Declined(_site(node), f"size {axis} is symbolic and not the input's dim"))
                return
            if not isinstance(dim, int) or dim <= 0:
                self.declined.append(Declined(_site(node), f"size {axis} is static but the input dim is {dim}"))
                return
            scale = np.float32(size) / np.float32(dim)
            if float(scale) * dim != size or int(np.float32(scale) * np.float32(dim)) != size:
                self.declined.append(
                    Declined(_site(node), f"scale {size}/{dim} is not exact in float32; sizes kept (not exact)")
                )
                return
            scales.append(scale)
        self.resize_rewrites[index] = np.array(scales, dtype=np.float32)
        self.counts["resize_sizes_to_scales"] += 1

    def _rewrite_concat_fills(self, index: int, node: onnx.NodeProto, nodes, types) -> None:
        fills = [
            slot
            for slot, name in enumerate(node.input)
            if name in self.producers
            and nodes[self.producers[name]].op_type == "ConstantOfShape"
            and nodes[self.producers[name]].domain in ONNX_DOMAINS
        ]
        if not fills:
            return
        site = _site(node)
        fill_slots = set(fills)
        real = [slot for slot in range(len(node.input)) if slot not in fill_slots]
        plan = _ConcatPads(axis=0, rank=0, dropped=fill_slots)
        reason = self._concat_fill_precheck(node, real, types, plan)
        if reason is not None:
            self.declined.append(Declined(site, reason))
            return
        for slot in fills:
            right = [r for r in real if r > slot]
            target, before = (right[0], True) if right else (max(r for r in real if r < slot), False)
            fill = nodes[self.producers[node.input[slot]]]
            reason = self._absorb_fill(fill, node.input[target], types, plan.pads.setdefault(target, {}), before, plan)
            if reason is not None:
                self.declined.append(Declined(site, f"input {slot} ({node.input[slot]}): {reason}; Concat kept"))
                return
        self.pad_rewrites[index] = plan
        self.counts["concat_fill_to_pad"] += len(fills)

    def _concat_fill_precheck(self, node: onnx.NodeProto, real: list[int], types, plan: _ConcatPads) -> str | None:
        """Why the fills of this Concat cannot become Pads (None: go on); fills in axis and rank."""
        if self.opset < 11:
            return "a ConstantOfShape fill input needs Pad with pads as an input (opset >= 11); kept"
        if not real:
            return "every input is a ConstantOfShape fill; nothing to pad"
        dims = dims_in(types, node.input[real[0]])
        if dims is None or not dims:
            return "rank of the non-fill input is unknown; fill kept"
        plan.rank = len(dims)
        axis = attr_value(node, "axis", 0)
        plan.axis = axis + plan.rank if axis < 0 else axis
        elem_type = types[node.input[real[0]]].elem_type
        type_name = f"tensor({onnx.TensorProto.DataType.Name(elem_type).lower()})"
        schema = onnx.defs.get_schema("Pad", self.opset)
        if type_name not in schema.type_constraints[0].allowed_type_strs:
            return f"Pad at opset {self.opset} does not take {type_name}; fill kept"
        plan.elem_type = elem_type
        return None

    def _absorb_fill(self, fill: onnx.NodeProto, target: str, types, pads: dict, before: bool, plan) -> str | None:
        """Add ``fill``'s extent to the pads of ``target``; the reason it cannot be, or None."""
        shape = as_partial(fill.input[0], self)
        dims = dims_in(types, target)
        if shape is None or shape.rank != 1:
            return "its shape vector is not tracked"
        if dims is None or len(dims) != len(shape.elems) or len(dims) != plan.rank:
            return f"its rank {len(shape.elems)} differs from the rank of {target}"
        value = _fill_value(fill)
        if onnx.helper.np_dtype_to_tensor_dtype(value.dtype) != plan.elem_type:
            return f"its value dtype {value.dtype} is not the Concat's"
        extent = shape.elems[plan.axis]
        if isinstance(extent, Sym):
            return f"its extent on axis {plan.axis} is symbolic"
        sliced = self._full_shape_of_slice(fill.input[0], target, plan.axis)
        for axis, (elem, dim) in enumerate(zip(shape.elems, dims)):
            if axis != plan.axis and not sliced and not self._same_dim(elem, target, axis, dim, plan.axis):
                return f"its dim {axis} ({_dim_text(elem)}) is not provably dim {axis} of {target} ({dim})"
        if "value" in pads and pads["value"].tobytes() != value.tobytes():
            return f"its value {value} differs from another fill padding {target}"
        pads["value"] = value
        pads["extent"] = dims[plan.axis]  # the padded input's own extent on the axis (int when static)
        side = "before" if before else "after"
        pads[side] = pads.get(side, 0) + int(extent)
        return None

    def _same_dim(self, elem, tensor: str, axis: int, dim, concat_axis: int) -> bool:
        """True when shape element ``elem`` is provably dim ``axis`` (value ``dim``) of ``tensor``."""
        if not isinstance(elem, Sym):
            return isinstance(dim, int) and dim == int(elem)
        if elem.matches(tensor, axis, dim):
            return True
        return elem.key[0] == "axis" and elem.key[2] == axis and self._sliced_from(elem.key[1], tensor, concat_axis)

    def _full_shape_of_slice(self, shape: str, tensor: str, concat_axis: int) -> bool:
        """True when ``shape`` is ``Shape(y)`` (all of it) and ``y`` is ``tensor`` sliced on ``concat_axis`` only."""
        producer = self.producers.get(shape)
        if producer is None:
            return False
        node = self.model.graph.node[producer]
        if node.op_type != "Shape" or node.domain not in ONNX_DOMAINS:
            return False
        if attr_value(node, "start", 0) != 0 or attr_value(node, "end", None) is not None:
            return False
        return self._sliced_from(node.input[0], tensor, concat_axis)

    def _sliced_from(self, source: str, tensor: str, concat_axis: int) -> bool:
        """True when ``source`` is ``tensor`` after one or more Slices on ``concat_axis`` only."""
        for _ in range(len(self.producers)):
            producer = self.producers.get(source)
            if producer is None:
                return False
            node = self.model.graph.node[producer]
            if node.op_type != "Slice" or node.domain not in ONNX_DOMAINS:
                return False
            axes = self._slice_axes(node, len(dims_in(self.types, source) or ()))
            if axes is None or any(a != concat_axis for a in axes):
                return False
            source = node.input[0]
            if source == tensor:
                return True
        return False

    def _slice_axes(self, node: onnx.NodeProto, rank: int) -> list[int] | None:
        if self.opset < 10:
            starts, axes = attr_value(node, "starts", None), attr_value(node, "axes", None)
        else:
            starts = const_list(node, 1, self)
            axes = const_list(node, 3, self) if len(node.input) > 3 and node.input[3] else None
        if starts is None or rank == 0:
            return None
        axes = list(range(len(starts))) if axes is None else list(axes)
        return [a + rank if a < 0 else a for a in axes]

    def _reads(self, index: int, slot: int) -> bool:
        """False when the planned edits stop node ``index`` from reading its input ``slot``."""
        if (index, slot) in self.rewrites or (index in self.resize_rewrites and slot == 3):
            return False
        return not (index in self.pad_rewrites and slot in self.pad_rewrites[index].dropped)

    def _plan_materialization(self, nodes) -> None:
        producer = {}
        for index in self.folded:
            for name in nodes[index].output:
                producer[name] = index
        kept = [i for i in range(len(nodes)) if i not in self.folded]
        needed = set(self.graph_outputs)
        for index in kept:
            node = nodes[index]
            for slot, name in enumerate(node.input):
                if not self._reads(index, slot):
                    continue
                needed.add(self.reuse.get(name, name))
            needed |= subgraph_reads(node)
        pending = sorted(needed & set(producer), key=lambda n: -producer[n])
        while pending:
            name = pending.pop(0)
            index = producer.get(name)
            if index is None or index not in self.folded:
                continue
            array = self.known[name]
            node = nodes[index]
            input_bytes = sum(self.known[i].nbytes for i in node.input if i and i in self.known)
            if array.nbytes <= max(self.options.size_limit_bytes, input_bytes):
                self.materialize[name] = array
                continue
            reason = (
                f"folding would create a {array.nbytes}-byte constant, over the {self.options.size_limit_bytes}-byte "
                f"limit and larger than its {input_bytes}-byte constant inputs; node kept"
            )
            self.declined.append(Declined(_site(node), reason))
            self.folded.discard(index)
            for other in node.output:
                self.materialize.pop(other, None)
            for upstream in node.input:
                if upstream in producer and producer[upstream] in self.folded:
                    pending.append(upstream)
            pending.sort(key=lambda n: -producer[n])
        self.counts["nodes_folded"] += len(self.folded)

    def _plan_dead_code(self, nodes) -> None:
        used = set(self.graph_outputs)
        for index in range(len(nodes) - 1, -1, -1):
            node = nodes[index]
            if index in self.folded:
                continue
            outputs = [o for o in node.output if o]
            if node.domain in ONNX_DOMAINS and outputs and not any(o in used for o in outputs):
                self.dead.add(index)
                continue
            for slot, name in enumerate(node.input):
                if not self._reads(index, slot):
                    continue
                used.add(self.reuse.get(name, name))  # a reused value is read as the earlier one
            used |= subgraph_reads(node)
        self.used = used
        self.counts["dead_nodes_removed"] += len(self.dead)

    def _unused_initializers(self) -> list[str]:
        return [name for name in self.initializers if name not in self.used and name not in self.graph_inputs_only()]

    # --- edits -----------------------------------------------------------------------------------
    def apply(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        names = _all_names(graph)
        unused = set(self._unused_initializers())
        self.counts["initializers_removed"] += len(unused)
        remove_initializers(graph, unused)
        if model.ir_version < 4:
            kept_inputs = [v for v in graph.input if v.name not in unused]
            del graph.input[:]
            graph.input.extend(kept_inputs)
        new_inits = []
        for name, array in self.materialize.items():
            new_inits.append(numpy_helper.from_array(_contiguous(array), name))
        nodes = list(graph.node)
        for node in nodes:
            for slot, name in enumerate(node.input):
                if name in self.reuse:
                    node.input[slot] = self.reuse[name]
        for (index, slot), array in self.rewrites.items():
            name = fresh_name(f"{nodes[index].input[slot]}_folded", names)
            new_inits.append(numpy_helper.from_array(array, name))
            nodes[index].input[slot] = name
        for index, scales in self.resize_rewrites.items():
            node = nodes[index]
            name = fresh_name(f"{node.output[0]}_scales", names)
            new_inits.append(numpy_helper.from_array(scales, name))
            node.input[2] = name
            del node.input[3:]
        replacements = {
            index: self._pad_nodes(nodes[index], plan, names, new_inits, self.options.pad_with_zero)
            for index, plan in self.pad_rewrites.items()
        }
        graph.initializer.extend(new_inits)
        if model.ir_version < 4:
            graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in new_inits)
        keep = []
        for index, node in enumerate(nodes):
            if index not in self.folded and index not in self.dead:
                keep.extend(replacements.get(index, [node]))
        del graph.node[:]
        graph.node.extend(keep)
        self.counts["initializers_created"] += len(new_inits)

    @staticmethod
    def _pad_nodes(
        concat: onnx.NodeProto, plan: _ConcatPads, names: set[str], new_inits: list, pad_with_zero: bool = False
    ) -> list:
        """The Pad nodes (and the trimmed Concat, unless one input is left) replacing ``concat``.

        With ``pad_with_zero`` a non-zero fill ``v`` becomes ``Add(Pad(X, 0), M)``, where the
        constant ``M`` (1 everywhere but the axis) holds ``v`` on the padded border and 0 over
        ``X``: exact, since ``x + 0 == x`` (NaN and inf included; -0 becomes +0) and ``0 + v == v``.
        It needs the padded input's extent on the axis to be static and a dtype Add takes; else
        the Pad keeps ``v``."""
        kept = [slot for slot in range(len(concat.input)) if slot not in plan.dropped]
        single = len(kept) == 1
        result, inputs = [], []
        for slot in kept:
            name = concat.input[slot]
            if slot not in plan.pads:
                inputs.append(name)
                continue
            spec = plan.pads[slot]
            pads = np.zeros(2 * plan.rank, dtype=np.int64)
            pads[plan.axis], pads[plan.rank + plan.axis] = spec.get("before", 0), spec.get("after", 0)
            stem = concat.output[0] if single else f"{name}_padded"
            pads_name, value_name = fresh_name(f"{stem}_pads", names), fresh_name(f"{stem}_pad_value", names)
            new_inits.append(numpy_helper.from_array(pads, pads_name))
            new_inits.append(numpy_helper.from_array(_contiguous(spec["value"]), value_name))
            output = concat.output[0] if single else fresh_name(stem, names)
            node_name = concat.name if single else fresh_name(f"{concat.name or concat.output[0]}/Pad_{slot}", names)
            mask = _border_mask(spec, plan) if pad_with_zero else None
            if mask is None:
                result.append(
                    onnx.helper.make_node(
                        "Pad", [name, pads_name, value_name], [output], name=node_name, mode="constant"
                    )
                )
            else:
                new_inits[-1] = numpy_helper.from_array(np.zeros_like(_contiguous(spec["value"])), value_name)
                padded = fresh_name(f"{stem}_zero_padded", names)
                mask_name = fresh_name(f"{stem}_border", names)
                new_inits.append(numpy_helper.from_array(mask, mask_name))
                result.append(
                    onnx.helper.make_node(
                        "Pad",
                        [name, pads_name, value_name],
                        [padded],
                        name=fresh_name(f"{node_name}/zero", names),
                        mode="constant",
                    )
                )
                result.append(onnx.helper.make_node("Add", [padded, mask_name], [output], name=node_name))
            inputs.append(output)
        if not single:
            trimmed = onnx.NodeProto()
            trimmed.CopyFrom(concat)
            del trimmed.input[:]
            trimmed.input.extend(inputs)
            result.append(trimmed)
        return result


@dataclass
class _ConcatPads:
    """Planned Pads for one Concat: per kept input slot {"before", "after", "value"}; fill slots dropped."""

    axis: int
    rank: int
    dropped: set
    elem_type: int = 0
    pads: dict = field(default_factory=dict)


# --- helpers -----------------------------------------------------------------------------------


def _border_mask(spec: dict, plan: _ConcatPads) -> np.ndarray | None:
    """The constant added after a zero Pad: the fill value on the border, 0 over the input; None
    when the fill is 0 already, the input's extent is not static, or the dtype is bool."""
    value = np.asarray(spec["value"]).reshape(-1)
    extent = spec.get("extent")
    if not value.any() or not isinstance(extent, int) or extent < 0 or value.dtype == np.bool_:
        return None
    before, after = spec.get("before", 0), spec.get("after", 0)
    shape = [1] * plan.rank
    shape[plan.axis] = before + extent + after
    mask = np.zeros(shape, dtype=value.dtype)
    index = [slice(None)] * plan.rank
    index[plan.axis] = slice(0, before)
    mask[tuple(index)] = value[0]
    index[plan.axis] = slice(before + extent, None)
    mask[tuple(index)] = value[0]
    return mask


def _contiguous(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy with the same shape: ``np.ascontiguousarray`` turns a rank-0 array into shape (1,)."""
    return np.array(array, order="C", copy=True)


def _site(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name or node.output[0]}"


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


def _all_names(graph: onnx.GraphProto) -> set[str]:
    names = {v.name for v in graph.input} | {v.name for v in graph.output} | {t.name for t in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def _fill_value(node: onnx.NodeProto) -> np.ndarray:
    """The 0-d value a ConstantOfShape writes (float32 0 when it has no ``value``)."""
    value = attr_value(node, "value", None)
    return np.zeros((), np.float32) if value is None else tensor_array(value).reshape(())


def _dim_text(elem) -> str:
    if not isinstance(elem, Sym):
        return str(elem)
    return elem.key[1] if elem.key[0] == "param" else "symbolic"
