"""onnxscript rewrite rules as graphkit passes: a user's rules, and onnxscript's default set on the
node corpus and on the wseg tiny pipeline, every change validated."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from graphkit.testing import (
    assert_idempotent,
    assert_matches,
    assert_no_match,
    assert_numerically_equal,
    load_user_pass,
    parse_model,
    run_cli,
)
from graphkit.transform.registry import get_pass
from graphkit.transform.rules import rule_pass

pytest.importorskip("onnxscript")
from onnxscript.rewriter import MatchResult, RewriteRule  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "examples" / "passes"


def model(body: str, outputs: str = "float[2,3] y"):
    return parse_model(f'<ir_version: 8, opset_import: ["" : 13]> g (float[2,3] x) => ({outputs}) {{ {body} }}')


def neg_neg(op, x):
    return op.Neg(op.Neg(x))


def only_if_named(context, x, **_):
    result = MatchResult()
    if not (x.name or "").startswith("keep"):
        return result.fail(f"input {x.name} is not named keep*")
    return result


@rule_pass("test-onnxscript-neg-neg")
def user_rules():
    """Neg(Neg(x)) -> x, written as an onnxscript rule with a condition (a test)."""
    return RewriteRule(neg_neg, lambda op, x: op.Identity(x), only_if_named, name="NegNeg")


def test_users_onnxscript_rule_runs_as_a_pass_with_its_decline_reason():
    pass_ = get_pass("test-onnxscript-neg-neg")()
    m = model("keep = Relu(x) a = Neg(keep) b = Neg(a) y = Relu(b)")
    result = assert_matches(pass_, m)
    assert result.counts == {"rewritten": 1}
    assert "Neg" not in {n.op_type for n in result.model.graph.node}
    assert_numerically_equal(m, result.model, atol=0, rtol=0)
    assert_idempotent(pass_, result.model)
    declined = assert_no_match(pass_, model("r = Relu(x) a = Neg(r) b = Neg(a) y = Relu(b)"), "not named keep*")
    assert declined.declined[0].reason == "NegNeg: input r is not named keep*"


def test_onnxscript_defaults_example_holds_onnxscripts_default_set():
    from onnxscript.rewriter import rewrite

    cls = get_pass_from_examples("onnxscript-defaults")
    assert len(cls.rule_set.rules) == 46
    m = model(
        "one = Constant <value = float {1.0}> () a = Mul(x, one) t = Transpose <perm=[1,0]> (a) "
        "u = Transpose <perm=[1,0]> (t) y = Relu(u)"
    )
    result = assert_matches(cls(), m)
    assert [n.op_type for n in result.model.graph.node] == [n.op_type for n in rewrite(m).graph.node]
    assert_numerically_equal(m, result.model, atol=0, rtol=0)


def get_pass_from_examples(name):
    return type(load_user_pass(EXAMPLES, name))


def _node_corpus():
    spec = importlib.util.spec_from_file_location("node_corpus", REPO / "tests" / "passes" / "test_node_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_onnxscript_defaults_on_the_node_corpus_sample(tmp_path):
    corpus = _node_corpus()
    stats = corpus.sweep(corpus.SAMPLE_STEP, {"onnxscript-defaults": get_pass_from_examples("onnxscript-defaults")})
    text = corpus._report(stats, tmp_path, "onnxscript_sample")
    assert stats["run"] > 100 and stats["changed"].get("onnxscript-defaults", 0) > 10, text
    assert stats["failed"] == 0, text


@pytest.mark.slow
def test_onnxscript_defaults_on_the_full_node_corpus(tmp_path):
    corpus = _node_corpus()
    stats = corpus.sweep(1, {"onnxscript-defaults": get_pass_from_examples("onnxscript-defaults")})
    text = corpus._report(stats, tmp_path, "onnxscript_full")
    assert stats["run"] > 1500 and stats["failed"] == 0, text


def test_onnxscript_defaults_in_the_wseg_tiny_pipeline(tmp_path):
    """The tiny wseg pipeline with onnxscript's rules after the softmax fold and at the end, validated against torch."""
    spec = yaml.safe_load((REPO / "pipelines" / "wseg_tiny.yaml").read_text())
    shutil.copytree(REPO / "golden" / "wseg_tiny", tmp_path / "golden")
    spec["golden"]["dir"] = str(tmp_path / "golden")
    spec["pass_dirs"] = [str(EXAMPLES)]
    spec["passes"] = ["softmax-transpose", "onnxscript-defaults", "neutral-arithmetic", *spec["passes"][1:]]
    spec["passes"].append("onnxscript-defaults")
    spec.pop("handoff")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    result = run_cli("apply", tmp_path / "p.yaml", "--output", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    statuses = {(p["name"], p["status"]) for p in report["passes"]}
    assert ("onnxscript-defaults", "applied") in statuses, statuses  # three no-op Casts, validated
    assert all(status in ("applied", "unchanged") for _, status in statuses), statuses
    rules = [p for p in report["passes"] if p["name"] == "onnxscript-defaults"]
    assert all(d["reason"] for p in rules for d in p["declined"])  # every decline says why


def test_reshape_allowzero_below_opset_14_is_dropped_only_where_it_changes_nothing():
    """onnxscript writes Reshape allowzero at any opset; below 14 the attribute does not exist.
    allowzero only changes what a 0 in the target means, so 0, or 1 over a constant target
    without a 0, is dropped (exact); 1 over a target that may hold a 0 keeps the model."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from graphkit.transform.onnxscript_rules import _drop_default_allowzero

    def model(target, allowzero):
        nodes = [helper.make_node("Reshape", ["x", "t"], ["y"], allowzero=allowzero)]
        inits = [numpy_helper.from_array(np.array(target, np.int64), "t")] if target is not None else []
        inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])]
        if target is None:
            inputs.append(helper.make_tensor_value_info("t", onnx.TensorProto.INT64, [2]))
        graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", 1, None)], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])

    for target, allowzero in (([3, 2], 0), ([3, 2], 1), ([0, 3], 0)):
        m = model(target, allowzero)
        assert _drop_default_allowzero(m) is None and not m.graph.node[0].attribute
    for target in ([0, 3], None):  # a 0 in the target, or a target only known at run time
        assert "allowzero=1" in _drop_default_allowzero(model(target, 1))
