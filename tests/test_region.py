"""Region validation: a pass is checked on the part of the graph it rewrote, with fallbacks."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from graphkit.check.golden import make_or_load_golden
from graphkit.check.instruments import RegionCheck
from graphkit.check.region import RegionUnavailable, check_region
from graphkit.check.region_extract import extract_side
from graphkit.check.region_find import find_region, region_types
from graphkit.ir.model_io import clone, load_model, op_counts
from graphkit.pipeline.demo_model import demo_model
from graphkit.pipeline.spec import parse_pipeline
from graphkit.runtime.ort import ForwardLog, ValidationRuntime, recording_forwards
from graphkit.testing import parse_model
from graphkit.transform.manager import PassManager
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.registry import get_pass, load_pass_dir
from graphkit.util.errors import PipelineSpecError, ValidationError
from graphkit.util.tolerance import Tolerance, Tolerances

TOLERANCES = Tolerances(Tolerance(atol=1e-6, rtol=1e-5))
CASES = [("b1", {"x": (1, 3, 16, 16)}), ("b2", {"x": (2, 3, 16, 16)})]


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    directory = tmp_path_factory.mktemp("golden")
    golden, _ = make_or_load_golden(demo_model(), directory, batch_sizes=[1, 2], tolerances=TOLERANCES)
    return golden


@pytest.fixture(scope="module")
def user_passes(user_pass_dir):
    load_pass_dir(user_pass_dir)


def run_passes(golden, names, on_failure="stop", **options):
    passes = [get_pass(name)() for name in names]
    return PassManager(passes, [RegionCheck(golden, TOLERANCES, **options)], on_failure=on_failure).run(demo_model())


@pytest.mark.parametrize(
    ("name", "nodes_a", "nodes_b", "boundary", "output", "sample_shape"),
    [
        ("drop-identity", 2, 1, ["relu"], "nhwc", [16, 16, 8]),  # Identity + its consumer -> the rewired consumer
        ("relu-as-max", 1, 1, ["conv"], "relu", [8, 16, 16]),
        ("eliminate-noops", 2, 1, ["relu"], "nhwc", [16, 16, 8]),
    ],
)
def test_correct_pass_passes_the_region_check_on_a_small_region(
    golden, user_passes, name, nodes_a, nodes_b, boundary, output, sample_shape
):
    run = run_passes(golden, [name])
    assert run.ok, run.error
    record = run.records[0]
    validation = record.validation
    assert validation["mode"] == "region" and validation["passed"] and validation["fallback_reason"] is None
    assert (validation["region_nodes_a"], validation["region_nodes_b"]) == (nodes_a, nodes_b)
    assert validation["boundary_inputs"] == boundary
    assert [(o["case"], o["name"]) for o in validation["outputs"]] == [("b1", output), ("b2", output)]
    # every case checks the region output's shape (batch 1 and 2), so each case can fail on its own
    assert [o["shape"] for o in validation["outputs"]] == [[1, *sample_shape], [2, *sample_shape]]
    assert validation["region_nodes_a"] < len(demo_model().graph.node)  # a region, not the whole graph
    assert all(o["passed"] and o["max_abs"] == 0.0 for o in validation["outputs"])
    assert record.max_abs == {output: 0.0}
    assert record.times["validate"] > 0
    assert not record.notes


def test_wrong_pass_is_caught_by_the_region_check_and_rolled_back(golden, user_passes):
    run = run_passes(golden, ["break-relu", "relu-as-max"], on_failure="skip")
    broken, fixed = run.records
    assert broken.status == "rolled-back"
    assert "break-relu" in broken.error and "region output 'relu'" in broken.error and "MISMATCH" in broken.error
    assert broken.validation["mode"] == "region" and not broken.validation["passed"]
    assert broken.max_abs["relu"] > 1.0  # Relu outputs doubled on N(0, 1) boundary data
    assert fixed.status == "applied" and fixed.validation["mode"] == "region"
    assert op_counts(run.model) == op_counts(get_pass("relu-as-max")()(demo_model()).model)  # no Mul kept


def test_region_mismatch_raises_validation_error_naming_pass_and_tensor(golden, user_passes):
    before = demo_model()
    pass_ = get_pass("break-relu")()
    result = pass_(before)
    instrument = RegionCheck(golden, TOLERANCES)
    observation = instrument.after_pass(0, pass_, before, result)
    with pytest.raises(
        ValidationError, match=r"pass 'break-relu' failed region validation: case b1, region output 'relu'"
    ):
        raise observation.rejection  # the check rejects by returning it (its figures go on the record)


def test_opset_change_is_checked_on_the_region_and_each_node_whose_schema_changed(golden):
    log = ForwardLog()
    with recording_forwards(log):
        run = run_passes(golden, ["softmax-transpose"])
    assert run.ok, run.error
    record = run.records[0]
    assert record.validation["mode"] == "region" and record.validation["fallback_reason"] is None
    assert record.validation["passed"]
    # opset 11 -> 13: Relu (v6->v13), Identity, Shape, Gather, Concat, Reshape changed schema; Conv did not
    ops = sorted(name.split(" ")[0] for name in record.validation["schema_nodes"])
    assert ops == ["Concat", "Gather", "Identity", "Relu", "Reshape", "Shape"]
    cases = {o["case"] for o in record.validation["outputs"]}
    assert cases == {"b1", "b2"}
    assert log.forwards == []  # no end-to-end forward


class BumpOpset(Pass):
    """Only moves the default opset from 11 to 13 (no node changes)."""

    name = "bump-opset"
    changes_opset = True

    def run(self, model):
        out = clone(model)
        out.opset_import[0].version = 13
        return PassResult(out, True)


def test_an_opset_change_that_changes_a_node_meaning_is_rejected_at_every_level(tmp_path):
    # Softmax(axis=1) on a 4-D tensor normalizes over C*H*W at opset 11 and over C at opset 13
    model = parse_model(
        """
        <ir_version: 7, opset_import: ["" : 11]>
        g (float[batch, 3, 4, 4] x) => (float[batch, 3, 4, 4] y) {
            r = Relu(x)
            y = Softmax<axis = 1>(r)
        }
        """
    )
    golden, _ = make_or_load_golden(model, tmp_path / "g", batch_sizes=[1, 2])
    for level in ("none", "basic", "extended", "all"):
        instrument = RegionCheck(golden, TOLERANCES, runtime=ValidationRuntime(level))
        run = PassManager([BumpOpset()], [instrument]).run(model)
        assert not run.ok, level
        assert "failed region validation" in str(run.error) and "Softmax" in str(run.error), run.error


def test_shape_chain_is_a_region_and_a_too_large_region_falls_back(golden):
    # The folded Shape -> Gather -> Concat chain joins the region: its Shape reads the float 'prob'.
    run = run_passes(golden, ["fold-shapes"])
    validation = run.records[0].validation
    assert validation["mode"] == "region" and validation["passed"], validation
    assert validation["boundary_inputs"] == ["prob"] and validation["region_nodes_a"] == 4
    assert {o["name"] for o in validation["outputs"]} == {"flat"}
    run = run_passes(golden, ["fold-shapes"], max_fraction=0.3)  # 4 of 10 nodes is too many now
    record = run.records[0]
    assert run.ok and record.validation["mode"] == "full" and record.validation["passed"]
    assert "region too large (4 node(s) before" in record.validation["fallback_reason"]


def test_fallback_still_catches_a_wrong_pass(golden, user_passes):
    run = run_passes(golden, ["break-relu"], max_fraction=0.0)  # every region too large
    record = run.records[0]
    assert record.status == "failed" and "failed validation" in record.error
    assert record.validation["mode"] == "full" and "region too large" in record.validation["fallback_reason"]


def test_renamed_nodes_only_leave_nothing_to_compare():
    before = demo_model()
    after = onnx.ModelProto()
    after.CopyFrom(before)
    for node in after.graph.node:
        node.name += "_x"
    with pytest.raises(RegionUnavailable, match="nothing to compare"):
        check_region(before, after, CASES, Tolerance())


GATHER = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[4, 3] data, int64[2] idx) => (float[2, 3] out) {{
    {body}
    out = Relu (picked)
}}
"""


def test_integer_graph_input_at_the_boundary_falls_back():
    before = parse_model(GATHER.format(body="picked = Gather <axis = 0> (data, idx)"))
    after = parse_model(
        GATHER.format(body="idx_copy = Identity (idx)\n    picked = Gather <axis = 0> (data, idx_copy)")
    )
    with pytest.raises(RegionUnavailable, match="boundary input 'idx' is not a float tensor"):
        find_region(before, after, max_fraction=1.0)


def test_extracted_regions_are_valid_models_with_their_own_opset(user_passes):
    before = demo_model()
    after = get_pass("drop-identity")()(before).model
    region = find_region(before, after)
    for side, model in ((region.a, before), (region.b, after)):
        extracted = extract_side(side, region_types(model, CASES[0][1]))
        onnx.checker.check_model(extracted)
        assert extracted.opset_import[0].version == 11
        assert [i.name for i in extracted.graph.input] == ["relu"]
        assert [o.name for o in extracted.graph.output] == ["nhwc"]
        assert {t.name for t in extracted.graph.initializer} <= {t.name for t in model.graph.initializer}


def test_region_check_uses_each_case_shapes(user_passes):
    before = demo_model()
    check = check_region(before, get_pass("relu-as-max")()(before).model, CASES, Tolerance(atol=0.0, rtol=0.0))
    assert [label for label, _ in check.cases] == ["b1", "b2"]
    assert [c.outputs[0].shape for _, c in check.cases] == [(1, 8, 16, 16), (2, 8, 16, 16)]
    assert check.passed and np.isfinite(check.seconds)


def test_mode_is_a_typed_pipeline_field():
    spec = parse_pipeline({"name": "t", "source": {"builtin": "demo"}})
    assert spec.validate.mode == "full"
    spec = parse_pipeline({"name": "t", "source": {"builtin": "demo"}}, overrides=["validate.mode=region"])
    assert spec.validate.mode == "region"
    with pytest.raises(PipelineSpecError, match="validate.mode"):
        parse_pipeline({"name": "t", "source": {"builtin": "demo"}}, overrides=["validate.mode=fast"])


def pipeline(tmp_path, user_pass_dir, passes):
    path = tmp_path / "p.yaml"
    path.write_text(
        f"""
name: t
source: {{builtin: demo}}
pass_dirs: [{user_pass_dir}]
golden: {{dir: {tmp_path / "golden"}, batch_sizes: [1, 2], tolerance: {{atol: 1.0e-6, rtol: 1.0e-5}}}}
output: {{dir: {tmp_path / "run"}}}
passes: {passes}
"""
    )
    return path


def test_cli_region_mode_rejects_a_wrong_pass(tmp_path, user_pass_dir, cli):
    result = cli(
        "apply", pipeline(tmp_path, user_pass_dir, "[drop-identity, break-relu]"), "--set", "validate.mode=region"
    )
    assert result.returncode == 1, result.stderr
    assert "break-relu" in result.stderr and "region output 'relu'" in result.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [(p["name"], p["status"]) for p in report["passes"]] == [
        ("drop-identity", "applied"),
        ("break-relu", "failed"),
    ]
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_cli_region_mode_writes_the_model_validated_end_to_end_on_all_cases(tmp_path, user_pass_dir, cli):
    result = cli(
        "apply", pipeline(tmp_path, user_pass_dir, "[drop-identity, relu-as-max]"), "--set", "validate.mode=region"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [p["validation"]["mode"] for p in report["passes"]] == ["region", "region"]
    # no pass ran end to end, so the final check ran every golden case itself
    assert "validating the final model on golden case(s) b1, b2" in result.stderr
    cases = report["final"]["validation"]["cases"]
    assert [c["label"] for c in cases] == ["b1", "b2"]
    assert all(o["passed"] and o["max_abs"] == 0.0 for c in cases for o in c["outputs"])
    model = load_model(tmp_path / "run" / "model.onnx")
    assert op_counts(model)["Max"] == 1 and "Identity" not in op_counts(model)
