"""The typed ATC hand-off options (the pipeline's ``handoff.atc`` section).

A YAML mapping becomes an :class:`AtcSpec` through :func:`graphkit.util.typed_config.from_mapping`::

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
the graph are in :mod:`graphkit.ascend.command_lines`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from graphkit.ascend.option_files import read_mixlist, read_op_precision_modes
from graphkit.ascend.option_values import check_out_nodes, check_output_type, parse_shape_range
from graphkit.util.errors import GraphkitError, SpecError

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
    "--dynamic_dims",
    "--precision_mode",
    "--precision_mode_v2",
    "--op_select_implmode",
    "--optypelist_for_implmode",
    "--fusion_switch_file",
    "--out_nodes",
    "--insert_op_conf",
    "--enable_small_channel",
    "--output_type",
    "--input_fp16_nodes",
    "--keep_dtype",
    "--customize_dtypes",
    "--op_precision_mode",
    "--modify_mixlist",
    "--dynamic_image_size",
    "--input_shape_range",
)
# Fields that name a file: checked to exist before any run and made absolute, so the generated
# script's ``cd "$(dirname "$0")"`` cannot break them.
PATH_FIELDS = (
    "fusion_switch_file",
    "insert_op_conf",
    "keep_dtype",
    "customize_dtypes",
    "op_precision_mode",
    "modify_mixlist",
)
# ATC --input_format values for ONNX models: NCHW (default), NCDHW, ND. NHWC is TensorFlow's.
# Source: hiascend.com ATC reference, "--input_format" (canncommercial/800 atlasatcparam_16_0015).
InputFormat = Literal["NCHW", "NCDHW", "ND"]
ONNX_INPUT_FORMATS = get_args(InputFormat)
# --precision_mode values; ATC's default is force_fp16. Source: hiascend.com ATC reference
# "--precision_mode" (zh/canncommercial/62RC1/inferapplicationdev/atctool/atctool_000092.html:
# "参数默认值:force_fp16"; 5046 atlasatc_16_0086 for the values); the bf16 values and
# cube_fp16in_fp32out come from later CANN versions (MindSpore's precision_mode page lists them).
PrecisionMode = Literal[
    "force_fp16",
    "force_fp32",
    "cube_fp16in_fp32out",
    "allow_fp32_to_fp16",
    "must_keep_origin_dtype",
    "allow_mix_precision",
    "allow_mix_precision_fp16",
    "allow_mix_precision_bf16",
    "allow_fp32_to_bf16",
]
PRECISION_MODES = get_args(PrecisionMode)
ATC_DEFAULT_PRECISION_MODE = "force_fp16"
# --precision_mode_v2 values; it cannot be combined with --precision_mode.
# Source: hiascend.com ATC reference, "--precision_mode_v2" (canncommercial/800 atlasatcparam_16_0069).
PrecisionModeV2 = Literal["fp16", "origin", "cube_fp16in_fp32out", "mixed_float16", "mixed_bfloat16"]
PRECISION_MODES_V2 = get_args(PrecisionModeV2)
# --op_select_implmode values, the *_for_all ones included.
# Source: hiascend.com ATC reference, "--op_select_implmode" (canncommercial/800 atlasatcparam_16_0072).
ImplMode = Literal["high_performance", "high_precision", "high_performance_for_all", "high_precision_for_all"]
IMPL_MODES = get_args(ImplMode)
# --modify_mixlist needs a mixed-precision mode (hiascend.com "--modify_mixlist",
# canncommercial/900 atlasatcparam_16_0071: precision_mode allow_mix_precision*, or
# precision_mode_v2 mixed_float16/mixed_bfloat16).
MIXED_PRECISION_MODES = ("allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16")
MIXED_PRECISION_MODES_V2 = ("mixed_float16", "mixed_bfloat16")
# Characters that can end a shell comment line or a command when they reach a generated script.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SOC = re.compile(r"[A-Za-z0-9_]+")
_CANN = re.compile(r"[0-9]+(\.[0-9A-Za-z]+)*")


def check_plain_text(value: str, where: str) -> str:
    """``value`` unchanged; SpecError when it holds a control character (newline, CR, NUL, ...).

    Every text that reaches a generated script or one of its comment lines passes here: a
    newline in a comment line would start a new shell command.
    """
    match = _CONTROL.search(value)
    if match:
        raise SpecError(f"{where}: contains the control character {match.group()!r}; not allowed in ATC options")
    return value


@dataclass
class AtcSpec:
    """How to hand a model to ATC: target, OM variants, compiler options, whether to build.

    - ``batch_sizes``: one static-batch OM per size (``<output_prefix>_bs<N>``); empty for none.
    - ``dynamic_batch_sizes``: one dynamic-batch OM (``<output_prefix>_dynbs``) with these
      profiles (``--dynamic_batch_size``), or None for no dynamic OM.
    - ``dynamic_dims``: one dynamic-dims OM (``<output_prefix>_dyndims``, ``--dynamic_dims``):
      a list of profiles, each giving one value per ``-1`` in ``input_shape`` (in order);
      needs ``input_format: ND``. The manifest records the matching ais_bench ``--dymDims``.
    - ``input_shape``: ATC ``--input_shape`` syntax (``"image:1,3,1024,1024;other:..."``) to
      override dims the graph leaves symbolic; dim 0 of every input is the batch and is
      replaced by each batch size (-1 for the dynamic OM). None: read all dims from the graph.
    - ``dynamic_image_size``: one dynamic-image-size OM (``<output_prefix>_dynhw``,
      ``--dynamic_image_size``): [[H, W], ...] profiles for the last two dims of the 4-D inputs
      (NCHW), at the first of ``batch_sizes`` (1 when empty). The manifest records the matching
      ais_bench ``--dymHW`` values.
    - ``input_shape_range``: one dynamic-shape OM (``<output_prefix>_dynshape``) with ATC
      ``--input_shape_range`` (``"name:[1~8,3,200~300,-1];..."``) in place of ``--input_shape``;
      run it with ais_bench's ``--dymShape`` (and ``--outputSize``).
    - ``out_nodes``: ATC ``--out_nodes`` entries: all ``"node_name:output_index"``, or all bare
      graph output names (ONNX only; checked against the graph), or None.
    - ``op_precision_mode``: an ``OpType=mode`` ``.ini`` file; when given, ATC ignores
      ``op_select_implmode``/``optypelist_for_implmode`` (a warning; they are left out of the
      command). ``modify_mixlist``: a mixed-precision list JSON file; needs a mixed precision mode.
    - ``insert_op_conf`` (AIPP), ``fusion_switch_file``, ``keep_dtype``, ``customize_dtypes``:
      files; checked to exist and made absolute.
    - ``precision_mode`` / ``precision_mode_v2``: one or the other (ATC's default is force_fp16).
    - ``output_type``: ``FP32``/``FP16``/``UINT8`` for all outputs, or ``"node:index:TYPE;..."``.
    - ``build``: run ATC after writing the commands (needs ``atc`` on PATH, or ``atc_path``).
    - ``fail_on_error``: :func:`graphkit.ascend.handoff.run_handoff` raises when the pre-check
      finds errors or a build fails, instead of only reporting them.
    """

    soc_version: str = "Ascend310P3"
    cann: str = "6.0"
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    dynamic_batch_sizes: list[int] | None = None
    dynamic_dims: list[list[int]] | None = None
    input_format: InputFormat = "NCHW"
    input_shape: str | None = None
    precision_mode: PrecisionMode | None = None
    precision_mode_v2: PrecisionModeV2 | None = None
    op_select_implmode: ImplMode | None = None
    optypelist_for_implmode: list[str] | None = None
    fusion_switch_file: str | None = None
    insert_op_conf: str | None = None
    enable_small_channel: bool | None = None
    out_nodes: list[str] | None = None
    output_type: str | None = None
    input_fp16_nodes: list[str] | None = None
    keep_dtype: str | None = None
    customize_dtypes: str | None = None
    op_precision_mode: str | None = None
    modify_mixlist: str | None = None
    dynamic_image_size: list[list[int]] | None = None
    input_shape_range: str | None = None
    log: Literal["debug", "info", "warning", "error", "null"] = "error"
    output_prefix: str = "wseg"
    extra_args: list[str] = field(default_factory=list)
    build: bool = False
    atc_path: str | None = None
    fail_on_error: bool = False

    def validate(self, where: str = "atc") -> None:
        """Checks that need no model; raise SpecError naming the field.

        Also makes the file fields absolute (they must exist).
        """
        self._check_text(where)
        dynamic = [
            name
            for name in ("dynamic_batch_sizes", "dynamic_dims", "dynamic_image_size", "input_shape_range")
            if getattr(self, name) is not None
        ]
        if not self.batch_sizes and not dynamic:
            raise SpecError(
                f"{where}: give batch_sizes, dynamic_batch_sizes, dynamic_dims, dynamic_image_size or "
                "input_shape_range (no OM would be built)"
            )
        if len(dynamic) > 1:
            # Source: hiascend.com "--dynamic_batch_size" (atlasatc_16_0052), "--dynamic_image_size"
            # (CANNCommunityEdition/80RC3alpha003 atlasatc_16_0053), "--dynamic_dims": each
            # cannot be used together with the others or --input_shape_range.
            raise SpecError(f"{where}: {' and '.join(dynamic)} cannot be combined (ATC takes one dynamic kind per OM)")
        for i, size in enumerate(self.batch_sizes):
            if not 1 <= size <= 2048:
                raise SpecError(f"{where}.batch_sizes[{i}]: batch size {size} is outside 1..2048")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise SpecError(f"{where}.batch_sizes: duplicate batch sizes {self.batch_sizes}")
        if not _SOC.fullmatch(self.soc_version):
            raise SpecError(f"{where}.soc_version: '{self.soc_version}' is not a SoC name like Ascend310P3")
        if not self.output_prefix or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", self.output_prefix):
            raise SpecError(f"{where}.output_prefix: '{self.output_prefix}' must be a plain file name prefix")
        for i, arg in enumerate(self.extra_args):
            name = arg.split("=", 1)[0]
            if name in OWNED_OPTIONS:
                raise SpecError(f"{where}.extra_args[{i}]: {name} is set by graphkit; use the matching field instead")
            if not arg.startswith("--"):
                raise SpecError(f"{where}.extra_args[{i}]: '{arg}' is not an ATC option (--name=value)")
        check_out_nodes(self.out_nodes or [], f"{where}.out_nodes")
        # Source: hiascend.com "--precision_mode_v2": "cannot be used together with --precision_mode".
        if self.precision_mode and self.precision_mode_v2:
            raise SpecError(
                f"{where}: precision_mode and precision_mode_v2 cannot be given together (ATC refuses both)"
            )
        if self.optypelist_for_implmode and not self.op_select_implmode:
            # Source: hiascend.com "--precision_mode" (5046 atlasatc_16_0086) and "--op_precision_mode"
            # (en/canncommercial/800 atlasatcparam_16_0070): --optypelist_for_implmode is read only
            # after a high_xxx (not *_for_all) --op_select_implmode.
            raise SpecError(f"{where}.optypelist_for_implmode: needs op_select_implmode")
        if self.optypelist_for_implmode and self.op_select_implmode.endswith("_for_all"):
            raise SpecError(
                f"{where}.optypelist_for_implmode: op_select_implmode {self.op_select_implmode} already applies to all "
                "op types (ATC reads the list only with high_precision/high_performance)"
            )
        if self.insert_op_conf is not None and self.input_format != "NCHW":
            # Source: hiascend.com "--input_format": with --insert_op_conf it must be NCHW or NHWC
            # (and NHWC is not an ONNX format).
            raise SpecError(
                f"{where}.input_format: insert_op_conf (AIPP) needs input_format NCHW, got {self.input_format}"
            )
        cann_opset_range(self.cann, f"{where}.cann")  # a valid version before output_type reads it
        if self.output_type is not None:
            check_output_type(self.output_type, f"{where}.output_type", self.cann)
        if self.modify_mixlist is not None and not (
            self.precision_mode in MIXED_PRECISION_MODES or self.precision_mode_v2 in MIXED_PRECISION_MODES_V2
        ):
            raise SpecError(
                f"{where}.modify_mixlist: needs a mixed precision mode (precision_mode "
                f"{'/'.join(MIXED_PRECISION_MODES)} or precision_mode_v2 {'/'.join(MIXED_PRECISION_MODES_V2)})"
            )
        if self.dynamic_image_size is not None:
            _check_dynamic_image_size(self, where)
        if self.input_shape_range is not None:
            parse_shape_range(self.input_shape_range, f"{where}.input_shape_range")
            _check_shape_range_version(self.cann, f"{where}.input_shape_range")
        shapes = parse_input_shape(
            self.input_shape,
            f"{where}.input_shape",
            allow_dynamic=self.dynamic_dims is not None or self.dynamic_image_size is not None,
        )
        if self.dynamic_dims is not None:
            _check_dynamic_dims(self, shapes, where)
        for name in PATH_FIELDS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, check_plain_text(_existing_file(value, f"{where}.{name}"), f"{where}.{name}"))
        if self.fusion_switch_file is not None:
            read_fusion_switches(self.fusion_switch_file, f"{where}.fusion_switch_file")
        if self.keep_dtype is not None:
            read_keep_dtype_file(self.keep_dtype, f"{where}.keep_dtype")
        if self.op_precision_mode is not None:
            read_op_precision_modes(self.op_precision_mode, f"{where}.op_precision_mode")
        if self.modify_mixlist is not None:
            read_mixlist(self.modify_mixlist, f"{where}.modify_mixlist")

    def implmode_overridden(self) -> bool:
        """True when ``op_precision_mode`` makes ATC ignore ``op_select_implmode``/``optypelist_for_implmode``.

        Source: hiascend.com ATC reference "--op_precision_mode" (en/canncommercial/800
        atlasatcparam_16_0070): "mutually exclusive with --op_select_implmode and
        --optypelist_for_implmode. If they are used together, only the mode specified by
        --op_precision_mode takes effect."
        """
        return self.op_precision_mode is not None and bool(self.op_select_implmode or self.optypelist_for_implmode)

    def ais_bench_dym_hw(self) -> list[str]:
        """The ais_bench ``--dymHW`` value ("H,W") for each ``dynamic_image_size`` profile."""
        return [f"{h},{w}" for h, w in self.dynamic_image_size or []]

    def _check_text(self, where: str) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, str):
                check_plain_text(value, f"{where}.{item.name}")
            elif isinstance(value, list):
                for i, entry in enumerate(value):
                    if isinstance(entry, str):
                        check_plain_text(entry, f"{where}.{item.name}[{i}]")

    def ais_bench_dym_dims(self, names_dims: dict[str, list[int]]) -> list[str]:
        """The ais_bench ``--dymDims`` value for each ``dynamic_dims`` profile (same order).

        ``names_dims`` maps each input to its ``--input_shape`` dims (``-1`` where dynamic).
        """
        values = []
        for profile in self.dynamic_dims or []:
            dims = iter(profile)
            parts = [
                f"{name}:{','.join(str(next(dims)) if d == -1 else str(d) for d in shape)}"
                for name, shape in names_dims.items()
            ]
            values.append(";".join(parts))
        return values


def read_fusion_switches(path: str | os.PathLike, where: str = "fusion_switch_file") -> dict[str, str]:
    """The fusion passes a ``--fusion_switch_file`` turns on or off: {pass name: "on"|"off"}.

    Two forms are read: lines ``PassName:off`` (the form of the ``fusion_swith.cfg`` that an
    older ModelZoo Wseg guide shipped, ``SoftmaxFusionPass:off``) and the JSON form ``{"Switch": {"GraphFusion": {...},
    "UBFusion": {...}}}`` of the hiascend.com ATC reference ("--fusion_switch_file"). Anything
    else is a SpecError naming the line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{where}: {path}: cannot read ({exc.__class__.__name__})") from exc
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
            groups = data["Switch"]
            switches = {str(k): str(v) for group in groups.values() for k, v in group.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SpecError(f'{where}: {path}: not the JSON form {{"Switch": {{"GraphFusion": {{...}}}}}}') from exc
    else:
        switches = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, sep, state = line.strip().partition(":")
            if not sep or not name.strip():
                raise SpecError(f"{where}: {path} line {number}: '{line.strip()}' is not 'PassName:on|off'")
            switches[name.strip()] = state.strip()
    bad = {k: v for k, v in switches.items() if v not in ("on", "off")}
    if bad:
        name, state = next(iter(bad.items()))
        raise SpecError(f"{where}: {path}: pass {name} is '{state}', expected on or off")
    if not switches:
        raise SpecError(f"{where}: {path}: no fusion switches in the file")
    return switches


def read_keep_dtype_file(path: str | os.PathLike, where: str = "keep_dtype"):
    """The ``--keep_dtype`` file parsed back (:func:`graphkit.ascend.precision_modes.parse_keep_dtype`:
    one node name a line, ``OpType::T`` for a type); SpecError naming ``where`` when it is unreadable,
    malformed or lists nothing."""
    from graphkit.ascend.precision_modes import parse_keep_dtype

    try:
        keep = parse_keep_dtype(Path(path).read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{where}: {path}: cannot read the file ({exc.__class__.__name__})") from exc
    except GraphkitError as exc:
        raise SpecError(f"{where}: {exc}") from exc
    if not keep.names and not keep.types:
        raise SpecError(f"{where}: {path}: lists no operator (one node name or OpType::T a line)")
    return keep


def _existing_file(value: str, where: str) -> str:
    path = Path(os.path.expanduser(value))
    if not path.is_file():
        raise SpecError(f"{where}: {value}: no such file")
    if not os.access(path, os.R_OK):
        raise SpecError(f"{where}: {value}: not readable")
    return str(path.resolve())


def _check_shape_range_version(cann: str, where: str) -> None:
    # Source: hiascend.com ATC reference "--input_shape_range": canncommercial/601 atctool_0053 and
    # 5046 atlasatc_16_0053 say "reserved, not supported in this version"; 63RC2 atctool_000053
    # and 700 support it ("will be deprecated"); from CANNCommunityEdition 8.0 (80RC3alpha003
    # atlasatc_16_0051) it is deprecated in favour of ranges in --input_shape (a warning,
    # AtcPlan.warnings).
    parts = [int(p) for p in re.findall(r"[0-9]+", str(cann))[:2]] + [0]
    if (parts[0], parts[1]) < (6, 3):
        raise SpecError(f"{where}: CANN {cann} reserves --input_shape_range without supporting it (6.3 and later do)")


def _check_dynamic_image_size(spec: AtcSpec, where: str) -> None:
    # Source: hiascend.com ATC reference "--dynamic_image_size" (CANNCommunityEdition/80RC3alpha003
    # atlasatc_16_0053): "H,W;H,W" profiles, 2..100 of them, with -1 for H and W in --input_shape;
    # --input_format NCHW or NHWC only (NHWC is not an ONNX format).
    profiles = spec.dynamic_image_size or []
    if spec.input_format != "NCHW":
        raise SpecError(f"{where}.input_format: dynamic_image_size needs input_format NCHW, got {spec.input_format}")
    if not 2 <= len(profiles) <= 100:
        raise SpecError(f"{where}.dynamic_image_size: ATC needs 2 to 100 profiles, got {len(profiles)}")
    for i, profile in enumerate(profiles):
        if len(profile) != 2 or any(not isinstance(v, int) or v <= 0 for v in profile):
            raise SpecError(f"{where}.dynamic_image_size[{i}]: {profile} is not [H, W] with sizes > 0")
    if len({tuple(p) for p in profiles}) != len(profiles):
        raise SpecError(f"{where}.dynamic_image_size: profiles must be unique (ATC error E10039)")


def _check_dynamic_dims(spec: AtcSpec, shapes: dict[str, list[int]], where: str) -> None:
    # Source: hiascend.com ATC reference "--dynamic_dims": ND format only, 2..100 profiles, each
    # profile gives one value per -1 in --input_shape; not with --dynamic_batch_size,
    # --dynamic_image_size, --input_shape_range or --insert_op_conf.
    profiles = spec.dynamic_dims or []
    if spec.dynamic_batch_sizes is not None:
        raise SpecError(f"{where}: dynamic_dims and dynamic_batch_sizes cannot be combined (one dynamic OM kind)")
    if spec.insert_op_conf is not None:
        raise SpecError(f"{where}: dynamic_dims cannot be combined with insert_op_conf (ATC refuses AIPP here)")
    if spec.input_format != "ND":
        raise SpecError(f"{where}.input_format: dynamic_dims needs input_format ND, got {spec.input_format}")
    wanted = sum(d == -1 for dims in shapes.values() for d in dims)
    if not wanted:
        raise SpecError(f"{where}.input_shape: dynamic_dims needs -1 for each dynamic dim in input_shape")
    if not 2 <= len(profiles) <= 100:
        raise SpecError(f"{where}.dynamic_dims: ATC needs 2 to 100 profiles, got {len(profiles)}")
    for i, profile in enumerate(profiles):
        if len(profile) != wanted:
            raise SpecError(
                f"{where}.dynamic_dims[{i}]: {profile} gives {len(profile)} dims; input_shape has {wanted} '-1' dims"
            )
        if any(d <= 0 for d in profile):
            raise SpecError(f"{where}.dynamic_dims[{i}]: dims must be > 0, got {profile}")
    if len({tuple(p) for p in profiles}) != len(profiles):
        raise SpecError(f"{where}.dynamic_dims: profiles must be unique (ATC error E10039)")


def parse_input_shape(
    text: str | None, where: str = "input_shape", allow_dynamic: bool = False
) -> dict[str, list[int]]:
    """``"a:1,3,8,8;b:-1,4"`` -> {"a": [1, 3, 8, 8], "b": [-1, 4]}; SpecError on bad syntax.

    ``-1`` is allowed for dim 0 (the batch), and for any dim when ``allow_dynamic`` (dynamic_dims).
    """
    shapes: dict[str, list[int]] = {}
    if not text:
        return shapes
    check_plain_text(text, where)
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
        if not allow_dynamic and any(v == -1 for v in values[1:]):
            raise SpecError(
                f"{where}: dims '{dims}' of '{name}': -1 is only for the batch (dim 0) without dynamic_dims"
            )
        if name in shapes:
            raise SpecError(f"{where}: '{name}' is given twice")
        shapes[name] = values
    return shapes


# Default-domain ONNX opsets each CANN major version's ONNX parser accepts. Source: the CANN ONNX
# operator lists as read in an earlier session; not re-read for issue 14: unverified here.
CANN_OPSETS = {6: (9, 13), 7: (9, 18)}


def cann_opset_range(cann: str, where: str = "cann") -> tuple[int, int]:
    """(lowest, highest) ONNX opset accepted by CANN ``cann`` ("6.0", "6.0.RC1", "7.0"...).

    Versions after 7 are assumed to accept at least 7.0's range.
    """
    if not _CANN.fullmatch(str(cann)):
        raise SpecError(f"{where}: '{cann}' is not a CANN version like 6.0 or 7.0")
    head = str(cann).split(".", 1)[0]
    if not head.isdigit():
        raise SpecError(f"{where}: '{cann}' is not a CANN version like 6.0 or 7.0")
    major = int(head)
    if major in CANN_OPSETS:
        return CANN_OPSETS[major]
    if major > max(CANN_OPSETS):
        return CANN_OPSETS[max(CANN_OPSETS)]
    raise SpecError(f"{where}: CANN {cann} is older than graphkit knows (6.0 and later)")
