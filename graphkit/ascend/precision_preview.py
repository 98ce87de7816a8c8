"""The precision preview for ATC: a mode's fp16 nodes emulated on the CPU, and the files ATC reads to fix it.

:func:`atc_precision_preview` is what ``graphkit precision`` and the pipeline's ``precision:`` stage
run: the nodes ``--precision_mode`` runs in fp16 (:mod:`graphkit.ascend.precision_modes`), minus a
given keep-list and mixlist black list, go through :func:`graphkit.check.precision.preview_precision`;
the answer is written to ``DIR/keep_dtype.cfg`` (the given list plus the searched nodes, one name
a line, as ``--keep_dtype`` reads it) and, for the mixed modes, ``DIR/modify_mixlist.json`` (the op
types of those nodes on the black list), beside ``DIR/precision.json``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from graphkit.ascend.precision_modes import (
    MIXED_MODES,
    KeepDtype,
    check_keep_dtype,
    check_mode,
    fp16_node_indices,
    mixlist_json,
    read_keep_dtype,
)
from graphkit.check.fp16_emulation import float_tensors
from graphkit.check.precision import PrecisionCase, PrecisionPreview, check_finite_references, preview_precision
from graphkit.util.console import json_default
from graphkit.util.errors import InputError, OutputError
from graphkit.util.files import make_folder, write_text_atomic
from graphkit.util.tolerance import Tolerances

KEEP_DTYPE_FILE = "keep_dtype.cfg"
MIXLIST_FILE = "modify_mixlist.json"
REPORT_FILE = "precision.json"


@dataclass
class AtcPrecisionResult:
    """The preview, the mode, and the files written (paths as strings; empty when none)."""

    preview: PrecisionPreview
    mode: str
    keep_dtype: KeepDtype
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {"precision_mode": self.mode, **self.preview.to_dict()}
        data["keep_dtype"] = {"names": self.keep_dtype.names, "types": self.keep_dtype.types}
        data["files"] = dict(self.files)
        return data


def atc_precision_preview(
    model: onnx.ModelProto,
    cases: Sequence[PrecisionCase],
    tolerances: Tolerances,
    mode: str,
    keep: KeepDtype | None = None,
    black_types: Collection[str] = (),
    out_dir: str | Path | None = None,
    search: bool = True,
    threads: int | None = None,
    where: str = "--keep-dtype",
) -> AtcPrecisionResult:
    """Emulate ``mode`` (with ``keep`` and the black list kept fp32), search the keep-list, write the files."""
    check_mode(mode)
    if black_types and mode not in MIXED_MODES:
        raise InputError(f"--modify-mixlist: ATC reads it only with {' or '.join(MIXED_MODES)}, not {mode}")
    keep = keep or KeepDtype()
    check_keep_dtype(keep, model, where)
    if not float_tensors(model):
        raise InputError("the model has no float32 tensor: there is nothing for fp16 to change")
    check_finite_references(cases)
    fp16 = fp16_node_indices(model, mode, keep, black_types)
    preview = preview_precision(model, cases, fp16, tolerances, search=search, threads=threads)
    answer = KeepDtype(list(dict.fromkeys(keep.names + preview.keep_nodes)), list(keep.types))
    result = AtcPrecisionResult(preview, mode, answer)
    if out_dir is not None:
        folder = make_folder(out_dir)
        _remove_stale(folder)  # a keep-list of an earlier run must not outlive this answer
        if answer.names or answer.types:
            result.files["keep_dtype"] = str(write_text_atomic(folder / KEEP_DTYPE_FILE, answer.to_text()))
        if mode in MIXED_MODES:
            by_name = {node.name: node.op_type for node in model.graph.node}
            types = set(black_types) | {by_name[name] for name in answer.names} | set(answer.types)
            result.files["modify_mixlist"] = str(write_text_atomic(folder / MIXLIST_FILE, mixlist_json(types)))
        report = folder / REPORT_FILE
        result.files["report"] = str(report)
        write_text_atomic(report, json.dumps(result.to_dict(), indent=2, default=json_default) + "\n")
    return result


def _remove_stale(folder: Path) -> None:
    for name in (KEEP_DTYPE_FILE, MIXLIST_FILE):
        path = folder / name
        if path.is_file() or path.is_symlink():
            try:
                path.unlink()
            except OSError as exc:
                raise OutputError(f"{path}: cannot remove the earlier file ({exc.strerror})") from exc


def write_emulated_model(
    model_path: str | Path, out_path: str | Path, mode: str = "force_fp16", keep_dtype: str | Path | None = None
) -> Path:
    """Save the fp16 emulation of the model at ``model_path`` (``mode``, nodes of ``keep_dtype`` kept fp32)
    at ``out_path``; the same model gives the same bytes, so a resumed evaluation recognises it."""
    from graphkit.check.fp16_emulation import emulate_fp16
    from graphkit.ir.model_io import load_user_model, save_model

    model = load_user_model(model_path)
    keep = read_keep_dtype(keep_dtype) if keep_dtype else KeepDtype()
    check_keep_dtype(keep, model, str(keep_dtype or "--keep-dtype"))
    emulated = emulate_fp16(model, fp16_node_indices(model, mode, keep))
    make_folder(Path(out_path).parent)
    return save_model(emulated, out_path)
