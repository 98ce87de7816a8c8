"""The validation cache: a passed check is not run again when nothing it depends on changed.

An entry is one passed result (a golden validation, a region check, the export-vs-reference
check) stored as ``<cache root>/validation/<key>.json``. The key is a hash of everything the
result depends on:

- what was checked: the content hash of the model (both models for a region check);
- what it was checked against: the golden set's hash (manifest and every array file, byte for
  byte), the cases, the region seed;
- how: the tolerances, the onnxruntime version and the graph optimization level (torch's
  version and the reference for the export check), graphkit's version (the comparison code).

The intra-op thread count is *not* in the key: it only changes the order of float reductions
(differences of a few ulps, far inside any tolerance), and a key per thread count would make a
cache filled on one machine useless on another. Failed results are never stored (a failure is
always run again and reported in full). Each entry names the run that stored it (run folder
and time), which the report repeats.

Integrity: every entry is sealed (HMAC-SHA-256, :mod:`graphkit.util.integrity`) over its key,
its result and its run, under a key kept in the cache folder (``graphkit.key``, mode 0600).
An entry that is corrupt, forged (``{"passed": true}`` written by hand under a rejected
model's key), moved to another key's file, or whose cases are not the ones asked for is
ignored with a warning and the check runs again; it is never trusted. Someone who can write
the cache as the same user can also read the key: the seal guards against edited and
hand-made entries, not against that user (docs/validation.md, "Cache integrity").

Below the files sits an in-memory layer: the golden cases that passed in this run, per model,
golden set, tolerances and optimization level, whatever subset of cases each check ran. The
final check reads it (:meth:`ValidationCache.passed_cases`), so a case passed on the very model
it checks is not run again; this is the one way a result is reused within a run, and it works
with the files off (``--no-cache``) too. It is not a cache hit from an earlier run (``hits``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnxruntime
import xxhash

from graphkit import __version__
from graphkit.check.golden import GoldenSet
from graphkit.check.golden_validation import CaseResult, GoldenValidation, validate_against_golden
from graphkit.runtime.ort import ValidationRuntime
from graphkit.util.errors import GraphkitError
from graphkit.util.files import write_text_atomic
from graphkit.util.integrity import folder_key, seal, seal_matches
from graphkit.util.tolerance import Tolerances
from graphkit.util.typed_config import to_mapping
from graphkit.util.user_cache import cache_dir, prepare_cache_dir

logger = logging.getLogger(__name__)
SEALED = ("key", "run", "at", "result")
"""The fields of an entry its seal covers."""


def golden_hash(directory: Path) -> str:
    """A hash of a golden folder's manifest and array files, byte for byte."""
    digest = xxhash.xxh3_128()
    for path in sorted(Path(directory).iterdir()):
        if path.name == "manifest.json" or path.name.endswith(".npz"):
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 24), b""):
                    digest.update(block)
    return digest.hexdigest()


class ValidationCache:
    """Passed validation results keyed by what they depend on (see the module docstring).

    ``enabled=False`` (``--no-cache``) neither reads nor writes files; the in-memory layer of
    this run's passed golden cases works either way. ``run`` names this run in the entries it
    stores; ``hits`` and ``stored`` list what this run took from and put into the files.
    """

    def __init__(self, directory: Path | None = None, enabled: bool = True, run: str = ""):
        self.directory = Path(directory) if directory is not None else cache_dir("validation")
        self._in_user_cache = directory is None
        self.enabled = enabled
        self.run = run
        self.hits: list[dict[str, Any]] = []
        self.stored = 0
        self._cases: dict[str, dict[str, CaseResult]] = {}  # the in-memory layer: case key -> label -> passed case
        self._secret: bytes | None = None

    def _key_bytes(self) -> bytes | None:
        if self._secret is None:
            self._secret = folder_key(self.directory)
        return self._secret

    @staticmethod
    def _case_key(
        model_hash: str, golden: GoldenSet, golden_key: str, tolerances: Tolerances, runtime: ValidationRuntime
    ) -> str:
        fields = {
            "model": model_hash,
            "golden": golden_key or str(golden.directory),
            "tolerances": to_mapping(tolerances),
            "optimization": runtime.optimization,
        }
        return json.dumps(fields, sort_keys=True, default=str)

    def remember_cases(
        self,
        validation: GoldenValidation,
        model_hash: str,
        golden: GoldenSet,
        golden_key: str,
        tolerances: Tolerances,
        runtime: ValidationRuntime,
    ) -> None:
        """Keep the passed cases of ``validation`` (of the model ``model_hash``) for this run."""
        cases = self._cases.setdefault(self._case_key(model_hash, golden, golden_key, tolerances, runtime), {})
        cases.update((case.label, case) for case in validation.cases if case.passed)

    def passed_cases(
        self, model_hash: str, golden: GoldenSet, golden_key: str, tolerances: Tolerances, runtime: ValidationRuntime
    ) -> dict[str, CaseResult]:
        """The golden cases that passed in this run on the model ``model_hash``, by label, at
        exactly these tolerances and optimization level (an approximate pass's looser ones differ)."""
        return dict(self._cases.get(self._case_key(model_hash, golden, golden_key, tolerances, runtime), {}))

    @staticmethod
    def key(kind: str, **fields: Any) -> dict[str, Any]:
        """The full key of a result of ``kind``: ``fields`` plus graphkit's and onnxruntime's versions."""
        return {"kind": kind, **fields, "graphkit": __version__, "onnxruntime": onnxruntime.__version__}

    def _path(self, key: dict[str, Any]) -> Path:
        text = json.dumps(key, sort_keys=True, default=str)
        return self.directory / f"{key['kind']}-{xxhash.xxh3_128_hexdigest(text.encode())}.json"

    def get(self, key: dict[str, Any], purpose: str, parse: Callable[[dict], Any] = dict) -> Any:
        """``parse`` of the stored result for ``key`` (recorded in ``hits`` under ``purpose``), or
        None when there is none or it does not parse (a corrupt entry is a miss, never an error)."""
        if not self.enabled:
            return None
        path = self._path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError):
            return None  # no entry (or an unreadable one): a miss
        secret = self._key_bytes()
        try:
            entry = json.loads(text)
        except (ValueError, RecursionError):
            entry = None
        expected = json.loads(json.dumps(key, default=str))
        trusted = (
            secret is not None
            and isinstance(entry, dict)
            and entry.get("key") == expected
            and seal_matches(secret, {k: entry.get(k) for k in SEALED}, entry.get("seal"))
        )
        result = None
        if trusted:
            try:
                result = parse(entry["result"])
            except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError):
                result = None
        passed = result.passed if hasattr(result, "passed") else isinstance(result, dict)
        if not passed:  # only sealed passed results are stored; anything else is not trusted
            if secret is not None:
                logger.warning("validation cache: %s does not verify; ignored, checking again", path)
            return None
        self.hits.append({"purpose": purpose, "kind": key["kind"], "run": str(entry.get("run")), "at": entry.get("at")})
        return result

    def put(self, key: dict[str, Any], result: dict[str, Any]) -> None:
        """Store a passed result (best effort: a full disk or a read-only cache only skips it)."""
        if not self.enabled:
            return
        entry = {
            "key": key,
            "run": self.run,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "result": result,
        }
        try:
            if self._in_user_cache:
                prepare_cache_dir("validation")  # the cache root gets graphkit's tag
            self.directory.mkdir(parents=True, exist_ok=True)
            secret = self._key_bytes()
            if secret is None:
                return  # a folder that cannot hold the key cannot hold trusted entries
            entry = json.loads(json.dumps(entry, default=str))  # the seal covers what is read back
            entry["seal"] = seal(secret, {k: entry[k] for k in SEALED})
            write_text_atomic(self._path(key), json.dumps(entry, default=str))
            self.stored += 1
        except (OSError, GraphkitError):
            pass

    def source_of(self, hit: dict[str, Any]) -> dict[str, Any]:
        """What a record says about a result taken from the cache."""
        return {"from_cache": True, "run": hit.get("run"), "at": hit.get("at")}

    def to_dict(self) -> dict[str, Any]:
        return {"dir": str(self.directory), "enabled": self.enabled, "hits": self.hits, "stored": self.stored}


def cached_golden_validation(
    cache: ValidationCache | None,
    model,
    model_hash: str,
    golden: GoldenSet,
    golden_key: str,
    tolerances: Tolerances,
    labels: list[str] | None,
    runtime: ValidationRuntime,
    purpose: str,
) -> tuple[GoldenValidation, dict[str, Any] | None]:
    """:func:`validate_against_golden` through ``cache``: ``(validation, cache source or None)``.

    Its passed cases, run now or read from a file, go into the cache's in-memory layer."""
    key = ValidationCache.key(
        "golden",
        model=model_hash,
        golden=golden_key,
        tolerances=to_mapping(tolerances),
        labels=labels,
        optimization=runtime.optimization,
    )
    asked = labels if labels is not None else [case.label for case in golden.cases]

    def parse(result: dict) -> GoldenValidation:
        validation = GoldenValidation.from_dict(result)
        if [case.label for case in validation.cases] != list(asked):
            raise ValueError("the entry's cases are not the ones asked for")
        return validation

    if cache is not None:
        stored = cache.get(key, purpose, parse)
        if stored is not None:
            cache.remember_cases(stored, model_hash, golden, golden_key, tolerances, runtime)
            return stored, cache.source_of(cache.hits[-1])
    validation = validate_against_golden(
        model, golden, tolerances, labels=labels, runtime=runtime, purpose=purpose, model_hash=model_hash
    )
    if cache is not None:
        cache.remember_cases(validation, model_hash, golden, golden_key, tolerances, runtime)
        if validation.passed:
            cache.put(key, validation.to_dict())
    return validation, None
