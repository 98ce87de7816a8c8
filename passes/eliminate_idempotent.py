"""Remove the second of two idempotent unary ops (``Relu(Relu(x))``) and involution pairs (``Neg(Neg(x))``).

Rewrites:
- ``y = f(f(x))`` for ``f`` in Relu, Abs, Floor, Ceil, Round, Sign (same op twice, default
  domain) — the outer op is removed and its readers read ``f(x)`` (the inner op stays: it may
  have other readers) — counted as ``idempotent``;
- ``y = g(g(x))`` for ``g`` in Neg, Not — the outer op is removed and its readers read ``x``;
  the inner op dies when nothing else reads it — counted as ``involution``.

Math, per op (ONNX semantics, every element type the op takes):
- Relu: ``max(r, 0) = r`` for ``r >= 0``; ``r`` is +0/-0 or NaN where ``x`` is, and Relu
  maps each of those to itself or the same class, so ``Relu(Relu(x)) == Relu(x)`` bit for bit.
- Abs: ``|r| = r`` for ``r >= 0`` (NaN stays NaN; integer ``|INT_MIN|`` wraps to ``INT_MIN``,
  whose Abs is again ``INT_MIN``).
- Floor, Ceil, Round: their outputs are integral (or inf/NaN/±0), which each maps to itself.
- Sign: outputs are -1, 0, 1 (or NaN), each its own sign.
- Neg: IEEE negation flips the sign bit, twice is the identity (NaN payloads included);
  integer ``-(-x) = x`` in two's complement, ``INT_MIN`` included. Not: ``!!b = b``.
Not idempotent, hence not here: Sigmoid, Softplus, Exp, Reciprocal (``1/(1/x)`` rounds), and
``Not``/``Neg`` as idempotent ops (they are involutions). Bit-exact: declared exact.

Declines (node kept, reason given): removing would rename a graph output (the output is fed
directly by a graph input or initializer: only for ``involution``); the engine's own declines.
Only the main graph is rewritten; custom-domain nodes are never touched.
"""

from __future__ import annotations

from graphkit.ir.graph import is_default_domain, producer
from graphkit.ir.opset import LATEST_OPSET
from graphkit.transform.rules import Rule, rule_pass

IDEMPOTENT_OPS = ("Relu", "Abs", "Floor", "Ceil", "Round", "Sign")
INVOLUTION_OPS = ("Neg", "Not")


def _same_op_inside(ctx, x, **_):
    """True when ``x`` is written by the same default-domain op as the matched node (one output)."""
    inner = producer(x)
    return inner is not None and inner.op == ctx.node.op and is_default_domain(inner) and len(inner.outputs) == 1


def _keep_input(op, x, **_):
    return x


def _inner_input(op, x, **_):
    return producer(x).inputs[0]


def _pattern(op_type: str):
    def pattern(op, x):
        return op[op_type](x)

    pattern.__name__ = f"{op_type.lower()}_twice"
    return pattern


def _rules() -> list[Rule]:
    return [Rule(_pattern(t), _keep_input, _same_op_inside, name="idempotent") for t in IDEMPOTENT_OPS] + [
        Rule(_pattern(t), _inner_input, _same_op_inside, name="involution") for t in INVOLUTION_OPS
    ]


@rule_pass("eliminate-idempotent", opset_range=(1, LATEST_OPSET), doc=__doc__)
def eliminate_idempotent():
    """Rules ``idempotent`` (Relu, Abs, Floor, Ceil, Round, Sign twice) and ``involution`` (Neg, Not twice)."""
    return _rules()


EliminateIdempotent = eliminate_idempotent
