"""Built-in presets: named lists of passes for ``graphkit apply MODEL.onnx --preset NAME``.

``generic`` holds the passes that are exact and safe on any model: they keep the graph's
inputs, outputs and opset as they are (no batch baked, no opset upgrade), and each is still
validated against the golden set and rolled back when it fails. Add a pass to a preset here,
in :data:`PRESETS` (the one place presets are defined).
"""

from __future__ import annotations

from graphkit.util.errors import PipelineSpecError

PRESETS: dict[str, list[str | dict]] = {
    # the chain the real-model corpus runs as "graphkit's own passes" (docs/corpus.md); onnxsim is left out
    "generic": [
        "eliminate-noops",
        "fold-shapes",
        "fold-constants",
        "eliminate-neutral",
        "cse",
        "fuse-reshapes",
        "eliminate-noops",
        "fuse-pad-conv",
        "fold-batchnorm",
        "dead-code",
        {"softmax-transpose": {"allow_opset_upgrade": False}},
    ],
}
DEFAULT_PRESET = "generic"


def preset_passes(name: str) -> list[str | dict]:
    """The pass items of preset ``name`` (a copy); PipelineSpecError lists the presets."""
    if name not in PRESETS:
        raise PipelineSpecError(f"--preset {name!r:.60}: no such preset; presets: {', '.join(PRESETS)}")
    return [item if isinstance(item, str) else {k: dict(v) for k, v in item.items()} for item in PRESETS[name]]


def item_name(item: str | dict) -> str:
    """The pass name of a preset item (``name`` or ``{name: options}``)."""
    return item if isinstance(item, str) else next(iter(item))
