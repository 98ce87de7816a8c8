"""Golden sets to feed ``validate``, ``golden show``, ``localize`` and pipelines: valid, then corrupted.

A valid set is recorded by graphkit's own :func:`graphkit.check.golden.make_or_load_golden` (so the
harness follows the format of the checkout it runs against), read back as files, and corrupted
in one of the ways issue 10 lists: truncated or flipped npz, an npy in place of an npz, a
manifest that is a list/null/string, lacks keys, is not UTF-8 or nests deeply, no cases, a case
with no outputs, labels that leave the folder, non-finite or negative tolerances, wrong-dtype or
wrong-shape inputs, and outputs that the model cannot match.

``must_fail`` marks corruptions after which the unchanged model must not validate: a case that
cannot run or outputs that differ. ``validate`` accepting one (exit 0) is a finding.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from fuzz.choices import Choices
from fuzz.models import corrupt_bytes
from fuzz.sandbox import DIRECTORY, FIFO, Content


@dataclass
class GoldenCase:
    """A generated golden folder: file name -> content, and what was done to it."""

    files: dict[str, Content]
    label: str
    must_fail: bool = False  # the model it was recorded from must not pass against it
    as_file: Content | None = None  # the golden "folder" is this file instead


def record(model: onnx.ModelProto, seed: int = 0, batch_sizes: tuple[int, ...] = (1, 2)) -> dict[str, bytes]:
    """Record a valid golden set for ``model`` with graphkit itself; returns its files."""
    from graphkit.check.golden import make_or_load_golden

    with tempfile.TemporaryDirectory(prefix="graphkit-fuzz-golden-") as tmp:
        make_or_load_golden(model, tmp, batch_sizes=list(batch_sizes), seed=seed)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as loaded:
        return {k: loaded[k] for k in loaded.files}


def _edit_manifest(files: dict, edit) -> None:
    manifest = json.loads(files["manifest.json"])
    result = edit(manifest)
    files["manifest.json"] = json.dumps(manifest if result is None else result).encode()


def corrupt(choices: Choices, files: dict[str, bytes]) -> GoldenCase:
    """One corruption of the valid golden ``files``."""
    files = dict(files)
    npz_names = sorted(n for n in files if n.endswith(".npz"))
    inputs_names = [n for n in npz_names if n.endswith(".inputs.npz")]
    outputs_names = [n for n in npz_names if n.endswith(".outputs.npz")]
    kind = choices.pick(
        [
            "valid",
            "npz-bytes",
            "npz-bytes",
            "npy-for-npz",
            "npz-missing",
            "npz-is-dir",
            "npz-is-fifo",
            "manifest-type",
            "manifest-missing-key",
            "manifest-not-utf8",
            "manifest-truncated",
            "manifest-deep",
            "no-cases",
            "no-outputs",
            "label-escape",
            "label-odd",
            "tolerance-bad",
            "input-dtype",
            "input-shape",
            "output-renamed",
            "output-nan",
            "output-inf",
            "output-shifted",
            "dir-is-file",
        ]
    )
    if kind == "valid":
        return GoldenCase(files, "golden-valid")
    if kind == "npz-bytes":
        name = choices.pick(npz_names)
        files[name], how = corrupt_bytes(choices, files[name])
        return GoldenCase(files, f"golden-npz-{how}")
    if kind == "npy-for-npz":
        name = choices.pick(npz_names)
        buffer = io.BytesIO()
        np.save(buffer, next(iter(_arrays(files[name]).values())))
        files[name] = buffer.getvalue()
        return GoldenCase(files, kind)
    if kind in ("npz-missing", "npz-is-dir", "npz-is-fifo"):
        name = choices.pick(npz_names)
        if kind == "npz-missing":
            del files[name]
        else:
            files[name] = DIRECTORY if kind == "npz-is-dir" else FIFO
        return GoldenCase(files, f"golden-{kind}")
    if kind == "manifest-type":
        files["manifest.json"] = choices.pick([b"[]", b"null", b'"golden"', b"42", b"true", b"{}"])
        return GoldenCase(files, "golden-manifest-type")
    if kind == "manifest-missing-key":
        key = choices.pick(sorted(json.loads(files["manifest.json"])))
        _edit_manifest(files, lambda m: m.pop(key))
        return GoldenCase(files, f"golden-manifest-without-{key}")
    if kind == "manifest-not-utf8":
        files["manifest.json"] = b'{"format": "\xff\xfe\xfa"}'
        return GoldenCase(files, "golden-manifest-not-utf8")
    if kind == "manifest-truncated":
        data = files["manifest.json"]
        files["manifest.json"] = data[: choices.integer(0, len(data) - 1)]
        return GoldenCase(files, "golden-manifest-truncated")
    if kind == "manifest-deep":
        depth = choices.pick([100, 10_000, 100_000])
        files["manifest.json"] = b"[" * depth + b"]" * depth
        return GoldenCase(files, "golden-manifest-deep")
    if kind == "no-cases":
        _edit_manifest(files, lambda m: m.update(cases=[]))
        return GoldenCase(files, "golden-no-cases", must_fail=True)
    if kind == "no-outputs":
        for name in outputs_names:
            files[name] = _npz({})
        return GoldenCase(files, "golden-case-without-outputs", must_fail=True)
    if kind in ("label-escape", "label-odd"):
        label = (
            choices.pick(["../../other/b1", "../b1", "/etc/b1", "@@ROOT@@/secret"])
            if kind == "label-escape"
            else choices.pick(["b1\nb2", "", ".", "b1/../b1", 12, None, ["b1"]])
        )
        _edit_manifest(files, lambda m: m["cases"][0].update(label=label))
        if kind == "label-escape" and label.startswith(".."):
            # plant the data where the label points, so that following it would "work"
            files[f"{label}.inputs.npz"] = files[inputs_names[0]]
            files[f"{label}.outputs.npz"] = files[outputs_names[0]]
        return GoldenCase(files, f"golden-{kind}", must_fail=True)
    if kind == "tolerance-bad":
        value = choices.pick([float("nan"), float("inf"), -1.0, "big", None, [1]])
        key = choices.pick(["atol", "rtol"])
        _edit_manifest(files, lambda m: m.setdefault("tolerances", {}).setdefault("default", {}).update({key: value}))
        # a NaN or infinite tolerance must not turn the check off: make the outputs wrong as well
        for name in outputs_names:
            files[name] = _npz({k: v + 1.0 for k, v in _arrays(files[name]).items()})
        return GoldenCase(files, f"golden-tolerance-{key}-{value!r}", must_fail=True)
    if kind in ("input-dtype", "input-shape"):
        name = choices.pick(inputs_names)
        arrays = _arrays(files[name])
        if kind == "input-dtype":
            dtype = choices.pick([np.float64, np.int64, np.float16, np.int32])
            arrays = {k: v.astype(dtype) for k, v in arrays.items()}
        else:
            arrays = {k: np.zeros(v.shape[:-1] + (v.shape[-1] + 1,), v.dtype) for k, v in arrays.items()}
        files[name] = _npz(arrays)
        return GoldenCase(files, f"golden-{kind}", must_fail=True)
    if kind == "output-renamed":
        name = choices.pick(outputs_names)
        files[name] = _npz({f"{k}_renamed": v for k, v in _arrays(files[name]).items()})
        return GoldenCase(files, kind, must_fail=True)
    name = choices.pick(outputs_names)
    arrays = _arrays(files[name])
    for key, value in arrays.items():
        value = value.copy()
        if kind == "output-nan":
            value.flat[0] = np.nan
        elif kind == "output-inf":
            value.flat[0] = choices.pick([np.inf, -np.inf])
        elif kind == "output-shifted":
            value += 0.5
        else:  # dir-is-file
            break
        arrays[key] = value
    if kind == "dir-is-file":
        return GoldenCase({}, "golden-dir-is-file", as_file=files["manifest.json"])
    files[name] = _npz(arrays)
    return GoldenCase(files, f"golden-{kind}", must_fail=True)
