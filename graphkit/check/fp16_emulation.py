"""fp16 storage emulation: a model that computes what a device running some nodes in fp16 would.

:func:`emulate_fp16` is a model transform, not a validated pass: it changes the function on
purpose. The emulation model (docs/precision.md):

- a node *in fp16* reads every float input rounded to fp16 (its float initializers rounded in
  the weights, graph inputs and fp32 tensors through ``Cast(FLOAT16) -> Cast(FLOAT)``) and its
  float outputs are stored in fp16 (the same Cast pair after it); a value past fp16's range
  becomes +-inf there, as IEEE conversion does;
- the arithmetic inside a node stays fp32 (assumption: the device accumulates in fp32 inside an
  op; see docs/precision.md for what that can and cannot predict);
- a node *kept in fp32* reads its inputs as they are stored (an fp16 producer's output rounded,
  an fp32 producer's output and its own initializers unrounded) and stores fp32 outputs.

Nodes that only move or select values (Reshape, Transpose, Relu, MaxPool...) store their outputs
without a Cast pair when every float input they read is already rounded: rounding is idempotent.
Tensor names are kept: the original name holds the value as stored (after the Cast pair), the
node's raw output is renamed ``<name>__fp32`` (a fresh name when that one is taken). The Cast pairs survive onnxruntime's graph
optimizations at every level (checked in tests/check/test_fp16_emulation.py), so the emulated
model runs at the speed of an ordinary forward plus the casts.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.external_data import tensor_array
from graphkit.ir.shapes import fresh_name, known_value_types
from graphkit.util.errors import InputError

FP16_MAX = float(np.finfo(np.float16).max)  # 65504

# Ops whose float outputs are some of their float inputs' values (moved, selected or clamped at 0):
# rounded inputs give rounded outputs, so they need no Cast pair after them.
VALUE_PRESERVING_OPS = frozenset(
    {
        "Identity",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Slice",
        "Gather",
        "GatherElements",
        "GatherND",
        "Concat",
        "Split",
        "Expand",
        "Tile",
        "MaxPool",
        "Relu",
        "ReduceMax",
        "ReduceMin",
        "Max",
        "Min",
        "Neg",
        "Abs",
        "DepthToSpace",
        "SpaceToDepth",
        "Where",
    }
)


def float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the fp32 tensors of the main graph (declared, inferred, or initializers)."""
    names = {name for name, vtype in known_value_types(model).items() if vtype.elem_type == TensorProto.FLOAT}
    names |= {t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}
    names |= {v.name for v in model.graph.input if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    return names


def candidate_nodes(model: onnx.ModelProto, floats: Collection[str] | None = None) -> list[int]:
    """Indices of the nodes whose precision can matter: those with a float output.

    Value-preserving ops count too: kept in fp32, such a node reads an fp32 producer's value
    unrounded (a Relu between an overflowing MatMul and the Div that scales it back down)."""
    floats = float_tensors(model) if floats is None else floats
    return [index for index, node in enumerate(model.graph.node) if any(t in floats for t in node.output if t)]


def round_fp16(values: np.ndarray) -> np.ndarray:
    """fp32 values rounded to the nearest fp16 (past 65504: inf), returned as fp32."""
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float32).astype(np.float16).astype(np.float32)


def emulate_fp16(
    model: onnx.ModelProto, fp16_nodes: Collection[int], floats: Collection[str] | None = None
) -> onnx.ModelProto:
    """A copy of ``model`` where the nodes at indices ``fp16_nodes`` run in fp16 (module docstring).

    Every other node is kept in fp32. Raises InputError when the model has no fp32 tensor.
    """
    floats = set(float_tensors(model) if floats is None else floats)
    if not floats:
        raise InputError("the model has no float32 tensor: there is nothing for fp16 to change")
    fp16 = set(fp16_nodes)
    graph = model.graph
    nodes = list(graph.node)
    readers: dict[str, set[int]] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            readers.setdefault(name, set()).add(index)
    taken = {t for n in nodes for t in (*n.input, *n.output)} | {t.name for t in graph.initializer}
    taken |= {v.name for v in (*graph.input, *graph.output)}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    del out.graph.initializer[:]
    rounded: dict[str, str] = {}  # tensor -> name of its fp16-rounded value
    new_nodes: list[onnx.NodeProto] = []
    for init in graph.initializer:
        users = readers.get(init.name, set())
        if init.name not in floats or init.data_type != TensorProto.FLOAT or not users & fp16:
            out.graph.initializer.append(init)
            continue
        value = round_fp16(tensor_array(init))
        if users <= fp16 and init.name not in {o.name for o in graph.output}:
            out.graph.initializer.append(numpy_helper.from_array(value, init.name))
            rounded[init.name] = init.name
        else:  # also read in fp32: both versions
            out.graph.initializer.append(init)
            name = fresh_name(f"{init.name}__fp16", taken)
            out.graph.initializer.append(numpy_helper.from_array(value, name))
            rounded[init.name] = name

    def cast_pair(source: str, target: str, label: str) -> None:
        half = fresh_name(f"{target}__half", taken)
        new_nodes.append(helper.make_node("Cast", [source], [half], name=f"{label}__to_fp16", to=TensorProto.FLOAT16))
        new_nodes.append(helper.make_node("Cast", [half], [target], name=f"{label}__to_fp32", to=TensorProto.FLOAT))

    def rounded_input(name: str) -> str:
        if name not in rounded:
            target = fresh_name(f"{name}__fp16", taken)
            cast_pair(name, target, f"{name}__round")
            rounded[name] = target
        return rounded[name]

    for index, node in enumerate(nodes):
        new = onnx.NodeProto()
        new.CopyFrom(node)
        if index not in fp16:
            new_nodes.append(new)
            continue
        for slot, name in enumerate(node.input):
            if name and name in floats:
                new.input[slot] = rounded_input(name)
        float_outputs = [t for t in node.output if t and t in floats]
        if node.op_type in VALUE_PRESERVING_OPS:  # its float inputs are rounded now: so are its outputs
            new_nodes.append(new)
            rounded.update((t, t) for t in float_outputs)
            continue
        raw = {name: fresh_name(f"{name}__fp32", taken) for name in float_outputs}
        for slot, name in enumerate(node.output):
            if name in raw:
                new.output[slot] = raw[name]
        new_nodes.append(new)
        for name in float_outputs:
            cast_pair(raw[name], name, node.name or name)
            rounded[name] = name
    out.graph.node.extend(new_nodes)
    del out.graph.value_info[:]  # stale after the renames; onnxruntime infers what it needs
    return out


def emulated_positions(model: onnx.ModelProto, emulated: onnx.ModelProto) -> list[int]:
    """For each node of ``model``, the index in ``emulated`` of the last node that stores its outputs."""
    position_of: dict[str, int] = {}
    for index, node in enumerate(emulated.graph.node):
        for name in node.output:
            position_of[name] = index
    positions = []
    for node in model.graph.node:
        outs = [position_of[t] for t in node.output if t in position_of]
        positions.append(max(outs) if outs else (positions[-1] if positions else 0))
    return positions
