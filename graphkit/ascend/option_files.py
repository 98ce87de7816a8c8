"""Readers for the ATC options that name a config file: ``--op_precision_mode`` and ``--modify_mixlist``.

Each returns what the file asks for, or raises SpecError naming the file and line/key:

- ``--op_precision_mode``: an ``.ini`` file of ``OpType=mode`` lines, one operator per line
  (hiascend.com ATC reference "--op_precision_mode", en/canncommercial/800
  atlasatcparam_16_0070; the AOE page of canncommercial/601 aoepar_16_050 shows the form).
  ``[section]`` headers and ``#``/``;`` comment lines are skipped. The modes are not checked
  against a list: ATC's own list (``all_ops_impl_mode.ini``) grows with each CANN version.
- ``--modify_mixlist``: a JSON object whose keys are ``black-list``/``white-list``/``gray-list``,
  each an object with ``to-add``/``to-remove`` lists of op types (hiascend.com ATC reference
  "--modify_mixlist", canncommercial/900 atlasatcparam_16_0071).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from graphkit.util.errors import SpecError

MIXLIST_KEYS = ("black-list", "white-list", "gray-list")
MIXLIST_ACTIONS = ("to-add", "to-remove")


def _text(path: str | os.PathLike, where: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{where}: {path}: cannot read ({exc.__class__.__name__})") from exc


def read_op_precision_modes(path: str | os.PathLike, where: str = "op_precision_mode") -> dict[str, str]:
    """The ``--op_precision_mode`` file as {OpType: mode}; SpecError naming the line when malformed."""
    modes: dict[str, str] = {}
    for number, line in enumerate(_text(path, where).splitlines(), 1):
        text = line.strip()
        if not text or text[0] in "#;" or (text.startswith("[") and text.endswith("]")):
            continue
        op_type, sep, mode = (part.strip() for part in text.partition("="))
        if not sep or not op_type or not mode or any(c.isspace() for c in op_type + mode):
            raise SpecError(
                f"{where}: {path} line {number}: '{text}' is not 'OpType=mode' (e.g. Conv2D=high_precision)"
            )
        modes[op_type] = mode
    if not modes:
        raise SpecError(f"{where}: {path}: no 'OpType=mode' lines in the file")
    return modes


def read_mixlist(path: str | os.PathLike, where: str = "modify_mixlist") -> dict[str, dict[str, list[str]]]:
    """The ``--modify_mixlist`` JSON file; SpecError naming the key when it is not ATC's form."""
    try:
        data = json.loads(_text(path, where))
    except ValueError as exc:
        raise SpecError(f"{where}: {path}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or not data:
        raise SpecError(f'{where}: {path}: expected a JSON object like {{"black-list": {{"to-add": ["OpType"]}}}}')
    for key, lists in data.items():
        if key not in MIXLIST_KEYS:
            raise SpecError(f"{where}: {path}: key '{key}' is not one of {', '.join(MIXLIST_KEYS)}")
        if not isinstance(lists, dict):
            raise SpecError(f"{where}: {path}: '{key}' must be an object with to-add/to-remove lists")
        for action, ops in lists.items():
            if action not in MIXLIST_ACTIONS:
                raise SpecError(f"{where}: {path}: '{key}.{action}' is not one of {', '.join(MIXLIST_ACTIONS)}")
            if not isinstance(ops, list) or not all(isinstance(op, str) and op.strip() for op in ops):
                raise SpecError(f"{where}: {path}: '{key}.{action}' must be a list of op type names")
    return data
