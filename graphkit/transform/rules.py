"""Declarative rewrite rules: a pattern, a replacement and a condition that declines with a reason.

A rule is three small functions over graphsurgeon tensors::

    def pattern(op, x, c):           # what to find: op.<OpType>(inputs..., attr=value)
        return op.Mul(x, c)

    def check(ctx, x, c):            # optional: True = rewrite, "reason" = decline, False = no match
        if ctx.shape(x) is None:
            return f"shape of '{x.name}' is unknown"
        return True                  # only True accepts: a forgotten return (None) declines

    def rewrite(op, x, c):           # what to put there: an existing value (bypass) or new ops
        return x

    rule = Rule(pattern, rewrite, check, commute=True)

Pattern functions follow the onnxscript rewriter's: parameters after ``op`` are pattern
variables that bind graph values (or, used as an attribute value, the attribute's value, None
when absent); a parameter with the default ``None`` is an optional trailing input (it binds None
when the node has no such input), so one rule covers every arity of an op; a Python number as an
input matches a constant whose every element equals it, and ``Constant(value, rel_tol=, abs_tol=,
name=)`` matches one within tolerances and, with a ``name``, binds it as a variable; attributes
given as literals must be equal, others are not looked at. The check and the rewrite take the
pattern's variables by name: a parameter that is not one fails when the Rule is built, naming the
function's file and line. ``commute=True`` also
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

import dataclasses
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
from graphkit.util.errors import PassError, PassLoadError, printable
from graphkit.util.tolerance import Tolerance

COMMUTATIVE = frozenset({"Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal", "BitwiseAnd"})
MAX_ROUNDS = 1000


# --- patterns -------------------------------------------------------------------------------------


@dataclass(eq=False)
class Var:
    """A pattern variable: binds a graph value (or an attribute value)."""

    name: str
    optional: bool = field(default=False, repr=False)  # a trailing input the node may leave out: binds None then


@dataclass(eq=False)
class Constant:
    """A pattern input matching a constant (initializer or ``Constant`` output) whose every element
    is ``value`` within ``abs_tol`` or ``rel_tol`` (relative to the larger magnitude, as
    ``math.isclose``); a non-scalar ``value`` also needs the same shape. With ``name`` the matched
    value is bound as a pattern variable of that name (the check and the rewrite receive it)."""

    value: Any
    rel_tol: float = 0.0
    abs_tol: float = 0.0
    name: str | None = None

    def __post_init__(self):
        want = np.asarray(self.value)
        if want.dtype.kind not in "biuf" or want.size == 0 or not np.all(np.isfinite(want)):
            raise TypeError(f"Constant({self.value!r}): the value must be finite numbers (a number or an array)")
        for tol in (self.rel_tol, self.abs_tol):
            if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 <= tol < float("inf")):
                raise TypeError(
                    f"Constant({self.value!r}): rel_tol and abs_tol must be finite numbers >= 0, got {tol!r}"
                )
        if self.name is not None and not (isinstance(self.name, str) and self.name.isidentifier()):
            raise TypeError(f"Constant({self.value!r}): name must be a Python identifier, got {self.name!r}")

    def matches(self, value: np.ndarray | None) -> bool:
        """Whether the constant ``value`` (None: not a constant) is this one within the tolerances."""
        want = np.asarray(self.value)
        if value is None or value.size == 0 or value.dtype.kind not in "biuf":
            return False
        if want.ndim and value.shape != want.shape:
            return False
        if value.dtype.kind != "f" and want.dtype.kind != "f":
            return bool(np.all(value == want))
        have, want = value.astype(np.float64), want.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            allowed = np.maximum(self.abs_tol, self.rel_tol * np.maximum(np.abs(have), np.abs(want)))
            return bool(np.all(np.abs(have - want) <= allowed))


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
    """The pattern's root and its variable names: parameters without a default, parameters whose
    default is None (optional trailing inputs) and named ``Constant``s."""
    params = list(inspect.signature(pattern).parameters.values())[1:]
    variables = {p.name: Var(p.name, p.default is None) for p in params if p.default in (inspect.Parameter.empty, None)}
    result = pattern(_PatternBuilder(), **variables)
    if not isinstance(result, PatternValue):
        raise TypeError(f"pattern {pattern.__name__} must return one op output (op.Xxx(...)), got {result!r}")
    names = list(variables)
    for pnode in _pattern_nodes(result.node):
        for k, item in enumerate(pnode.inputs):
            if isinstance(item, Var) and item.optional and not all(_is_optional(i) for i in pnode.inputs[k:]):
                raise TypeError(
                    f"pattern {pattern.__name__}: optional input '{item.name}' of {pnode.op} is followed by a "
                    "required one; only trailing inputs may be optional"
                )
            if isinstance(item, Constant) and item.name is not None:
                if item.name in names:
                    raise TypeError(f"pattern {pattern.__name__}: the name '{item.name}' is bound twice")
                names.append(item.name)
    return result, names


def _pattern_nodes(root: PatternNode) -> Iterator[PatternNode]:
    yield root
    for item in root.inputs:
        if isinstance(item, PatternValue):
            yield from _pattern_nodes(item.node)


def _is_optional(item: Any) -> bool:
    return item is None or (isinstance(item, Var) and item.optional)


def _check_signature(function: Callable, variables: list[str], role: str, rule: str) -> None:
    """PassLoadError naming ``function``'s file and line when it cannot take the pattern's
    variables by name (a parameter that is no variable, or a variable it does not take)."""
    try:
        params = list(inspect.signature(function).parameters.values())[1:]
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to read
    where = _source_line(function)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        named = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    else:
        named = params
        missing = [v for v in variables if v not in {p.name for p in params}]
        if missing:
            raise PassLoadError(
                f"{where}: rule '{rule}': the {role} does not take the pattern variable(s) {', '.join(missing)} "
                f"(variables: {', '.join(variables) or 'none'}; add them or **_)"
            )
    for p in named:
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL):
            raise PassLoadError(f"{where}: rule '{rule}': the {role}'s parameter '{p.name}' cannot be passed by name")
        if p.name not in variables and p.default is inspect.Parameter.empty:
            raise PassLoadError(
                f"{where}: rule '{rule}': the {role}'s parameter '{p.name}' is not a pattern variable "
                f"(variables: {', '.join(variables) or 'none'})"
            )


def _source_line(function: Callable) -> str:
    """``FILE:LINE`` of a function's definition, or its repr when it has no source."""
    code = getattr(inspect.unwrap(function), "__code__", None)
    if code is None:
        return repr(function)
    return f"{printable(code.co_filename)}:{code.co_firstlineno}"


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
        self.name = name or pattern.__name__
        _check_signature(rewrite, self.variables, "rewrite", self.name)
        if check is not None:
            _check_signature(check, self.variables, "check", self.name)
        self.rewrite = rewrite
        self.check = check
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
    required = len(pnode.inputs)
    while required and isinstance(pnode.inputs[required - 1], Var) and pnode.inputs[required - 1].optional:
        required -= 1
    if not required <= len(inputs) <= len(pnode.inputs):
        return
    inputs += [None] * (len(pnode.inputs) - len(inputs))  # absent optional inputs bind None
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


def _match_value(rule: Rule, pvalue: Any, tensor: gs.Tensor | None, state: Match) -> Iterator[Match]:
    if isinstance(pvalue, Var):
        if tensor is not None and not tensor.name and pvalue.optional:
            tensor = None  # an empty optional input binds None
        state = Match(dict(state.bindings), state.nodes, state.by_pattern)
        if _bind(state, pvalue.name, tensor):
            yield state
    elif tensor is None:
        return
    elif isinstance(pvalue, PatternValue):
        writer = producer(tensor)
        if writer is not None and pvalue.index < len(writer.outputs) and writer.outputs[pvalue.index] is tensor:
            yield from _match_node(rule, pvalue.node, writer, state)
    elif isinstance(pvalue, (Constant, int, float, bool)):
        want = pvalue if isinstance(pvalue, Constant) else Constant(pvalue)
        if want.matches(constant_value(tensor)):
            if want.name is None:
                yield state
            else:
                state = Match(dict(state.bindings), state.nodes, state.by_pattern)
                if _bind(state, want.name, tensor):
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
        if isinstance(verdict, np.bool_):  # np.all(...) and friends
            verdict = bool(verdict)
        if verdict is False:
            return None
        if verdict is None:  # a forgotten return: never a rewrite
            return "the check returned None (a check accepts only by returning True)"
        if isinstance(verdict, str):
            return verdict
        if verdict is not True:
            raise PassError(f"rule {rule.name}: check returned {verdict!r}; expected True, False or a reason")
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
    """A pass made of rules (see :func:`rule_pass`). ``make_rules(options)``, when set, builds the
    rules of one pass instance from its options; else ``rules`` are the pass's rules."""

    Options = NoOptions
    rules: Sequence[Rule] = ()
    make_rules: Callable[[Any], Sequence[Rule]] | None = None

    def __init__(self, options: Any = None, **kwargs: Any):
        super().__init__(options, **kwargs)
        if type(self).make_rules is not None:
            self.rules = _rule_list(type(self).make_rules(self.options), type(self).__name__, allow_empty=True)

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
    options: type | None = None,
):
    """Decorator: a function returning a rule, a list of rules, or an onnxscript ``RewriteRule``/
    ``RewriteRuleSet`` becomes the registered pass ``name``; its doc is ``doc`` or the function's docstring.

    With ``options`` (a dataclass of :func:`~graphkit.transform.pass_base.option` fields) the function
    takes the pass's options instance and returns the rules for them; it is called once with the
    default options when decorated (so a broken rule fails at import) and once per pass instance.
    """

    def decorate(function: Callable) -> type[Pass]:
        attrs: dict[str, Any] = {}
        if options is not None:
            if not dataclasses.is_dataclass(options):
                raise PassLoadError(f"{_source_line(function)}: rule pass '{name}': options must be a dataclass")
            _rule_list(function(options()), function.__name__, allow_empty=True)  # fail at import, not at a run
            base = RulePass
            attrs.update(Options=options, make_rules=staticmethod(function))
        else:
            rules = function()
            if _is_onnxscript(rules):
                from graphkit.transform.onnxscript_rules import OnnxscriptRulePass

                base, attrs = OnnxscriptRulePass, {"rule_set": rules}
            else:
                base, attrs = RulePass, {"rules": _rule_list(rules, function.__name__)}
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


def _rule_list(rules: Any, function: str, allow_empty: bool = False) -> list[Rule]:
    rules = [rules] if isinstance(rules, Rule) else list(rules) if isinstance(rules, (list, tuple)) else [rules]
    if not (rules or allow_empty) or not all(isinstance(r, Rule) for r in rules):
        raise TypeError(f"{function} must return a Rule, a list of Rules or onnxscript rules")
    return rules


def _is_onnxscript(rules: Any) -> bool:
    items = rules if isinstance(rules, (list, tuple)) else [rules]
    return any(type(r).__module__.startswith("onnxscript.") for r in items)
