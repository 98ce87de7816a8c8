"""Checkpoint loading: accepted layouts, and one clear error for each way a checkpoint can be wrong."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from graphkit.util.errors import GraphkitError
from graphkit.wseg.checkpoint import CheckpointError, file_digest, load_checkpoint, read_state_dict
from graphkit.wseg.network import WsegModel

TINY = 1 / 32


@pytest.fixture(scope="module")
def source_state() -> dict[str, torch.Tensor]:
    """The weights a fake checkpoint holds: a tiny model with seed 11."""
    return WsegModel(width=TINY, seed=11).state_dict()


def save(obj, path):
    torch.save(obj, path)
    return path


def assert_loaded(model: WsegModel, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize(
    "layout",
    ["flat", "module_prefix", "nested_model", "nested_state_dict_with_extras", "nested_enc", "nested_module_prefix"],
)
def test_accepted_layouts_load_every_tensor(tmp_path, source_state, layout):
    prefixed = {f"module.{k}": v for k, v in source_state.items()}
    content = {
        "flat": source_state,
        "module_prefix": prefixed,
        "nested_model": {"model": source_state},
        "nested_state_dict_with_extras": {"state_dict": source_state, "epoch": 20, "score": 0.928},
        "nested_enc": {"enc": source_state},
        "nested_module_prefix": {"model": prefixed},
    }[layout]
    path = save(content, tmp_path / "ckpt.pth")
    model = WsegModel(width=TINY, seed=0)
    description = load_checkpoint(model, path)
    assert_loaded(model, source_state)
    assert description == f"checkpoint {path} (sha256 {file_digest(path)})"
    assert model.weights_description == description
    assert len(file_digest(path)) == 12


def test_loaded_model_computes_like_the_source_model(tmp_path, source_state):
    path = save(source_state, tmp_path / "ckpt.pth")
    model = WsegModel(width=TINY, seed=None)
    load_checkpoint(model, path)
    source = WsegModel(width=TINY, seed=11)
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for got, want in zip(model(image), source(image)):
            assert torch.equal(got, want)


def test_half_precision_checkpoint_is_cast_to_float32(tmp_path, source_state):
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in source_state.items()}
    model = WsegModel(width=TINY, seed=0)
    load_checkpoint(model, save(half, tmp_path / "half.pth"))
    assert model.conv1a.weight.dtype == torch.float32
    torch.testing.assert_close(model.conv1a.weight, half["conv1a.weight"].float(), atol=0, rtol=0)


def one_line_error(model, path, match) -> str:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(model, path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert isinstance(info.value, GraphkitError)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a failed load changed the model"
    return message


def test_missing_keys_are_listed(tmp_path, source_state):
    state = dict(source_state)
    del state["conv1a.weight"], state["last_conv.8.bias"]
    message = one_line_error(WsegModel(width=TINY), save(state, tmp_path / "c.pth"), "2 missing keys")
    assert "conv1a.weight" in message and "last_conv.8.bias" in message and "unexpected" not in message


def test_unexpected_keys_are_listed(tmp_path, source_state):
    state = dict(source_state, **{"fc8.weight": torch.zeros(20, 4096, 1, 1), "extra.bias": torch.zeros(3)})
    message = one_line_error(WsegModel(width=TINY), save(state, tmp_path / "c.pth"), "2 unexpected keys")
    assert "fc8.weight" in message and "extra.bias" in message and "missing" not in message


def test_missing_and_unexpected_keys_in_one_message(tmp_path, source_state):
    state = {("renamed." + k if k.startswith("aspp.") else k): v for k, v in source_state.items()}
    renamed = sum(k.startswith("aspp.") for k in source_state)
    message = one_line_error(WsegModel(width=TINY), save(state, tmp_path / "c.pth"), "missing keys")
    assert f"{renamed} missing keys" in message and f"{renamed} unexpected keys" in message
    assert f"({renamed - 8} more)" in message  # long lists are cut


def test_wrong_shape_names_the_key_and_both_shapes(tmp_path, source_state):
    model = WsegModel(width=1 / 16)  # twice as wide as the checkpoint
    message = one_line_error(model, save(source_state, tmp_path / "c.pth"), "shape")
    assert "'conv1a.weight' has shape [2, 3, 3, 3] in the checkpoint but [4, 3, 3, 3] in the model" in message
    assert "more keys with other shapes" in message


def test_truncated_checkpoint(tmp_path, source_state):
    good = save(source_state, tmp_path / "good.pth").read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(good[: len(good) // 2])
    one_line_error(WsegModel(width=TINY), path, "truncated PyTorch checkpoint")


def test_legacy_pickle_format_loads(tmp_path, source_state):
    path = tmp_path / "legacy.pth"
    torch.save(source_state, path, _use_new_zipfile_serialization=False)
    model = WsegModel(width=TINY)
    load_checkpoint(model, path)
    assert_loaded(model, source_state)


def test_corrupt_zip_member(tmp_path, source_state):
    data = bytearray(save(source_state, tmp_path / "good.pth").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)  # zero a block inside the tensor data records
    path = tmp_path / "corrupt.pth"
    path.write_bytes(bytes(data))
    message = one_line_error(WsegModel(width=TINY), path, "corrupt PyTorch checkpoint")
    assert "fails its CRC check" in message


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"this is not a checkpoint\n", "not a PyTorch checkpoint"),
        (b"\x80\x04garbage", "not a readable PyTorch checkpoint"),
        (b"", "checkpoint file is empty"),
    ],
)
def test_not_a_torch_file(tmp_path, content, match):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    one_line_error(WsegModel(width=TINY), path, match)


def test_missing_file_and_directory(tmp_path):
    one_line_error(WsegModel(width=TINY), tmp_path / "nope.pth", "no such checkpoint file")
    one_line_error(WsegModel(width=TINY), tmp_path, "is a directory")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"epoch": 3, "lr": 0.1}, "no state_dict found"),
        ([torch.zeros(2)], "holds a list, not a state_dict"),
        ({"a": {"x": torch.zeros(1)}, "b": {"y": torch.zeros(1)}}, "several nested state_dicts"),
    ],
)
def test_checkpoint_without_a_single_state_dict(tmp_path, content, match):
    path = save(content, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match=match):
        read_state_dict(path)


def test_pickled_objects_are_refused_not_executed(tmp_path):
    path = save({"model": WsegModel(width=TINY)}, tmp_path / "module.pth")  # a whole nn.Module, not weights
    one_line_error(WsegModel(width=TINY), path, "not weights-only")


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "graphkit", "export", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_exports_a_checkpoint_and_reports_it(tmp_path, source_state):
    ckpt = save({"state_dict": source_state}, tmp_path / "tiny.pth")
    out = tmp_path / "tiny.onnx"
    done = run_cli("--weights", str(ckpt), "--width", str(TINY), "--input-size", "64", "64", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["weights"] == f"checkpoint {ckpt} (sha256 {file_digest(ckpt)})"
    assert out.exists()


def test_cli_bad_checkpoint_is_one_line_exit_2(tmp_path, source_state):
    state = dict(source_state)
    del state["bn7.weight"]
    ckpt = save(state, tmp_path / "broken.pth")
    out = tmp_path / "never.onnx"
    done = run_cli("--weights", str(ckpt), "--width", str(TINY), "-o", str(out))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "1 missing keys (bn7.weight)" in done.stderr
    assert not out.exists() and list(tmp_path.glob("*.onnx")) == []
