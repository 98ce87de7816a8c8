"""Drop Mul/Div by 1 and Add/Sub of 0: ``y = x * 1`` becomes ``y = x``.

Exact (``-0.0 + 0`` gives ``+0.0``, which compares equal). Declines when the constant
broadcasts ``x`` to another shape or a shape is unknown, and when ``y`` is a graph output
fed directly by a graph input (renaming it would change the graph's outputs).
"""

from graphkit.transform.rules import Constant, Rule, rule_pass

NEUTRAL, COMMUTE = {"Mul": 1, "Div": 1, "Add": 0, "Sub": 0}, ("Mul", "Add")


def check(ctx, x, c):  # c: the neutral constant the pattern bound
    if ctx.shape(x) is None or ctx.shape(x) != ctx.shape(ctx.output):
        return f"broadcast changes the shape {ctx.shape(x)} -> {ctx.shape(ctx.output)}"
    return True  # only True rewrites: a check that forgets to return declines


def rule(t, v):  # Constant(v): an exact 1 or 0, bound as c
    return Rule(lambda op, x: op[t](x, Constant(v, name="c")), lambda op, x, c: x, check, name=t, commute=t in COMMUTE)


@rule_pass("neutral-arithmetic")
def neutral_arithmetic():
    """Drop Mul/Div by 1 and Add/Sub of 0 (exact; declines shape-changing broadcasts)."""
    return [rule(t, v) for t, v in NEUTRAL.items()]
