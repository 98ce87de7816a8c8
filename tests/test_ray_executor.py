"""graphkit.runtime.ray_executor and ``graphkit infer --executor ray``: shipping, sharding, errors, no Ray.

One local Ray instance (2 CPUs) for the module; the executor joins it as it would a cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.model_io import save_model
from graphkit.runtime.file_inference import infer_files
from graphkit.runtime.ray_executor import RaySettings, probe_address
from graphkit.runtime.ray_worker import model_files, ort_providers
from graphkit.runtime.sharded_inference import infer_files_ray, shard_ranges
from graphkit.testing import make_model
from graphkit.util.errors import GraphkitError, ModelLoadError, SpecError
from graphkit.util.typed_config import from_mapping


def affine_model(path, batch="N", external=False):
    """x [batch, 4] -> (y = x @ W + b [batch, 3], s = sum(x) [batch]); W, b seeded."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [batch]),
        ],
        [w, b, axes],
    )
    if external:
        onnx.save(
            model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=80
        )  # W only (onnx counts sys.getsizeof)
        return path
    return save_model(model, path)


def write_inputs(folder, count, seed=1):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        rng.standard_normal((1, 4)).astype(np.float32).tofile(folder / f"sample{i}.bin")
    return folder


# -- without Ray -------------------------------------------------------------------------------


def test_shards_are_whole_batches_and_cover_every_file():
    for total, unit, workers in [(10, 4, 2), (1, 1, 3), (100, 3, 2), (7, 8, 4), (64, 1, 16)]:
        ranges = shard_ranges(total, unit, workers)
        assert [i for r in ranges for i in r] == list(range(total))
        assert all(len(r) % unit == 0 for r in ranges[:-1])
    big = shard_ranges(1000, 2, 2, bytes_per_file=12 * 2**20)  # wseg-sized 1024x1024 float32 samples
    assert max(len(r) for r in big) == 4 and [i for r in big for i in r] == list(range(1000))
    assert len(shard_ranges(10, 4, 1, bytes_per_file=10 * 2**30)[0]) == 4  # one batch even when over the bound


def test_cuda_provider_only_when_asked_for_and_present():
    available = onnxruntime.get_available_providers()  # this machine: no CUDA build
    assert ort_providers(0, available) == ("CPUExecutionProvider",)
    expected = ("CUDAExecutionProvider", "CPUExecutionProvider") if "CUDAExecutionProvider" in available else None
    assert ort_providers(1, available) == (expected or ("CPUExecutionProvider",))
    gpu_node = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ort_providers(0.5, gpu_node) == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert ort_providers(0, gpu_node) == ("CPUExecutionProvider",)


def test_bad_ray_settings_name_the_key():
    for data, match in [
        ({"num_cpus_per_worker": float("nan")}, "num_cpus_per_worker"),
        ({"num_cpus_per_worker": 0}, "num_cpus_per_worker"),
        ({"num_gpus_per_worker": -1}, "num_gpus_per_worker"),
        ({"num_gpus_per_worker": "inf"}, "num_gpus_per_worker"),
        ({"workers": 0}, "workers"),
        ({"address": "host:1\nx"}, "address"),
        ({"adress": "x"}, "did you mean: address"),
    ]:
        with pytest.raises(SpecError, match=match):
            from_mapping(RaySettings, data, "ray")


def test_model_files_ship_external_data_and_stay_in_the_folder(tmp_path):
    path = affine_model(tmp_path / "ext.onnx", external=True)
    files = model_files(path)
    assert sorted(files) == ["ext.onnx", "weights.bin"]
    assert files["weights.bin"].tobytes() == (tmp_path / "weights.bin").read_bytes()
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside.bin"
    onnx.save(model, str(tmp_path / "escape.onnx"))
    with pytest.raises(ModelLoadError, match="leaves the model's folder"):
        model_files(tmp_path / "escape.onnx")
    with pytest.raises(ModelLoadError, match="no such file"):
        model_files(tmp_path / "none.onnx")


def test_an_address_nobody_listens_on_is_one_line_not_a_hang():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free once closed: connections are refused
    with pytest.raises(GraphkitError, match=rf"cannot reach the cluster at 127.0.0.1:{port} .*ray start --head"):
        probe_address(f"127.0.0.1:{port}")
    for bad in ("nohost", "host:", ":6379", "host:99999", "host:abc"):
        with pytest.raises(GraphkitError, match="is not host:port"):
            probe_address(bad)
    probe_address("auto")  # left to Ray


RUN_WITHOUT_RAY = """
import sys
sys.modules["ray"] = None  # as if ray were not installed: 'import ray' raises ImportError
from graphkit.cli.main import main
code = main(sys.argv[1:])
assert "ray" not in [m for m in sys.modules if sys.modules[m] is not None], "ray was imported"
sys.exit(code)
"""


def test_without_ray_the_ray_executor_is_one_line_and_local_runs_never_import_it(tmp_path):
    model = affine_model(tmp_path / "m.onnx")
    inputs = write_inputs(tmp_path / "in", 3)

    def run(*args):
        return subprocess.run(
            [sys.executable, "-c", RUN_WITHOUT_RAY, *map(str, args)], capture_output=True, text=True, timeout=120
        )

    common = ["infer", model, "--input", inputs, "--output", tmp_path / "out"]
    refused = run(*common, "--output-dirname", "r", "--executor", "ray")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().count("\n") == 0
    assert "the Ray executor needs the ray package: pip install 'graphkit-onnx[ray]'" in refused.stderr
    assert not (tmp_path / "out" / "r").exists()
    ignored = run(*common, "--output-dirname", "i", "--ray-address", "10.0.0.1:6379")
    assert ignored.returncode == 2 and "--ray-address needs --executor ray" in ignored.stderr
    local = run(*common, "--output-dirname", "l")
    assert local.returncode == 0, local.stderr
    assert len(list((tmp_path / "out" / "l").iterdir())) == 6


# -- with Ray ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_address():
    ray = pytest.importorskip("ray")
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield context.address_info["address"]
    ray.shutdown()


def outputs_of(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(("batch", "batchsize", "count"), [(4, None, 10), ("N", 3, 11)])
def test_infer_on_ray_writes_the_local_run_files(ray_address, tmp_path, batch, batchsize, count):
    model = affine_model(tmp_path / "m.onnx", batch=batch)
    inputs = write_inputs(tmp_path / "in", count)
    local = infer_files(model, [inputs], tmp_path / "out", output_dirname="local", batchsize=batchsize)
    remote = infer_files_ray(
        model, [inputs], tmp_path / "out", output_dirname="ray", batchsize=batchsize, ray=RaySettings(workers=2)
    )
    assert outputs_of(tmp_path / "out" / "ray") == outputs_of(tmp_path / "out" / "local")
    assert len(outputs_of(tmp_path / "out" / "ray")) == 2 * count
    assert remote["batches"] == local["batches"] and remote["batchsize"] == local["batchsize"]
    executor = json.loads((tmp_path / "out" / "ray_summary.json").read_text())["executor"]
    assert executor["workers"] == 2 and executor["shards"] > 1
    assert sum(w["shards"] for w in executor["per_worker"]) == executor["shards"]
    assert not list((tmp_path / "out").glob(".*partial"))


def test_infer_on_ray_cli_and_external_data(cli, ray_address, tmp_path):
    model = affine_model(tmp_path / "ext.onnx", external=True)
    inputs = write_inputs(tmp_path / "in", 5)
    args = ["infer", model, "--input", inputs, "--output", tmp_path / "out", "--outfmt", "NPY", "--json"]
    remote = cli(*args, "--output-dirname", "ray", "--executor", "ray", "--ray-address", ray_address)
    assert remote.returncode == 0, remote.stderr
    local = cli(*args, "--output-dirname", "local")
    assert local.returncode == 0, local.stderr
    assert outputs_of(tmp_path / "out" / "ray") == outputs_of(tmp_path / "out" / "local")
    assert json.loads(remote.stdout)["executor"]["address"] == ray_address


def test_infer_on_ray_input_errors_are_one_line(ray_address, tmp_path):
    model = affine_model(tmp_path / "m.onnx", batch=4)
    inputs = write_inputs(tmp_path / "in", 4)
    with pytest.raises(GraphkitError, match="static batch of 4"):
        infer_files_ray(model, [inputs], tmp_path / "o", output_dirname="a", batchsize=3, ray=RaySettings(workers=1))
    (inputs / "sample9.bin").write_bytes(b"\0" * 7)
    with pytest.raises(GraphkitError, match="sample9.bin"):
        infer_files_ray(model, [inputs], tmp_path / "o", output_dirname="b", ray=RaySettings(workers=1))
    assert not (tmp_path / "o" / "b").exists() and not list((tmp_path / "o").glob(".*partial"))
