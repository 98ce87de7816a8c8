"""dynamic-batch: make dim 0 of chosen inputs and outputs symbolic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.ir.external_data import tensor_array
from graphkit.ir.model_io import clone, default_opset, graph_inputs, remove_initializers
from graphkit.ir.shape_eval import attr_value
from graphkit.ir.shapes import apply_inferred_shapes, dims_of, fresh_name, infer_value_types, set_dims
from graphkit.transform.pass_base import Declined, Pass, PassResult, option
from graphkit.transform.registry import register
from graphkit.util.errors import PassError, SpecError

MAX_ROUNDS = 16


@register("dynamic-batch")
class DynamicBatch(Pass):
    """Make dim 0 of chosen graph inputs and outputs symbolic (named), fixing constants that bake the batch.

    Rewrite: dim 0 of each chosen input (default: all) becomes the symbol ``name``; the old
    static batch ``b`` must be the same for all of them. Shape inference is rerun with the
    symbolic batch; every ``Reshape`` whose data input now has the batch symbol at axis 0 and
    whose constant target starts with ``b`` gets a new target with ``0`` there ("copy dim 0",
    exact: the output's dim 0 is the input's dim 0, which equals ``b`` at the old batch).
    Targets that already start with 0 are left alone; a leading -1 whose other (static) dims
    multiply to the input's is rewritten to 0 the same way. Stale ``value_info`` is dropped
    and shapes re-inferred; dim 0 of each chosen output (default: all outputs whose dim 0 was
    ``b`` or symbolic) becomes ``name``.

    Declines (the model is returned unchanged, with the reason) when equivalence cannot be
    proven: chosen inputs disagree on the static batch; a Reshape with a batched input has a
    constant target whose dim 0 is neither ``b``, 0 nor -1 (it merges the batch with another
    dim), or has ``allowzero`` = 1; after the rewrite a chosen output's dim 0 is still static
    (some other constant, e.g. Resize sizes or an Expand shape, bakes the batch); a chosen
    output's dim 0 is not the batch after re-inference (e.g. a detection count: it is never renamed
    ``batch``); a Reshape puts -1 on the batch axis while its other dims fold part of the input
    into it; the graph holds batch-specific constants: a Split of the batch axis into fixed
    pieces, a Gather of fixed rows or a Slice to a fixed range of the batch axis, a Squeeze of the
    batch axis; a Reshape whose input shape inference cannot type has a constant target that
    starts with the old batch (a later broadcast could hide the baked batch). Each reason says
    what export change would make the model batch-independent.
    Unknown input or output names in the options are errors.

    Proof: the manager validates the result on the golden cases; a static source gives golden
    cases at its one batch only, so a batch-stacking check (N stacked inputs vs N batch-1 runs)
    is what proves the new dim; see docs/corpus.md.
    """

    @dataclass
    class Options:
        name: str = option("batch", doc="name of the symbolic batch dim")
        inputs: list[str] | None = option(None, doc="inputs whose dim 0 becomes symbolic (default: all)")
        outputs: list[str] | None = option(None, doc="outputs whose dim 0 becomes symbolic (default: all batched)")

        def __post_init__(self):
            if not self.name or not self.name.isprintable() or self.name.strip() != self.name:
                raise SpecError(f"dynamic-batch option name must be a non-empty printable name, got {self.name!r:.60}")

    exact = True
    changes_io = True

    def run(self, model: onnx.ModelProto) -> PassResult:
        name = self.options.name
        inputs = {v.name: v for v in graph_inputs(model)}
        outputs = {v.name: v for v in model.graph.output}
        chosen_inputs = self._chosen(self.options.inputs, inputs, "inputs")
        chosen_outputs = self._chosen(self.options.outputs, outputs, "outputs")
        declined: list[Declined] = []
        batches = set()
        for input_name in list(chosen_inputs):
            dims = dims_of(inputs[input_name])
            if not dims:
                declined.append(Declined(f"input {input_name}", "rank 0 or unknown: no dim 0"))
                chosen_inputs.remove(input_name)
            elif isinstance(dims[0], int):
                batches.add(dims[0])
        if len(batches) > 1:
            return self._decline(model, "<model>", f"inputs disagree on the static batch: {sorted(batches)}")
        old_batch = batches.pop() if batches else None
        if not chosen_inputs:
            return PassResult(model, False, {}, declined)
        if all(dims_of(inputs[i])[0] == name for i in chosen_inputs):
            return PassResult(model, False, {}, declined, notes=[f"dim 0 of the inputs is already '{name}'"])

        work = clone(model)
        for value in work.graph.input:
            if value.name in chosen_inputs:
                set_dims(value, (name,) + tuple(dims_of(value)[1:]))
        for value in work.graph.output:  # let inference recompute dim 0 of the outputs
            dims = dims_of(value)
            if value.name in chosen_outputs and dims and (dims[0] == old_batch or not isinstance(dims[0], int)):
                set_dims(value, (None,) + tuple(dims[1:]))
        del work.graph.value_info[:]
        reshapes = 0
        if old_batch is not None:
            try:
                reshapes = self._fix_reshapes(work, name, old_batch)
            except _Refused as refusal:
                return self._decline(model, refusal.site, refusal.reason, declined)
        try:
            types = infer_value_types(work, strict=True)
        except PassError as exc:
            return self._decline(model, "<model>", f"shape inference fails with a symbolic batch: {exc}", declined)
        refusal = _batch_specific_site(work, types, name)
        if refusal is not None:
            return self._decline(model, refusal.site, refusal.reason, declined)
        outputs_changed = 0
        for value in work.graph.output:
            declared = dims_of(model.graph.output[[o.name for o in model.graph.output].index(value.name)])
            if value.name not in chosen_outputs or not declared:
                continue
            inferred = types.get(value.name)
            dim0 = inferred.dims[0] if inferred and inferred.dims else None
            if declared[0] == old_batch or not isinstance(declared[0], int):
                if isinstance(dim0, int):
                    reason = (
                        f"dim 0 is still {dim0} after re-inference{_where_batch_is_lost(work, types, name)}: a "
                        "constant bakes the batch (e.g. Resize sizes or an Expand/Tile shape); export with "
                        "dynamic_axes on the batch so the exporter computes it from the input's shape"
                    )
                    return self._decline(model, f"output {value.name}", reason, declined)
                if dim0 != name:
                    reason = (
                        f"dim 0 is not the batch after re-inference ({dim0 or 'unknown'}){_where_batch_is_lost(work, types, name)}: "
                        "either the output is not batch-major (e.g. a detection count: list only batch-major "
                        "outputs in the 'outputs' option to keep it as it is) or a constant still holds the old "
                        "batch (export with dynamic_axes so the exporter computes it from the input's shape)"
                    )
                    return self._decline(model, f"output {value.name}", reason, declined)
                set_dims(value, (name,) + tuple(dims_of(value)[1:]))
                outputs_changed += 1
            else:
                declined.append(Declined(f"output {value.name}", f"dim 0 is {declared[0]}, not the batch"))
        apply_inferred_shapes(work, refine_outputs=True, strict=True)
        counts = {"inputs": len(chosen_inputs), "outputs": outputs_changed, "reshape_targets_rewritten": reshapes}
        return PassResult(work, True, {k: v for k, v in counts.items() if v}, declined)

    def _chosen(self, names: list[str] | None, known: dict, kind: str) -> list[str]:
        if names is None:
            return list(known)
        for item in names:
            if item not in known:
                raise PassError(
                    f"dynamic-batch: option {kind} names '{item}' that the model does not have "
                    f"({kind}: {', '.join(known) or 'none'})",
                    self.name,
                )
        return list(names)

    def _decline(self, model, site: str, reason: str, declined: list[Declined] = ()) -> PassResult:
        return PassResult(model, False, {}, list(declined) + [Declined(site, reason)])

    def _fix_reshapes(self, work: onnx.ModelProto, name: str, old_batch: int) -> int:
        """Rewrite Reshape targets that bake ``old_batch``; raise _Refused when one cannot be proven."""
        graph = work.graph
        fixed: set[int] = set()
        replaced: set[str] = set()
        for _ in range(MAX_ROUNDS):
            types = infer_value_types(work)
            constants = _constants(work)
            names = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output}
            progress = False
            for index, node in enumerate(graph.node):
                if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx") or index in fixed:
                    continue
                data = types.get(node.input[0])
                target = constants.get(node.input[1])
                site = f"Reshape {node.name or node.output[0]}"
                unknown_dim0 = data is None or not data.dims or not _named_or_static(data.dims[0])
                if unknown_dim0 and target is not None and target.size:
                    if int(target.reshape(-1)[0]) == old_batch:
                        raise _Refused(
                            site,
                            f"shape inference does not know its input's shape (dim 0), and its constant target "
                            f"{target.tolist()} starts with the old batch {old_batch}: it may bake the batch (a "
                            "broadcast later can hide it); export with dynamic_axes on the batch so the exporter "
                            "computes the target from the input's shape",
                        )
                    continue
                if data is None or not data.dims or data.dims[0] != name:
                    continue
                if target is None:
                    continue  # computed from Shape: follows the batch by itself
                if target.size == 0 or int(target.reshape(-1)[0]) == 0:
                    continue
                first = int(target.reshape(-1)[0])
                if first == -1:
                    rest, tail = data.dims[1:], [int(t) for t in target.reshape(-1)[1:]]
                    if not all(isinstance(d, int) for d in rest) or not all(t > 0 for t in tail):
                        continue  # -1 resolves at run time; the output check below decides
                    if int(np.prod(tail, dtype=np.int64)) != int(np.prod(rest, dtype=np.int64)):
                        raise _Refused(
                            site,
                            f"target {target.tolist()} puts -1 on the batch axis but its other dims do not "
                            f"multiply to the input's {list(rest)}: it folds other dims into the batch; "
                            "export with the batch dim kept separate (e.g. view(x.size(0), ...))",
                        )
                elif first != old_batch:
                    raise _Refused(site, f"target {target.tolist()} merges the batch with other dims; not provable")
                for attribute in node.attribute:
                    if attribute.name == "allowzero" and attribute.i == 1:
                        raise _Refused(site, "allowzero=1: 0 cannot stand for 'copy the batch dim'")
                new = target.astype(np.int64).copy()
                new[0] = 0
                new_name = fresh_name(f"{node.input[1]}_dynbatch", names)
                graph.initializer.append(numpy_helper.from_array(new, new_name))
                if work.ir_version < 4:
                    graph.input.append(onnx.helper.make_tensor_value_info(new_name, onnx.TensorProto.INT64, [len(new)]))
                replaced.add(node.input[1])
                node.input[1] = new_name
                fixed.add(index)
                progress = True
            if not progress:
                break
        _drop_unused_constants(work, replaced)
        return len(fixed)


def _named_or_static(dim) -> bool:
    """A dim that says what it is: static, or a name other than ONNX's fresh ``unk__N``."""
    return isinstance(dim, int) or (isinstance(dim, str) and not dim.startswith("unk__"))


def _batch_specific_site(model: onnx.ModelProto, types: dict, name: str) -> _Refused | None:
    """The first node that reads specific rows of the batch axis with constants (it only works at the old batch)."""
    constants = _constants(model)
    opset = default_opset(model)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or not node.input:
            continue
        data = types.get(node.input[0])
        if data is None or not data.dims or name not in data.dims:
            continue
        rank = len(data.dims)
        batch_axes = {axis for axis, dim in enumerate(data.dims) if dim == name}
        site = f"{node.op_type} {node.name or node.output[0]}"
        op = node.op_type

        def axes_of(values, rank=rank) -> set[int]:
            return {int(a) + rank if int(a) < 0 else int(a) for a in values}

        if op == "Split" and axes_of([attr_value(node, "axis", 0)]) & batch_axes:
            sizes = attr_value(node, "split", None)
            if sizes is None and len(node.input) > 1 and node.input[1] in constants:
                sizes = constants[node.input[1]].tolist()
            return _Refused(
                site,
                f"it cuts the batch axis into {len(node.output)} fixed pieces (sizes {sizes}): the graph is specific "
                "to the exported batch; export without splitting or unbinding over dim 0",
            )
        if op == "Gather" and axes_of([attr_value(node, "axis", 0)]) & batch_axes and node.input[1] in constants:
            return _Refused(
                site,
                f"it picks fixed rows {constants[node.input[1]].tolist()} of the batch axis: the model reads specific "
                "samples; export without indexing dim 0 (e.g. x[0])",
            )
        if op == "Squeeze":
            axes = attr_value(node, "axes", None) if opset < 13 else None
            if opset >= 13 and len(node.input) > 1 and node.input[1] in constants:
                axes = constants[node.input[1]].tolist()
            if axes is None or axes_of(axes) & batch_axes:
                return _Refused(
                    site, "it squeezes the batch axis (only possible at batch 1); export without squeezing dim 0"
                )
        if op == "Slice" and opset >= 10 and len(node.input) > 3:
            starts, ends = constants.get(node.input[1]), constants.get(node.input[2])
            axes = constants.get(node.input[3]) if node.input[3] else None
            if starts is None or ends is None or axes is None:
                continue
            for start, end, axis in zip(starts.tolist(), ends.tolist(), axes.tolist()):
                if axes_of([axis]) & batch_axes and (start != 0 or end < 2**31 - 1):
                    return _Refused(
                        site,
                        f"it slices the batch axis to the fixed range [{start}, {end}): the model reads specific "
                        "samples; export without slicing dim 0",
                    )
    return None


def _where_batch_is_lost(model: onnx.ModelProto, types: dict, name: str) -> str:
    """'; first lost at <node> (dim 0 of its inputs: ...)' for the first node that reads the batch at dim 0 but whose
    output's dim 0 is neither the batch nor a number; '' when there is none."""
    for node in model.graph.node:
        dims0 = [types[i].dims[0] if i in types and types[i].dims else None for i in node.input if i]
        if name not in dims0:
            continue
        for output in node.output:
            out = types.get(output)
            if out is not None and out.dims and out.dims[0] != name and not isinstance(out.dims[0], int):
                shown = ", ".join(str(d) for d in dims0)
                return (
                    f"; the batch is first lost at {node.op_type} {node.name or output} (dim 0 of its inputs: {shown})"
                )
    return ""


class _Refused(Exception):
    def __init__(self, site: str, reason: str):
        super().__init__(reason)
        self.site, self.reason = site, reason


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    inputs = {v.name for v in model.graph.input} if model.ir_version >= 4 else set()
    values = {t.name: t for t in model.graph.initializer if t.name not in inputs}
    out = {}
    for name, tensor in values.items():
        if len(tensor.dims) <= 1 and tensor.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            out[name] = tensor_array(tensor)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attribute in node.attribute:
                if attribute.name == "value":
                    out[node.output[0]] = tensor_array(attribute.t)
                elif attribute.name == "value_ints":
                    out[node.output[0]] = np.array(list(attribute.ints), dtype=np.int64)
    return out


def _drop_unused_constants(model: onnx.ModelProto, replaced: set[str]) -> None:
    """Remove the replaced Reshape targets (Constant nodes, initializers) left without consumers."""
    graph = model.graph
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    dead = replaced - used
    keep = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] in dead)]
    del graph.node[:]
    graph.node.extend(keep)
    inputs = {v.name for v in graph.input}
    inits = [t for t in graph.initializer if t.name not in dead or (t.name in inputs and model.ir_version >= 4)]
    if len(inits) != len(graph.initializer):
        if model.ir_version < 4:
            dropped = {t.name for t in graph.initializer} - {t.name for t in inits}
            kept_inputs = [v for v in graph.input if v.name not in dropped]
            del graph.input[:]
            graph.input.extend(kept_inputs)
        remove_initializers(graph, {t.name for t in graph.initializer} - {t.name for t in inits})
