"""Tiny models shaped like the wseg head: conv -> softmax over channels -> bilinear upsampling.

- ``raw_export``: legacy torch export at opset 11 (permute -> softmax(-1) -> permute, as the
  wseg model does), batch dynamic;
- ``modelzoo_fix``: the same with the transposes replaced by ``Softmax(axis=1)`` at opset 11
  (the Ascend ModelZoo fix);
- ``clean_export``: legacy export at opset 13 of ``softmax(dim=1)``, batch dynamic only.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest
import torch
from torch import nn

from graphkit.ir.model_io import load_model, save_model
from graphkit.testing import export_legacy


class HeadLike(nn.Module):
    """conv (stride 2) -> permute -> softmax(-1) -> permute -> interpolate to the input size (align_corners)."""

    def __init__(self, channels_last_softmax: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
        self.channels_last_softmax = channels_last_softmax

    def forward(self, image):
        x = self.conv(image)
        if self.channels_last_softmax:
            x = torch.softmax(x.permute(0, 2, 3, 1), dim=-1).permute(0, 3, 1, 2)
        else:
            x = torch.softmax(x, dim=1)
        return nn.functional.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=True)


def export(module: nn.Module, path, opset: int, size: int = 8):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is what ModelZoo uses
        _export(module, path, opset, size)
    return path


def _export(module: nn.Module, path, opset: int, size: int) -> None:
    onnx.save(export_legacy(module, (torch.randn(1, 3, size, size),), ["image"], ["mask"], opset), str(path))


@pytest.fixture(scope="session")
def raw_export(tmp_path_factory):
    return export(HeadLike(), tmp_path_factory.mktemp("raw") / "raw.onnx", 11)


@pytest.fixture(scope="session")
def clean_export(tmp_path_factory):
    return export(HeadLike(channels_last_softmax=False), tmp_path_factory.mktemp("clean") / "clean.onnx", 13)


@pytest.fixture(scope="session")
def modelzoo_fix(raw_export, tmp_path_factory):
    """Replace Transpose -> Softmax(axis=3) -> Transpose by Softmax(axis=1), keeping opset 11."""
    model = load_model(raw_export)
    nodes = list(model.graph.node)
    index = next(i for i, n in enumerate(nodes) if n.op_type == "Softmax")
    before, after = nodes[index - 1], nodes[index + 1]
    assert before.op_type == "Transpose" and after.op_type == "Transpose"
    fixed = onnx.helper.make_node("Softmax", [before.input[0]], [after.output[0]], name="softmax_fixed", axis=1)
    del model.graph.node[:]
    model.graph.node.extend(nodes[: index - 1] + [fixed] + nodes[index + 2 :])
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    return save_model(model, tmp_path_factory.mktemp("fix") / "modelzoo_fix.onnx")


# ------------------------------------------------------------------------------- fake atc
# A small executable that behaves like ATC, for tests only (graphkit never ships it).
# The behaviour comes from the FAKE_ATC_MODE environment variable:
# - success: prints "ATC run success", writes <output>.om, exit 0;
# - success_suffix: the same but writes <output>_linux_x86_64.om;
# - no_marker: writes the OM and exits 0 without the success line;
# - no_om: prints the success line, exit 0, writes nothing;
# - error:<CODE>: prints an ATC-style error line with CODE, exit 1.
# Every call appends its argv (JSON) to FAKE_ATC_CALLS when set.

SCRIPT = r"""
import json, os, sys
mode = os.environ.get("FAKE_ATC_MODE", "success")
calls = os.environ.get("FAKE_ATC_CALLS")
if calls:
    with open(calls, "a") as f:
        f.write(json.dumps(sys.argv[1:]) + "\n")
output = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--output="))
print("ATC start working now, please wait for a moment.", flush=True)
if mode.startswith("error:"):
    code = mode.split(":", 1)[1]
    print(f"ATC run failed, Please check the detail log, Try 'atc --help' for more information", flush=True)
    print(f"{code}: [PID: 1234] 2026-01-01-00:00:00.000.000 fake failure for {output}", flush=True)
    sys.exit(1)
if mode in ("success", "success_suffix", "no_marker"):
    name = output + ("_linux_x86_64.om" if mode == "success_suffix" else ".om")
    with open(name, "wb") as f:
        f.write(b"fake om")
if mode != "no_marker":
    print("ATC run success, welcome to the next use.", flush=True)
"""


def write_fake_atc(folder: Path) -> Path:
    """An executable ``atc`` in ``folder`` (run by this Python interpreter)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "atc"
    path.write_text(f"#!{sys.executable}\n{SCRIPT}")
    path.chmod(0o755)
    return path


def env_with_atc(folder: Path, mode: str, calls: Path | None = None) -> dict[str, str]:
    """This process's environment with ``folder`` first on PATH and the fake's mode set."""
    env = dict(os.environ)
    env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', '')}"
    env["FAKE_ATC_MODE"] = mode
    if calls is not None:
        env["FAKE_ATC_CALLS"] = str(calls)
    return env


def env_without_atc() -> dict[str, str]:
    """This process's environment with a PATH that has no atc (only the Python interpreter's folder)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent)
    return env


@pytest.fixture
def fake_atc():
    """Helpers: write(folder) -> atc path; env(folder, mode, calls=None); env_without()."""
    return SimpleNamespace(write=write_fake_atc, env=env_with_atc, env_without=env_without_atc)


def _fake_runner(tmp_path_factory, api: str):
    import importlib.util
    import json
    import subprocess

    spec = importlib.util.spec_from_file_location("fake_ais_bench", Path(__file__).with_name("fake_ais_bench.py"))
    writer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writer)
    root = writer.write_fake_ais_bench(tmp_path_factory.mktemp(f"fake_ais_{api}"), api)

    def run(command: str, args: list[str], cwd, backend: str = "ais_bench"):
        log = Path(cwd) / "fake_ais_bench.jsonl"
        log.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        env["FAKE_AIS_BENCH_LOG"] = str(log)
        result = subprocess.run(
            [sys.executable, "-m", "graphkit", command, "--backend", backend, *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
        )
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return result, calls

    run.api = api
    return run


@pytest.fixture(params=["current", "old"])
def fake_ais_bench_apis(request, tmp_path_factory):
    """graphkit in a subprocess with a fake ais_bench (tests/ascend/fake_ais_bench.py) importable,
    once with ait's current MemorySummary names and once with the old ones:
    ``run(command, args, cwd, backend="ais_bench") -> (CompletedProcess, calls)``."""
    return _fake_runner(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def fake_ais_bench(tmp_path_factory):
    """The same runner with the current API names only."""
    return _fake_runner(tmp_path_factory, "current")


@pytest.fixture(scope="session")
def classifier():
    """``make(path, dims, classes=4)``: image dims (ints or names) -> 1x1 conv -> global average
    pool -> flatten -> logits [dims[0], classes], seeded weights; saved at ``path``, returned."""
    import numpy as np
    from onnx import TensorProto, helper

    from graphkit.testing import make_model

    def make(path, dims, classes=4):
        rng = np.random.default_rng(1)
        weights = rng.standard_normal(classes * 3).tolist()
        w = helper.make_tensor("w", TensorProto.FLOAT, [classes, 3, 1, 1], weights)
        nodes = [
            helper.make_node("Conv", ["image", "w"], ["c"]),
            helper.make_node("GlobalAveragePool", ["c"], ["g"]),
            helper.make_node("Flatten", ["g"], ["logits"]),
        ]
        x = helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)
        y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [dims[0], classes])
        return save_model(make_model(nodes, [x], [y], [w], opset=13), path)

    return make
