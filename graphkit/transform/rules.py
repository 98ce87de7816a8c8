"""Declarative rewrite rules: a pattern, a replacement and a condition that declines with a reason.

A rule is three small functions over graphsurgeon tensors::

    def pattern(op, x, c):           # what to find: op.<OpType>(inputs..., attr=value)
        return op.Mul(x, c)

    def check(ctx, x, c):            # optional: None/True = rewrite, "reason" = decline, False = no match
        if ctx.shape(x) is None:
            return f"shape of '{x.name}' is unknown"

    def rewrite(op, x, c):           # what to put there: an existing value (bypass) or new ops
        return x

    rule = Rule(pattern, rewrite, check, commute=True)

Pattern functions follow the onnxscript rewriter's: parameters after ``op`` are pattern
variables that bind graph values (or, used as an attribute value, the attribute's value, None
when absent); a Python number as an input matches a constant whose every element equals it;
attributes given as literals must be equal, others are not looked at. ``commute=True`` also
tries the swapped inputs of commutative two-input ops (Add, Mul, ...); ``opsets=(lo, hi)`` limits a
rule to the model opsets where its op means what the rule assumes (after onnxslim's per-opset
pattern registry). A pattern has one output.

:func:`rule_pass` turns a function returning one rule or a list of rules into a registered
graphkit pass (its docstring is the pass's doc). The engine (:func:`apply_rules`) runs the rules
over the main graph to a fixed point; each round re-matches every node, and the sites of the last
round (where nothing changed any more) that matched a pattern but were declined are reported
with the rule's name and reason. The engine itself declines a site when a value inside the pattern
is read outside it or is a graph output, when the matched node's other outputs are used, and when
a bypass would rename a graph output. Graph output names never change: the replacement writes the
matched node's output tensor. Shape inference runs once per pass run (:class:`graphkit.ir.graph.ValueTypes`);
values the rules create have unknown types until the next pass.

:func:`rule_pass` also accepts an onnxscript ``RewriteRule``/``RewriteRuleSet`` (the
``rules`` extra), run through onnxscript's own engine on an onnx-ir copy of the model; see
:mod:`graphkit.transform.onnxscript_rules`.

Longer than 500 lines because the matcher, the fixed-point engine and the pass wrapper are one
concept that shares the match state; split, each part would reach into the others' internals.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from graphkit.ir.graph import (
    ValueTypes,
    constant_value,
    deferred_node_edits,
    fresh_name,
    insert_before,
    is_default_domain,
    is_removed,
    node_site,
    output_names,
    producer,
    remove_nodes,
    replace_all_uses,
    to_graph,
    to_model,
)
from graphkit.ir.model_io import default_opset
from graphkit.transform.pass_base import Declined, NoOptions, Pass, PassResult
from graphkit.transform.registry import register
from graphkit.util.errors import PassError
from graphkit.util.tolerance import Tolerance

COMMUTATIVE = frozenset({"Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal", "BitwiseAnd"})
MAX_ROUNDS = 1000


# --- patterns -------------------------------------------------------------------------------------


@dataclass(eq=False)
class Var:
    """A pattern variable: binds a graph value (or an attribute value)."""

    name: str


@dataclass(eq=False)
class PatternNode:
    op: str
    domain: str | None
    inputs: list[Any]
    attrs: dict[str, Any]


@dataclass(eq=False)
class PatternValue:
    """Output ``index`` of a pattern node."""

    node: PatternNode
    index: int = 0


class _PatternBuilder:
    """The ``op`` of a pattern function: ``op.Relu(x)``, ``op["Relu"](x)``, ``op.Custom(x, _domain="my.domain")``."""

    def __getitem__(self, op_type: str):
        return self.__getattr__(op_type)

    def __getattr__(self, op_type: str):
        if op_type.startswith("_"):
            raise AttributeError(op_type)

        def make(*inputs, _domain: str | None = None, **attrs) -> PatternValue:
            return PatternValue(PatternNode(op_type, _domain, list(inputs), attrs))

        return make


def _compile(pattern: Callable) -> tuple[PatternValue, list[str]]:
    params = list(inspect.signature(pattern).parameters.values())[1:]
    names = [p.name for p in params if p.default is inspect.Parameter.empty]  # defaults are not variables
    result = pattern(_PatternBuilder(), *[Var(n) for n in names])
    if not isinstance(result, PatternValue):
        raise TypeError(f"pattern {pattern.__name__} must return one op output (op.Xxx(...)), got {result!r}")
    return result, names


# --- rules ----------------------------------------------------------------------------------------


class Rule:
    """``pattern`` + ``rewrite`` + optional ``check`` (see the module docstring)."""

    def __init__(
        self,
        pattern: Callable,
        rewrite: Callable,
        check: Callable | None = None,
        *,
        name: str | None = None,
        commute: bool = False,
        opsets: tuple[int, int] = (1, 10**6),
    ):
        self.root, self.variables = _compile(pattern)
        self.rewrite = rewrite
        self.check = check
        self.name = name or pattern.__name__
        self.commute = commute
        self.opsets = opsets  # default-domain opsets the rule applies at (inclusive); others skip it

    def __repr__(self) -> str:
        return f"Rule({self.name})"


@dataclass
class Match:
    """A structural match: variable bindings and the graph nodes the pattern covers (root first)."""

    bindings: dict[str, Any]
    nodes: list[gs.Node]
    by_pattern: dict[int, gs.Node] = field(default_factory=dict)


def match_rule(rule: Rule, node: gs.Node) -> Iterator[Match]:
    """Every structural match of ``rule`` rooted at ``node`` (more than one only with ``commute``)."""
    yield from _match_node(rule, rule.root.node, node, Match({}, []))


def _match_node(rule: Rule, pnode: PatternNode, node: gs.Node, state: Match) -> Iterator[Match]:
    if id(pnode) in state.by_pattern:
        if state.by_pattern[id(pnode)] is node:
            yield state
        return
    if node.op != pnode.op:
        return
    if (pnode.domain or "") != (node.domain or "") and not (pnode.domain is None and is_default_domain(node)):
        return
    inputs = list(node.inputs)
    while inputs and not inputs[-1].name:  # trailing optional inputs left out
        inputs.pop()
    if len(inputs) != len(pnode.inputs):
        return
    state = Match(dict(state.bindings), [*state.nodes, node], {**state.by_pattern, id(pnode): node})
    for key, want in pnode.attrs.items():
        have = node.attrs.get(key)
        if isinstance(want, Var):
            if not _bind(state, want.name, have, attr=True):
                return
        elif not _same_attr(have, want):
            return
    orders = [inputs]
    if rule.commute and node.op in COMMUTATIVE and len(inputs) == 2:
        orders.append(inputs[::-1])
    for order in orders:
        yield from _match_inputs(rule, list(zip(pnode.inputs, order)), state)


def _match_inputs(rule: Rule, pairs: list, state: Match) -> Iterator[Match]:
    if not pairs:
        yield state
        return
    (pvalue, tensor), rest = pairs[0], pairs[1:]
    for matched in _match_value(rule, pvalue, tensor, state):
        yield from _match_inputs(rule, rest, matched)


def _match_value(rule: Rule, pvalue: Any, tensor: gs.Tensor, state: Match) -> Iterator[Match]:
    if isinstance(pvalue, Var):
        state = Match(dict(state.bindings), state.nodes, state.by_pattern)
        if _bind(state, pvalue.name, tensor):
            yield state
    elif isinstance(pvalue, PatternValue):
        writer = producer(tensor)
        if writer is not None and pvalue.index < len(writer.outputs) and writer.outputs[pvalue.index] is tensor:
            yield from _match_node(rule, pvalue.node, writer, state)
    elif isinstance(pvalue, (int, float, bool)):
        value = constant_value(tensor)
        if value is not None and value.size > 0 and bool(np.all(value == pvalue)):
            yield state
    elif pvalue is None:
        if not tensor.name:
            yield state
    else:
        raise TypeError(
            f"rule {rule.name}: a pattern input must be a variable, an op output or a number, got {pvalue!r}"
        )


def _bind(state: Match, name: str, value: Any, attr: bool = False) -> bool:
    if name in state.bindings:
        bound = state.bindings[name]
        return bound is value if not attr else _same_attr(bound, value)
    state.bindings[name] = value
    return True


def _same_attr(have: Any, want: Any) -> bool:
    if isinstance(want, (list, tuple)) or isinstance(have, (list, tuple)):
        return have is not None and want is not None and list(have) == list(want)
    return have == want


# --- the context a check sees ---------------------------------------------------------------------


class RuleContext:
    """What a rule's ``check`` sees: the matched ``node`` (the pattern's root), the ``graph``,
    value types from one shape inference, constants, graph outputs and the opset."""

    def __init__(self, graph: gs.Graph, types: Callable[[], ValueTypes], opset: int):
        self.graph = graph
        self._types = types
        self.opset = opset
        self.node: gs.Node | None = None
        self.nodes: list[gs.Node] = []
        self.memo: dict[str, Any] = {}  # shared by the check and the rewrite of one match

    @property
    def output(self) -> gs.Tensor:
        """The matched root node's (first) output: the value the rewrite replaces."""
        return self.node.outputs[0]

    def shape(self, value: gs.Tensor) -> tuple | None:
        """Dims of ``value`` (int, symbolic name or None per axis), None when the rank is unknown."""
        return self._types().shape(value)

    def dtype(self, value: gs.Tensor) -> int | None:
        """ONNX element type of ``value``, None when unknown."""
        return self._types().dtype(value)

    def constant(self, value: gs.Tensor) -> np.ndarray | None:
        """The value of an initializer or Constant output, else None."""
        return constant_value(value)

    def is_graph_output(self, value: gs.Tensor) -> bool:
        return value.name in output_names(self.graph)


class _Builder:
    """The ``op`` of a rewrite function: new nodes (``op.Relu(x)``, ``op["Relu"](x)``) placed where the root was."""

    def __init__(self, graph: gs.Graph, base: str, ctx: RuleContext):
        self.graph = graph
        self.base = base
        self.ctx = ctx  # the match's context: ctx.node, ctx.nodes, ctx.memo (what the check computed)
        self.nodes: list[gs.Node] = []
        self.taken: set[str] = set()

    def __getitem__(self, op_type: str):
        return self.__getattr__(op_type)

    def __getattr__(self, op_type: str):
        if op_type.startswith("_"):
            raise AttributeError(op_type)

        def make(*inputs, _domain: str | None = None, _name: str | None = None, **attrs) -> gs.Variable:
            prepared = [self.constant(v) if isinstance(v, (np.ndarray, int, float)) else v for v in inputs]
            name = _name or self._fresh(f"{self.base}/{op_type}")
            out = gs.Variable(self._fresh(f"{name}_output"))
            node = gs.Node(op_type, name, attrs, prepared, [out], _domain)
            self.nodes.append(node)
            return out

        return make

    def constant(self, values, name: str | None = None) -> gs.Constant:
        """A new initializer holding ``values`` (an np.ndarray with the dtype you need); ``name``
        is used as given (it may reuse the name of a constant the rewrite makes unused)."""
        return gs.Constant(name or self._fresh(f"{self.base}/constant"), np.asarray(values))

    def _fresh(self, base: str) -> str:
        name = fresh_name(self.graph, base)
        k = 1
        while name in self.taken:
            name = fresh_name(self.graph, f"{base}_{k}")
            k += 1
        self.taken.add(name)
        return name


# --- the engine -----------------------------------------------------------------------------------


@dataclass
class RulesOutcome:
    """What :func:`apply_rules` did: rewrites per rule, declined sites of the final round."""

    counts: dict[str, int]
    declined: list[Declined]
    rounds: int


def apply_rules(
    graph: gs.Graph, rules: Sequence[Rule], model: onnx.ModelProto, types: ValueTypes | None = None
) -> RulesOutcome:
    """Apply ``rules`` to ``graph`` (imported from ``model``) until no rule applies any more.

    ``types``: the pass's :class:`ValueTypes` of ``model`` when it has them (else inferred on first use).
    """
    types: list[ValueTypes] = [types] if types is not None else []

    def lazy_types() -> ValueTypes:
        if not types:
            types.append(ValueTypes(model))
        return types[0]

    ctx = RuleContext(graph, lazy_types, default_opset(model))
    by_op: dict[str, list[Rule]] = {}
    for rule in rules:
        if rule.opsets[0] <= ctx.opset <= rule.opsets[1]:
            by_op.setdefault(rule.root.node.op, []).append(rule)
    counts: dict[str, int] = {}
    for rounds in range(1, MAX_ROUNDS + 1):
        declined: dict[str, Declined] = {}
        changed = False
        with deferred_node_edits(graph):  # one rebuild of graph.nodes per round, not one scan per rewrite
            for node in list(graph.nodes):
                if is_removed(node):  # taken out by an earlier rewrite of this round
                    continue
                for rule in by_op.get(node.op, ()):
                    verdict = _try(rule, node, graph, ctx)
                    if verdict is True:
                        counts[rule.name] = counts.get(rule.name, 0) + 1
                        changed = True
                        break
                    if isinstance(verdict, str):
                        site = node_site(node)
                        declined.setdefault(f"{site}\0{rule.name}", Declined(site, f"{rule.name}: {verdict}"))
        if not changed:
            return RulesOutcome(counts, list(declined.values()), rounds)
    raise PassError(f"rules {[r.name for r in rules]} did not reach a fixed point after {MAX_ROUNDS} rounds")


def _try(rule: Rule, node: gs.Node, graph: gs.Graph, ctx: RuleContext) -> bool | str | None:
    """True when rewritten, a reason when declined, None when the pattern does not match."""
    first_reason = None
    for found in match_rule(rule, node):
        verdict = _try_match(rule, node, graph, ctx, found)
        if verdict is True:
            return True
        first_reason = first_reason or verdict
    return first_reason


def _try_match(rule: Rule, node: gs.Node, graph: gs.Graph, ctx: RuleContext, found: Match) -> bool | str | None:
    outputs = output_names(graph)
    covered = {id(n) for n in found.nodes}
    for inner in found.nodes[1:]:
        for tensor in inner.outputs:
            if tensor.name in outputs:
                return f"'{tensor.name}' inside the pattern is a graph output"
            readers = [r for r in tensor.outputs if id(r) not in covered]
            if readers:
                return f"'{tensor.name}' inside the pattern is also read by {readers[0].op} '{node_site(readers[0])}'"
    bindings = {name: found.bindings.get(name) for name in rule.variables}
    ctx.node, ctx.nodes, ctx.memo = node, found.nodes, {}
    if rule.check is not None:
        verdict = rule.check(ctx, **bindings)
        if verdict is False:
            return None
        if isinstance(verdict, str):
            return verdict
        if verdict not in (None, True):
            raise PassError(f"rule {rule.name}: check returned {verdict!r}; expected None, True, False or a reason")
    for extra in node.outputs[1:]:
        if extra.name and (extra.outputs or extra.name in outputs):
            return f"output '{extra.name}' of {node.op} '{node_site(node)}' is used"
    builder = _Builder(graph, node_site(node), ctx)
    result = rule.rewrite(builder, **bindings)
    if isinstance(result, str):
        return result
    if not isinstance(result, gs.Tensor):
        raise PassError(f"rule {rule.name}: rewrite returned {result!r}; expected a value or a reason")
    return _replace(graph, node, found.nodes, builder, result)


def _replace(
    graph: gs.Graph, root: gs.Node, matched: list[gs.Node], builder: _Builder, result: gs.Tensor
) -> bool | str:
    """Put the builder's nodes in place of the matched ones; ``result`` takes over the root's output."""
    out = root.outputs[0]
    outputs = output_names(graph)
    made = {id(t) for n in builder.nodes for t in n.outputs}
    writer = producer(result)
    if id(result) not in made:
        if writer is not None and any(writer is n for n in matched):
            raise PassError(f"rewrite at '{node_site(root)}' returned '{result.name}', a value the pattern removes")
        if out.name in outputs and (writer is None or result.name in outputs or any(result is t for t in graph.inputs)):
            what = "graph output" if result.name in outputs else "graph input or constant"
            return f"output '{out.name}' is a graph output fed directly by {what} '{result.name}'; removing would rename it"
    insert_before(graph, root, builder.nodes)
    root.outputs.clear()
    if id(result) in made:
        writer.outputs[writer.outputs.index(result)] = out
    elif out.name in outputs:
        writer.outputs[writer.outputs.index(result)] = out
        replace_all_uses(graph, result, out)
    else:
        replace_all_uses(graph, out, result)
    remove_nodes(graph, matched)
    return True


# --- rules as passes ------------------------------------------------------------------------------


class RulePass(Pass):
    """A pass made of rules (see :func:`rule_pass`)."""

    Options = NoOptions
    rules: Sequence[Rule] = ()

    def run(self, model: onnx.ModelProto) -> PassResult:
        opset = default_opset(model)
        roots = {rule.root.node.op for rule in self.rules if rule.opsets[0] <= opset <= rule.opsets[1]}
        if not any(node.op_type in roots for node in model.graph.node):
            return PassResult(model, False)  # no node any rule could start at: skip the graph import
        graph = to_graph(model)
        outcome = apply_rules(graph, self.rules, model)
        if not outcome.counts:
            return PassResult(model, False, declined=outcome.declined)
        return PassResult(to_model(graph, like=model), True, counts=outcome.counts, declined=outcome.declined)


def rule_pass(
    name: str,
    *,
    exact: bool = True,
    tolerance: Tolerance | None = None,
    opset_range: tuple[int, int] = (1, 10**6),
    doc: str | None = None,
):
    """Decorator: a function returning a rule, a list of rules, or an onnxscript ``RewriteRule``/
    ``RewriteRuleSet`` becomes the registered pass ``name``; its doc is ``doc`` or the function's docstring."""

    def decorate(function: Callable) -> type[Pass]:
        rules = function()
        if _is_onnxscript(rules):
            from graphkit.transform.onnxscript_rules import OnnxscriptRulePass

            base, attrs = OnnxscriptRulePass, {"rule_set": rules}
        else:
            rules = [rules] if isinstance(rules, Rule) else list(rules)
            if not rules or not all(isinstance(r, Rule) for r in rules):
                raise TypeError(f"{function.__name__} must return a Rule, a list of Rules or onnxscript rules")
            base, attrs = RulePass, {"rules": rules}
        attrs.update(
            __doc__=doc or function.__doc__ or f"Rules {name}.",
            __module__=function.__module__,
            exact=exact,
            tolerance=tolerance,
            opset_range=opset_range,
        )
        cls = type(function.__name__, (base,), attrs)
        return register(name)(cls)

    return decorate


def _is_onnxscript(rules: Any) -> bool:
    items = rules if isinstance(rules, (list, tuple)) else [rules]
    return any(type(r).__module__.startswith("onnxscript.") for r in items)
