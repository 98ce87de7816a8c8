"""A static lint for ATC: what in an ONNX graph the Ascend compiler rejects or reads differently.

:func:`precheck` returns a :class:`~graphkit.ascend.precheck_report.PrecheckReport` of
:class:`~graphkit.ascend.precheck_report.Finding` s (the per-node rules are in
:mod:`graphkit.ascend.precheck_node_rules`, the graph-wide ones here). Each finding has a
level (``error``: ATC fails or computes something else than onnxruntime; ``warning``: may
fail or differ, check it; ``perf``: compiles but runs slower than it needs to), the rule id,
the node, a message and a fix hint that names a graphkit pass where one exists.

Rules (ids):

- ``invalid-graph``: the graph is not valid ONNX for graphkit (a cycle, an undefined or duplicate
  name, an unknown op...: :func:`graphkit.ir.model_check.invalid_reason`); the only finding, since the
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

import onnx

from graphkit.ascend.precheck_node_rules import NODE_RULES
from graphkit.ascend.precheck_report import Finding, PrecheckReport
from graphkit.ascend.spec import cann_opset_range, parse_input_shape
from graphkit.ir.model_check import invalid_reason
from graphkit.ir.model_io import default_opset, graph_inputs
from graphkit.ir.shapes import known_value_types
from graphkit.runtime.feeds import input_dims


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
        for check in NODE_RULES.get(node.op_type, ()):
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


# ----------------------------------------------------------------------------------- notes

# What a fusion switch file that turns SoftmaxFusionPass off changes. What is known: the one
# public implementation of the pass (CANN's softmax_fusion_pass.cpp in canndev mirrors, read
# through code search; repository not pinned) acts only on a 3-D SoftmaxV2 over its last axis
# ([H, W, C], axis 2) whose sizes pass its own pattern check: it runs the softmax on [H, C, W]
# between two TransposeD(0, 2, 1) nodes; any other rank or axis is left unchanged. Its header
# calls it "Permute fusion pass (softmax --> TransposeD)". Which CANN versions ship that code,
# and the numerical effect of turning it off, no public source states: unverified. The Wseg
# guide once shipped a fusion_swith.cfg with SoftmaxFusionPass:off (Ascend/ModelZoo-PyTorch
# ACL_PyTorch/contrib/cv/segmentation/Wseg/fusion_swith.cfg at commit 3d26942); the current
# guide's ATC line gives no --fusion_switch_file (README at mirror commit 291a976).
FUSION_PASS_NOTES = {
    "SoftmaxFusionPass": (
        "SoftmaxFusionPass off: the public implementation of this pass only rewrites a 3-D last-axis softmax "
        "into TransposeD + softmax + TransposeD (other ranks and axes are left as they are), so turning it off "
        "changes nothing for a 4-D Softmax; which CANN versions ship that code, and the numerical effect, are "
        "unverified (the current Wseg guide no longer uses a fusion switch file)"
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
