"""A static lint for ATC: what in an ONNX graph the Ascend compiler rejects or reads differently.

:func:`precheck` returns a :class:`PrecheckReport` of :class:`Finding` s. Each finding has a
level (``error``: ATC fails or computes something else than onnxruntime; ``warning``: may
fail or differ, check it; ``perf``: compiles but runs slower than it needs to), the rule id,
the node, a message and a fix hint that names a graphkit pass where one exists.

Rules (ids):

- ``invalid-graph``: the graph is not valid ONNX for graphkit (a cycle, an undefined or duplicate
  name, an unknown op...: :func:`graphkit.ir.model_io.invalid_reason`); the only finding, since the
  other rules read a valid graph.
- ``opset-range``: default-domain opset outside the CANN version's range (6.0: 9..13, 7.0: 9..18).
- ``custom-domain``: a node outside the default ONNX domain (ATC has no parser: E19010).
- ``softmax-axis``: Softmax/LogSoftmax/Hardmax below opset 13 on a rank > 2 input with a
  non-last axis: ONNX flattens from ``axis`` on (an error under ONNX semantics whatever CANN does).
- ``softmax-transpose``: Transpose -> Softmax(last axis) -> inverse Transpose (perf).
- ``resize-mode`` / ``resize-coordinates`` / ``resize-dynamic-scales``: Resize/Upsample modes
  other than nearest/linear; coordinate modes ATC reads as asymmetric (all but
  pytorch_half_pixel, align_corners and asymmetric itself); scales/sizes not constant.
- ``int64-index``: TopK (a known ATC failure) and ArgMax/ArgMin (unverified) int64 indices.
- ``zero-sized-dim``: a tensor with a 0-sized dim.
- ``avgpool-kernel`` (perf): AveragePool kernel over 255 in a dim or kh*kw over 256 (AI CPU).
- ``reflect-pad`` (perf): Pad mode reflect (supported, slow).
- ``pad-constant``: Pad constant mode with a constant_value other than 0 (error, unverified).
- ``symbolic-dim``: symbolic dims other than the batch (dim 0) on graph inputs/outputs.
- ``input-shape``: graph inputs the planned ``--input_shape`` does not cover or cannot fix.
- ``static-batch``: a static batch dim while other batch sizes are planned.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Literal

import onnx

from graphkit.ascend.spec import cann_opset_range, parse_input_shape
from graphkit.ir.model_io import default_opset, invalid_reason
from graphkit.ir.shapes import known_value_types
from graphkit.runtime.feeds import graph_inputs, input_dims

Level = Literal["error", "warning", "perf"]
LEVELS: tuple[Level, ...] = ("error", "warning", "perf")

ATC_RESIZE_MODES = ("nearest", "linear")
# Only pytorch_half_pixel and align_corners are mapped by CANN's ONNX Resize parser; every other
# mode (ONNX's default half_pixel included) is read as asymmetric, so asymmetric itself agrees.
# Source: issue 14's reading of CANN's ONNX parser plugin for Resize; the plugin source was not
# found by this branch's searches: unverified here.
ATC_COORDINATE_MODES = ("pytorch_half_pixel", "align_corners", "asymmetric")
# AveragePool kernels over 255 in a dim, or kh*kw over 256, run on AI CPU (slow), they compile.
# Source: issue 14's reading of the hiascend.com operator specifications; unverified here.
AVGPOOL_MAX_KERNEL = 255
AVGPOOL_MAX_AREA = 256
UNVERIFIED = "(unverified: no public source confirms this)"


@dataclass(frozen=True)
class Finding:
    """One thing ATC will reject, read differently, or run slowly."""

    level: Level
    rule: str
    node: str
    op: str
    message: str
    hint: str = ""
    fix_pass: str | None = None  # the graphkit pass that fixes it, when one exists


@dataclass
class PrecheckReport:
    """All findings for one model and target."""

    model: str
    opset: int
    cann: str
    soc_version: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of findings per level (every level present)."""
        counter = Counter(f.level for f in self.findings)
        return {level: counter.get(level, 0) for level in LEVELS}

    @property
    def has_errors(self) -> bool:
        """True when at least one finding is an error."""
        return self.counts["error"] > 0

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {
            "model": self.model,
            "opset": self.opset,
            "cann": self.cann,
            "soc_version": self.soc_version,
            "counts": self.counts,
            "findings": [asdict(f) for f in self.findings],
            "notes": self.notes,
        }


def precheck(
    model: onnx.ModelProto,
    *,
    cann: str = "6.0",
    soc_version: str = "Ascend310P3",
    input_shape: str | None = None,
    batch_sizes: list[int] | None = None,
    dynamic_batch_sizes: list[int] | None = None,
    name: str = "model",
    precision_mode: str | None = None,
    precision_mode_v2: str | None = None,
    fusion_switch_file: str | None = None,
) -> PrecheckReport:
    """Lint ``model`` for ATC of CANN ``cann``; ``input_shape`` is the planned ATC option.

    ``batch_sizes``/``dynamic_batch_sizes`` are the planned OM batch sizes (for the
    ``static-batch`` rule). ``precision_mode``/``precision_mode_v2``/``fusion_switch_file`` are
    the planned ATC options; the report's ``notes`` say what they (or ATC's defaults) change.
    The model is not modified.
    """
    opset = default_opset(model)
    report = PrecheckReport(model=name, opset=opset, cann=str(cann), soc_version=soc_version)
    problem = invalid_reason(model)
    if problem:
        hint = "fix the graph first: onnxruntime and ATC reject it"
        report.findings.append(Finding("error", "invalid-graph", "(model)", "", problem, hint))
        return report
    report.notes.extend(_option_notes(precision_mode, precision_mode_v2, fusion_switch_file))
    shapes = _known_shapes(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    producers: dict[str, onnx.NodeProto] = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
        for tensor in node.output:
            producers[tensor] = node
    add = report.findings.append
    input_names = {v.name for v in model.graph.input}
    constants = {t.name: t for t in model.graph.initializer if t.name not in input_names}

    low, high = cann_opset_range(cann)
    if not low <= opset <= high:
        add(
            Finding(
                "error",
                "opset-range",
                "(model)",
                "",
                f"ONNX opset {opset} is outside CANN {cann}'s range {low}..{high}",
                f"convert the model to an opset in {low}..{high} with the 'convert-opset' pass",
                "convert-opset",
            )
        )
    for index, node in enumerate(model.graph.node):
        node_name = node.name or f"{node.op_type}#{index}"
        if node.domain not in ("", "ai.onnx"):
            add(
                Finding(
                    "error",
                    "custom-domain",
                    node_name,
                    f"{node.domain}::{node.op_type}",
                    # E16002 "No ONNX parser is registered for optype %s." (hicann/ge
                    # base/common/error_registry/error_registry.cc).
                    f"op {node.op_type} of domain '{node.domain}' has no ATC ONNX parser (ATC: E16002)",
                    "replace it with default-domain ONNX ops before ATC",
                )
            )
            continue
        for check in _NODE_RULES.get(node.op_type, ()):
            for finding in check(node, node_name, opset, shapes, producers, consumers, constants):
                add(finding)
    _check_zero_dims(model, shapes, add)
    _check_io(model, input_shape, batch_sizes, dynamic_batch_sizes, add)
    return report


# ----------------------------------------------------------------------------------- shapes


def _known_shapes(model: onnx.ModelProto) -> dict[str, list[int | str | None]]:
    """Dims of every tensor shape inference can tell, from :func:`graphkit.ir.shapes.known_value_types`
    (inference on the graph without its weights; the declared shapes when inference fails)."""
    return {name: list(vtype.dims) for name, vtype in known_value_types(model).items() if vtype.dims is not None}


def _attr(node: onnx.NodeProto, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            value = onnx.helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


# Ops whose output rank is their first input's rank / the largest input rank (broadcasting).
_SAME_RANK = {
    "Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization", "Relu", "LeakyRelu", "Sigmoid",
    "Tanh", "Softmax", "LogSoftmax", "Resize", "Upsample", "MaxPool", "AveragePool", "Pad", "Identity", "Cast",
    "Clip", "Dropout", "Exp", "Log", "Sqrt", "Neg", "Abs", "Slice", "Elu", "Erf", "Floor", "Ceil",
}  # fmt: skip
_BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "Concat", "Max", "Min", "Sum", "Where", "Equal", "Greater", "Less"}


def _rank(tensor: str, shapes, producers, depth: int = 0) -> int | None:
    """Rank of ``tensor``: from shapes, else walked back through rank-preserving producers."""
    if tensor in shapes:
        return len(shapes[tensor])
    producer = producers.get(tensor)
    if producer is None or depth > 64:
        return None
    if producer.op_type == "Transpose" and _attr(producer, "perm") is not None:
        return len(_attr(producer, "perm"))
    if producer.op_type in _SAME_RANK and producer.input:
        return _rank(producer.input[0], shapes, producers, depth + 1)
    if producer.op_type in _BROADCAST:
        ranks = [_rank(t, shapes, producers, depth + 1) for t in producer.input if t]
        known = [r for r in ranks if r is not None]
        return max(known) if known else None
    return None


# ------------------------------------------------------------------------------- node rules


def _softmax_rules(node, node_name, opset, shapes, producers, consumers, constants):
    rank = _rank(node.input[0], shapes, producers)
    axis = _attr(node, "axis", -1 if opset >= 13 else 1)
    if opset < 13:
        if rank is None and axis not in (-1,):
            yield Finding(
                "warning",
                "softmax-axis",
                node_name,
                node.op_type,
                f"{node.op_type}(axis={axis}) at opset {opset} on an input of unknown rank: ONNX normalizes over "
                "all dims from axis on (2-D coercion), which is not a softmax over one axis when the rank is over 2",
                "give the input a known shape (fix-input-shape) and re-run the pre-check",
                "fix-input-shape",
            )
        elif rank is not None and rank > 2 and axis % rank != rank - 1:
            yield Finding(
                "error",
                "softmax-axis",
                node_name,
                node.op_type,
                f"{node.op_type}(axis={axis}) at opset {opset} on a rank-{rank} input normalizes over dims "
                f"{axis % rank}..{rank - 1} flattened (ONNX < 13 coerces to 2-D). The graph is wrong under ONNX "
                "semantics if a one-axis softmax was meant. CANN behaviour assumed: since the Softmax fusion of "
                "late 2021 CANN reshapes to 2-D as ONNX does; earlier versions used the single axis "
                f"{axis % rank}, so the result depends on the CANN version {UNVERIFIED}",
                "for a softmax over one axis, start from the Transpose -> Softmax(last) -> Transpose export and run "
                "'convert-opset' (to 13) then 'softmax-transpose'",
                "softmax-transpose",
            )
    if rank is None:
        return
    last = axis % rank == rank - 1
    before = producers.get(node.input[0])
    after = consumers.get(node.output[0], [])
    if (
        last
        and before is not None
        and before.op_type == "Transpose"
        and len(after) == 1
        and after[0].op_type == "Transpose"
        and _inverse(_attr(before, "perm"), _attr(after[0], "perm"))
    ):
        yield Finding(
            "perf",
            "softmax-transpose",
            node_name,
            node.op_type,
            f"Transpose '{before.name}' -> {node.op_type}(last axis) -> Transpose '{after[0].name}': two layout "
            "transposes around one softmax",
            "rewrite as one softmax over the original axis with the 'softmax-transpose' pass "
            "(run 'convert-opset' to 13 first when the model is below 13)",
            "softmax-transpose",
        )


def _inverse(first, second) -> bool:
    if not first or not second or len(first) != len(second):
        return False
    return all(first[second[i]] == i for i in range(len(first)))


def _resize_rules(node, node_name, opset, shapes, producers, consumers, constants):
    mode = _attr(node, "mode", "nearest")
    if mode not in ATC_RESIZE_MODES and not (node.op_type == "Upsample" and mode == "bilinear"):
        yield Finding(
            "error",
            "resize-mode",
            node_name,
            node.op_type,
            f"{node.op_type} mode '{mode}': ATC supports only nearest and linear",
            "export the model with bilinear/nearest interpolation",
        )
    if node.op_type == "Resize" and opset >= 11:
        coordinates = _attr(node, "coordinate_transformation_mode", "half_pixel")
        if coordinates not in ATC_COORDINATE_MODES:
            yield Finding(
                "warning",
                "resize-coordinates",
                node_name,
                node.op_type,
                f"Resize coordinate_transformation_mode '{coordinates}'"
                + (" (ONNX's default)" if not _has_attr(node, "coordinate_transformation_mode") else "")
                + ": CANN's ONNX parser maps only pytorch_half_pixel and align_corners and reads other modes as "
                f"asymmetric, so its output differs from onnxruntime's {UNVERIFIED}",
                "export with align_corners=True (align_corners) or use pytorch_half_pixel",
            )
    if node.op_type == "Resize":
        dynamic = [
            label
            for slot, label in ((2, "scales"), (3, "sizes"))
            if len(node.input) > slot and node.input[slot] and not _is_constant(node.input[slot], producers, constants)
        ]
        if dynamic:
            yield Finding(
                "warning",
                "resize-dynamic-scales",
                node_name,
                node.op_type,
                f"Resize {'/'.join(dynamic)} computed in the graph, not constant: ATC needs them fixed at compile "
                f"time {UNVERIFIED}",
                "fix the input shape ('fix-input-shape') and fold the shape chain ('fold-shapes')",
                "fold-shapes",
            )


def _index_rules(node, node_name, opset, shapes, producers, consumers, constants):
    if node.op_type == "TopK":
        # Source: issue 14 (a known ATC failure, seen in public Ascend tooling that rewrites TopK
        # to int32 indices).
        message = "TopK produces int64 indices, a known ATC failure (Ascend tooling rewrites them to int32)"
    else:
        message = f"{node.op_type} produces int64 indices; ATC may reject them {UNVERIFIED}"
    yield Finding(
        "warning",
        "int64-index",
        node_name,
        node.op_type,
        message,
        "no built-in graphkit pass; cast the indices to int32 right after the op if ATC rejects it",
    )


def _avgpool_rules(node, node_name, opset, shapes, producers, consumers, constants):
    kernel = list(_attr(node, "kernel_shape", []) or [])
    area = 1
    for k in kernel[-2:]:
        area *= k
    if any(k > AVGPOOL_MAX_KERNEL for k in kernel) or (len(kernel) >= 2 and area > AVGPOOL_MAX_AREA):
        yield Finding(
            "perf",
            "avgpool-kernel",
            node_name,
            node.op_type,
            f"AveragePool kernel {kernel} (over {AVGPOOL_MAX_KERNEL} in a dim or kh*kw over {AVGPOOL_MAX_AREA}) runs "
            f"on AI CPU: it compiles but is slow {UNVERIFIED}",
            "split the pooling into smaller kernels (no built-in graphkit pass) or use GlobalAveragePool",
        )


def _pad_rules(node, node_name, opset, shapes, producers, consumers, constants):
    mode = _attr(node, "mode", "constant")
    if mode == "reflect":
        yield Finding(
            "perf",
            "reflect-pad",
            node_name,
            node.op_type,
            f"Pad mode 'reflect' is supported by ATC but slow {UNVERIFIED}",
            "no built-in graphkit pass; rewrite as Slice + Concat where the pad is hot",
        )
    if mode != "constant":
        return
    value = _attr(node, "value", 0.0) if opset < 11 else _constant_scalar(node, 2, producers, constants)
    if value is None and opset >= 11 and len(node.input) > 2 and node.input[2]:
        yield Finding(
            "warning",
            "pad-constant",
            node_name,
            node.op_type,
            f"Pad constant_value comes from the graph; ATC's Pad needs it to be 0 {UNVERIFIED}",
            "make the pad value a constant 0",
        )
    elif value not in (None, 0, 0.0):
        # An error as issue 14's review of CANN's Pad operator states; no public source was found
        # here, hence "unverified". fold-shapes with pad_with_zero (the wseg pipelines) avoids it.
        yield Finding(
            "error",
            "pad-constant",
            node_name,
            node.op_type,
            f"Pad constant_value {value}: ATC's Pad supports only 0 {UNVERIFIED}",
            "fold-shapes: {pad_with_zero: true} pads with 0 and adds the value on the border (exact)",
        )


def _has_attr(node, name: str) -> bool:
    return any(a.name == name for a in node.attribute)


def _is_constant(tensor: str, producers, constants) -> bool:
    """True for an initializer that is not a graph input, or a Constant node's output."""
    producer = producers.get(tensor)
    if producer is None:
        return tensor in constants
    return producer.op_type == "Constant"


def _constant_scalar(node, slot: int, producers, constants):
    """The scalar value of ``node.input[slot]`` when it is a constant; 0.0 when absent; None if unknown."""
    if len(node.input) <= slot or not node.input[slot]:
        return 0.0
    array = None
    if node.input[slot] in constants:
        array = onnx.numpy_helper.to_array(constants[node.input[slot]])
    else:
        producer = producers.get(node.input[slot])
        if producer is not None and producer.op_type == "Constant":
            value = _attr(producer, "value")
            array = onnx.numpy_helper.to_array(value) if value is not None else None
    if array is None or array.size != 1:
        return None
    return array.reshape(-1)[0].item()


_NODE_RULES = {
    "Softmax": (_softmax_rules,),
    "LogSoftmax": (_softmax_rules,),
    "Hardmax": (_softmax_rules,),
    "Resize": (_resize_rules,),
    "Upsample": (_resize_rules,),
    "TopK": (_index_rules,),
    "ArgMax": (_index_rules,),
    "ArgMin": (_index_rules,),
    "AveragePool": (_avgpool_rules,),
    "Pad": (_pad_rules,),
}


# ----------------------------------------------------------------------------------- notes

# What the Wseg guide's fusion_swith.cfg ("SoftmaxFusionPass:off") changes. CANN's
# softmax_fusion_pass.h describes the pass as "Permute fusion pass (softmax --> TransposeD)": it
# rewrites a Softmax over a non-last axis into transposes around a last-axis softmax. Turning
# it off keeps the Softmax node as the graph has it. Source: Ascend/ModelZoo-PyTorch
# ACL_PyTorch/contrib/cv/segmentation/Wseg/fusion_swith.cfg; the pass's header comment seen
# through code search (repository not pinned): the exact effect is unverified here.
FUSION_PASS_NOTES = {
    "SoftmaxFusionPass": (
        "SoftmaxFusionPass off: ATC keeps each Softmax as the graph has it instead of rewriting a non-last-axis "
        "softmax into TransposeD + last-axis softmax (the pass's own header comment); the Wseg guide ships this "
        "switch with its Softmax(axis=1) fix (unverified: no public source states the exact numerical effect)"
    ),
}


def _option_notes(precision_mode, precision_mode_v2, fusion_switch_file) -> list[str]:
    from graphkit.ascend.spec import ATC_DEFAULT_PRECISION_MODE, read_fusion_switches

    notes = []
    if precision_mode_v2:
        notes.append(f"precision_mode_v2={precision_mode_v2}")
    elif precision_mode:
        notes.append(f"precision_mode={precision_mode}")
    else:
        # Source: hiascend.com ATC reference "--precision_mode": default force_fp16 for inference.
        notes.append(
            f"precision: ATC's default {ATC_DEFAULT_PRECISION_MODE} (no precision_mode given): ops that support "
            "float16 run in float16, so outputs differ from onnxruntime's float32 by fp16 rounding"
        )
    if fusion_switch_file:
        for name, state in read_fusion_switches(fusion_switch_file).items():
            if state == "off":
                notes.append(FUSION_PASS_NOTES.get(name, f"{name} off: ATC skips this fusion pass"))
    return notes


# ------------------------------------------------------------------------------ graph rules


def _check_zero_dims(model, shapes, add) -> None:
    # Empty tensors are legal as optional operands (Resize roi/scales in legacy exports).
    optional_slots = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
    uses: dict[str, set[tuple[str, int]]] = {}
    for node in model.graph.node:
        for slot, tensor in enumerate(node.input):
            uses.setdefault(tensor, set()).add((node.op_type, slot))
    for tensor, dims in shapes.items():
        if tensor in uses and uses[tensor] <= optional_slots:
            continue
        if any(d == 0 for d in dims):
            add(
                Finding(
                    "error",
                    "zero-sized-dim",
                    tensor,
                    "",
                    f"tensor '{tensor}' has shape {dims} with a 0-sized dim",
                    "remove the empty operand (often an empty Slice before Concat); 'fold-shapes' and "
                    "'eliminate-noops' remove those that are no-ops",
                    "eliminate-noops",
                )
            )


def _check_io(model, input_shape, batch_sizes, dynamic_batch_sizes, add) -> None:
    planned = parse_input_shape(input_shape)
    names = {v.name for v in graph_inputs(model)}
    for extra in sorted(set(planned) - names):
        add(
            Finding(
                "error",
                "input-shape",
                extra,
                "",
                f"--input_shape names '{extra}', which is not a graph input (inputs: {', '.join(sorted(names))})",
                "fix the input name in input_shape",
            )
        )
    wanted = set(batch_sizes or []) | set(dynamic_batch_sizes or [])
    for value in graph_inputs(model):
        if not value.type.tensor_type.HasField("shape"):
            add(
                Finding(
                    "error",
                    "input-shape",
                    value.name,
                    "",
                    f"graph input '{value.name}' has no shape (unknown rank)",
                    "give it a shape with the 'fix-input-shape' pass",
                    "fix-input-shape",
                )
            )
            continue
        dims = input_dims(value)
        symbolic = [axis for axis, d in enumerate(dims) if axis > 0 and not isinstance(d, int)]
        if value.name in planned:
            if len(planned[value.name]) != len(dims):
                add(
                    Finding(
                        "error",
                        "input-shape",
                        value.name,
                        "",
                        f"--input_shape gives {len(planned[value.name])} dims for '{value.name}', the graph has "
                        f"{len(dims)}",
                        "give one dim per axis in input_shape",
                    )
                )
        elif symbolic:
            add(
                Finding(
                    "error",
                    "input-shape",
                    value.name,
                    "",
                    f"graph input '{value.name}' {dims} has symbolic dims on axes {symbolic} and no planned "
                    "--input_shape covers it",
                    "fix them with the 'fix-input-shape' pass or give input_shape",
                    "fix-input-shape",
                )
            )
        if symbolic:
            add(
                Finding(
                    "warning",
                    "symbolic-dim",
                    value.name,
                    "",
                    f"graph input '{value.name}' {dims}: symbolic dims other than the batch on axes {symbolic}",
                    "make them static with 'fix-input-shape' then 'fold-shapes'",
                    "fix-input-shape",
                )
            )
        batch = dims[0] if dims else None
        other = sorted(wanted - {batch}) if isinstance(batch, int) and batch > 0 else []
        if other:
            add(
                Finding(
                    "error",
                    "static-batch",
                    value.name,
                    "",
                    f"graph input '{value.name}' has a static batch of {batch}, but batch sizes {other} are planned",
                    "make the batch symbolic with the 'dynamic-batch' pass",
                    "dynamic-batch",
                )
            )
    for value in model.graph.output:
        if not value.type.tensor_type.HasField("shape"):
            continue
        dims = input_dims(value)
        symbolic = [axis for axis, d in enumerate(dims) if axis > 0 and not isinstance(d, int)]
        if symbolic:
            add(
                Finding(
                    "warning",
                    "symbolic-dim",
                    value.name,
                    "",
                    f"graph output '{value.name}' {dims}: symbolic dims other than the batch on axes {symbolic} "
                    "(shape bookkeeping the graph did not fold)",
                    "fold the shape chains with 'fold-shapes' (after 'fix-input-shape' where inputs are symbolic)",
                    "fold-shapes",
                )
            )
