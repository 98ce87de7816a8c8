"""``graphkit new-pass``: write a rule-based pass file and its test from a template.

:func:`write_pass_template` writes ``DIR/<name>.py`` (a working rule: ``Relu(Relu(x))`` becomes
``Relu(x)``, with a check that declines with a reason) and ``DIR/tests/test_<name>.py`` (the
harness: match, numerics, idempotence, a decline with its reason). Both pass as written; the
author edits the pattern, the check and the rewrite. Existing files are never overwritten
unless ``force``; the name must be kebab-case and not already registered.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from graphkit.transform.registry import all_passes, origin_of, pass_name_problem
from graphkit.util.errors import InputError
from graphkit.util.files import write_text_atomic

PASS_TEMPLATE = Template('''"""$title: replace Relu(Relu(x)) by Relu(x).

Written by ``graphkit new-pass $name``: a working rule to edit. State the rewrite, the math and
when the pass declines here (``graphkit passes $name`` prints this text). Relu is idempotent, so
the rewrite is exact. Declines when the inner Relu's output is also read elsewhere or is a graph
output (the rule engine says so) and when the element type of x is unknown.
See docs/writing-passes.md for rules (pattern, check, rewrite) and the imperative form.

Example (DIR is the folder that holds this file)::

    graphkit passes $name --passes-dir DIR      # this text and the options
    pytest DIR/tests/test_$snake.py             # the unit test written beside it

    # in a pipeline YAML
    pass_dirs: [DIR]
    passes:
      - $name
"""

from graphkit.transform.rules import Rule, rule_pass


def pattern(op, x):
    return op.Relu(op.Relu(x))


def check(ctx, x):
    # return True to rewrite, "a reason" to decline (reported), False for "not a match" (silent)
    if ctx.dtype(x) is None:
        return f"element type of '{x.name}' is unknown"
    return True


def rewrite(op, x):
    return op.Relu(x)


@rule_pass("$name")
def $snake():
    """$title: replace Relu(Relu(x)) by Relu(x) (exact)."""
    return Rule(pattern, rewrite, check, name="$name")
''')

TEST_TEMPLATE = Template('''"""Tests of the $name pass (written by ``graphkit new-pass``); run them with pytest."""

from pathlib import Path

from graphkit import testing as gt

PASSES = Path(__file__).resolve().parents[1]  # the folder that holds $snake.py
HEADER = '<ir_version: 8, opset_import: ["" : 13]>'


def model(body, outputs="float[2,3] y"):
    return gt.parse_model(f"{HEADER} g (float[2,3] x) => ({outputs}) {{ {body} }}")


def test_rewrites_and_keeps_the_numbers():
    pass_ = gt.load_user_pass(PASSES, "$name")
    m = model("a = Relu(x) b = Relu(a) y = Neg(b)")
    result = gt.assert_matches(pass_, m, rule="$name", times=1)
    gt.assert_op_types(result.model, ["Relu", "Neg"])
    gt.assert_numerically_equal(m, result.model, atol=0, rtol=0)
    gt.assert_idempotent(pass_, result.model)


def test_declines_with_a_reason():
    pass_ = gt.load_user_pass(PASSES, "$name")
    m = model("a = Relu(x) y = Relu(a) z = Neg(a)", outputs="float[2,3] y, float[2,3] z")
    gt.assert_no_match(pass_, m, reason_contains="also read by Neg")
    gt.assert_no_match(pass_, model("y = Neg(x)"))
''')


def write_pass_template(name: str, directory: str | Path, force: bool = False) -> tuple[Path, Path]:
    """Write the pass file and its test for pass ``name`` under ``directory``; returns both paths."""
    problem = pass_name_problem(name)
    if problem:
        raise InputError(problem)
    registered = all_passes()
    if name in registered:
        raise InputError(f"pass name '{name}' is already registered by {origin_of(name)}")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    snake = name.replace("-", "_")
    pass_path, test_path = directory / f"{snake}.py", directory / "tests" / f"test_{snake}.py"
    for path in (pass_path, test_path):
        if path.exists() and not force:
            raise InputError(f"{path}: already exists (use --force to overwrite)")
    title = name.replace("-", " ").capitalize()
    values = {"name": name, "snake": snake, "title": title}
    write_text_atomic(pass_path, PASS_TEMPLATE.substitute(values))
    write_text_atomic(test_path, TEST_TEMPLATE.substitute(values))
    return pass_path, test_path
