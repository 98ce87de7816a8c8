"""Corrupt model files: byte flips, random bytes and truncations of a small valid model.

A seeded sample of hundreds of damaged copies of the demo model goes through the model check
and through ``diff``, ``validate``, ``localize`` and ``apply`` (in process, through the CLI's
``main``): every outcome is exit 0, 1 or 2, an exit 2 ends with exactly one
``graphkit: error:`` line, and nothing raises.
"""

from __future__ import annotations

import random

import onnx
import pytest

from graphkit.cli.main import main
from graphkit.ir.model_io import load_user_model
from graphkit.pipeline.demo_model import demo_model
from graphkit.util.errors import ModelLoadError

DEMO = demo_model().SerializeToString()


def damaged(seed: int) -> bytes:
    """The demo model with 1-3 flipped bits, one random byte, or cut short (by seed)."""
    rng = random.Random(seed)
    data = bytearray(DEMO)
    kind = seed % 3
    if kind == 0:
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        data[rng.randrange(len(data))] = rng.randrange(256)
    else:
        data = data[: rng.randrange(len(data))]
    return bytes(data)


def test_damaged_models_load_or_are_refused_with_one_line(tmp_path):
    outcomes = {"valid": 0, "refused": 0}
    for seed in range(600):
        path = tmp_path / f"m{seed}.onnx"
        path.write_bytes(damaged(seed))
        try:
            load_user_model(path)
            outcomes["valid"] += 1
        except ModelLoadError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: ") and "\n" not in message, message
            outcomes["refused"] += 1
    # Both paths are exercised: flips inside weights stay valid, the rest is refused.
    assert outcomes["valid"] > 50 and outcomes["refused"] > 300, outcomes


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("corrupt")
    good = root / "good.onnx"
    good.write_bytes(DEMO)
    assert main(["golden", "make", str(good), "-o", str(root / "golden"), "--batch-sizes", "1,2"]) == 0
    (root / "p.yaml").write_text(
        "name: fuzz\nsource: {builtin: demo}\ngolden: {batch_sizes: [1]}\n"
        f"passes: [eliminate-noops, softmax-transpose, fold-shapes]\noutput: {{dir: {root}/run}}\n"
    )
    return root


def run_clean(argv, capfd) -> int:
    """Run the CLI in process; assert the outcome is a clean exit 0/1/2 with one error line."""
    code = main([str(a) for a in argv])
    err = capfd.readouterr().err
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("graphkit: error: ")]
        assert len(errors) == 1 and err.rstrip("\n").endswith(errors[0]), (argv, err)
    return code


@pytest.mark.parametrize(
    ("command", "seeds"),
    [
        ("diff", range(300)),
        ("validate", range(0, 300, 2)),
        ("localize", range(1, 300, 2)),
        ("apply", range(0, 300, 10)),
    ],
)
def test_damaged_models_never_crash_a_command(command, seeds, world, tmp_path, capfd):
    codes = []
    for seed in seeds:
        path = tmp_path / f"m{seed}.onnx"
        path.write_bytes(damaged(seed))
        argv = {
            "diff": ["diff", world / "good.onnx", path],
            "validate": ["validate", path, "--golden", world / "golden"],
            "localize": ["localize", world / "good.onnx", path, "--dims", "batch=1"],
            "apply": ["apply", world / "p.yaml", "--input", path, "--output", tmp_path / f"run{seed}"],
        }[command]
        codes.append(run_clean(argv, capfd))
    assert codes.count(2) > len(codes) // 4  # most damage is refused...
    assert codes.count(2) < len(codes)  # ...and some damaged models still go all the way


def test_a_ten_byte_file_claiming_gigabytes_is_refused_by_diff(world, tmp_path, capfd):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(b"\x42\x80\x80\x80\x80\x80\x80\x80\x80\x10\x00")  # opset_import, length 2**60
    assert run_clean(["diff", path, world / "good.onnx"], capfd) == 2
    with pytest.raises(ModelLoadError, match="claims 1152921504606846976 bytes but only 1 remain"):
        load_user_model(path)


def test_a_damaged_model_that_loads_is_a_valid_onnx_model(tmp_path):
    """What the check lets through, the ONNX checker accepts too (the check is not weaker)."""
    for seed in range(0, 600, 3):
        path = tmp_path / "m.onnx"
        path.write_bytes(damaged(seed))
        try:
            model = load_user_model(path)
        except ModelLoadError:
            continue
        onnx.checker.check_model(model)
