"""Where ais_bench writes outputs and summaries, as text built from the user's own flags.

ais_bench (Ascend/tools ``ais-bench_workload/tool/ais_bench/ais_bench/infer/__main__.py``,
``io_oprations.py``, ``summary.py``, ``utils.py``) joins paths as text, and ModelZoo
postprocess scripts open what its summary records:

- the output folder is ``os.path.join(output, output_dirname)`` (a relative ``output_dirname``
  such as ``./result`` or ``data/bin_out`` is a sub-path of ``output``);
- the summary is that text + ``"_summary.json"`` (so ``bs1_out/`` puts ``_summary.json``
  inside the folder, as ais_bench does);
- ``filesinfo`` records each output file as ``os.path.join(output, output_dirname, name)`` and
  each input file as ``os.path.join(<the --input entry>, name)`` for a folder's files, or the
  entry itself for a file (a leading ``./`` kept);
- with several devices (``--device 0,1``), each device writes into
  ``os.path.join(output, output_dirname, f"device{id}_{index}")``.

graphkit refuses an ``output_dirname`` that is absolute or climbs out of ``output`` (``..``):
ais_bench would write outside the folder the command names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from graphkit.util.errors import InputError


def check_output_dirname(dirname: str, flag: str = "--output_dirname") -> str:
    """``dirname`` when it is a relative path that stays under ``--output``; InputError otherwise."""
    if not dirname or any(ord(c) < 32 or c == "\x7f" for c in dirname):
        raise InputError(f"{flag} {dirname!r}: must be a non-empty path without control characters")
    if os.path.isabs(dirname) or dirname.startswith("~"):
        raise InputError(f"{flag} '{dirname}': must be relative to --output (an absolute path is refused)")
    if ".." in PurePosixPath(dirname.replace(os.sep, "/")).parts:
        raise InputError(f"{flag} '{dirname}': '..' would climb out of --output; give a path under it")
    return dirname


def output_prefix(output: str | os.PathLike, dirname: str) -> str:
    """ais_bench's output folder text: ``os.path.join(output, output_dirname)``."""
    return os.path.join(os.fspath(output), dirname)


def summary_path(prefix: str) -> str:
    """ais_bench's summary file for an output folder: the folder text + ``_summary.json``."""
    return prefix + "_summary.json"


def device_dirname(dirname: str, device: int, index: int) -> str:
    """The per-device output sub-path of a multi-device run (ais_bench's ``device{id}_{index}``)."""
    return os.path.join(dirname, f"device{device}_{index}")


def input_texts(inputs: Sequence[str | os.PathLike], file_lists: list[list[Path]]) -> dict[Path, str]:
    """Each input file's text as ais_bench records it in ``filesinfo`` (see the module doc)."""
    entries = [os.fspath(p) for p in inputs]
    if Path(entries[0]).is_file():
        return dict(zip([f for files in file_lists for f in files], entries))
    return {f: os.path.join(entry, f.name) for entry, files in zip(entries, file_lists) for f in files}


def split_for_devices(file_lists: list[list[Path]], devices: int) -> list[list[Path]]:
    """ais_bench's multi-device split: each input's files in ``devices`` contiguous parts of
    ceil(n / devices) files; device j gets part j of every input, as one file list (input order)."""
    shares: list[list[Path]] = [[] for _ in range(devices)]
    for files in file_lists:
        step = -(-len(files) // devices)
        for j in range(devices):
            shares[j].extend(files[j * step : (j + 1) * step])
    return shares
