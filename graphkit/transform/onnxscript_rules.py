"""onnxscript rewrite rules as graphkit passes (needs the ``rules`` extra: ``onnxscript==0.7.2``).

``rule_pass("name")`` on a function returning an onnxscript ``RewriteRule``, a list of them or
a ``RewriteRuleSet`` registers an :class:`OnnxscriptRulePass`. It converts the model to onnx-ir
(``onnx_ir.serde``; weights are shared, not copied), gives untyped values the types of graphkit's shape inference, applies the rule set with onnxscript's own
engine until it applies no more (a fixed point), and serializes the result. The sites where a
pattern matched but a condition or replacement refused are collected in one more, read-only
round through onnxscript's ``MatchingTracer`` and reported as declined with onnxscript's reason.
The pass is then checked, validated and rolled back by graphkit like any other: a rule that
would rename a graph output or change the opset fails the pass contract.
"""

from __future__ import annotations

from typing import Any, ClassVar

import onnx

from graphkit.ir.external_data import tensor_array
from graphkit.ir.shapes import infer_value_types
from graphkit.transform.pass_base import Declined, NoOptions, Pass, PassResult
from graphkit.util.errors import PassError

MAX_ROUNDS = 100


def _rule_set(rules: Any):
    from onnxscript.rewriter import RewriteRuleSet

    if isinstance(rules, RewriteRuleSet):
        return rules
    return RewriteRuleSet(list(rules) if isinstance(rules, (list, tuple)) else [rules])


def _declined_sites(rule_set, ir_model) -> list[Declined]:
    """Sites where a rule's pattern matched but its condition or replacement refused, with the reason."""
    from onnxscript.rewriter import MatchingTracer, MatchStatus

    class _AllSites(MatchingTracer):
        def __init__(self):
            super().__init__()
            self.sites: dict[tuple[str, str], Declined] = {}

        def log(self, rule, container, node, match_result, status) -> None:
            if status in (MatchStatus.CONDITION_FAILED, MatchStatus.REPLACEMENT_FAILED):
                site = node.name or (node.outputs[0].name if node.outputs else node.op_type)
                label = rule.name or type(rule).__name__
                reason = match_result.reason or status.name.lower().replace("_", " ")
                self.sites.setdefault((site, label), Declined(site, f"{label}: {reason}"))

    tracer = _AllSites()
    rule_set.apply_to_model(ir_model, tracer=tracer)
    return list(tracer.sites.values())


def _add_inferred_types(ir_model, model: onnx.ModelProto) -> None:
    """Give main-graph values without a type the type and shape graphkit's shape inference finds
    (once, on a skeleton without the large weights), so that type conditions can decide."""
    import onnx_ir as ir

    try:
        types = infer_value_types(model, strict=False, keep_value_info=True)
    except PassError:
        return
    for node in ir_model.graph:
        for value in node.outputs:
            found = types.get(value.name) if value.name else None
            if found is None or value.type is not None or not found.elem_type:
                continue
            value.type = ir.TensorType(ir.DataType(found.elem_type))
            if found.dims is not None:
                value.shape = ir.Shape([d if isinstance(d, (int, str)) else None for d in found.dims])


class OnnxscriptRulePass(Pass):
    """A pass running an onnxscript rule set (see the module docstring)."""

    Options = NoOptions
    rule_set: ClassVar[Any] = None

    def run(self, model: onnx.ModelProto) -> PassResult:
        try:
            import onnx_ir as ir
        except ImportError as exc:  # pragma: no cover - the extra is part of dev
            raise PassError(
                f"pass '{self.name}' needs onnxscript: pip install 'graphkit-onnx[rules]'", self.name
            ) from exc
        rule_set = _rule_set(self.rule_set)
        ir_model = ir.serde.deserialize_model(model)
        _add_inferred_types(ir_model, model)
        total = 0
        for _ in range(MAX_ROUNDS):
            count = rule_set.apply_to_model(ir_model)
            total += count
            if not count:
                break
        else:
            raise PassError(f"pass '{self.name}': rules did not reach a fixed point in {MAX_ROUNDS} rounds", self.name)
        declined = _declined_sites(rule_set, ir_model)
        if not total:
            return PassResult(model, False, declined=declined)
        result = ir.serde.serialize_model(ir_model)
        reason = _drop_default_allowzero(result)
        if reason is not None:
            return PassResult(model, False, declined=[*declined, Declined("<model>", reason)])
        return PassResult(result, True, counts={"rewritten": total}, declined=declined)


def _drop_default_allowzero(model: onnx.ModelProto) -> str | None:
    """Below opset 14 Reshape has no ``allowzero``: onnxscript's rules may still write it. A 0 (the
    default) is dropped, which is exact; so is a 1 whose target shape is a constant without a 0
    (allowzero only changes what a 0 in the target means). Any other 1 cannot be said there: the
    reason to keep the model."""
    if next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 14) >= 14:
        return None
    constants = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx"):
            continue
        target = constants.get(node.input[1]) if len(node.input) > 1 else None
        no_zero = target is not None and 0 not in tensor_array(target).tolist()
        kept = [a for a in node.attribute if not (a.name == "allowzero" and (a.i == 0 or no_zero))]
        if any(a.name == "allowzero" for a in kept):
            return f"a rewrite wrote Reshape allowzero=1 ({node.name or node.output[0]}), which opset < 14 has not"
        del node.attribute[:]
        node.attribute.extend(kept)
    return None
