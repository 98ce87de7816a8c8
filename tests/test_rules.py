"""graphkit.transform.rules: the pattern engine, rules as passes, decline reasons, fixed point, properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from graphkit.ir.graph import to_graph
from graphkit.testing import (
    assert_applies_share,
    assert_golden_equal,
    assert_idempotent,
    assert_matches,
    assert_no_match,
    assert_numerically_equal,
    assert_op_types,
    binary_constant_graphs,
    check_declines_or_exact,
    load_user_pass,
    parse_model,
    run_pass,
)
from graphkit.transform.registry import get_pass
from graphkit.transform.rules import Rule, RulePass, apply_rules, match_rule, rule_pass
from graphkit.util.errors import PassError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "examples" / "passes"
HEADER = '<ir_version: 8, opset_import: ["" : 13]>'


def model(body: str, inputs: str = "float[2,3] x", outputs: str = "float[2,3] y"):
    return parse_model(f"{HEADER} g ({inputs}) => ({outputs}) {{ {body} }}")


def make_pass(*rules):
    return type("Adhoc", (RulePass,), {"rules": list(rules), "name": "adhoc"})()


def relu_relu(op, x):
    return op.Relu(op.Relu(x))


def keep_x(op, x, **_):
    return x


def test_nested_pattern_removes_the_inner_node_and_keeps_output_names():
    m = model("a = Relu(x) b = Relu(a) y = Neg(b)")
    result = assert_matches(make_pass(Rule(relu_relu, lambda op, x: op.Relu(x))), m, rule="relu_relu", times=1)
    assert_op_types(result.model, ["Relu", "Neg"])
    assert_numerically_equal(m, result.model, atol=0, rtol=0)
    assert {o for n in result.model.graph.node for o in n.output} == {"b", "y"}  # 'b' kept its name


def test_inner_value_read_elsewhere_declines_with_the_reader():
    m = model("a = Relu(x) y = Relu(a) z = Neg(a)", outputs="float[2,3] y, float[2,3] z")
    assert_no_match(make_pass(Rule(relu_relu, keep_x)), m, reason_contains="'a' inside the pattern is also read by Neg")
    m = model("a = Relu(x) y = Relu(a)", outputs="float[2,3] y, float[2,3] a")
    assert_no_match(make_pass(Rule(relu_relu, keep_x)), m, reason_contains="'a' inside the pattern is a graph output")


def test_bypass_of_a_graph_output_renames_the_producer_or_declines():
    rule = Rule(lambda op, x: op.Identity(x), keep_x, name="identity")
    m = model("a = Relu(x) y = Identity(a)")
    result = assert_matches(make_pass(rule), m, rule="identity")
    assert [n.output[0] for n in result.model.graph.node] == ["y"]
    assert_no_match(
        make_pass(rule),
        model("y = Identity(x)"),
        reason_contains="graph output fed directly by graph input or constant 'x'",
    )


def test_commute_tries_both_input_orders_and_literals_match_constants():
    def times_one(op, x):
        return op.Mul(x, 1.0)

    m = model("one = Constant <value = float {1.0}> () t = Mul(one, x) y = Relu(t)")
    assert_no_match(make_pass(Rule(times_one, keep_x)), m)  # order matters without commute
    result = assert_matches(make_pass(Rule(times_one, keep_x, commute=True)), m, rule="times_one")
    assert_op_types(result.model, ["Relu"])
    two = model("two = Constant <value = float {2.0}> () t = Mul(x, two) y = Relu(t)")
    assert_no_match(make_pass(Rule(times_one, keep_x, commute=True)), two)


def test_attribute_variables_bind_and_literal_attributes_must_equal():
    seen = []

    def check(ctx, x, perm):
        seen.append(perm)
        return True if perm == [1, 0] else f"perm {perm} is not a swap"

    rule = Rule(lambda op, x, perm: op.Transpose(op.Transpose(x, perm=perm), perm=[1, 0]), keep_x, check)
    m = model("a = Transpose <perm = [1, 0]> (x) b = Transpose <perm = [1, 0]> (a) y = Relu(b)")
    assert_matches(make_pass(rule), m)
    assert seen[0] == [1, 0]


def test_shared_variables_must_bind_the_same_value():
    rule = Rule(lambda op, x: op.Add(x, x), lambda op, x: op.Mul(x, np.array(2.0, np.float32)), name="double")
    m = model("t = Add(x, x) y = Relu(t)")
    result = assert_matches(make_pass(rule), m, rule="double")
    assert_op_types(result.model, ["Mul", "Relu"])
    assert_numerically_equal(m, result.model, atol=0, rtol=0)
    assert_no_match(make_pass(rule), model("t = Add(x, z) y = Relu(t)", inputs="float[2,3] x, float[2,3] z"))


def test_fixed_point_and_declines_of_the_final_round_only():
    neutral = load_user_pass(EXAMPLES, "neutral-arithmetic")
    one, zero = "one = Constant <value = float {1.0}> ()", "zero = Constant <value = float {0.0}> ()"
    m = model(f"{one} {zero} a = Relu(x) b = Mul(a, one) c = Add(zero, b) d = Sub(c, zero) y = Div(d, one)")
    result = assert_matches(neutral, m)
    assert result.counts == {"Mul": 1, "Add": 1, "Sub": 1, "Div": 1}
    assert_op_types(result.model, ["Relu"])
    assert not result.declined
    assert_idempotent(neutral, result.model)


def test_check_returning_garbage_and_endless_rewrites_are_pass_errors():
    bad = Rule(lambda op, x: op.Relu(x), keep_x, lambda ctx, x: 3)
    with pytest.raises(PassError, match="check returned 3"):
        make_pass(bad)(model("y = Relu(x)"))
    endless = Rule(lambda op, x: op.Relu(x), lambda op, x: op.Relu(x))
    with pytest.raises(PassError, match="fixed point"):
        make_pass(endless)(model("a = Relu(x) y = Neg(a)"))


def test_pattern_must_return_an_op_output():
    with pytest.raises(TypeError, match="must return one op output"):
        Rule(lambda op, x: x, keep_x)


def test_match_rule_sees_the_structure_only():
    graph = to_graph(model("a = Relu(x) y = Relu(a)"))
    root = [n for n in graph.nodes if n.outputs[0].name == "y"][0]
    [found] = list(match_rule(Rule(relu_relu, keep_x), root))
    assert [n.outputs[0].name for n in found.nodes] == ["y", "a"]
    assert found.bindings["x"].name == "x"


def test_rule_pass_registers_one_rule_with_its_docstring():
    @rule_pass("test-drop-identity-rule")
    def drop_identity():
        """Drop Identity nodes (a test rule)."""
        return Rule(lambda op, x: op.Identity(x), keep_x)

    cls = get_pass("test-drop-identity-rule")
    assert cls is drop_identity and cls.summary() == "Drop Identity nodes (a test rule)." and cls.exact
    result = run_pass(cls(), model("a = Identity(x) y = Relu(a)"))
    assert result.modified and result.counts == {"<lambda>": 1}
    with pytest.raises(TypeError, match="must return a Rule"):
        rule_pass("test-bad-rules")(lambda: ["not a rule"])


def test_engine_uses_shape_inference_once_for_values_without_value_info():
    neutral = load_user_pass(EXAMPLES, "neutral-arithmetic")
    # no value_info: 't' is typed only by inference, and the broadcast check needs it
    m = model(
        "one = Constant <value = float[1,1,1] {1.0}> () t = Relu(x) u = Mul(t, one) y = Neg(u)",
        outputs="float[1,2,3] y",
    )
    assert_no_match(neutral, m, reason_contains="broadcast changes the shape (2, 3) -> (1, 2, 3)")
    graph = to_graph(m)
    outcome = apply_rules(graph, get_pass("neutral-arithmetic").rules, m)
    assert outcome.rounds == 1 and not outcome.counts


def test_golden_equality_on_given_pairs_and_a_golden_folder(tmp_path):
    neutral = load_user_pass(EXAMPLES, "neutral-arithmetic")
    m = model("one = Constant <value = float {1.0}> () t = Mul(x, one) y = Relu(t)")
    result = assert_matches(neutral, m)
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    assert assert_golden_equal(result.model, [({"x": x}, {"y": np.maximum(x, 0)})], atol=0, rtol=0) == 1
    with pytest.raises(AssertionError, match="output 'y'"):
        assert_golden_equal(result.model, [({"x": x}, {"y": x})], atol=0, rtol=0)
    from graphkit.testing import run_cli

    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    made = run_cli("golden", "make", path, "-o", tmp_path / "golden", "--batch-sizes", "2")
    assert made.returncode == 0, made.stderr
    assert assert_golden_equal(result.model, tmp_path / "golden", atol=0, rtol=0) >= 1


NEUTRAL_VALUES = [1.0, 0.0, -0.0, 1.0001, 2.0, float("nan")]


@settings(derandomize=True, max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(binary_constant_graphs(["Mul", "Div", "Add", "Sub"], NEUTRAL_VALUES))
def test_neutral_arithmetic_declines_or_is_exact(graph):
    neutral = load_user_pass(EXAMPLES, "neutral-arithmetic")
    APPLIED.append(check_declines_or_exact(neutral, graph, atol=0, rtol=0))


APPLIED: list[bool] = []


def test_neutral_arithmetic_applies_on_a_share_of_generated_cases():
    if not APPLIED:
        test_neutral_arithmetic_declines_or_is_exact()
    assert_applies_share(APPLIED, at_least=0.1)
    assert not all(APPLIED)  # near misses are generated too


def test_readme_shows_the_example_pass_and_test_verbatim():
    readme = (REPO / "README.md").read_text()
    pass_text = (EXAMPLES / "neutral_arithmetic.py").read_text()
    test_text = (REPO / "tests" / "test_neutral_arithmetic_example.py").read_text()
    assert len(pass_text.splitlines()) <= 30 and len(test_text.splitlines()) <= 20
    assert pass_text in readme and test_text in readme


def test_a_rule_applies_only_inside_its_opset_range():
    rule = Rule(lambda op, x: op.Identity(x), keep_x, name="identity", opsets=(14, 21))
    m = model("a = Identity(x) y = Relu(a)")  # opset 13
    assert_no_match(make_pass(rule), m)
    m.opset_import[0].version = 14
    assert_matches(make_pass(rule), m, rule="identity")


def test_rewrite_mistakes_are_pass_errors_naming_the_pass():
    inner = Rule(relu_relu, lambda op, x: op.ctx.nodes[1].outputs[0], name="returns-inner")
    with pytest.raises(PassError, match="a value the pattern removes"):
        make_pass(inner)(model("a = Relu(x) b = Relu(a) y = Neg(b)"))
    garbage = Rule(relu_relu, lambda op, x: 42, name="returns-42")
    with pytest.raises(PassError, match="rewrite returned 42"):
        make_pass(garbage)(model("a = Relu(x) b = Relu(a) y = Neg(b)"))
    raising = Rule(relu_relu, lambda op, x: 1 / 0, name="raises")
    with pytest.raises(PassError, match="pass 'adhoc' raised ZeroDivisionError"):
        make_pass(raising)(model("a = Relu(x) b = Relu(a) y = Neg(b)"))


def test_a_broken_rule_file_is_a_one_line_load_error(tmp_path):
    from graphkit.testing import run_cli

    (tmp_path / "bad.py").write_text(
        "from graphkit.transform.rules import Rule, rule_pass\n\n"
        "@rule_pass('bad-rule')\ndef bad():\n    return Rule(lambda op, x: x, lambda op, x: x)\n"
    )
    result = run_cli("passes", "--passes-dir", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"graphkit: error: {tmp_path / 'bad.py'}: cannot import pass file: TypeError: "
        "pattern <lambda> must return one op output (op.Xxx(...)), got Var(name='x')"
    )
