"""Node provenance: the pass that made each node, in node metadata_props, through the manager,
diff, localize, apply (--strip-provenance, output.provenance) and onnx/onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from graphkit.ascend.precheck import precheck
from graphkit.check.localize import localize
from graphkit.check.localize_feeds import feeds_for
from graphkit.diff.html_view import render_html
from graphkit.diff.model_diff import diff_models
from graphkit.diff.text_view import render_text
from graphkit.ir.graph import to_graph, to_model
from graphkit.ir.model_io import clone, content_hash, load_model
from graphkit.ir.provenance import (
    PASS_KEY,
    STEP_KEY,
    Provenance,
    provenance_by_index,
    provenance_of,
    record_provenance,
    strip_provenance,
)
from graphkit.pipeline.demo_model import demo_model
from graphkit.pipeline.run import apply_pipeline
from graphkit.pipeline.spec import build_pass_items, load_pipeline
from graphkit.runtime.ort import run_ort
from graphkit.testing import load_user_pass, make_model, value
from graphkit.transform.group import PassGroup
from graphkit.transform.instruments import Honesty, OpCounts
from graphkit.transform.manager import PassManager
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.presets import preset_passes
from graphkit.transform.registry import get_pass


def stamps(model: onnx.ModelProto) -> dict[str, tuple[str, int | None]]:
    """Node name -> (pass, step) for every node that carries provenance."""
    return {model.graph.node[i].name: (p.pass_name, p.step) for i, p in provenance_by_index(model).items()}


def graphkit_entries(model: onnx.ModelProto) -> list[str]:
    return [e.key for n in model.graph.node for e in n.metadata_props if e.key.startswith("graphkit.")]


def builtin(name: str, **options) -> Pass:
    return get_pass(name)(**options)


def run(passes, model, instruments=()):
    result = PassManager(passes, [Honesty(), OpCounts(), *instruments]).run(model)
    assert result.ok, result.error
    return result


class AppendNeg(Pass):
    """A proto-level pass (no graphsurgeon), exact: renames the first node (nothing else about it
    changes), points the last node at a new tensor and appends Neg, Neg that give back its output."""

    name = "append-neg-neg"

    def run(self, model):
        out = clone(model)
        out.graph.node[0].name += "_renamed"
        last = out.graph.node[-1]
        final = last.output[0]
        last.output[0] = final + "_pre"
        out.graph.node.add().CopyFrom(onnx.helper.make_node("Neg", [final + "_pre"], [final + "_n"], name="neg1"))
        out.graph.node.add().CopyFrom(onnx.helper.make_node("Neg", [final + "_n"], [final], name="neg2"))
        return PassResult(out, True)


class InsertIdentity(Pass):
    """A proto-level pass: reads to_nhwc's input through a new Identity (rewires to_nhwc)."""

    name = "insert-identity"

    def run(self, model):
        out = clone(model)
        index, node = next((i, n) for i, n in enumerate(out.graph.node) if n.name == "to_nhwc")
        identity = onnx.helper.make_node("Identity", [node.input[0]], ["via_identity"], name="inserted")
        node.input[0] = "via_identity"
        node.doc_string = "a doc string is not part of what the node computes"
        out.graph.node.insert(index, identity)
        return PassResult(out, True)


class Reexport(Pass):
    """Round-trips the model through graphsurgeon (which drops node metadata) and says it changed nothing."""

    name = "reexport"

    def run(self, model):
        return PassResult(to_model(to_graph(model), model), False)


def test_nodes_a_pass_makes_carry_its_name_and_step_untouched_nodes_nothing():
    source = demo_model()
    result = run([builtin("eliminate-noops")], source)
    # the Identity is gone and its consumer now reads relu: that consumer is what the pass made
    assert stamps(result.model) == {"to_nhwc": ("eliminate-noops", 1)}
    untouched = [n for n in result.model.graph.node if n.name != "to_nhwc"]
    assert untouched and all(len(n.metadata_props) == 0 for n in untouched)
    assert graphkit_entries(source) == []  # the input model is never stamped


def test_each_node_names_the_pass_that_made_it_across_passes():
    # eliminate-noops exports through graphsurgeon, which drops node metadata: step 1's stamp survives
    two = run([builtin("fold-shapes"), builtin("eliminate-noops")], demo_model())
    assert stamps(two.model) == {"flatten": ("fold-shapes", 1), "to_nhwc": ("eliminate-noops", 2)}
    # a third pass rewires flatten (so it is that pass's node now) and renames conv (not "making" it)
    three = run([builtin("fold-shapes"), builtin("eliminate-noops"), AppendNeg()], demo_model())
    assert stamps(three.model) == {
        "to_nhwc": ("eliminate-noops", 2),
        "flatten": ("append-neg-neg", 3),
        "neg1": ("append-neg-neg", 3),
        "neg2": ("append-neg-neg", 3),
    }
    assert three.model.graph.node[0].name == "conv_renamed" and not three.model.graph.node[0].metadata_props
    assert [r.status for r in three.records] == ["applied", "applied", "applied"]


def test_a_later_pass_that_rewires_a_stamped_node_restamps_it(user_pass_dir):
    relu_as_max = load_user_pass(user_pass_dir, "relu-as-max")
    result = run([builtin("eliminate-noops"), InsertIdentity(), relu_as_max], demo_model())
    assert stamps(result.model) == {
        "inserted": ("insert-identity", 2),
        "to_nhwc": ("insert-identity", 2),
        "relu": ("relu-as-max", 3),
    }


def test_kept_nodes_get_back_the_provenance_a_graphsurgeon_pass_dropped():
    first = run([builtin("eliminate-noops")], demo_model()).model
    # a pass that re-exports through graphsurgeon and honestly says it changed nothing: without
    # restoring the dropped stamps the honesty check would call it a liar
    result = PassManager([Reexport()], [Honesty()]).run(first)
    assert result.ok, result.error
    assert result.records[0].status == "unchanged"
    assert content_hash(result.model) == content_hash(first)
    assert stamps(result.model) == {"to_nhwc": ("eliminate-noops", 1)}


def test_dishonest_pass_is_still_caught_with_provenance(user_pass_dir):
    liar = load_user_pass(user_pass_dir, "liar")
    first = run([builtin("eliminate-noops")], demo_model()).model
    result = PassManager([liar], [Honesty()]).run(first)
    assert not result.ok and "said it changed nothing" in str(result.error)


def generic_preset() -> list[Pass | PassGroup]:
    return build_pass_items(preset_passes("generic"))


def test_idempotent_rerun_leaves_model_and_provenance_unchanged():
    once = run(generic_preset(), demo_model()).model
    assert stamps(once) == {"to_nhwc": ("eliminate-noops", 1), "flatten": ("fold-shapes", 2)}
    again = run(generic_preset(), once)
    assert [r.status for r in again.records] == ["unchanged"] * len(again.records)
    assert content_hash(again.model) == content_hash(once)
    assert stamps(again.model) == stamps(once)


def test_record_provenance_is_a_no_op_on_the_same_object_and_keeps_foreign_metadata():
    model = demo_model()
    assert record_provenance(model, model, "x", 1) == 0
    after = clone(model)
    node = after.graph.node[0]
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'conv']")
    node.input[0] = "elsewhere"
    assert record_provenance(model, after, "rewire", 4) == 1
    assert [(e.key, e.value) for e in node.metadata_props] == [
        ("pkg.torch.onnx.name_scopes", "['', 'conv']"),
        (PASS_KEY, "rewire"),
        (STEP_KEY, "4"),
    ]
    assert graphkit_entries(model) == []


def test_provenance_of_reads_odd_entries_without_failing():
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    assert provenance_of(node) is None
    node.metadata_props.add(key=PASS_KEY, value="p\x1b[2J" + "q" * 500)
    node.metadata_props.add(key=STEP_KEY, value="not a number")
    found = provenance_of(node)
    assert found.step is None and found.pass_name.startswith("p\x1b")
    assert len(found.label) < 140  # a hostile name is cut for display
    assert Provenance("cse", 4).label == "pass 'cse' (step 4)"
    for odd_step in (
        "\u00b2",
        "\u0663",
        "9" * 5000,
        "-1",
        "",
    ):  # a superscript and an Arabic-Indic digit pass isdigit()
        node = onnx.helper.make_node("Relu", ["x"], ["y"])
        node.metadata_props.add(key=PASS_KEY, value="cse")
        node.metadata_props.add(key=STEP_KEY, value=odd_step)
        assert provenance_of(node) == Provenance("cse", None)


# --- diff and localize ---------------------------------------------------------------------------


def test_diff_text_json_and_html_name_the_pass_for_added_and_changed_nodes():
    source = demo_model()
    after = run([builtin("eliminate-noops"), AppendNeg()], source).model
    diff = diff_models(source, after)
    text = render_text(diff)
    assert (
        "to_nhwc (Transpose) [matched by name]: inputs (relu_copy) -> (relu) [made by pass 'eliminate-noops' (step 1)]"
        in text
    )
    added = [line for line in text.splitlines() if line.startswith("  + neg")]
    assert len(added) == 2 and all(line.endswith("[made by pass 'append-neg-neg' (step 2)]") for line in added)
    data = json.loads(json.dumps(diff.to_dict()))
    made = {n["name"]: n["made_by"] for n in data["nodes"]["added"]}
    assert made == {"neg1": {"pass": "append-neg-neg", "step": 2}, "neg2": {"pass": "append-neg-neg", "step": 2}}
    changed = {c["after"]["name"]: c.get("made_by") for c in data["nodes"]["changed"]}
    assert changed["to_nhwc"] == {"pass": "eliminate-noops", "step": 1}
    page = render_html(diff, source, after)
    # the drawn page: regions filtered by pass, the node details name the pass and step
    assert 'data-passes="append-neg-neg"' in page and '"made_by": "pass \'append-neg-neg\' (step 2)"' in page
    # without provenance in B the views are as before: no made_by anywhere
    plain = diff_models(source, strip_copy(after))
    assert "made by" not in render_text(plain) and "made_by" not in json.dumps(plain.to_dict())
    assert "append-neg-neg" not in render_html(plain, source, strip_copy(after))
    # provenance alone is not a difference
    assert diff_models(after, strip_copy(after)).is_empty()


def strip_copy(model):
    copy = clone(model)
    strip_provenance(copy)
    return copy


def test_localize_names_the_pass_that_made_the_first_divergent_node(user_pass_dir):
    source = demo_model()
    wrong = load_user_pass(user_pass_dir, "break-relu", factor=3.0)
    # no validation instrument: the planted wrong rewrite is accepted, as a buggy pass would be
    candidate = run([builtin("eliminate-noops"), wrong], source).model
    result = localize(source, candidate, feeds_for(source, candidate, dims={"batch": 1}))
    assert result.first_divergent.op_type == "Mul"
    assert result.made_by == Provenance("break-relu", 2)
    assert result.to_dict()["made_by"] == {"pass": "break-relu", "step": 2}
    assert "made by pass 'break-relu' (step 2)" in result.summary_line()
    stripped = localize(source, strip_copy(candidate), feeds_for(source, candidate, dims={"batch": 1}))
    assert stripped.made_by is None and "made_by" not in stripped.to_dict()


def test_localize_cli_prints_the_pass(tmp_path, user_pass_dir, cli):
    source = demo_model()
    candidate = run([load_user_pass(user_pass_dir, "break-relu")], source).model
    onnx.save(source, tmp_path / "a.onnx")
    onnx.save(candidate, tmp_path / "b.onnx")
    done = cli("localize", tmp_path / "a.onnx", tmp_path / "b.onnx", "--dims", "batch=1")
    assert done.returncode == 1, done.stderr
    assert "(Mul) made by pass 'break-relu' (step 1):" in done.stdout.splitlines()[0]
    done = cli("diff", tmp_path / "a.onnx", tmp_path / "b.onnx", "--json")
    assert done.returncode == 0, done.stderr
    added = json.loads(done.stdout)["nodes"]["added"]
    assert [n["made_by"]["pass"] for n in added] == ["break-relu"]


# --- apply: default keeps it, --strip-provenance and output.provenance remove it ------------------


def pipeline_file(tmp_path, user_pass_dir, passes, output_extra=""):
    text = f"""
name: prov
source: {{builtin: demo}}
pass_dirs: [{user_pass_dir}]
golden: {{dir: {tmp_path / "golden"}, batch_sizes: [1, 2], tolerance: {{atol: 1.0e-6, rtol: 1.0e-5}}}}
output: {{dir: {tmp_path / "run"}{output_extra}}}
passes: {passes}
"""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_apply_keeps_provenance_by_default_and_the_yaml_switch_removes_it(tmp_path, user_pass_dir):
    path = pipeline_file(tmp_path, user_pass_dir, "[drop-identity, relu-as-max]")
    kept = apply_pipeline(load_pipeline(path), str(path), use_cache=False)
    assert kept.ok, kept.error
    model = load_model(tmp_path / "run" / "model.onnx")
    assert stamps(model) == {"to_nhwc": ("drop-identity", 1), "relu": ("relu-as-max", 2)}
    assert kept.report.to_dict()["final"]["hash"] == content_hash(model)

    path = pipeline_file(tmp_path, user_pass_dir, "[drop-identity, relu-as-max]", ", provenance: false")
    stripped = apply_pipeline(load_pipeline(path), str(path), use_cache=False)
    assert stripped.ok, stripped.error
    clean = load_model(tmp_path / "run" / "model.onnx")
    assert graphkit_entries(clean) == []
    assert stripped.report.to_dict()["final"]["hash"] == content_hash(clean)  # the report describes the file written
    assert diff_models(model, clean).is_empty()
    # the final check still reused the last pass's end-to-end cases on the (stripped) final model:
    # no forward of the final model beyond those of the kept run
    assert stripped.report.to_dict()["final"]["validation"]["passed"]

    def checks(result):  # the golden set was recorded by the first run only
        return [f["purpose"] for f in result.report.to_dict()["forwards"] if not f["purpose"].startswith("golden")]

    assert checks(stripped) == checks(kept) and not any("final" in p for p in checks(stripped))
    assert len(checks(stripped)) == 4  # two passes, two golden cases each


def test_strip_provenance_flag_and_the_one_command_form(tmp_path, cli):
    source = demo_model()
    # a source that already carries provenance from an earlier run: --strip-provenance removes all of it
    stamped = run([builtin("eliminate-noops")], source).model
    onnx.save(stamped, tmp_path / "in.onnx")
    done = cli("apply", tmp_path / "in.onnx", "-o", tmp_path / "kept", "--preset", "generic")
    assert done.returncode == 0, done.stderr
    kept = load_model(tmp_path / "kept" / "model.onnx")
    assert stamps(kept) == {"to_nhwc": ("eliminate-noops", 1), "flatten": ("fold-shapes", 2)}
    done = cli("apply", tmp_path / "in.onnx", "-o", tmp_path / "bare", "--preset", "generic", "--strip-provenance")
    assert done.returncode == 0, done.stderr
    bare = load_model(tmp_path / "bare" / "model.onnx")
    assert graphkit_entries(bare) == [] and len(bare.graph.node) == len(kept.graph.node)
    assert "provenance: false" in (tmp_path / "bare" / "pipeline.yaml").read_text()


def test_apply_localize_names_the_failing_pass_in_the_report(tmp_path, user_pass_dir, cli):
    done = cli("apply", pipeline_file(tmp_path, user_pass_dir, "[drop-identity, break-relu]"), "--localize")
    assert done.returncode == 1
    failed = json.loads((tmp_path / "run" / "report.json").read_text())["passes"][1]
    assert failed["artifacts"]["localize"]["made_by"] == {"pass": "break-relu", "step": 2}
    assert any("made by pass 'break-relu' (step 2)" in note for note in failed["notes"])
    # the rejected model of the reproducer shows which nodes the failing pass made
    rejected = load_model(tmp_path / "run" / "repro-02-break-relu" / "rejected.onnx")
    assert {p for p, _ in stamps(rejected).values()} == {"drop-identity", "break-relu"}


# --- the model stays valid and numerically the same ---------------------------------------------


@pytest.mark.parametrize("ir_version", [7, 8, 10])
def test_checker_and_onnxruntime_accept_provenance_and_numbers_do_not_move(ir_version):
    source = demo_model()
    source.ir_version = ir_version
    model = run([builtin("eliminate-noops"), builtin("fold-shapes")], source).model
    assert len(provenance_by_index(model)) == 2
    onnx.checker.check_model(model, full_check=True)
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    with_meta = run_ort(model, feeds)
    without = run_ort(strip_copy(model), feeds)
    for name in with_meta:
        np.testing.assert_array_equal(with_meta[name], without[name])
    # the ATC pre-check sees the same model either way
    assert precheck(model).to_dict()["findings"] == precheck(strip_copy(model)).to_dict()["findings"]


def test_strip_provenance_reaches_subgraphs_and_keeps_other_metadata():
    inner = onnx.helper.make_node("Neg", ["x"], ["z"], name="inner")
    inner.metadata_props.add(key=PASS_KEY, value="p")
    body = onnx.helper.make_graph([inner], "body", [], [value("z", [2])])
    branch = onnx.helper.make_node("If", ["c"], ["y"], name="if", then_branch=body, else_branch=body)
    branch.metadata_props.add(key="keep.me", value="1")
    branch.metadata_props.add(key=STEP_KEY, value="3")
    model = make_model([branch], [value("c", [], onnx.TensorProto.BOOL), value("x", [2])], [value("y", [2])], opset=13)
    assert strip_provenance(model) == 3  # the If node and the Neg in each branch
    assert [(e.key, e.value) for e in model.graph.node[0].metadata_props] == [("keep.me", "1")]
    assert "graphkit." not in str(model)
