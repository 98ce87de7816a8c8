"""The tensor files of file inference, with ais_bench's conventions.

Inputs: ``.bin`` (raw bytes of the input's dtype) or ``.npy`` (same dtype; never unpickled)
files, a folder's files naturally sorted (``img2`` before ``img10``), one folder per model
input or a file list split evenly over the inputs (:func:`input_file_lists`). Outputs: one file
per part in ``BIN``, ``NPY`` or ``TXT`` (:func:`save_output`), named after input 0's file stem
(:func:`output_stem`). Used by :mod:`graphkit.runtime.file_inference`.
"""

from __future__ import annotations

import os
import re
import tokenize
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from graphkit.util.errors import InputError

INPUT_EXTENSIONS = (".bin", ".npy")
PURE_INFER_NAME = "pure_infer_data"  # ais_bench's name for pure-inference outputs
OUTFMTS = ("BIN", "NPY", "TXT")


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers numerically (ais_bench's natural sort)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def output_stem(file: str | os.PathLike) -> str:
    """The output file name stem for an input file: its name before the first dot (ais_bench)."""
    return Path(file).name.split(".")[0]


def list_input_files(path: str | os.PathLike) -> list[Path]:
    """The input files of one model input: a folder's .bin/.npy files naturally sorted, or one file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path}: no such folder or file")
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in INPUT_EXTENSIONS),
            key=lambda p: natural_key(str(p)),
        )
        if not files:
            raise InputError(f"input {path}: no .bin or .npy files in the folder")
    for file in files:
        if file.suffix.lower() not in INPUT_EXTENSIONS:
            raise InputError(f"input {file}: unsupported file type (expected .bin or .npy)")
    return files


def input_file_lists(inputs: Sequence[str | os.PathLike], input_count: int) -> list[list[Path]]:
    """ais_bench's ``--input``: one folder per model input, or files split evenly over the inputs."""
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError("--input: no input given")
    if not paths[0].exists():
        raise InputError(f"input {paths[0]}: no such folder or file")
    if paths[0].is_file():
        for path in paths:
            if not path.is_file():
                raise InputError(f"input {path}: not a file (the first --input entry is a file, so all must be)")
        if len(paths) % input_count:
            raise InputError(
                f"--input: {len(paths)} file(s) cannot be split evenly over the model's {input_count} inputs"
            )
        chunk = len(paths) // input_count
        return [[*map(Path, paths[i * chunk : (i + 1) * chunk])] for i in range(input_count)]
    if len(paths) != input_count:
        raise InputError(f"{len(paths)} input folder(s) given, the model has {input_count} inputs")
    for path in paths:
        if not path.is_dir():
            raise InputError(f"input {path}: not a folder (the first --input entry is a folder, so all must be)")
    lists = [list_input_files(p) for p in paths]
    counts = [len(files) for files in lists]
    if len(set(counts)) != 1:
        raise InputError(f"input folders hold different numbers of files: {counts}")
    return lists


def load_npy(file: Path, mmap_mode: str | None = None) -> np.ndarray:
    """An input .npy file (never unpickled); InputError naming the file when it is not a whole one."""
    try:
        return np.load(file, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:  # truncated, not .npy,
        # pickled objects, or a header numpy's parser chokes on (it tokenizes the header text)
        raise InputError(f"input {file}: not a readable .npy file ({exc.__class__.__name__})") from exc


def file_bytes(file: Path, dtype: np.dtype) -> int:
    """The bytes a file holds for one input (.npy: its array's, after the dtype check)."""
    if file.suffix.lower() == ".npy":
        array = load_npy(file, mmap_mode="r")
        if array.dtype != dtype:
            raise InputError(f"input {file}: dtype {array.dtype} does not match the model input's {dtype}")
        return int(array.nbytes)
    return file.stat().st_size


def read_input(file: Path, dtype: np.dtype) -> np.ndarray:
    """A file's values as a flat array of ``dtype`` (.bin: raw bytes; .npy: same dtype required)."""
    if file.suffix.lower() == ".npy":
        array = load_npy(file)
        if array.dtype != dtype:
            raise InputError(f"input {file}: dtype {array.dtype} does not match the model input's {dtype}")
        return array.reshape(-1)
    size = file.stat().st_size
    if size % dtype.itemsize:
        raise InputError(f"input {file}: {size} bytes is not a whole number of {dtype} values")
    return np.fromfile(file, dtype=dtype)


def save_output(path: Path, data: np.ndarray, outfmt: str) -> None:
    """Write one output part as ais_bench does (BIN raw, NPY numpy, TXT rows of the last dim)."""
    if outfmt == "NPY":
        np.save(path, data)
    elif outfmt == "TXT":
        rows = data.reshape(-1, data.shape[-1]) if data.ndim else data.reshape(1, 1)
        fmt = "%f" if data.dtype.kind == "f" else "%d"
        with open(path, "wb") as handle:
            np.savetxt(handle, rows, fmt=fmt, delimiter=" ", newline=" \n")
    else:
        data.tofile(path)
