"""dynamic-batch: make dim 0 of chosen inputs and outputs symbolic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.errors import PassError, SpecError
from graphkit.model import clone, remove_initializers
from graphkit.pass_base import Declined, Pass, PassResult, option
from graphkit.registry import register
from graphkit.runtime.feeds import graph_inputs
from graphkit.shapes import apply_inferred_shapes, dims_of, fresh_name, infer_value_types, set_dims

MAX_ROUNDS = 16


@register("dynamic-batch")
class DynamicBatch(Pass):
    """Make dim 0 of chosen graph inputs and outputs symbolic (named), fixing constants that bake the batch.

    Rewrite: dim 0 of each chosen input (default: all) becomes the symbol ``name``; the old
    static batch ``b`` must be the same for all of them. Shape inference is rerun with the
    symbolic batch; every ``Reshape`` whose data input now has the batch symbol at axis 0 and
    whose constant target starts with ``b`` gets a new target with ``0`` there ("copy dim 0",
    exact: the output's dim 0 is the input's dim 0, which equals ``b`` at the old batch).
    Targets that already start with 0 or -1 are left alone. Stale ``value_info`` is dropped
    and shapes re-inferred; dim 0 of each chosen output (default: all outputs whose dim 0 was
    ``b`` or symbolic) becomes ``name``.

    Declines (the model is returned unchanged, with the reason) when equivalence cannot be
    proven: chosen inputs disagree on the static batch; a Reshape with a batched input has a
    constant target whose dim 0 is neither ``b``, 0 nor -1 (it merges the batch with another
    dim), or has ``allowzero`` = 1; after the rewrite a chosen output's dim 0 is still static
    (some other constant, e.g. Resize sizes or an Expand shape, bakes the batch). Unknown input
    or output names in the options are errors.
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
        outputs_changed = 0
        for value in work.graph.output:
            declared = dims_of(model.graph.output[[o.name for o in model.graph.output].index(value.name)])
            if value.name not in chosen_outputs or not declared:
                continue
            inferred = types.get(value.name)
            dim0 = inferred.dims[0] if inferred and inferred.dims else None
            if declared[0] == old_batch or not isinstance(declared[0], int):
                if isinstance(dim0, int):
                    reason = f"dim 0 is still {dim0} after re-inference: a constant bakes the batch"
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
                if data is None or not data.dims or data.dims[0] != name:
                    continue
                target = constants.get(node.input[1])
                site = f"Reshape {node.name or node.output[0]}"
                if target is None:
                    continue  # computed from Shape: follows the batch by itself
                if target.size == 0 or int(target.reshape(-1)[0]) in (0, -1):
                    continue
                if int(target.reshape(-1)[0]) != old_batch:
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


class _Refused(Exception):
    def __init__(self, site: str, reason: str):
        super().__init__(reason)
        self.site, self.reason = site, reason


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    inputs = {v.name for v in model.graph.input} if model.ir_version >= 4 else set()
    values = {t.name: t for t in model.graph.initializer if t.name not in inputs}
    out = {}
    for name, tensor in values.items():
        if len(tensor.dims) == 1 and tensor.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            out[name] = numpy_helper.to_array(tensor)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attribute in node.attribute:
                if attribute.name == "value":
                    out[node.output[0]] = numpy_helper.to_array(attribute.t)
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
