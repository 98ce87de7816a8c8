"""``eval --executor ray``: same numbers as the local run, faults cost only in-flight images, resume.

One local Ray instance (2 CPUs) serves the whole module; the executor joins it (as it joins a
cluster) and leaves it running. The CLI tests pass its address with ``--ray-address``.
"""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from graphkit.runtime.ray_executor import RayExecutor, RaySettings
from graphkit.util.errors import GraphkitError
from graphkit.wseg.eval.image_task import evaluate_image, read_task
from graphkit.wseg.eval.postprocess import read_state
from graphkit.wseg.eval.runner import run_eval
from graphkit.wseg.eval.spec import eval_spec_from_mapping
from graphkit.wseg.eval.voc import read_samples

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_address():
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield context.address_info["address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_wseg(tmp_path_factory):
    export = pytest.importorskip("graphkit.wseg.export")
    path = tmp_path_factory.mktemp("wseg") / "tiny_wseg64.onnx"
    export.export_from_spec(export.ExportSpec(width=0.03125, input_size=[64, 64], opset=13), path)
    return path


def spec_for(root, **overrides):
    return eval_spec_from_mapping({"data_root": str(root), "pad_size": [64, 64], "workers": 0, **overrides})


def ray_spec(root, **overrides):
    return spec_for(root, executor="ray", ray={"workers": 2}, **overrides)


def states(out, names, crf=True):
    return {n: read_state(out, n, 21, crf) for n in names}


def assert_same_images(a, b, names, crf=True):
    sa, sb = states(a, names, crf), states(b, names, crf)
    for name in names:
        assert np.array_equal(sa[name].conf, sb[name].conf), name
        if crf:
            assert np.array_equal(sa[name].conf_crf, sb[name].conf_crf), name
        assert np.array_equal(sa[name].present, sb[name].present), name
        for folder in ("masks", "masks_crf") if crf else ("masks",):
            assert np.array_equal(
                np.array(Image.open(a / folder / f"{name}.png")), np.array(Image.open(b / folder / f"{name}.png"))
            ), (folder, name)


def test_ray_run_is_identical_to_the_local_run_on_tiny_wseg(ray_address, tiny_voc, tiny_wseg, tmp_path):
    names = [s.name for s in read_samples(tiny_voc)]
    local = run_eval(spec_for(tiny_voc), tiny_wseg, tmp_path / "local", progress=False)
    remote = run_eval(ray_spec(tiny_voc), tiny_wseg, tmp_path / "ray", progress=False)
    assert remote["metrics"] == local["metrics"]
    assert remote["miou_21_with_background_crf"] == local["miou_21_with_background_crf"]
    assert_same_images(tmp_path / "local", tmp_path / "ray", names)
    assert (tmp_path / "ray" / "scores.jsonl").read_text() == (tmp_path / "local" / "scores.jsonl").read_text()
    executor = json.loads((tmp_path / "ray" / "metrics.json").read_text())["executor"]
    assert executor["kind"] == "ray" and executor["workers"] == 2
    per_worker = executor["per_worker"]
    assert sum(w["images"] for w in per_worker) == len(names) == remote["images"]["computed_this_run"]
    assert all(w["images_per_second"] is None or w["images_per_second"] > 0 for w in per_worker)
    assert all(w["providers"] == ["CPUExecutionProvider"] for w in per_worker)  # no GPU asked for
    assert local["executor"]["kind"] == "local"


def test_batches_of_views_give_the_same_numbers_on_ray(ray_address, tiny_voc, classifier_model, tmp_path):
    # a batch of 3 views: the local run mixes views of consecutive images, a Ray worker pads its own
    local = run_eval(spec_for(tiny_voc, batch_size=3, crf=False), classifier_model, tmp_path / "l", progress=False)
    remote = run_eval(ray_spec(tiny_voc, batch_size=3, crf=False), classifier_model, tmp_path / "r", progress=False)
    assert remote["metrics"] == local["metrics"]


def slow_evaluate(session, task):
    """The real per-image work after a pause, so a worker is surely busy when the test kills it."""
    time.sleep(0.4)
    return evaluate_image(session, task)


def _tasks(tiny_voc, spec, count):
    samples = read_samples(tiny_voc)[:count]
    return [read_task(i, s, spec, None, 1) for i, s in enumerate(samples)]


@pytest.mark.parametrize("how", ["ray.kill", "os.kill"])
def test_a_killed_worker_costs_only_its_in_flight_images(ray_address, tiny_voc, classifier_model, how):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(__import__(__name__))  # ship slow_evaluate to the workers
    spec = ray_spec(tiny_voc, crf=False)
    tasks = _tasks(tiny_voc, spec, 5)
    expected = {t.index: evaluate_image_locally(classifier_model, spec, t) for t in tasks}
    results: dict[int, object] = {}
    with RayExecutor(RaySettings(workers=2), classifier_model) as executor:
        executor.start()
        stream = executor.imap_unordered(slow_evaluate, tasks)
        index, first = next(stream)
        results[index] = first
        victim = next(slot for slot in executor.slots if slot.items == 1)
        assert victim.in_flight == 1  # its second image started when the first finished
        if how == "ray.kill":
            ray.kill(victim.actor)
        else:
            os.kill(victim.info["pid"], signal.SIGKILL)
        for index, result in stream:
            assert index not in results, "an image came back twice"
            results[index] = result
        stats = executor.stats(unit="images")
    assert sorted(results) == [t.index for t in tasks]
    # its in-flight image, and one more if the driver sent it before it learnt of the death
    assert stats["retried"] == victim.lost and 1 <= victim.lost <= 2
    assert stats["replaced_workers"] == 1
    assert sum(w["images"] for w in stats["per_worker"]) == len(tasks)
    for index, result in results.items():
        assert np.array_equal(result.record.conf, expected[index].record.conf)
        assert np.array_equal(result.pred, expected[index].pred)


def evaluate_image_locally(model, spec, task):
    from graphkit.runtime.backend import open_backend

    with open_backend("ort", model) as session:
        return evaluate_image(session, task)


def test_state_is_written_by_the_driver_and_a_rerun_finishes_only_the_rest(
    ray_address, tiny_voc, classifier_model, tmp_path, helpers
):
    import shutil

    root = tmp_path / "voc"
    shutil.copytree(tiny_voc, root)
    names = [s.name for s in read_samples(root)]
    jpeg = root / "VOCdevkit" / "VOC2012" / "JPEGImages" / f"{names[3]}.jpg"
    good = jpeg.read_bytes()
    jpeg.write_bytes(good[:100])  # truncated: the worker's decode fails on this image
    out = tmp_path / "out"
    with pytest.raises(GraphkitError, match=rf"{names[3]}\.jpg: cannot read"):
        run_eval(ray_spec(root, crf=False), classifier_model, out, progress=False)
    finished = sorted(p.stem for p in (out / "state").glob("*.npz"))
    assert names[3] not in finished and not list(out.rglob("*.tmp*"))
    jpeg.write_bytes(good)
    summary = run_eval(ray_spec(root, crf=False), classifier_model, out, progress=False)
    assert summary["images"]["resumed"] == len(finished)
    assert summary["images"]["computed_this_run"] == len(names) - len(finished)
    assert sum(w["images"] for w in summary["executor"]["per_worker"]) == len(names) - len(finished)
    local = run_eval(spec_for(root, crf=False), classifier_model, tmp_path / "local", progress=False)
    assert summary["metrics"] == local["metrics"]  # nothing counted twice, nothing missing


def test_model_errors_come_back_as_one_line(ray_address, tiny_voc, classifier_model, tmp_path):
    with pytest.raises(GraphkitError, match=r"eval.pad_size \[32, 32\] does not match the model input"):
        run_eval(ray_spec(tiny_voc, pad_size=[32, 32]), classifier_model, tmp_path / "o", progress=False)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(GraphkitError, match="garbage.onnx"):
        run_eval(ray_spec(tiny_voc), garbage, tmp_path / "o2", progress=False)


def test_cli_joins_the_cluster_and_reports_per_worker_rates(cli, ray_address, tiny_voc, classifier_model, tmp_path):
    out = tmp_path / "run"
    result = cli(
        "eval",
        classifier_model,
        "--data-root",
        tiny_voc,
        "--out",
        out,
        "--pad-size",
        "64",
        "64",
        "--no-crf",
        "--executor",
        "ray",
        "--ray-address",
        ray_address,
        "--ray-workers",
        "2",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["executor"]["address"] == ray_address and summary["executor"]["workers"] == 2
    assert summary["images"]["evaluated"] == 5


def test_requests_the_cluster_cannot_meet_are_one_line(ray_address, tiny_voc, classifier_model, tmp_path):
    spec = spec_for(tiny_voc, executor="ray", ray={"workers": 3})
    with pytest.raises(GraphkitError, match="3 workers of 1 CPU and 0 GPU do not fit the cluster"):
        run_eval(spec, classifier_model, tmp_path / "o", progress=False)
    spec = spec_for(tiny_voc, executor="ray", ray={"num_gpus_per_worker": 1})
    with pytest.raises(GraphkitError, match="asks for 1 CPU and 1 GPU but the cluster has 2 CPU and 0 GPU"):
        run_eval(spec, classifier_model, tmp_path / "o", progress=False)


SIGTERM_AFTER_START = """
import os, signal, sys, time
import ray
from graphkit.runtime.ray_executor import RayExecutor, RaySettings
from graphkit.util.signals import Terminated, handle_signals

with handle_signals():  # as graphkit's main runs every command
    executor = RayExecutor(RaySettings(address=sys.argv[2], workers=1), sys.argv[1])
    try:
        with executor:
            executor.start()
            os.kill(os.getpid(), signal.SIGTERM)  # as 'kill PID' during the evaluation
            time.sleep(60)
    except Terminated:
        print("terminated; ray connected:", ray.is_initialized(), "workers:", len(executor.slots), flush=True)
        sys.exit(143)
print("the signal was lost", flush=True)
"""


def test_sigterm_after_ray_starts_is_graphkits_terminated_and_ray_is_left_cleanly(ray_address, classifier_model):
    """ray.init installs its own SIGTERM handler in the driver (sys.exit(15): exit 15, or 134
    when it hit Ray's C++ core); graphkit's is put back, so SIGTERM is Terminated (exit 143)
    and the executor's exit stops its workers and disconnects."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_AFTER_START, str(classifier_model), ray_address],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 143, done.stdout + done.stderr
    assert done.stdout.strip() == "terminated; ray connected: False workers: 0"
