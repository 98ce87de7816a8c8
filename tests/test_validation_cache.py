"""Issue 15 §3: the validation cache reuses a passed check only when nothing it depends on changed."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
from onnx import numpy_helper

from graphkit.check.golden import make_or_load_golden
from graphkit.check.instruments import RegionCheck
from graphkit.check.validation_cache import ValidationCache, cached_golden_validation, golden_hash
from graphkit.ir.model_io import clone, content_hash
from graphkit.pipeline.demo_model import demo_model
from graphkit.runtime.ort import ForwardLog, ValidationRuntime, recording_forwards
from graphkit.transform.pass_base import PassResult
from graphkit.transform.registry import get_pass
from graphkit.util.tolerance import Tolerance, Tolerances

TOL = Tolerances(Tolerance(atol=1e-5, rtol=1e-4))


@pytest.fixture
def golden(tmp_path):
    golden, _ = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1, 2])
    return golden


def check(cache, golden, model=None, tolerances=TOL, labels=None, runtime=None, golden_key=None):
    model = model or demo_model()
    runtime = runtime or ValidationRuntime()
    log = ForwardLog()
    with recording_forwards(log):
        validation, source = cached_golden_validation(
            cache,
            model,
            content_hash(model),
            golden,
            golden_key or golden_hash(golden.directory),
            tolerances,
            labels,
            runtime,
            "test",
        )
    assert validation.passed
    return source, len(log.forwards)


def test_a_passed_check_is_reused_and_says_from_which_run(tmp_path, golden):
    cache = ValidationCache(tmp_path / "cache", run="run-1")
    assert check(cache, golden) == (None, 2)  # b1 and b2 ran
    later = ValidationCache(tmp_path / "cache", run="run-2")
    source, forwards = check(later, golden)
    assert forwards == 0 and source["from_cache"] and source["run"] == "run-1"
    assert later.to_dict()["hits"][0]["run"] == "run-1"


def test_changing_any_key_invalidates_the_entry(tmp_path, golden, monkeypatch):
    cache = ValidationCache(tmp_path / "cache")
    check(cache, golden)
    assert check(cache, golden)[1] == 0  # warm
    other_model = clone(demo_model())  # a weight moved by one ulp: within tolerance, another model
    weight = next(t for t in other_model.graph.initializer if t.data_type == 1)
    array = numpy_helper.to_array(weight).copy()
    array.flat[0] = np.nextafter(array.flat[0], np.float32(np.inf))
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    changes = {
        "model": dict(model=other_model),
        "tolerances": dict(tolerances=Tolerances(Tolerance(atol=2e-5, rtol=1e-4))),
        "labels": dict(labels=["b1"]),
        "optimization": dict(runtime=ValidationRuntime("basic")),
        "golden": dict(golden_key="another golden set"),
    }
    for name, change in changes.items():
        assert check(cache, golden, **change)[1] > 0, name
    assert check(cache, golden)[1] == 0
    monkeypatch.setattr(onnxruntime, "__version__", "0.0.1")
    assert check(cache, golden)[1] == 2  # another onnxruntime
    monkeypatch.undo()
    assert check(cache, golden, runtime=ValidationRuntime("all", threads=1))[1] == 0  # threads are not a key


def test_the_golden_hash_covers_the_arrays(tmp_path, golden):
    before = golden_hash(golden.directory)
    path = golden.directory / "b1.outputs.npz"
    outputs = dict(np.load(path))
    name = next(iter(outputs))
    outputs[name] = outputs[name] + 1
    np.savez(path, **outputs)
    assert golden_hash(golden.directory) != before


def test_disabled_cache_neither_reads_nor_writes_and_failures_are_not_stored(tmp_path, golden):
    off = ValidationCache(tmp_path / "cache", enabled=False)
    check(off, golden)
    assert not (tmp_path / "cache").exists()
    cache = ValidationCache(tmp_path / "cache")
    broken = clone(demo_model())
    next(n for n in broken.graph.node if n.op_type == "Relu").op_type = "Identity"
    validation, _ = cached_golden_validation(
        cache, broken, content_hash(broken), golden, golden_hash(golden.directory), TOL, None, ValidationRuntime(), "t"
    )
    assert not validation.passed and cache.stored == 0


def test_a_corrupt_entry_is_ignored(tmp_path, golden):
    cache = ValidationCache(tmp_path / "cache")
    check(cache, golden)
    paths = list((tmp_path / "cache").glob("*.json"))
    entries = [json.loads(path.read_text()) for path in paths]
    for broken in ("{not json", "[" * 100000, None, {"cases": "x"}, {"cases": [{"label": "b1"}]}, {"passed": False}):
        for path, entry in zip(paths, entries):
            path.write_text(broken if isinstance(broken, str) else json.dumps({**entry, "result": broken}))
        fresh = ValidationCache(tmp_path / "cache")
        assert check(fresh, golden)[1] == 2 and fresh.hits == [], broken


def test_region_checks_are_cached_by_both_models(tmp_path, golden):
    before = demo_model()
    result = get_pass("eliminate-noops")()(before)
    assert result.modified
    cache = ValidationCache(tmp_path / "cache", run="first")
    for expected_hit in (False, True):
        record = RegionCheck(golden, TOL, cache=cache).after_pass(0, get_pass("eliminate-noops")(), before, result)
        assert record.validation["passed"] and ("cache" in record.validation) == expected_hit
    changed = clone(result.model)
    changed.metadata_props.add(key="note", value="another model")
    record = RegionCheck(golden, TOL, cache=cache).after_pass(
        0, get_pass("eliminate-noops")(), before, PassResult(changed, True)
    )
    assert "cache" not in record.validation


def test_apply_twice_takes_every_check_from_the_cache_and_no_cache_forces_the_work(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("GRAPHKIT_CACHE", str(tmp_path / "cache"))
    onnx_path = tmp_path / "demo.onnx"
    import onnx

    onnx.save(demo_model(), str(onnx_path))
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"name: p\nsource: {{onnx: {onnx_path}}}\ngolden: {{dir: {tmp_path / 'g'}, batch_sizes: [1, 2]}}\n"
        f"passes: [eliminate-noops, fold-shapes]\noutput: {{dir: {tmp_path / 'run'}}}\n"
    )
    reports, summaries = [], []
    for extra in ([], [], ["--no-cache"]):
        result = cli("apply", str(pipeline), *extra)
        assert result.returncode == 0, result.stderr
        summaries.append((tmp_path / "run" / "summary.txt").read_text())
        reports.append(json.loads((tmp_path / "run" / "report.json").read_text()))
    cold, warm, forced = reports
    assert cold["cache"]["hits"] == [] and cold["forwards"]
    b1_equivalents = sum(f["batch"] for f in cold["forwards"])
    assert f"forwards: {len(cold['forwards'])} (b1-equivalents {b1_equivalents}) at optimization all" in summaries[0]
    assert {f["purpose"] for f in cold["forwards"]} >= {"golden b1", "golden b2", "validate pass 'eliminate-noops'"}
    # the two passes; the final check reuses the last pass's cases (same model)
    assert warm["forwards"] == [] and len(warm["cache"]["hits"]) == 2
    assert "2 check(s) passed in an earlier run" in summaries[1] and "forwards: 0" in summaries[1]
    assert "cache:   off (--no-cache)" in summaries[2]
    assert forced["cache"]["enabled"] is False and forced["cache"]["hits"] == []
    checks = [f["purpose"] for f in cold["forwards"] if not f["purpose"].startswith("golden")]
    assert [f["purpose"] for f in forced["forwards"]] == checks  # the golden set itself is reused


def test_the_final_check_reuses_cases_of_a_model_with_the_same_content_hash(tmp_path, golden):
    from graphkit.check.instruments import EndToEndCheck
    from graphkit.pipeline.checks import check_final_model

    # a pass checked end to end on case b1 (the run's cache, its files off as with --no-cache)
    cache = ValidationCache(enabled=False)
    earlier = demo_model()
    observation = EndToEndCheck(golden, TOL, labels=["b1"], cache=cache).after_pass(
        0, get_pass("eliminate-noops")(), earlier, PassResult(earlier, True)
    )
    assert observation.rejection is None
    final = clone(earlier)  # another object, same content
    log = ForwardLog()
    with recording_forwards(log):
        validation, _ = check_final_model(final, content_hash(final), golden, "", TOL, ValidationRuntime(), cache)
    assert validation.passed and [c.label for c in validation.cases] == ["b1", "b2"]
    assert [(f.purpose, f.case) for f in log.forwards] == [("final check", "b2")]  # b1 was not run again
    assert cache.hits == [] and cache.stored == 0  # reuse within a run is no hit from an earlier run
    changed = clone(earlier)
    changed.metadata_props.add(key="note", value="another model")
    with recording_forwards(log := ForwardLog()):
        check_final_model(changed, content_hash(changed), golden, "", TOL, ValidationRuntime(), cache)
    assert [f.case for f in log.forwards] == ["b1", "b2"]
    # nor at other tolerances (an approximate pass's looser ones)
    looser = Tolerances(Tolerance(atol=1e-3, rtol=1e-3))
    with recording_forwards(log := ForwardLog()):
        check_final_model(final, content_hash(final), golden, "", looser, ValidationRuntime(), cache)
    assert [f.case for f in log.forwards] == ["b1", "b2"]
