"""Checks of single ATC option values that need no model: ``--output_type``, ``--out_nodes``,
``--input_shape_range``. Used by :class:`graphkit.ascend.spec.AtcSpec`; each raises SpecError
naming the field."""

from __future__ import annotations

import re

from graphkit.util.errors import SpecError

# --output_type data types. FP32, FP16, UINT8 on every CANN; INT8 from CANN 8.0 (hiascend.com ATC
# reference "--output_type": CANNCommunityEdition/80RC2alpha002 atlasatc_16_0064 lists INT8, the
# 6.0 page atctool_0069's neighbours do not). Later pages list more types (UINT16 ... DOUBLE, FP8)
# for newer products; graphkit accepts what the CANN 8.0 page lists.
OUTPUT_TYPES = ("FP32", "FP16", "UINT8", "INT8")
OUTPUT_TYPES_SINCE = {"INT8": 8}  # type -> first CANN major version that accepts it


def check_output_type(text: str, where: str, cann: str = "6.0") -> None:
    types = [text] if text in OUTPUT_TYPES else []
    if not types:
        for entry in text.split(";"):
            parts = entry.rsplit(":", 2)
            if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or parts[2] not in OUTPUT_TYPES:
                raise SpecError(
                    f"{where}: '{entry}' is not one of {', '.join(OUTPUT_TYPES)} nor 'node:index:TYPE' entries "
                    "separated by ';'"
                )
            types.append(parts[2])
    major = int(str(cann).split(".", 1)[0])
    for kind in types:
        since = OUTPUT_TYPES_SINCE.get(kind)
        if since is not None and major < since:
            raise SpecError(f"{where}: {kind} needs CANN {since}.0 or later (cann is {cann})")


def check_out_nodes(entries: list[str], where: str) -> None:
    """ATC ``--out_nodes`` for ONNX: all ``node:index`` entries, or all bare output names (not mixed).

    Source: hiascend.com ATC reference "--out_nodes" (en/canncommercial/800 atlasatcparam_16_0040;
    zh/canncommercial/900 atlasatcparam_16_0042): node names with an output index, or (ONNX only)
    the names of the model's outputs; "only one of the forms at a time".
    """
    indexed = [bool(re.fullmatch(r".+:[0-9]+", e)) for e in entries]
    for i, entry in enumerate(entries):
        if not entry.strip() or entry.endswith(":") or entry.startswith(":"):
            raise SpecError(f"{where}[{i}]: '{entry}' is neither 'node_name:output_index' nor an output name")
    if any(indexed) and not all(indexed):
        bare = entries[indexed.index(False)]
        raise SpecError(
            f"{where}: '{bare}' is an output name and others are 'node:index'; ATC takes one form at a time"
        )


def parse_shape_range(text: str, where: str = "input_shape_range") -> dict[str, list[str]]:
    """ATC ``--input_shape_range`` (``"a:[1~8,3,200~300,-1];b:[1,4]"``) -> {name: dim texts}.

    Each dim is a positive integer, ``-1`` (any size) or ``low~high`` with 0 < low <= high.
    Source: hiascend.com ATC reference "--input_shape_range" (canncommercial/601 atctool pages).
    """
    ranges: dict[str, list[str]] = {}
    for part in text.split(";"):
        name, sep, dims = part.strip().rpartition(":")
        if not sep or not name or not (dims.startswith("[") and dims.endswith("]")):
            raise SpecError(f"{where}: '{part}' is not 'input_name:[d0,d1~d2,...]'")
        values = [d.strip() for d in dims[1:-1].split(",")]
        for dim in values:
            low, tilde, high = dim.partition("~")
            ok = dim == "-1" or (dim.isdigit() and int(dim) > 0)
            if tilde:
                ok = low.isdigit() and high.isdigit() and 0 < int(low) <= int(high)
            if not ok:
                raise SpecError(f"{where}: dim '{dim}' of '{name}' is not N, -1 or low~high (0 < low <= high)")
        if name in ranges:
            raise SpecError(f"{where}: '{name}' is given twice")
        ranges[name] = values
    return ranges
