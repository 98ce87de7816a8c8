"""ATC hand-off for Huawei Ascend: pre-check, command lines + manifest, build.

Public API: :class:`~graphkit.ascend.spec.AtcSpec` (the pipeline's ``handoff.atc`` section) and
:func:`~graphkit.ascend.handoff.run_handoff`.
"""

from graphkit.ascend.handoff import HandoffError, run_handoff
from graphkit.ascend.spec import AtcSpec

__all__ = ["AtcSpec", "HandoffError", "run_handoff"]
