"""The typed ATC hand-off options (the pipeline's ``handoff.atc`` section).

A YAML mapping becomes an :class:`AtcSpec` through :func:`graphkit.typed.from_mapping`::

    handoff:
      atc:
        soc_version: Ascend310P3
        cann: "6.0"
        batch_sizes: [1, 4, 8, 16]
        dynamic_batch_sizes: [1, 4, 8, 16]
        log: error
        output_prefix: wseg
        build: false

Only the checks that need no model live here (:meth:`AtcSpec.validate`); the checks against
the graph are in :mod:`graphkit.ascend.commands`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from graphkit.errors import SpecError

LOG_LEVELS = ("debug", "info", "warning", "error", "null")
# ATC options the command builder owns; giving them in extra_args would contradict the plan.
OWNED_OPTIONS = (
    "--model",
    "--framework",
    "--output",
    "--input_format",
    "--input_shape",
    "--soc_version",
    "--log",
    "--dynamic_batch_size",
    "--precision_mode",
    "--op_select_implmode",
    "--fusion_switch_file",
    "--out_nodes",
)


@dataclass
class AtcSpec:
    """How to hand a model to ATC: target, OM variants, compiler options, whether to build.

    - ``batch_sizes``: one static-batch OM per size (``<output_prefix>_bs<N>``); empty for none.
    - ``dynamic_batch_sizes``: one dynamic-batch OM (``<output_prefix>_dyn``) with these
      profiles (``--dynamic_batch_size``), or None for no dynamic OM.
    - ``input_shape``: ATC ``--input_shape`` syntax (``"image:1,3,1024,1024;other:..."``) to
      override dims the graph leaves symbolic; dim 0 of every input is the batch and is
      replaced by each batch size (-1 for the dynamic OM). None: read all dims from the graph.
    - ``out_nodes``: ATC ``--out_nodes`` entries (``"node_name:output_index"``), or None.
    - ``build``: run ATC after writing the commands (needs ``atc`` on PATH, or ``atc_path``).
    - ``fail_on_error``: :func:`graphkit.ascend.handoff.run_handoff` raises when the pre-check
      finds errors or a build fails, instead of only reporting them.
    """

    soc_version: str = "Ascend310P3"
    cann: str = "6.0"
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    dynamic_batch_sizes: list[int] | None = None
    input_format: Literal["NCHW", "NHWC", "ND"] = "NCHW"
    input_shape: str | None = None
    precision_mode: str | None = None
    op_select_implmode: Literal["high_performance", "high_precision"] | None = None
    fusion_switch_file: str | None = None
    out_nodes: list[str] | None = None
    log: Literal["debug", "info", "warning", "error", "null"] = "error"
    output_prefix: str = "wseg"
    extra_args: list[str] = field(default_factory=list)
    build: bool = False
    atc_path: str | None = None
    fail_on_error: bool = False

    def validate(self, where: str = "atc") -> None:
        """Checks that need no model; raise SpecError naming the field."""
        if not self.batch_sizes and not self.dynamic_batch_sizes:
            raise SpecError(f"{where}: give batch_sizes or dynamic_batch_sizes (no OM would be built)")
        for i, size in enumerate(self.batch_sizes):
            if not 1 <= size <= 2048:
                raise SpecError(f"{where}.batch_sizes[{i}]: batch size {size} is outside 1..2048")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise SpecError(f"{where}.batch_sizes: duplicate batch sizes {self.batch_sizes}")
        if not self.output_prefix or "/" in self.output_prefix or self.output_prefix.startswith("."):
            raise SpecError(f"{where}.output_prefix: '{self.output_prefix}' must be a plain file name prefix")
        for i, arg in enumerate(self.extra_args):
            name = arg.split("=", 1)[0]
            if name in OWNED_OPTIONS:
                raise SpecError(f"{where}.extra_args[{i}]: {name} is set by graphkit; use the matching field instead")
            if not arg.startswith("--"):
                raise SpecError(f"{where}.extra_args[{i}]: '{arg}' is not an ATC option (--name=value)")
        for i, entry in enumerate(self.out_nodes or []):
            node, _, index = entry.rpartition(":")
            if not node or not index.isdigit():
                raise SpecError(f"{where}.out_nodes[{i}]: '{entry}' is not 'node_name:output_index'")
        parse_input_shape(self.input_shape, f"{where}.input_shape")
        cann_opset_range(self.cann, f"{where}.cann")


def parse_input_shape(text: str | None, where: str = "input_shape") -> dict[str, list[int]]:
    """``"a:1,3,8,8;b:-1,4"`` -> {"a": [1, 3, 8, 8], "b": [-1, 4]}; SpecError on bad syntax."""
    shapes: dict[str, list[int]] = {}
    if not text:
        return shapes
    for part in text.split(";"):
        name, sep, dims = part.strip().rpartition(":")
        if not sep or not name:
            raise SpecError(f"{where}: '{part}' is not 'input_name:d0,d1,...'")
        try:
            values = [int(d) for d in dims.split(",")]
        except ValueError as exc:
            raise SpecError(f"{where}: dims '{dims}' of '{name}' are not integers") from exc
        if any(v == 0 or v < -1 for v in values):
            raise SpecError(f"{where}: dims '{dims}' of '{name}' must be positive (or -1 for the batch)")
        shapes[name] = values
    return shapes


# Default-domain ONNX opsets each CANN major version's ONNX parser accepts (FACTS).
CANN_OPSETS = {6: (9, 13), 7: (9, 18)}


def cann_opset_range(cann: str, where: str = "cann") -> tuple[int, int]:
    """(lowest, highest) ONNX opset accepted by CANN ``cann`` ("6.0", "6.0.RC1", "7.0"...).

    Versions after 7 are assumed to accept at least 7.0's range.
    """
    head = str(cann).split(".", 1)[0]
    if not head.isdigit():
        raise SpecError(f"{where}: '{cann}' is not a CANN version like 6.0 or 7.0")
    major = int(head)
    if major in CANN_OPSETS:
        return CANN_OPSETS[major]
    if major > max(CANN_OPSETS):
        return CANN_OPSETS[max(CANN_OPSETS)]
    raise SpecError(f"{where}: CANN {cann} is older than graphkit knows (6.0 and later)")


def run_handoff(spec: AtcSpec, model_path, out_dir, on_line=None) -> dict:
    """Forwarder to :func:`graphkit.ascend.handoff.run_handoff` (kept importable from here)."""
    from graphkit.ascend.handoff import run_handoff as run

    return run(spec, model_path, out_dir, on_line=on_line)
