"""Drop Mul/Div by 1 and Add/Sub of 0: ``y = x * 1`` becomes ``y = x``.

Exact (``-0.0 + 0`` gives ``+0.0``, which compares equal). Declines when the constant
broadcasts ``x`` to another shape or a shape is unknown, and when ``y`` is a graph output
fed directly by a graph input (renaming it would change the graph's outputs).
"""

import numpy as np

from graphkit.transform.rules import Rule, rule_pass

NEUTRAL = {"Mul": 1, "Div": 1, "Add": 0, "Sub": 0}


def check(ctx, x, c):
    value = ctx.constant(c)
    if value is None or not np.all(value == NEUTRAL[ctx.node.op]):
        return False  # not a neutral constant: no match, nothing to report
    if ctx.shape(x) is None or ctx.shape(x) != ctx.shape(ctx.output):
        return f"broadcast changes the shape {ctx.shape(x)} -> {ctx.shape(ctx.output)}"


@rule_pass("neutral-arithmetic")
def neutral_arithmetic():
    """Drop Mul/Div by 1 and Add/Sub of 0 (exact; declines shape-changing broadcasts)."""
    return [
        Rule(lambda op, x, c, t=t: op[t](x, c), lambda op, x, c: x, check, name=t, commute=t in ("Mul", "Add"))
        for t in NEUTRAL
    ]
