"""ATC's precision modes as sets of fp16 nodes, and ATC's --keep_dtype / --modify_mixlist files.

Sources (CANN ATC parameter reference, hiascend.com; cited in docs/precision.md):

- ``--precision_mode`` (atlasatcparam_16_0067): ``force_fp16`` runs an op in fp16 when it supports
  both fp16 and fp32; ``allow_fp32_to_fp16`` runs matrix ops (cube unit) in fp16 and keeps vector
  ops fp32 where they support it; ``must_keep_origin_dtype`` keeps the original precision;
  ``allow_mix_precision``/``allow_mix_precision_fp16`` lower ops on the built-in white list
  (``precision_reduce`` flags in the device's ``aic-<soc>-ops-info.json``, not public here).
  Default ``force_fp16`` for inference products (/work/shared/FACTS.md; the ATC page's text).
- ``--keep_dtype`` (atlasatcparam_16_0074): a text file, one operator per line: an operator name of
  the original model, or ``OpType::TypeName`` for an Ascend IR op type; not effective under
  ``must_keep_origin_dtype``.
- ``--modify_mixlist`` (atlasatcparam_16_0071): a JSON file ``{"black-list": {"to-add": [...],
  "to-remove": [...]}, "white-list": {...}, "gray-list": {...}}`` of Ascend IR op types, for the
  mixed modes only.

What the emulation does per mode (:func:`fp16_node_indices`): ``force_fp16`` every node in fp16;
``allow_fp32_to_fp16`` only the matrix ops (:data:`MATRIX_OPS`, ONNX names); the mixed modes every
node except the op types on the mixlist's black list (pessimistic: the built-in white list is
unknown here); ``must_keep_origin_dtype`` none. Nodes named in the keep-list, or whose type is
listed as ``OpType::T``, stay fp32 (ONNX op type names: ATC wants Ascend IR types, which differ for
some ops, e.g. Conv -> Conv2D: unverified mapping, so the searched keep-list names nodes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from graphkit.util.errors import InputError
from graphkit.util.typed_config import close_names

MODES = (
    "force_fp16",
    "allow_fp32_to_fp16",
    "allow_mix_precision",
    "allow_mix_precision_fp16",
    "must_keep_origin_dtype",
)
MIXED_MODES = ("allow_mix_precision", "allow_mix_precision_fp16")
DEFAULT_MODE = "force_fp16"
MATRIX_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "MatMulInteger", "ConvInteger"})
TYPE_PREFIX = "OpType::"


@dataclass
class KeepDtype:
    """A --keep_dtype list: node names and op types kept in their original (fp32) precision."""

    names: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """The file ATC reads: one node name per line, op types as ``OpType::T``."""
        return "".join(f"{name}\n" for name in self.names) + "".join(f"{TYPE_PREFIX}{t}\n" for t in self.types)


def check_mode(mode: str) -> str:
    """``mode`` when the emulation knows it; InputError naming the known ones otherwise."""
    if mode not in MODES:
        raise InputError(
            f"--precision-mode: unknown or not emulated precision mode '{mode}'{close_names(mode, MODES)}; "
            f"known: {', '.join(MODES)}"
        )
    return mode


def parse_keep_dtype(text: str, where: str) -> KeepDtype:
    """The lines of a --keep_dtype file; blank lines are skipped, names are taken as they are."""
    keep = KeepDtype()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(TYPE_PREFIX):
            op_type = line[len(TYPE_PREFIX) :]
            if not op_type:
                raise InputError(f"{where}:{number}: 'OpType::' without a type name")
            keep.types.append(op_type)
        else:
            keep.names.append(line)
    return keep


def read_keep_dtype(path: str | os.PathLike) -> KeepDtype:
    """A --keep_dtype file read and parsed; unreadable files raise InputError naming them."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the keep-dtype file ({exc.__class__.__name__}: {exc})") from exc
    return parse_keep_dtype(text, str(path))


def check_keep_dtype(keep: KeepDtype, model: onnx.ModelProto, where: str) -> None:
    """InputError when the list names a node or an op type the model does not have."""
    names = {node.name for node in model.graph.node if node.name}
    types = {node.op_type for node in model.graph.node}
    for name in keep.names:
        if name not in names:
            raise InputError(f"{where}: no node named '{name}' in the model{close_names(name, names)}")
    for op_type in keep.types:
        if op_type not in types:
            raise InputError(f"{where}: no node of type '{op_type}' in the model{close_names(op_type, types)}")


def mixlist_json(black_types: Collection[str]) -> str:
    """A --modify_mixlist file that moves ``black_types`` onto the black list (kept fp32)."""
    return json.dumps({"black-list": {"to-add": sorted(set(black_types))}}, indent=2) + "\n"


def parse_mixlist(text: str, where: str) -> list[str]:
    """The op types a --modify_mixlist JSON adds to the black list; InputError on a malformed file."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or set(data) - {"black-list", "white-list", "gray-list"}:
        raise InputError(f"{where}: expected an object with 'black-list', 'white-list' or 'gray-list'")
    black = data.get("black-list", {})
    if not isinstance(black, dict) or set(black) - {"to-add", "to-remove"}:
        raise InputError(f"{where}: 'black-list' must be an object with 'to-add' and/or 'to-remove'")
    added = black.get("to-add", [])
    if not isinstance(added, list) or not all(isinstance(t, str) and t for t in added):
        raise InputError(f"{where}: 'black-list'.'to-add' must be a list of op type names")
    return list(added)


def fp16_node_indices(
    model: onnx.ModelProto, mode: str, keep: KeepDtype | None = None, black_types: Collection[str] = ()
) -> set[int]:
    """Indices of the nodes the emulation runs in fp16 under ``mode`` with ``keep`` and the mixlist black list."""
    check_mode(mode)
    keep = keep or KeepDtype()
    names, types, black = set(keep.names), set(keep.types), set(black_types)
    chosen = set()
    for index, node in enumerate(model.graph.node):
        if mode == "must_keep_origin_dtype":
            continue
        if mode == "allow_fp32_to_fp16" and node.op_type not in MATRIX_OPS:
            continue
        if mode in MIXED_MODES and node.op_type in black:
            continue
        if node.name in names or node.op_type in types:
            continue
        chosen.add(index)
    return chosen
