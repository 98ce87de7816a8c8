"""Issue 28 items 1-2, from the attacker's side: poisoned golden sets and forged validation-cache
entries are detected; in graphkit's cache they are recomputed with a warning, never trusted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphkit.check.golden import load_golden, make_or_load_golden
from graphkit.check.golden_integrity import GoldenIntegrityError
from graphkit.check.golden_validation import validate_against_golden
from graphkit.check.validation_cache import ValidationCache, cached_golden_validation, golden_hash
from graphkit.ir.model_io import content_hash
from graphkit.pipeline.demo_model import demo_model
from graphkit.runtime.ort import ValidationRuntime, create_session, run_session
from graphkit.transform.registry import get_pass, load_pass_dir
from graphkit.util.integrity import KEY_FILE
from graphkit.util.tolerance import Tolerance, Tolerances
from graphkit.util.typed_config import to_mapping

TOL = Tolerances(Tolerance(atol=1e-5, rtol=1e-4))


def broken_model(user_pass_dir: Path) -> onnx.ModelProto:
    """The demo model after break-relu (every Relu output scaled: wrong on purpose)."""
    load_pass_dir(user_pass_dir)
    return get_pass("break-relu")()(demo_model()).model


def poison(folder: Path, model: onnx.ModelProto) -> None:
    """Rewrite every case's outputs with ``model``'s outputs (np.savez: the zip CRC stays valid)."""
    session = create_session(model)
    for inputs_file in sorted(folder.glob("*.inputs.npz")):
        with np.load(inputs_file) as data:
            feeds = {key: data[key] for key in data.files}
        label = inputs_file.name.split(".")[0]
        np.savez(folder / f"{label}.outputs.npz", **run_session(session, feeds, case=label))


def write_pipeline(tmp_path: Path, user_pass_dir: Path, golden_dir: Path | None = None) -> Path:
    source = tmp_path / "demo.onnx"
    onnx.save(demo_model(), str(source))
    golden = f"{{dir: {golden_dir}, batch_sizes: [1, 2]}}" if golden_dir else "{batch_sizes: [1, 2]}"
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"name: p\nsource: {{onnx: {source}}}\ngolden: {golden}\npasses: [break-relu]\n"
        f"pass_dirs: [{user_pass_dir}]\noutput: {{dir: {tmp_path / 'run'}}}\n"
    )
    return pipeline


def test_a_poisoned_cached_golden_set_is_recorded_again_and_the_wrong_pass_is_rejected(
    tmp_path, cli, monkeypatch, user_pass_dir
):
    monkeypatch.setenv("GRAPHKIT_CACHE", str(tmp_path / "cache"))
    pipeline = write_pipeline(tmp_path, user_pass_dir)
    first = cli("apply", pipeline, "--no-cache")
    assert first.returncode == 1, first.stderr  # break-relu is wrong: rejected
    [cached] = list((tmp_path / "cache" / "golden").iterdir())
    broken = broken_model(user_pass_dir)
    poison(cached, broken)
    # (the next test shows the poisoned outputs would accept the wrong model if trusted)
    with pytest.raises(GoldenIntegrityError, match=r"b1\.outputs\.npz: does not match the digest"):
        load_golden(cached)
    second = cli("apply", pipeline, "--no-cache")
    assert "b1.outputs.npz: does not match the digest in its manifest" in second.stderr
    assert "not trusted, recording the set again" in second.stderr
    assert second.returncode == 1, second.stderr  # the re-recorded set rejects the wrong pass
    assert not (tmp_path / "run" / "model.onnx").exists()
    assert load_golden(cached).manifest["digest"]  # the re-recorded set verifies


def test_the_poisoned_set_would_accept_the_wrong_model_if_it_were_trusted(tmp_path, user_pass_dir):
    """Proves the attack of the test above: the poisoned outputs do match the broken model."""
    golden, _ = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1, 2])
    broken = broken_model(user_pass_dir)
    assert not validate_against_golden(broken, golden, TOL).passed
    poison(tmp_path / "g", broken)
    for case in golden.cases:
        with np.load(tmp_path / "g" / f"{case.label}.outputs.npz") as data:
            case.outputs = {key: data[key] for key in data.files}
    assert validate_against_golden(broken, golden, TOL).passed


def test_a_poisoned_golden_folder_the_user_named_is_one_line_exit_2(tmp_path, cli, user_pass_dir):
    pipeline = write_pipeline(tmp_path, user_pass_dir, golden_dir=tmp_path / "g")
    make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1, 2])
    poison(tmp_path / "g", broken_model(user_pass_dir))
    result = cli("apply", pipeline, "--no-cache")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("graphkit: error: ") and "b1.outputs.npz: does not match the digest" in lines[-1]
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
    # validate refuses it the same way
    onnx.save(demo_model(), str(tmp_path / "m.onnx"))
    validate = cli("validate", tmp_path / "m.onnx", "--golden", tmp_path / "g")
    assert validate.returncode == 2 and "does not match the digest" in validate.stderr


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["tolerances"]["default"].update(atol=10.0),  # loosen the tolerance
        lambda m: m["cases"].pop(),  # drop a case
        lambda m: m.pop("digest"),  # strip the digest (an "older" set)
        lambda m: m["files"].update({"b2.inputs.npz": "0" * 64}),
    ],
    ids=["tolerance", "case", "no-digest", "file-digest"],
)
def test_an_edited_manifest_does_not_verify(tmp_path, edit):
    make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1, 2])
    path = tmp_path / "g" / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(GoldenIntegrityError):
        load_golden(tmp_path / "g")


def test_the_committed_golden_set_verifies():
    golden = load_golden(Path(__file__).parent.parent / "golden" / "wseg_tiny")
    assert [c.label for c in golden.cases] == ["b1", "b2"]


def golden_key(model, golden, labels=None):
    return ValidationCache.key(
        "golden",
        model=content_hash(model),
        golden=golden_hash(golden.directory),
        tolerances=to_mapping(TOL),
        labels=labels,
        optimization=ValidationRuntime().optimization,
    )


def validate_cached(cache, model, golden, labels=None):
    return cached_golden_validation(
        cache, model, content_hash(model), golden, golden_hash(golden.directory), TOL, labels, ValidationRuntime(), "t"
    )


def test_a_forged_passed_entry_for_a_rejected_model_is_ignored_with_a_warning(tmp_path, user_pass_dir, caplog):
    golden, _ = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1, 2])
    cache = ValidationCache(tmp_path / "cache")
    good, _ = validate_cached(cache, demo_model(), golden)  # a real, sealed entry
    assert good.passed and cache.stored == 1
    [real_path] = (tmp_path / "cache").glob("golden-*.json")
    real = json.loads(real_path.read_text())
    broken = broken_model(user_pass_dir)
    key = golden_key(broken, golden)
    forged_path = cache._path(key)
    forgeries = [
        {"key": key, "result": {"passed": True, "cases": []}},
        {"key": key, "result": good.to_dict()},  # a passed result, no seal
        {**real, "key": key},  # the real entry's seal under another key
        {**real, "key": key, "seal": "0" * 64},
    ]
    for forged in forgeries:
        forged_path.write_text(json.dumps(forged))
        fresh = ValidationCache(tmp_path / "cache")
        with caplog.at_level(logging.WARNING, logger="graphkit.check.validation_cache"):
            caplog.clear()
            validation, source = validate_cached(fresh, broken, golden)
        assert not validation.passed and source is None and fresh.hits == [], forged
        assert "does not verify; ignored, checking again" in caplog.text
    real_path.write_text(json.dumps({**real, "result": {**real["result"], "note": "edited"}}))
    fresh = ValidationCache(tmp_path / "cache")
    assert validate_cached(fresh, demo_model(), golden)[1] is None  # an edited real entry: run again


def test_an_entry_whose_cases_are_not_its_keys_labels_is_a_miss_not_a_keyerror(tmp_path):
    from graphkit.pipeline.checks import check_final_model

    golden, _ = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1, 2])
    cache = ValidationCache(tmp_path / "cache")
    only_b1 = validate_against_golden(demo_model(), golden, TOL, labels=["b1"])
    cache.put(golden_key(demo_model(), golden, ["b1", "b2"]), only_b1.to_dict())  # sealed, but wrong cases
    validation, source = check_final_model(
        demo_model(),
        content_hash(demo_model()),
        golden,
        golden_hash(golden.directory),
        TOL,
        ValidationRuntime(),
        ValidationCache(tmp_path / "cache"),
    )
    assert source is None and validation.passed and [c.label for c in validation.cases] == ["b1", "b2"]


def test_the_cache_key_is_private_and_a_replaced_key_invalidates_every_entry(tmp_path):
    golden, _ = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1])
    cache = ValidationCache(tmp_path / "cache")
    validate_cached(cache, demo_model(), golden)
    key_file = tmp_path / "cache" / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert validate_cached(ValidationCache(tmp_path / "cache"), demo_model(), golden)[1] is not None  # a hit
    key_file.chmod(0o644)  # readable by others: not trusted, replaced
    assert validate_cached(ValidationCache(tmp_path / "cache"), demo_model(), golden)[1] is None
    assert key_file.stat().st_mode & 0o777 == 0o600
