"""graphkit.api, the public API: docs/api.md's examples run as written, a notebook-style run that
touches no disk, the lazy re-export from ``graphkit``, and the API's answers to bad arguments."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import onnx
import pytest

import graphkit
from graphkit import api
from graphkit.pipeline.demo_model import demo_model
from graphkit.testing import parse_model
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.util.errors import GoldenError, InputError, ModelLoadError, SpecError

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


@pytest.fixture
def no_disk(tmp_path, monkeypatch):
    """An empty working folder, cache and home; yields a function asserting all are still empty."""
    folders = [tmp_path / name for name in ("cwd", "cache", "home", "tmp")]
    for folder in folders:
        folder.mkdir()
    monkeypatch.chdir(folders[0])
    monkeypatch.setenv("GRAPHKIT_CACHE", str(folders[1]))
    monkeypatch.setenv("HOME", str(folders[2]))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def assert_untouched():
        for folder in folders[:3]:
            assert sorted(p.name for p in folder.rglob("*")) == [], f"{folder.name} was written to"

    return assert_untouched


def test_every_example_in_docs_api_md_runs(no_disk, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    module = types.ModuleType("docs_api_md")  # a real module: dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC}:block{number}", "exec"), module.__dict__)  # noqa: S102 - the documented examples
    assert module.result.ok and module.done.counts == {"relu": 1, "clip": 1}
    no_disk()  # the examples never call save()


def test_a_notebook_applies_the_generic_preset_in_memory_and_reads_the_report(no_disk):
    model = demo_model()
    before = model.SerializeToString()
    result = graphkit.apply(model, preset="generic")
    assert result.ok, result.error
    assert model.SerializeToString() == before  # the caller's model is not touched
    report = result.report.to_dict()
    assert report["status"] == "ok" and report["run_dir"] == ""
    assert report["golden"]["dir"] == "<in memory>" and report["golden"]["cases"] == ["b1", "b2"]
    statuses = {(p["name"], p["status"]) for p in report["passes"] if p["iteration"] in (None, 1)}
    assert ("eliminate-noops", "applied") in statuses and ("fold-shapes", "applied") in statuses
    assert all(p["validation"]["passed"] for p in report["passes"] if p["status"] == "applied")
    assert report["final"]["nodes"] == len(result.model.graph.node) < report["source"]["nodes"]
    assert report["final"]["validation"]["passed"]
    assert "files:   none (in memory)" in result.summary()
    assert [f["purpose"] for f in report["forwards"]][:2] == ["golden b1", "golden b2"]
    reused = graphkit.apply(result.model, ["cse"], golden=graphkit.record_golden(result.model))
    assert reused.ok and reused.report.golden.reused
    assert not any(f["purpose"].startswith("golden") for f in reused.report.forwards)
    no_disk()


def test_import_graphkit_loads_no_onnx_and_the_names_match():
    code = (
        "import sys, graphkit; assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules; "
        "from graphkit import Rule; assert 'onnxruntime' not in sys.modules, 'the API imported onnxruntime'; "
        "graphkit.testing; assert 'onnxruntime' in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert set(api.__all__) - {"diff"} == graphkit._API_NAMES  # graphkit.diff is the subpackage
    assert [name for name in graphkit._API_NAMES if getattr(graphkit, name) is not getattr(api, name)] == []
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        graphkit.nope  # noqa: B018


class Negate(Pass):
    """Wrong on purpose: negates the first output."""

    name = "negate-output"

    def run(self, model):
        out = onnx.ModelProto()
        out.CopyFrom(model)
        out.graph.node.append(onnx.helper.make_node("Neg", [out.graph.output[0].name + "_neg_in"], ["unused"]))
        node = out.graph.node[-2]
        node.output[0], name = node.output[0] + "_neg_in", node.output[0]
        out.graph.node[-1].output[0] = name
        return PassResult(out, True)


def test_a_wrong_pass_is_rolled_back_or_stops_without_raising(no_disk):
    model = parse_model('<ir_version: 8, opset_import: ["" : 13]> g (float[2,3] x) => (float[2,3] y) { y = Relu(x) }')
    stopped = graphkit.apply(model, [Negate(), "cse"])
    assert not stopped.ok and "negate-output" in str(stopped.error) and stopped.model is model
    assert [r.status.value for r in stopped.records] == ["failed"]
    skipped = graphkit.apply(model, [Negate(), "cse"], on_failure="skip")
    assert skipped.ok and [r.status.value for r in skipped.records] == ["rolled-back", "unchanged"]
    assert skipped.records[0].validation["passed"] is False
    unchecked = graphkit.apply(model, [Negate()], validate=False)  # structure only: the numbers are not looked at
    assert unchecked.ok and unchecked.golden is None and unchecked.report.final.validation == {}
    no_disk()


def test_bad_arguments_are_graphkit_errors(tmp_path):
    model = demo_model()
    with pytest.raises(InputError, match="not both"):
        graphkit.apply(model, ["cse"], preset="generic")
    with pytest.raises(InputError, match="passes must be a list"):
        graphkit.apply(model, "cse")
    with pytest.raises(SpecError, match="unknown pass 'cs'"):
        graphkit.apply(model, ["cs"])
    with pytest.raises(SpecError, match="no such preset"):
        graphkit.apply(model, preset="nope")
    with pytest.raises(InputError, match="expected an onnx.ModelProto or a path, got bytes"):
        graphkit.apply(model.SerializeToString())
    with pytest.raises(ModelLoadError):
        graphkit.apply(tmp_path / "missing.onnx")
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    broken.graph.node[0].input[0] = "nowhere"
    with pytest.raises(ModelLoadError, match="model: invalid model"):
        graphkit.apply(broken)
    with pytest.raises(InputError, match="tolerance"):
        graphkit.apply(model, tolerance=1e-3)
    other = tmp_path / "golden"
    from graphkit.check.golden import make_or_load_golden

    make_or_load_golden(parse_model(
        '<ir_version: 8, opset_import: ["" : 13]> g (float[1,3] x) => (float[1,3] y) { y = Relu(x) }'
    ), other, batch_sizes=[1])  # fmt: skip
    with pytest.raises(GoldenError, match="made for another model"):
        graphkit.apply(model, golden=other)
    assert os.listdir(other)  # read, never rewritten
