"""Built-in presets: named lists of passes for ``graphkit apply MODEL.onnx --preset NAME``.

``generic`` holds the passes that are exact and safe on any model: they keep the graph's
inputs, outputs and opset as they are (no batch baked, no opset upgrade), and each is still
validated against the golden set and rolled back when it fails. Add a pass to a preset here,
in :data:`PRESETS` (the one place presets are defined).
"""

from __future__ import annotations

import copy

from graphkit.transform.group import GROUP_KEY
from graphkit.util.errors import PipelineSpecError

PRESETS: dict[str, list[str | dict]] = {
    # the chain the real-model corpus runs as "graphkit's own passes" (docs/corpus.md); onnxsim is left out.
    # The cleanups run as a fixed-point group: a later one (fuse-reshapes) can open sites for an
    # earlier one (cse, eliminate-noops), so the group repeats them until an iteration changes nothing.
    "generic": [
        {
            "group": {
                "passes": [
                    "eliminate-noops",
                    "fold-shapes",
                    "fold-constants",
                    "eliminate-neutral",
                    "cse",
                    "fuse-reshapes",
                    "merge-slices",
                    "eliminate-idempotent",
                ],
                "until_fixed_point": True,
                "max_iterations": 8,
            }
        },
        "fuse-reshape-transpose",  # after folding: it needs the Reshape targets as constants
        "fuse-pad-conv",
        "fold-batchnorm",
        "dead-code",
        {"softmax-transpose": {"allow_opset_upgrade": False}},
    ],
}
DEFAULT_PRESET = "generic"


def preset_passes(name: str) -> list[str | dict]:
    """The pass items of preset ``name`` (a deep copy); PipelineSpecError lists the presets."""
    if name not in PRESETS:
        raise PipelineSpecError(f"--preset {name!r:.60}: no such preset; presets: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def item_name(item: str | dict) -> str:
    """The pass name of a preset item (``name`` or ``{name: options}``; ``group`` for a group)."""
    return item if isinstance(item, str) else next(iter(item))


def pass_names(items: list[str | dict]) -> list[str]:
    """The pass names of ``items``, groups opened, once each (one iteration of every group)."""
    names: list[str] = []
    for item in items:
        if item_name(item) == GROUP_KEY:
            names += pass_names(item[GROUP_KEY]["passes"])
        else:
            names.append(item_name(item))
    return names
