"""The per-node rules of :func:`graphkit.ascend.precheck.precheck` (Softmax, Resize, indices, AveragePool, Pad).

Each rule is ``rule(node, node_name, opset, shapes, producers, consumers, constants)`` and yields
:class:`~graphkit.ascend.precheck_report.Finding` s; :data:`NODE_RULES` maps an op type to its
rules. The rule ids and their sources are listed in :mod:`graphkit.ascend.precheck`.
"""

from __future__ import annotations

import onnx

from graphkit.ascend.precheck_report import Finding

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
# hiascend.com, CANN ONNX operator specifications, "Pad" (atlasoxol_09_0111, CANNCommunityEdition 8.0
# to 9.0; canncommercial/5046 atlasoxol_09_0129 for opset 11): mode constant/reflect/edge, and with
# mode constant only constant_value=0.
PAD_SOURCE = "CANN ONNX operator spec 'Pad', hiascend.com atlasoxol_09_0111"


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
            f"Pad constant_value comes from the graph; CANN's ONNX Pad supports only constant_value=0 in mode "
            f"constant ({PAD_SOURCE})",
            "make the pad value a constant 0",
        )
    elif value not in (None, 0, 0.0):
        # CANN's ONNX operator specification for Pad: "When the value of mode is constant, only
        # constant_value=0 is supported" (PAD_SOURCE). fold-shapes with pad_with_zero (the wseg
        # pipelines) avoids it.
        yield Finding(
            "error",
            "pad-constant",
            node_name,
            node.op_type,
            f"Pad constant_value {value}: CANN's ONNX Pad supports only constant_value=0 in mode constant "
            f"({PAD_SOURCE})",
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


NODE_RULES = {
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
