"""The rule contract (graphkit.transform.rules): a check accepts only with True, literal constants
bind with tolerances, optional trailing inputs, rule passes with options, and a rewrite whose
parameters do not fit the pattern failing when the Rule is built."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import pytest

from graphkit.testing import (
    assert_checker_valid,
    assert_idempotent,
    assert_matches,
    assert_no_match,
    assert_numerically_equal,
    assert_op_types,
    parse_model,
    run_pass,
)
from graphkit.transform.pass_base import option
from graphkit.transform.registry import get_pass
from graphkit.transform.rules import Constant, Rule, RulePass, rule_pass
from graphkit.util.errors import PassError, PassLoadError

HEADER = '<ir_version: 8, opset_import: ["" : 13]>'


def model(body: str, inputs: str = "float[2,3] x", outputs: str = "float[2,3] y"):
    return parse_model(f"{HEADER} g ({inputs}) => ({outputs}) {{ {body} }}")


def make_pass(*rules):
    return type("Adhoc", (RulePass,), {"rules": list(rules), "name": "adhoc"})()


def keep_x(op, x, **_):
    return x


def times(value: float) -> str:
    return f"k = Constant <value = float {{{value!r}}}> () t = Mul(x, k) y = Relu(t)"


def test_a_check_that_returns_none_does_not_rewrite_and_says_why():
    def forgot_to_return(ctx, x):
        ctx.shape(x)  # the author meant to accept here

    m = model("a = Relu(x) y = Neg(a)")
    result = run_pass(make_pass(Rule(lambda op, x: op.Relu(x), lambda op, x: x, forgot_to_return, name="drop")), m)
    assert not result.modified
    assert [d.reason for d in result.declined] == [
        "drop: the check returned None (a check accepts only by returning True)"
    ]
    accepted = Rule(lambda op, x: op.Relu(x), lambda op, x: x, lambda ctx, x: True, name="drop")
    assert_op_types(assert_matches(make_pass(accepted), m, rule="drop").model, ["Neg"])
    silent = Rule(lambda op, x: op.Relu(x), lambda op, x: x, lambda ctx, x: False, name="drop")
    assert not run_pass(make_pass(silent), m).declined  # False: not a site, nothing to report
    numpy_yes = Rule(lambda op, x: op.Relu(x), lambda op, x: x, lambda ctx, x: np.all(np.ones(2) > 0), name="drop")
    assert run_pass(make_pass(numpy_yes), m).modified  # np.bool_ True accepts like True
    for truthy in (1, "", [True]):  # only True accepts; "" is an (empty) reason, others are errors
        odd = Rule(lambda op, x: op.Relu(x), lambda op, x: x, lambda ctx, x, v=truthy: v, name="drop")
        if truthy == "":
            assert not run_pass(make_pass(odd), m).modified
        else:
            with pytest.raises(PassError, match="check returned"):
                run_pass(make_pass(odd), m)


def test_a_bound_literal_constant_reaches_the_check_and_the_rewrite():
    seen = []

    def check(ctx, x, k):
        seen.append(ctx.constant(k).item())
        return True

    def rewrite(op, x, k):
        return op.Add(x, op.Sub(k, k))  # uses the bound constant: x + (k - k) == x

    rule = Rule(lambda op, x: op.Mul(x, Constant(1.0, name="k")), rewrite, check, name="times_one", commute=True)
    m = model(times(1.0))
    result = assert_matches(make_pass(rule), m, rule="times_one")
    assert seen == [1.0]
    assert_op_types(result.model, ["Sub", "Add", "Relu", "Constant"])
    assert_numerically_equal(m, result.model, atol=0, rtol=0)  # x + 0 == x, bit for bit
    assert_checker_valid(result.model)
    assert_no_match(make_pass(rule), model(times(2.0)))


def test_constant_tolerances_match_like_isclose():
    near = Rule(lambda op, x: op.Mul(x, Constant(1.0, abs_tol=1e-3)), keep_x, name="near")
    assert_matches(make_pass(near), model(times(1.0005)))
    assert_no_match(make_pass(near), model(times(1.01)))
    relative = Rule(lambda op, x: op.Mul(x, Constant(100.0, rel_tol=0.01)), keep_x, name="rel")
    assert_matches(make_pass(relative), model(times(100.9)))
    assert_no_match(make_pass(relative), model(times(102.0)))
    exact = Rule(lambda op, x: op.Mul(x, Constant(1.0)), keep_x, name="exact")
    assert_no_match(make_pass(exact), model(times(1.0000001)))
    vector = Rule(lambda op, x: op.Mul(x, Constant([1.0, 2.0, 3.0])), keep_x, name="vector")
    assert_no_match(make_pass(vector), model(times(1.0)))  # a scalar is not the vector pattern
    m = model("k = Constant <value = float[3] {1.0, 2.0, 3.0}> () t = Mul(x, k) y = Relu(t)")
    assert_matches(make_pass(vector), m)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Constant(float("nan")), "finite numbers"),
        (lambda: Constant("1"), "finite numbers"),
        (lambda: Constant([]), "finite numbers"),
        (lambda: Constant(1, abs_tol=-1), ">= 0"),
        (lambda: Constant(1, rel_tol=float("inf")), ">= 0"),
        (lambda: Constant(1, name="not a name"), "identifier"),
    ],
)
def test_bad_constants_fail_when_built(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_optional_trailing_inputs_match_every_arity_with_one_rule():
    seen = []

    def check(ctx, x, w, b=None):
        seen.append(None if b is None else b.name)
        return True

    rule = Rule(lambda op, x, w, b=None: op.Relu(op.Conv(x, w, b)), keep_x, check, name="conv")
    header = "w = Constant <value = float[1,1,1,1] {2.0}> () "
    no_bias = parse_model(
        f"{HEADER} g (float[1,1,2,2] x) => (float[1,1,2,2] y) {{ {header} c = Conv(x, w) r = Relu(c) y = Neg(r) }}"
    )
    bias = parse_model(
        f"{HEADER} g (float[1,1,2,2] x) => (float[1,1,2,2] y) "
        f"{{ {header} b = Constant <value = float[1] {{1.0}}> () c = Conv(x, w, b) r = Relu(c) y = Neg(r) }}"
    )
    assert_matches(make_pass(rule), no_bias)
    assert_matches(make_pass(rule), bias)
    assert seen == [None, "b"]
    with pytest.raises(TypeError, match="only trailing inputs may be optional"):
        Rule(lambda op, x, w=None, b=None: op.Conv(x, w, b, x), keep_x)


def test_a_rewrite_that_does_not_fit_the_pattern_fails_when_built_naming_its_line():
    def rewrite(op, x, y):  # 'y' is no variable of the pattern
        return x

    line = inspect.getsourcelines(rewrite)[1]
    with pytest.raises(PassLoadError, match=rf"{__file__}:{line}: rule 'relu': the rewrite's parameter 'y'"):
        Rule(lambda op, x: op.Relu(x), rewrite, name="relu")
    with pytest.raises(PassLoadError, match=r"the check does not take the pattern variable\(s\) c"):
        Rule(lambda op, x, c: op.Mul(x, c), keep_x, lambda ctx, x: True, name="mul")
    Rule(lambda op, x, c: op.Mul(x, c), lambda op, x, c, extra=1: x)  # a defaulted extra is fine


@dataclass
class NeutralOptions:
    """Which neutral ops to drop."""

    add: bool = option(True, doc="drop x + 0")
    mul: bool = option(True, doc="drop x * 1")


@rule_pass("test-neutral-with-options", options=NeutralOptions)
def neutral_with_options(options: NeutralOptions):
    """Drop x + 0 and x * 1, each when its option is on."""
    rules = []
    if options.add:
        rules.append(Rule(lambda op, x: op.Add(x, Constant(0)), keep_x, name="add"))
    if options.mul:
        rules.append(Rule(lambda op, x: op.Mul(x, Constant(1)), keep_x, name="mul"))
    return rules


def test_a_rule_pass_with_options_builds_its_rules_per_instance():
    body = (
        "zero = Constant <value = float {0.0}> () one = Constant <value = float {1.0}> () "
        "a = Add(x, zero) b = Mul(a, one) y = Relu(b)"
    )
    m = model(body)
    cls = get_pass("test-neutral-with-options")
    both = cls()
    result = assert_matches(both, m)
    assert result.counts == {"add": 1, "mul": 1}
    assert_op_types(result.model, ["Relu"])
    assert_numerically_equal(m, result.model, atol=0, rtol=0)
    assert_idempotent(both, result.model)
    only_mul = cls.from_spec({"add": False}, "passes[0]")
    assert run_pass(only_mul, m).counts == {"mul": 1}
    assert only_mul.options_dict() == {"add": False, "mul": True}
    with pytest.raises(Exception, match="add"):
        cls.from_spec({"add": "maybe"}, "passes[0]")
    nothing = cls(add=False, mul=False)
    assert not run_pass(nothing, m).modified  # options may select no rule at all
