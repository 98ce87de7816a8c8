"""onnxsim: run the onnx-simplifier library as a validated graphkit pass."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import onnx

from graphkit.ir.model_io import default_opset, model_size
from graphkit.transform.pass_base import Pass, PassResult, io_signature, option
from graphkit.transform.registry import register
from graphkit.util.errors import one_line
from graphkit.util.tolerance import Tolerance

PROTOBUF_LIMIT = 2**31


@register("onnxsim")
class OnnxSim(Pass):
    """Simplify the model with onnx-simplifier (onnxsim), keeping graphkit's validation, rollback and diff.

    Rewrite: ``onnxsim.simplify`` with the options below (its own random-input check is off by
    default: graphkit validates the result against the golden set instead). onnxsim folds
    constants and shape computation, and runs onnx-optimizer's fusions (MatMul+Add -> Gemm,
    fused QKV projections, BN into Conv, ...); the fusions change float rounding, so the pass is
    approximate with a declared tolerance (atol 1e-5, rtol 1e-4).

    The graph inputs and outputs keep their declared types: where onnxsim only refines an
    unknown output dim, the source declaration is put back.

    Declines (model unchanged, reason given): onnxsim is not installed (``pip install
    graphkit[bench]``); the model is over the 2 GB protobuf limit (onnxsim serializes the whole
    model; use graphkit's own fold passes, which work on external data); onnxsim raises; it
    would bake a dim graphkit keeps symbolic (an input or output dim that was named or unknown
    becomes a number or another name: export with the dims static, or use fold-shapes, which
    keeps them); it removes or renames an input or output; it changes the opset.
    """

    @dataclass
    class Options:
        perform_optimization: bool = option(True, doc="run onnx-optimizer's fusions (onnxsim's default)")
        skip_fuse_bn: bool = option(False, doc="do not fuse BatchNormalization into Conv")
        skip_constant_folding: bool = option(False, doc="do not fold constants")
        skip_shape_inference: bool = option(False, doc="do not run shape inference")
        skipped_optimizers: list[str] | None = option(None, doc="onnx-optimizer passes to skip, by name")
        include_subgraph: bool = option(False, doc="simplify If/Loop/Scan bodies too")
        tensor_size_threshold: str = option("1.5GB", doc="largest constant onnxsim creates when folding")
        check_n: int = option(0, doc="onnxsim's own random-input checks (graphkit validates anyway)")

    exact = False
    tolerance = Tolerance(atol=1e-5, rtol=1e-4)

    def check_preconditions(self, model: onnx.ModelProto) -> str | None:
        try:
            import onnxsim  # noqa: F401
        except ImportError:
            return "onnxsim is not installed (pip install 'graphkit[bench]' or onnxsim)"
        if model_size(model) >= PROTOBUF_LIMIT:
            return (
                f"the model is {model_size(model) / 2**30:.1f} GiB, over the 2 GB protobuf limit onnxsim works in; "
                "use fold-shapes/fold-constants, which keep external data"
            )
        return None

    def run(self, model: onnx.ModelProto) -> PassResult:
        import onnxsim

        options = self.options
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                simplified, check_ok = onnxsim.simplify(
                    model,
                    check_n=options.check_n,
                    perform_optimization=options.perform_optimization,
                    skip_fuse_bn=options.skip_fuse_bn,
                    skipped_optimizers=options.skipped_optimizers,
                    skip_constant_folding=options.skip_constant_folding,
                    skip_shape_inference=options.skip_shape_inference,
                    include_subgraph=options.include_subgraph,
                    tensor_size_threshold=options.tensor_size_threshold,
                )
        except Exception as exc:  # noqa: BLE001 - onnxsim's failure is a decline, not a crash
            return self.decline_all(model, f"onnxsim failed: {one_line(exc, 240)}")
        if not check_ok:
            return self.decline_all(model, "onnxsim's own random-input check failed")
        reason = _io_problem(model, simplified)
        if reason:
            return self.decline_all(model, reason)
        if default_opset(simplified) != default_opset(model):
            return self.decline_all(
                model, f"onnxsim changed the opset {default_opset(model)} -> {default_opset(simplified)}"
            )
        _restore_io(model, simplified)
        if _content(simplified) == _content(model):  # only metadata or value_info differ: nothing simplified
            return PassResult(model, False)
        before, after = len(model.graph.node), len(simplified.graph.node)
        counts = {"nodes_before": before, "nodes_after": after}
        return PassResult(simplified, True, counts, [])


def _io_problem(before: onnx.ModelProto, after: onnx.ModelProto) -> str | None:
    """Why onnxsim's I/O is not acceptable (a baked symbolic dim, a lost input/output), or None."""
    inits = {t.name for t in before.graph.initializer}
    for kind in ("input", "output"):
        old = {v.name: io_signature(v) for v in getattr(before.graph, kind) if v.name not in inits}
        new = {v.name: io_signature(v) for v in getattr(after.graph, kind)}
        for name, signature in old.items():
            if name not in new:
                return f"onnxsim removed graph {kind} '{name}'; graphkit keeps the model's interface"
            old_dims, new_dims = signature[2] or (), new[name][2] or ()
            for axis, (was, now) in enumerate(zip(old_dims, new_dims)):
                if isinstance(was, str) and was != "?" and was != now:  # unknown dims may be refined
                    return (
                        f"onnxsim would bake dim {axis} of {kind} '{name}' ({was}) to {now}; graphkit keeps it "
                        "symbolic (use fold-shapes, or fix the dim first with fix-input-shape)"
                    )
    return None


def _restore_io(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    """Put back the source's declared input and output types (onnxsim may refine unknown output dims)."""
    for kind in ("input", "output"):
        declared = {v.name: v for v in getattr(before.graph, kind)}
        for value in getattr(after.graph, kind):
            if value.name in declared:
                value.type.CopyFrom(declared[value.name].type)


def _content(model: onnx.ModelProto) -> tuple:
    """What computation the model holds: its nodes and initializers (not value_info, producer or doc strings)."""
    nodes = tuple(n.SerializeToString(deterministic=True) for n in model.graph.node)
    inits = tuple(sorted((t.name, t.SerializeToString(deterministic=True)) for t in model.graph.initializer))
    return nodes, inits
