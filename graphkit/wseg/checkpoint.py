"""Load PyTorch checkpoints (state_dicts) into a model, strictly, with one-line errors.

Accepted layouts of the file at ``path`` (read with ``torch.load(weights_only=True)``):

- a flat ``state_dict`` (what the released ``model_enc_e020Xs0.928.pth`` is);
- the same with every key prefixed ``module.`` (saved from ``DataParallel``);
- one level of nesting: a mapping where exactly one value is a state_dict, e.g.
  ``{"model": sd}``, ``{"state_dict": sd, "epoch": 3}`` or ``{"enc": sd}``.

Loading is strict: missing or unexpected keys raise one :class:`CheckpointError` listing
them; a tensor of the wrong shape raises one naming the key and both shapes. A file that is
missing, truncated or not a PyTorch checkpoint raises one too. Nothing is loaded on error.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from graphkit.util.errors import ModelLoadError, one_line

MODULE_PREFIX = "module."
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format
PICKLE_PROTOCOL_OPCODE = b"\x80"  # the legacy (pre-1.6) format starts with a pickle
LISTED_KEYS = 8  # keys named per category in an error message


class CheckpointError(ModelLoadError):
    """A checkpoint is unreadable or does not fit the model (keys or shapes)."""


def file_digest(path: str | os.PathLike, length: int = 12) -> str:
    """The first ``length`` hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def describe_checkpoint(path: str | os.PathLike) -> str:
    """``checkpoint PATH (sha256 PREFIX)``: how reports name weights loaded from ``path``."""
    return f"checkpoint {path} (sha256 {file_digest(path)})"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict stored at ``path``, unwrapped (one nesting level) and without ``module.``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == ZIP_MAGIC and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: truncated PyTorch checkpoint (zip archive without its directory; cut download?)"
        )
    if head == ZIP_MAGIC:
        _check_zip_members(path)
    elif head[:1] != PICKLE_PROTOCOL_OPCODE:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. notes about the pickle protocol of legacy files
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here (zip, pickle, EOF, Runtime)
        reason = one_line(exc, 160)
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (corrupt, truncated, or not weights-only: {reason})"
        ) from exc
    return _strip_prefix(_unwrap(content, path))


def _check_zip_members(path: Path) -> None:
    # torch.load does not check CRCs: a corrupted tensor record would load as wrong numbers.
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: corrupt PyTorch checkpoint ({one_line(exc, 160)})") from exc
    if bad is not None:
        raise CheckpointError(f"{path}: corrupt PyTorch checkpoint (record '{bad}' fails its CRC check)")


def _is_state_dict(value) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def _unwrap(content, path: Path) -> dict[str, torch.Tensor]:
    if _is_state_dict(content):
        return dict(content)
    if not isinstance(content, Mapping):
        raise CheckpointError(f"{path}: holds a {type(content).__name__}, not a state_dict (a mapping of tensors)")
    nested = [key for key, value in content.items() if _is_state_dict(value)]
    if len(nested) == 1:
        return dict(content[nested[0]])
    top = ", ".join(map(str, list(content)[:LISTED_KEYS]))
    if not nested:
        raise CheckpointError(f"{path}: no state_dict found at the top level or one level down (top-level keys: {top})")
    raise CheckpointError(f"{path}: several nested state_dicts ({', '.join(map(str, nested))}); save just one")


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if all(key.startswith(MODULE_PREFIX) for key in state):
        return {key[len(MODULE_PREFIX) :]: value for key, value in state.items()}
    return state


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown + (f", ... ({len(keys) - LISTED_KEYS} more)" if len(keys) > LISTED_KEYS else "")


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError unless ``state`` has exactly the model's keys and shapes."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_listing(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_listing(unexpected)})")
        raise CheckpointError(f"{source}: checkpoint does not fit the model: {'; '.join(parts)}")
    wrong = [key for key in expected if tuple(state[key].shape) != tuple(expected[key].shape)]
    if wrong:
        key = wrong[0]
        more = f" (and {len(wrong) - 1} more keys with other shapes)" if len(wrong) > 1 else ""
        raise CheckpointError(
            f"{source}: '{key}' has shape {list(state[key].shape)} in the checkpoint "
            f"but {list(expected[key].shape)} in the model{more}"
        )


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> str:
    """Load the checkpoint at ``path`` into ``model`` strictly; returns its description.

    The description (``checkpoint PATH (sha256 PREFIX)``) is also stored as
    ``model.weights_description``.
    """
    state = read_state_dict(path)
    check_state_dict(model, state, str(path))
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
    description = describe_checkpoint(path)
    model.weights_description = description
    return description
