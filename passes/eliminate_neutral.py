"""Remove arithmetic with a neutral constant: ``x + 0``, ``x - 0``, ``x * 1``, ``x / 1``.

Rewrite: ``y = Add(x, c)`` (either order), ``Sub(x, c)``, ``Mul(x, c)`` (either order) or
``Div(x, c)``, where every element of the constant ``c`` (initializer or Constant node) is the
op's neutral element (0 for Add/Sub, 1 for Mul/Div), is removed and every consumer of ``y``
reads ``x``. Exported models hold such nodes wherever a weight keeps its initial value (a
LayerNorm scale of ones, a zero bias), and onnxsim removes them; graphkit's other passes keep
them, because they are not no-ops by type or shape.

Math: with ``c`` neutral, ``y = x`` element for element, provided ``y`` has ``x``'s shape: ``c``
must not broadcast ``x`` up, so its rank is at most ``x``'s and each of its dims is 1 or equal to
``x``'s static dim on that axis. Bit-exact, with one IEEE detail: ``x + (+0)`` turns ``-0`` into
``+0`` (equal as values; only a later division by that zero would see the difference, as the sign
of an infinity). ``x - 0``, ``x * 1`` and ``x / 1`` are bit-exact for every input, NaN and
infinities included. Declared exact on that basis.

Declines (node kept, reason given): ``x``'s rank is unknown (shape inference that gives it makes
the site removable); ``c`` has a higher rank than ``x`` or a dim > 1 where ``x``'s dim is symbolic,
unknown or different (``c`` could broadcast ``x`` up; a static equal dim in ``x`` makes it
removable); removing would rename a graph output (the output is fed directly by a graph input
or initializer). ``0 - x`` and ``1 / x`` are not neutral and never match. Only the main graph is
rewritten; custom-domain nodes are never touched.
"""

from __future__ import annotations

from graphkit.ir.broadcast import broadcast_keeps_shape
from graphkit.ir.opset import LATEST_OPSET
from graphkit.transform.rules import Constant, Rule, rule_pass


def _keep_input(op, x, c=None):
    return x


def _same_shape_check(ctx, x, c):
    """True when ``x op c`` has ``x``'s shape, else the reason it may not."""
    value = ctx.constant(c)
    reason = broadcast_keeps_shape(ctx.shape(x), () if value is None else value.shape, f"constant '{c.name}'")
    return True if reason is None else f"'{x.name}': {reason}"


def _rule(op_type: str, neutral: float, commute: bool) -> Rule:
    def pattern(op, x):
        return op[op_type](x, Constant(neutral, name="c"))  # the constant binds as 'c'

    pattern.__name__ = f"{op_type.lower()}_{'zero' if neutral == 0 else 'one'}"
    return Rule(pattern, _keep_input, _same_shape_check, name=pattern.__name__, commute=commute)


NEUTRAL_RULES = [
    _rule("Add", 0, commute=True),
    _rule("Sub", 0, commute=False),
    _rule("Mul", 1, commute=True),
    _rule("Div", 1, commute=False),
]


@rule_pass("eliminate-neutral", opset_range=(1, LATEST_OPSET), doc=__doc__)
def eliminate_neutral():
    """Four rules, one per op; counts are by rule (add_zero, sub_zero, mul_one, div_one)."""
    return NEUTRAL_RULES


EliminateNeutral = eliminate_neutral
