"""Content digests and keyed seals for what graphkit reads back from disk.

Golden sets, validation-cache entries and eval resume state are re-read by later runs; each
carries a digest bound to what it claims (its data and the fields that say what the data is),
recomputed on every read. Anything that does not verify is not trusted.

- :func:`file_digest`, :func:`json_digest`, :func:`arrays_digest`: SHA-256 of a file's bytes,
  of a JSON-able value in canonical form (sorted keys, no whitespace), of named arrays (name,
  dtype, shape and bytes of each). Anyone can recompute them: they catch corruption and edits
  made without graphkit (an ``np.savez`` over a recorded file), not a forger who recomputes them.
- :func:`seal` / :func:`seal_matches`: HMAC-SHA-256 of a JSON-able value under a key kept
  beside the entries (:func:`folder_key`: 32 random bytes, mode 0600, made on first use). A
  forger must read that key first; one who can write the cache as the same user can read it
  too, so the seal protects against edited and hand-made entries, not against that user.
  docs/validation.md ("Cache integrity") states this threat model.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

KEY_FILE = "graphkit.key"
KEY_BYTES = 32


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON bytes (sorted keys, no whitespace; non-JSON values by ``str``)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def json_digest(value: Any) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def arrays_digest(arrays: Mapping[str, np.ndarray], bound_to: Any) -> str:
    """SHA-256 (hex) of ``bound_to`` (JSON-able) and each array's name, dtype, shape and bytes."""
    digest = hashlib.sha256(canonical_json(bound_to))
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(canonical_json([name, array.dtype.str, list(array.shape)]))
        digest.update(array.tobytes())
    return digest.hexdigest()


def folder_key(directory: str | os.PathLike) -> bytes | None:
    """The secret key of a cache folder (``<directory>/graphkit.key``), made on first use.

    Created with ``O_EXCL`` and mode 0600; a key file that is not a regular file of the right
    size owned by this user, or is readable by others, is replaced (the entries it sealed stop
    verifying and are recomputed). None when the folder cannot hold a key (read-only): callers
    then neither trust nor store entries.
    """
    path = Path(directory) / KEY_FILE
    for _attempt in range(2):
        with contextlib.suppress(FileNotFoundError):
            info = path.lstat()
            good = (
                stat.S_ISREG(info.st_mode)
                and info.st_size == KEY_BYTES
                and info.st_uid == os.getuid()
                and not info.st_mode & 0o077
            )
            if good:
                try:
                    return path.read_bytes()
                except OSError:
                    return None
            try:
                path.unlink()
            except OSError:
                return None
        key = secrets.token_bytes(KEY_BYTES)
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f"{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(key)
                os.link(temporary, path)  # atomic: a reader sees no key or the whole key
            finally:
                temporary.unlink(missing_ok=True)
        except FileExistsError:
            continue  # another process made it meanwhile: read theirs
        except OSError:
            return None
        return key
    return None


def seal(key: bytes, value: Any) -> str:
    """HMAC-SHA-256 (hex) of :func:`canonical_json` of ``value`` under ``key``."""
    return hmac.new(key, canonical_json(value), hashlib.sha256).hexdigest()


def seal_matches(key: bytes, value: Any, claimed: Any) -> bool:
    """Whether ``claimed`` is :func:`seal` of ``value`` (constant-time comparison)."""
    return isinstance(claimed, str) and hmac.compare_digest(seal(key, value), claimed)
