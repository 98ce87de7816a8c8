"""Inputs for :func:`graphkit.check.localize.localize`: a golden set's, an .npz file's, or seeded random ones."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from graphkit.util.errors import GoldenError, InputError


def load_npz_feeds(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Arrays of an .npz file keyed by input name; unreadable files raise InputError."""
    from graphkit.runtime.feeds import load_npz

    return load_npz(path, "inputs file")


def golden_feeds(directory: str | os.PathLike) -> tuple[dict[str, np.ndarray], Path]:
    """Inputs from a golden set folder and the file they came from.

    Takes the first, in name order, of ``inputs*.npz`` and ``*.inputs.npz`` (graphkit.check.golden
    writes ``b1.inputs.npz``, ``b2.inputs.npz``...): one case is enough to localize.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise GoldenError(f"{directory}: golden set folder not found")
    files = sorted({*directory.glob("inputs*.npz"), *directory.glob("*.inputs.npz")})
    if not files:
        raise GoldenError(f"{directory}: no inputs*.npz or *.inputs.npz in the golden set folder")
    return load_npz_feeds(files[0]), files[0]


def feeds_for(
    a: onnx.ModelProto, b: onnx.ModelProto, seed: int | None = None, dims: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Seeded random inputs (seed 0 by default) that fit both models: from B's input spec, else A's."""
    seed = 0 if seed is None else seed
    try:
        return _random_feeds(b, seed, dims or {})
    except InputError:
        return _random_feeds(a, seed, dims or {})


def _random_feeds(model: onnx.ModelProto, seed: int, dims: Mapping[str, int]) -> dict[str, np.ndarray]:
    """random_feeds (sized against the memory budget before allocating)."""
    from graphkit.runtime.feeds import random_feeds

    return random_feeds(model, seed=seed, dims=dims)
