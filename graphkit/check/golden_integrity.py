"""Golden-set integrity: the digests a manifest records of its files and of itself.

``files`` maps each case file (``<label>.inputs.npz``, ``<label>.outputs.npz``) to the SHA-256
of its bytes; ``digest`` is the SHA-256 of the canonical JSON of every other manifest field
(model hash, producer, seed, inputs, cases, tolerances, format, ``files``). :func:`with_digests`
is the one place they are made (called by the code that records a set, so a re-recorded set
verifies by construction); :func:`verify_digests` checks them on every load. The digests catch
corruption and edits made after recording (an ``np.savez`` over an outputs file, a loosened
tolerance); anyone can recompute them, so they do not stop a deliberate forger (see
docs/validation.md, "Cache integrity").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from graphkit.util.errors import GoldenError, one_line
from graphkit.util.integrity import file_digest, json_digest


class GoldenIntegrityError(GoldenError):
    """A golden set whose files or manifest do not match the digests it was recorded with."""


def case_files(manifest: Mapping) -> list[str]:
    """The array file names of a manifest's cases."""
    return [f"{entry['label']}.{kind}.npz" for entry in manifest["cases"] for kind in ("inputs", "outputs")]


def with_digests(manifest: Mapping, folder: Path) -> dict:
    """``manifest`` with ``files`` (SHA-256 of each case file in ``folder``) and ``digest``
    (of every other field): what :func:`verify_digests` checks. The one place digests are made."""
    sealed = {k: v for k, v in manifest.items() if k not in ("files", "digest")}
    sealed["files"] = {name: file_digest(folder / name) for name in case_files(manifest)}
    sealed["digest"] = json_digest({k: v for k, v in sealed.items() if k != "digest"})
    return sealed


def verify_digests(manifest: Mapping, folder: Path) -> None:
    """GoldenIntegrityError naming the manifest or the file that does not match its digest."""
    where = folder / "manifest.json"
    files, digest = manifest.get("files"), manifest.get("digest")
    if not isinstance(files, dict) or not isinstance(digest, str):
        raise GoldenIntegrityError(
            f"{where}: no content digests (recorded by an older graphkit, or edited); "
            "cannot verify the set: record it again (golden make --regenerate, apply --regenerate-golden)"
        )
    if json_digest({k: v for k, v in manifest.items() if k != "digest"}) != digest:
        raise GoldenIntegrityError(f"{where}: the manifest does not match its digest (edited after recording)")
    expected = case_files(manifest)
    if sorted(files) != sorted(expected):
        raise GoldenIntegrityError(f"{where}: the digests list other files than the cases ({', '.join(expected)})")
    for name in expected:
        try:
            actual = file_digest(folder / name)
        except OSError as exc:
            raise GoldenIntegrityError(f"{folder / name}: unreadable ({exc.strerror or one_line(exc, 120)})") from exc
        if actual != files[name]:
            raise GoldenIntegrityError(
                f"{folder / name}: does not match the digest in its manifest (changed after recording)"
            )
