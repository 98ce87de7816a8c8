"""Issue 15 §1: validation at every onnxruntime optimization level still rejects wrong passes.

Validation runs on optimized sessions by default (``validate.runtime.optimization: all``). The
optimizer preserves semantics and both sides of a comparison run through it, so each wrong
pass below must be rejected at every level, end to end and on its region: the ModelZoo opset-11
softmax "fix" on a legacy torch export, a pass that breaks one Relu, a pass that bakes batch 1.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import numpy_helper

from graphkit.check.golden import load_golden, make_or_load_golden
from graphkit.check.golden_validation import validate_against_golden
from graphkit.check.instruments import EndToEndCheck, RegionCheck
from graphkit.ir.model_io import clone
from graphkit.pipeline.spec import parse_pipeline
from graphkit.runtime.ort import OPTIMIZATION_LEVELS, ForwardLog, ValidationRuntime, recording_forwards
from graphkit.testing import export_legacy
from graphkit.transform.manager import PassManager
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.util.errors import GoldenError
from graphkit.util.tolerance import Tolerance, Tolerances

LEVELS = list(OPTIMIZATION_LEVELS)
TOLERANCES = Tolerances(Tolerance(atol=1e-5, rtol=1e-4))


def modelzoo_softmax_fix(model):
    """Transpose -> Softmax(axis=3) -> Transpose replaced by Softmax(axis=1), still at opset 11
    (where Softmax flattens C*H*W: wrong)."""
    fixed = clone(model)
    nodes = list(fixed.graph.node)
    softmax = next(n for n in nodes if n.op_type == "Softmax")
    first = next(n for n in nodes if n.op_type == "Transpose" and n.output[0] == softmax.input[0])
    second = next(n for n in nodes if n.op_type == "Transpose" and softmax.output[0] in n.input)
    softmax.input[0] = first.input[0]
    softmax.attribute[0].i = 1
    for node in nodes:
        for i, name in enumerate(node.input):
            if name == second.output[0]:
                node.input[i] = softmax.output[0]
    del fixed.graph.node[:]
    fixed.graph.node.extend(n for n in nodes if n is not first and n is not second)
    return fixed


def break_one_relu(model):
    """The first Relu becomes an Identity (negatives pass through)."""
    broken = clone(model)
    relu = next(n for n in broken.graph.node if n.op_type == "Relu")
    relu.op_type = "Identity"
    return broken


def bake_batch_1(model):
    """The Reshape target becomes a constant with batch 1: right at batch 1, wrong at 2."""
    baked = clone(model)
    reshape = next(n for n in baked.graph.node if n.op_type == "Reshape")
    baked.graph.initializer.append(numpy_helper.from_array(np.array([1, -1], np.int64), "baked_shape"))
    reshape.input[1] = "baked_shape"
    return baked


class Rewrite(Pass):
    """A pass that applies one of the rewrites above."""

    name = "wrong-rewrite"

    def __init__(self, rewrite):
        super().__init__()
        self.rewrite = rewrite

    def run(self, model):
        return PassResult(self.rewrite(model), True)


@pytest.fixture(scope="module")
def softmax_export():
    """A legacy (TorchScript, opset 11) torch export with the ModelZoo softmax pattern and a Reshape."""
    torch = pytest.importorskip("torch")

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 5, 3, padding=1)
            self.out = torch.nn.Conv2d(5, 2, 1)

        def forward(self, x):
            y = torch.relu(self.conv(x)).permute(0, 2, 3, 1).softmax(-1).permute(0, 3, 1, 2)
            y = self.out(y)
            return y.reshape(y.shape[0], -1)

    torch.manual_seed(0)
    return export_legacy(Head(), (torch.randn(1, 3, 8, 8),), ["image"], ["mask"])


@pytest.fixture(scope="module")
def goldens(softmax_export, tmp_path_factory):
    """One golden set (b1, b2) per level, each recorded at that level."""
    sets = {}
    for level in LEVELS:
        directory = tmp_path_factory.mktemp(f"golden-{level}")
        sets[level], _ = make_or_load_golden(
            softmax_export, directory, batch_sizes=[1, 2], runtime=ValidationRuntime(level), tolerances=TOLERANCES
        )
    return sets


REWRITES = {
    "modelzoo-softmax-fix": modelzoo_softmax_fix,
    "break-one-relu": break_one_relu,
    "bake-batch-1": bake_batch_1,
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("rewrite", list(REWRITES))
@pytest.mark.parametrize("mode", ["full", "region"])
def test_each_wrong_pass_is_rejected_at_every_level(softmax_export, goldens, level, rewrite, mode):
    runtime = ValidationRuntime(level)
    golden = goldens[level]
    instrument = (RegionCheck if mode == "region" else EndToEndCheck)(golden, TOLERANCES, runtime=runtime)
    run = PassManager([Rewrite(REWRITES[rewrite])], [instrument]).run(softmax_export)
    assert not run.ok and run.failed is not None
    assert "failed" in str(run.error) and "validation" in str(run.error)
    assert run.model is softmax_export  # the rejected model is not kept


@pytest.mark.parametrize("level", LEVELS)
def test_the_unchanged_export_passes_at_every_level_and_the_manifest_records_the_level(softmax_export, goldens, level):
    golden = goldens[level]
    assert golden.manifest["optimization"] == level
    assert load_golden(golden.directory).manifest["optimization"] == level
    log = ForwardLog()
    with recording_forwards(log):
        result = validate_against_golden(softmax_export, golden, TOLERANCES, runtime=ValidationRuntime(level))
    assert result.passed and result.note == ""
    assert [(f.case, f.batch, f.optimization) for f in log.forwards] == [("b1", 1, level), ("b2", 2, level)]
    assert log.b1_equivalents() == 3


def test_validating_at_another_level_is_allowed_with_a_note(softmax_export, goldens):
    result = validate_against_golden(softmax_export, goldens["none"], TOLERANCES, runtime=ValidationRuntime("all"))
    assert result.passed
    assert "recorded at optimization 'none', validated at 'all'" in result.note
    assert result.to_dict()["note"] == result.note


def test_a_manifest_with_an_unknown_level_is_refused(softmax_export, tmp_path):
    golden, _ = make_or_load_golden(softmax_export, tmp_path / "g", batch_sizes=[1])
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["optimization"] == "all"  # the default
    manifest["optimization"] = "turbo"
    (tmp_path / "g" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GoldenError, match="manifest 'optimization' must be one of"):
        load_golden(tmp_path / "g")


def test_runtime_is_a_typed_pipeline_field():
    base = {"name": "p", "source": {"onnx": "m.onnx"}}
    spec = parse_pipeline(base)
    assert spec.validate.runtime == ValidationRuntime("all", None)
    spec = parse_pipeline({**base, "validate": {"runtime": {"optimization": "none", "threads": 2}}})
    assert spec.validate.runtime == ValidationRuntime("none", 2)
    for bad, message in [
        ({"optimization": "fast"}, "validate.runtime.optimization"),
        ({"threads": 0}, "validate.runtime.threads"),
        ({"threads": True}, "validate.runtime.threads"),
        ({"threads": 10**9}, "validate.runtime.threads: must be an integer from 1 to 1024"),
        ({"level": "all"}, "validate.runtime"),
    ]:
        with pytest.raises(Exception, match=message):
            parse_pipeline({**base, "validate": {"runtime": bad}})


def test_cli_validate_and_golden_make_take_the_level(softmax_export, tmp_path, cli):
    import onnx

    model = tmp_path / "m.onnx"
    onnx.save(softmax_export, str(model))
    made = cli("golden", "make", str(model), "-o", str(tmp_path / "g"), "--optimization", "none")
    assert made.returncode == 0, made.stderr
    assert "optimization none" in made.stdout
    checked = cli("validate", str(model), "--golden", str(tmp_path / "g"), "--optimization", "basic")
    assert checked.returncode == 0, checked.stderr
    assert "note: golden outputs were recorded at optimization 'none', validated at 'basic'" in checked.stdout
    onnx.save(break_one_relu(softmax_export), str(tmp_path / "bad.onnx"))
    rejected = cli("validate", str(tmp_path / "bad.onnx"), "--golden", str(tmp_path / "g"))
    assert rejected.returncode == 1 and "FAILED" in rejected.stdout
    bad = cli("validate", str(model), "--golden", str(tmp_path / "g"), "--threads", "0")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("graphkit: error: --threads")
