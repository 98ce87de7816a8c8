"""fix-input-shape: make graph input dims static, then re-infer shapes."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from graphkit.ir.model_io import clone, graph_inputs
from graphkit.ir.shapes import apply_inferred_shapes, dims_of, format_dims, set_dims
from graphkit.transform.pass_base import Pass, PassResult, option
from graphkit.transform.registry import register
from graphkit.util.errors import PassError, SpecError


@register("fix-input-shape")
class FixInputShape(Pass):
    """Make graph input dims static (as ATC profiles need), then re-infer shapes.

    Rewrite: each input named in ``shapes`` gets exactly those dims; with ``batch``, dim 0 of
    every other input whose dim 0 is symbolic becomes ``batch``. Stale ``value_info`` is
    dropped and shape inference (strict) is rerun; output dims that become provably static are
    filled in (static output dims never change). Nodes and weights are untouched, so the model
    computes the same values for inputs of the fixed shape. Follow with ``fold-shapes`` to fold
    the shape computation that the static dims make constant.

    Errors (user errors, one line each): an input name the model does not have; a rank that
    differs from the declared rank; a dim that contradicts a static declared dim (including
    ``batch`` against a static dim 0); a non-positive dim; shapes the graph cannot accept
    (strict shape inference fails). Nothing to fix (all named dims already equal): the model is
    returned unchanged.
    """

    @dataclass
    class Options:
        shapes: dict[str, list[int]] = option(
            default_factory=dict, doc="input name -> static dims, e.g. {image: [1, 3, 1024, 1024]}"
        )
        batch: int | None = option(None, doc="static dim 0 for every input whose dim 0 is symbolic")

        def __post_init__(self):
            if self.batch is not None and self.batch <= 0:
                raise SpecError(f"fix-input-shape option batch must be a positive integer, got {self.batch}")
            for name, dims in self.shapes.items():
                if any(d <= 0 for d in dims):
                    raise SpecError(f"fix-input-shape option shapes.{name}: dims must be positive, got {dims}")

    exact = True
    changes_io = True

    def run(self, model: onnx.ModelProto) -> PassResult:
        inputs = {v.name: v for v in graph_inputs(model)}
        targets = self._targets(inputs)
        changes = {name: dims for name, dims in targets.items() if tuple(dims) != dims_of(inputs[name])}
        if not changes:
            return PassResult(model, False, {}, notes=["input dims already as requested"])
        work = clone(model)
        changed_dims = 0
        for value in work.graph.input:
            if value.name in changes:
                old = dims_of(value) or ()
                changed_dims += sum(1 for a, b in zip(old, changes[value.name]) if a != b)
                set_dims(value, tuple(changes[value.name]))
        try:
            refined = apply_inferred_shapes(work, strict=True)
        except PassError as exc:
            raise PassError(f"fix-input-shape: the graph does not accept these input shapes: {exc}", self.name) from exc
        counts = {"inputs_fixed": len(changes), "input_dims_fixed": changed_dims, "output_dims_refined": refined}
        return PassResult(work, True, {k: v for k, v in counts.items() if v})

    def _targets(self, inputs: dict[str, onnx.ValueInfoProto]) -> dict[str, list[int]]:
        """The dims each input gets; options that contradict the model are bad input (SpecError, exit 2)."""
        where = "fix-input-shape"
        for name in self.options.shapes:
            if name not in inputs:
                raise SpecError(
                    f"{where}: option shapes names input '{name}' that the model does not have "
                    f"(inputs: {', '.join(inputs) or 'none'})",
                )
        batch = self.options.batch
        if batch is not None and batch <= 0:
            raise SpecError(f"{where}: option batch must be a positive integer, got {batch}")
        targets: dict[str, list[int]] = {}
        for name, value in inputs.items():
            declared = dims_of(value)
            if name in self.options.shapes:
                wanted = list(self.options.shapes[name])
            elif batch is not None and declared:
                if isinstance(declared[0], int) and declared[0] != batch:
                    raise SpecError(
                        f"{where}: shape mismatch: input '{name}' dim 0 is static {declared[0]}, option batch is {batch}",
                    )
                wanted = [batch] + list(declared[1:])
            else:
                continue
            self._check(name, declared, wanted)
            targets[name] = wanted
        return targets

    def _check(self, name: str, declared, wanted: list) -> None:
        where = f"fix-input-shape: input '{name}'"
        if declared is not None and len(declared) != len(wanted):
            raise SpecError(
                f"{where}: shape mismatch: the model declares rank {len(declared)} {_show(declared)}, "
                f"got {len(wanted)} dims {wanted}",
            )
        for axis, dim in enumerate(wanted):
            if isinstance(dim, int) and dim <= 0:
                raise SpecError(f"{where}: dim {axis} must be positive, got {dim}")
            if declared is not None and isinstance(declared[axis], int) and declared[axis] != dim:
                raise SpecError(
                    f"{where}: shape mismatch at axis {axis}: the model declares {declared[axis]} "
                    f"{_show(declared)}, got {dim}",
                )


def _show(dims) -> str:
    return format_dims(dims)
