"""Pass groups (graphkit.transform.group): nested, repeated until a fixed point, each inner pass
recorded, validated and rolled back on its own; the ``group:`` item of a pipeline."""

from __future__ import annotations

import json
import re

import onnx
import pytest

from graphkit.pipeline.run import apply_pipeline
from graphkit.pipeline.spec import build_pass_items, build_passes, load_pipeline, parse_pipeline
from graphkit.testing import assert_numerically_equal, parse_model
from graphkit.transform.group import PassGroup
from graphkit.transform.instruments import Honesty
from graphkit.transform.manager import PassManager
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.presets import pass_names, preset_passes
from graphkit.util.errors import PassError, PipelineSpecError

# fuse-reshapes turns r1 into Reshape(x, s2), a copy of r2 that only a second cse can merge
TWIN_RESHAPES = """<ir_version: 8, opset_import: ["" : 13]> g (float[2,3,4] x) => (float[6,4] y) {
    s1 = Constant <value = int64[2] {3, 8}> ()
    s2 = Constant <value = int64[2] {6, 4}> ()
    a = Reshape(x, s1)
    r1 = Reshape(a, s2)
    r2 = Reshape(x, s2)
    y = Add(r1, r2)
}"""


def applied(records):
    return [(r.name, r.group, r.iteration) for r in records if r.status.value == "applied"]


def test_the_generic_fixed_point_group_finds_more_than_one_run_of_its_passes():
    model = parse_model(TWIN_RESHAPES)
    grouped = PassManager(build_pass_items(preset_passes("generic"))).run(model)
    once = PassManager(build_pass_items(pass_names(preset_passes("generic")))).run(model)
    assert [n.op_type for n in grouped.model.graph.node] == ["Reshape", "Add"]
    assert len(once.model.graph.node) == 3  # the same passes in one straight run keep the twin Reshape
    assert applied(grouped.records) == [("fold-constants", "1", 1), ("fuse-reshapes", "1", 1), ("cse", "1", 2)]
    iterations = {r.iteration for r in grouped.records if r.group == "1"}
    assert iterations == {1, 2, 3}  # the third changed nothing: the fixed point
    assert_numerically_equal(model, grouped.model, atol=0, rtol=0)
    assert [r.index for r in grouped.records] == list(range(len(grouped.records)))


def write_pipeline(tmp_path, passes: list) -> str:
    source = tmp_path / "twin.onnx"
    onnx.save(parse_model(TWIN_RESHAPES), source)
    spec = {
        "name": "groups",
        "source": {"onnx": str(source)},
        "golden": {"dir": str(tmp_path / "golden"), "batch_sizes": [2]},
        "passes": passes,
        "output": {"dir": str(tmp_path / "run")},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return str(path)


def test_a_nested_fixed_point_group_in_a_pipeline(tmp_path):
    inner = {"group": {"passes": ["cse", "fuse-reshapes"], "until_fixed_point": True, "max_iterations": 5}}
    path = write_pipeline(tmp_path, ["fold-constants", {"group": {"passes": ["eliminate-noops", inner]}}, "dead-code"])
    result = apply_pipeline(load_pipeline(path), path, use_cache=False)
    assert result.ok, result.error
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    rows = [(p["name"], p["group"], p["iteration"], p["status"]) for p in report["passes"]]
    assert rows == [
        ("fold-constants", None, None, "applied"),
        ("eliminate-noops", "2", 1, "unchanged"),
        ("cse", "2.2", 1, "unchanged"),
        ("fuse-reshapes", "2.2", 1, "applied"),
        ("cse", "2.2", 2, "applied"),
        ("fuse-reshapes", "2.2", 2, "unchanged"),
        ("cse", "2.2", 3, "unchanged"),
        ("fuse-reshapes", "2.2", 3, "unchanged"),
        ("dead-code", None, None, "unchanged"),
    ]
    assert all(p["validation"]["passed"] for p in report["passes"] if p["status"] == "applied")
    assert report["final"]["nodes"] == 2
    assert "fuse-reshapes [g2.2 i1]" in result.summary
    again = load_pipeline(tmp_path / "run" / "pipeline.yaml")  # the resolved pipeline keeps the group
    assert again.passes == load_pipeline(path).passes


def test_a_group_that_does_not_settle_stops_at_max_iterations_with_a_note():
    items = build_pass_items(
        [{"group": {"passes": ["cse", "fuse-reshapes"], "until_fixed_point": True, "max_iterations": 1}}]
    )
    run = PassManager(items).run(parse_model(TWIN_RESHAPES))
    assert run.ok and [r.iteration for r in run.records] == [1, 1]
    assert run.records[-1].notes == ["group 1: still changing after 1 iterations (max_iterations)"]
    plain = build_pass_items([{"group": {"passes": ["cse", "fuse-reshapes"]}}])  # no fixed point: once
    assert [r.iteration for r in PassManager(plain).run(parse_model(TWIN_RESHAPES)).records] == [1, 1]


class Broken(Pass):
    """Always raises."""

    name = "broken"

    def run(self, model):
        raise RuntimeError("on purpose")


class Liar(Pass):
    """Changes the model and says it did not."""

    name = "liar"

    def run(self, model):
        changed = onnx.ModelProto()
        changed.CopyFrom(model)
        changed.graph.node[0].name = "edited"
        return PassResult(changed, False)


def test_a_failing_pass_inside_a_group_is_rolled_back_or_stops_the_run():
    model = parse_model(TWIN_RESHAPES)
    cse, fuse = build_pass_items(["cse", "fuse-reshapes"])
    group = PassGroup([Broken(), fuse, cse], until_fixed_point=True)
    skipped = PassManager([group], on_failure="skip").run(model)
    assert skipped.ok and len(skipped.model.graph.node) == 3  # s2, Reshape, Add  # fuse-reshapes and cse still applied
    assert [r.status.value for r in skipped.records if r.name == "broken"] == ["rolled-back"] * 2
    stopped = PassManager([PassGroup([fuse, Liar(), cse], until_fixed_point=True)], [Honesty()]).run(model)
    assert not stopped.ok and stopped.failed.name == "liar" and stopped.failed.group == "1"
    assert [r.name for r in stopped.records] == ["fuse-reshapes", "liar"]  # nothing after the failure
    assert "passes applied before it: fuse-reshapes" in str(stopped.error)
    assert isinstance(stopped.error, PassError)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"group": {"passes": []}}, "a group needs at least one pass"),
        ({"group": {"passes": ["cse"], "max_iterations": 0}}, "max_iterations: must be 1..1000"),
        ({"group": {"passes": ["cse"], "until": True}}, "until"),
        ({"group": {"passes": ["no-such-pass"]}}, "passes[0].group.passes[0]: unknown pass 'no-such-pass'"),
        ({"group": {"passes": [{"group": {"passes": [3]}}]}}, "passes[0].group.passes[0].group.passes[0]: expected"),
        ({"group": "cse"}, "passes[0].options: expected a mapping"),
        ({"group": {"passes": ["cse"], "max_iterations": True}}, "max_iterations"),
        ({"group": {"passes": ["cse"], "until_fixed_point": "yes"}}, "until_fixed_point"),
        ({"group": {"passes": "cse"}}, "passes"),
        ({"group": {"passes": [{"cse": {"bogus": 1}}]}}, "bogus"),
    ],
)
def test_bad_groups_are_one_line_spec_errors(item, message):
    with pytest.raises(PipelineSpecError, match=re.escape(message)) as caught:
        build_passes(parse_pipeline({"name": "g", "source": {"onnx": "m.onnx"}, "passes": [item]}, "p.yaml"), "p.yaml")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("p.yaml: passes[0]")
