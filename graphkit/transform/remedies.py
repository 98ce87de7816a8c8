"""Decline reasons that name a remedy, kept true for the run they come from.

A pass that declines because a value is not (yet) a constant says so with the remedy in
parentheses: ``(folding it first would make the node removable)``. That is advice while a
folding pass is still ahead and gets rid of the site; when the folding passes have run and the
node is still there at the end of the run, it is false. :func:`settle_remedies` rewrites the
reasons of a finished run's records:

- the site's node is gone from the final model and a folding pass changed the model after the
  decline: the remedy was ahead, the advice stays;
- a folding pass ran and the site's node is still in the final model (or nothing folded after
  the decline): the clause becomes ``(fold-shapes ran and could not fold it)``, naming the
  folding passes that ran;
- no folding pass ran at all (a pass applied alone): the advice stays.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import onnx

from graphkit.transform.record import PassRecord, PassStatus

# passes that turn computed values into constants: the remedy "folding it first" names
FOLDING_PASSES = ("fold-shapes", "fold-constants")
_FOLDING_REMEDY = re.compile(r"\((folding (?:it|them) first would [^)]*)\)")


def settle_remedies(records: Sequence[PassRecord], final: onnx.ModelProto) -> None:
    """Rewrite, in place, the folding remedies of ``records``' declined reasons (module docstring)."""
    ran = [r.name for r in records if r.name in FOLDING_PASSES and r.status != PassStatus.FAILED]
    if not ran:
        return
    names = " and ".join(dict.fromkeys(ran))
    remaining = {node.name for node in final.graph.node} | {o for node in final.graph.node for o in node.output}
    for position, record in enumerate(records):
        folded_after = any(later.name in FOLDING_PASSES and later.modified for later in records[position + 1 :])
        for item in record.declined:
            if folded_after and not _names_in(item["site"], remaining):
                continue
            item["reason"] = _FOLDING_REMEDY.sub(f"({names} ran and could not fold it)", item["reason"])


def _names_in(site: str, names: set[str]) -> bool:
    """True when the site (``name`` or ``Op name``) names a node still in the final model."""
    return site in names or site.split(" ", 1)[-1] in names
