"""The files of a golden set on disk: the format's constants, writing a set into place, and
reading its manifest with every field's type checked (:mod:`graphkit.check.golden` holds the set
itself: making, loading and the data classes)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.check.golden_integrity import with_digests
from graphkit.runtime.ort import OPTIMIZATION_LEVELS
from graphkit.util.errors import GoldenError, one_line
from graphkit.util.files import current_umask

FORMAT = "graphkit-golden/1"
LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_MANIFEST_BYTES = 16 * 2**20


def write_golden_files(directory: Path, manifest: dict, cases: Sequence[Any]) -> dict:
    """Write the set (``cases``: objects with ``label``, ``inputs`` and ``outputs``) into a staging folder beside ``directory``, then move it into place; the
    manifest as written (with its digests, :func:`with_digests`).

    A failure leaves no half-written set: a new folder appears only complete; an existing one
    loses its manifest first (an incomplete set is never reused) and gets the manifest last.
    """
    staging = None
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        for case in cases:
            for kind in ("inputs", "outputs"):
                with open(staging / f"{case.label}.{kind}.npz", "wb") as handle:
                    np.savez(handle, **getattr(case, kind))
        manifest = with_digests(manifest, staging)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if not directory.exists():
            os.chmod(staging, 0o777 & ~current_umask())
            os.rename(staging, directory)
            return manifest
        (directory / "manifest.json").unlink(missing_ok=True)
        for old in directory.glob("*.npz"):
            if old.name.endswith((".inputs.npz", ".outputs.npz")) and LABEL.match(old.name.split(".")[0]):
                old.unlink()
        for path in staging.iterdir():
            if path.name != "manifest.json":
                os.replace(path, directory / path.name)
        os.replace(staging / "manifest.json", directory / "manifest.json")
        return manifest
    except OSError as exc:
        raise GoldenError(
            f"{directory}: cannot write the golden set ({exc.strerror or one_line(exc, 200)}); no set was written"
        ) from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _json_kind(value) -> str:
    kinds = {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
    }
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def read_manifest(path: Path) -> dict:
    """The manifest as a dict whose fields have the types the format promises."""
    if not path.is_file():
        if path.exists():
            raise GoldenError(f"{path}: not a regular file")
        raise GoldenError(f"{path.parent}: not a golden set (no manifest.json)")
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise GoldenError(f"{path}: manifest larger than {MAX_MANIFEST_BYTES // 2**20} MiB; not a golden manifest")
        text = path.read_bytes().decode("utf-8")
        manifest = json.loads(text)
    except UnicodeDecodeError as exc:
        raise GoldenError(f"{path}: manifest is not UTF-8 text") from exc
    except (OSError, json.JSONDecodeError, RecursionError) as exc:
        raise GoldenError(f"{path}: unreadable manifest ({one_line(exc, 160)})") from exc
    if not isinstance(manifest, dict):
        raise GoldenError(f"{path}: manifest must be a JSON object, got {_json_kind(manifest)}")
    if manifest.get("format") != FORMAT:
        raise GoldenError(f"{path}: unknown golden format {str(manifest.get('format'))[:80]!r} (expected {FORMAT})")
    expected = {
        "model_hash": str,
        "producer": str,
        "seed": int,
        "inputs": dict,
        "batch_sizes": list,
        "dims": dict,
        "output_names": list,
        "tolerances": dict,
        "cases": list,
    }
    for key, kind in expected.items():
        if key not in manifest:
            raise GoldenError(f"{path}: manifest lacks the key '{key}'")
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            raise GoldenError(f"{path}: manifest '{key}' must be {_json_kind(kind())}, got {_json_kind(manifest[key])}")
    level = manifest.get("optimization")
    if level is not None and level not in OPTIMIZATION_LEVELS:
        raise GoldenError(
            f"{path}: manifest 'optimization' must be one of {', '.join(OPTIMIZATION_LEVELS)} or null, "
            f"got {str(level)[:80]!r}"
        )
    if not manifest["cases"]:
        raise GoldenError(f"{path}: manifest has no cases (a golden set with no case checks nothing)")
    if not manifest["output_names"] or not all(isinstance(n, str) for n in manifest["output_names"]):
        raise GoldenError(f"{path}: manifest 'output_names' must be a non-empty list of names")
    labels = set()
    for index, entry in enumerate(manifest["cases"]):
        key = f"cases[{index}]"
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("label"), str)
            or not isinstance(entry.get("dims"), dict)
        ):
            raise GoldenError(f"{path}: manifest {key} must be an object with a 'label' (text) and 'dims' (object)")
        label = entry["label"]
        if not LABEL.match(label):
            raise GoldenError(
                f"{path}: manifest {key}.label {label[:80]!r} is not a plain name (letters, digits, '_' and '-' only)"
            )
        if label in labels:
            raise GoldenError(f"{path}: manifest {key}.label '{label}' appears twice")
        labels.add(label)
        for name, size in entry["dims"].items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise GoldenError(f"{path}: manifest {key}.dims.{name} must be an integer >= 1, got {size!r}")
    return manifest
