"""Every exact registered pass over the ONNX standard's node-test corpus (built in memory).

For each case onnxruntime can run, each exact pass runs on the case's model; a pass may
decline, but it must not crash (PassError is a failure), must return a checker-valid model,
and the changed model's outputs must stay within the case's own rtol/atol of the original's
onnxruntime outputs. Counts go to stdout, to a JSON file under the pytest tmp dir, and into
the assertion message. The default run takes a fixed sample (every SAMPLE_STEP-th case); the
full sweep is marked slow.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest

from graphkit.ir.model_io import check_model, content_hash
from graphkit.runtime.ort import create_session
from graphkit.transform.registry import all_passes
from graphkit.util.errors import GraphkitError

SAMPLE_STEP = 7


def _cases():
    from onnx.backend.test.case.node import collect_testcases

    return sorted(collect_testcases(), key=lambda c: c.name)


def _tensor_feeds(model: onnx.ModelProto, inputs) -> dict | None:
    names = [v.name for v in model.graph.input if v.name not in {t.name for t in model.graph.initializer}]
    if len(names) != len(inputs) or not all(isinstance(x, np.ndarray) for x in inputs):
        return None
    return dict(zip(names, inputs))


def _run(model, feeds):
    session = create_session(model)
    return session.run(None, feeds)


def _close(expected, actual, rtol: float, atol: float) -> bool:
    if not isinstance(expected, np.ndarray):
        return True  # sequences/optionals: compared by the pass's own tests, not here
    if not isinstance(actual, np.ndarray) or expected.shape != actual.shape or expected.dtype != actual.dtype:
        return False
    if expected.dtype.kind in "fc":
        return bool(np.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(actual, expected))


def _options_for(name: str, model: onnx.ModelProto, feeds: dict) -> dict:
    if name == "fix-input-shape":  # make every input static at the shape the case feeds
        return {"shapes": {k: list(v.shape) for k, v in feeds.items() if v.ndim > 0 and 0 not in v.shape}}
    return {}


def sweep(step: int, passes: dict | None = None) -> dict:
    """Run ``passes`` (default: every exact built-in pass; passes other tests register are not swept)
    on every ``step``-th case."""
    if passes is None:
        passes = {
            name: cls
            for name, cls in all_passes().items()
            if cls.exact and cls.__module__.startswith("graphkit_passes.")
        }
    stats = {"passes": sorted(passes), "cases": 0, "run": 0, "skipped": Counter(), "changed": Counter()}
    failures = []
    for index, case in enumerate(_cases()):
        if index % step:
            continue
        stats["cases"] += 1
        if case.model is None or not case.data_sets:
            stats["skipped"]["no model or data"] += 1
            continue
        model = case.model
        feeds = _tensor_feeds(model, case.data_sets[0][0])
        if feeds is None:
            stats["skipped"]["non-tensor inputs"] += 1
            continue
        try:
            expected = _run(model, feeds)
        except Exception as exc:  # noqa: BLE001 - onnxruntime cannot run this case
            stats["skipped"]["onnxruntime cannot run it"] += 1
            del exc
            continue
        stats["run"] += 1
        for name, cls in passes.items():
            before = content_hash(model)
            try:
                result = cls.from_spec(_options_for(name, model, feeds), name)(model)
            except GraphkitError as exc:
                failures.append(f"{case.name}: {name} raised {exc}")
                continue
            if content_hash(model) != before:
                failures.append(f"{case.name}: {name} mutated its input")
            if not result.modified:
                continue
            stats["changed"][name] += 1
            try:
                check_model(result.model)
                actual = _run(result.model, feeds)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{case.name}: {name} output model invalid or unrunnable: {exc}")
                continue
            for e, a in zip(expected, actual):
                if not _close(e, a, case.rtol, case.atol):
                    failures.append(f"{case.name}: {name} changed outputs beyond rtol={case.rtol} atol={case.atol}")
    stats["failed"] = len(failures)
    stats["failures"] = failures[:50]
    stats["skipped"] = dict(stats["skipped"])
    stats["changed"] = dict(stats["changed"])
    return stats


def _report(stats: dict, tmp_path, label: str) -> str:
    text = json.dumps(stats, indent=1, sort_keys=True)
    (tmp_path / f"node_corpus_{label}.json").write_text(text)
    print(f"\nnode corpus ({label}): {text}")
    return text


def test_node_corpus_sample(tmp_path):
    stats = sweep(SAMPLE_STEP)
    text = _report(stats, tmp_path, "sample")
    assert stats["run"] > 100, text
    assert stats["failed"] == 0, text


@pytest.mark.slow
def test_node_corpus_full(tmp_path):
    stats = sweep(1)
    text = _report(stats, tmp_path, "full")
    assert stats["run"] > 1500, text
    assert stats["failed"] == 0, text
