"""graphkit.transform.remedies: a decline reason advises folding first only while a folding pass
is still ahead and changes the model; after the folding passes ran and could not, it says so."""

from __future__ import annotations

from graphkit.pipeline.spec import build_pass_items
from graphkit.testing import parse_model
from graphkit.transform.manager import PassManager

ADVICE = "folding it first would make the node removable"


def expand_model(y_dims: str, x_dims: str):
    """Expand(x, Shape(y)): removable exactly when Shape(y) folds to x's own dims."""
    return parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float{x_dims} x, float{y_dims} y) => (float[?, 4] z)
        {{ s = Shape(y)
           e = Expand(x, s)
           z = Relu(e) }}
        """
    )


def reasons(records, name):
    return [d["reason"] for r in records if r.name == name for d in r.declined]


def run(items, model):
    return PassManager(build_pass_items(items)).run(model).records


def test_advice_stays_when_no_folding_pass_runs():
    records = run(["eliminate-noops"], expand_model("[batch, 4]", "[1, 4]"))
    assert any(ADVICE in r for r in reasons(records, "eliminate-noops")), records


def test_advice_is_replaced_once_folding_ran_and_changed_nothing():
    # the batch of y is symbolic and x's dim 0 is 1: no pass can fold the Expand's shape
    model = expand_model("[batch, 4]", "[1, 4]")
    for items in (["eliminate-noops", "fold-shapes"], ["fold-shapes", "eliminate-noops"]):
        found = reasons(run(items, model), "eliminate-noops")
        assert found and not any(ADVICE in r for r in found), found
        assert any("fold-shapes ran and could not fold it" in r for r in found), found


def test_advice_stays_in_a_group_iteration_that_folding_follows_and_the_last_iteration_removes_it():
    group = {"group": {"passes": ["eliminate-noops", "fold-shapes"], "until_fixed_point": True}}
    records = run([group], expand_model("[2, 4]", "[2, 4]"))
    first = next(r for r in records if r.name == "eliminate-noops")
    assert any(ADVICE in d["reason"] for d in first.declined), first.declined  # fold-shapes then folded it
    later = [r for r in records if r.name == "eliminate-noops"][1:]
    assert any(r.modified for r in later) and not any(r.declined for r in later)  # the Expand went


def test_fixed_point_group_that_cannot_fold_gives_no_advice_in_any_iteration():
    group = {"group": {"passes": ["eliminate-noops", "fold-shapes", "cse"], "until_fixed_point": True}}
    found = reasons(run([group], expand_model("[batch, 4]", "[1, 4]")), "eliminate-noops")
    assert found and not any("would make" in r for r in found), found
