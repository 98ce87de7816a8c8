"""Model files to feed the commands: valid small models, byte-level corruptions, invalid graphs.

Every generator returns a :class:`ModelCase`: the file content (bytes), a label naming what was
done (it becomes part of a finding's signature), and what is known about it. ``invalid`` marks
graphs that issue 10 lists as invalid (a cycle, an input nothing produces, duplicate names, an
unknown op or domain, opset 99, IR version 999, a raw_data length that does not match the
shape, complex/untyped/sequence inputs, an empty op_type): a command that reads a model must
not accept them with exit 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fuzz.choices import Choices
from graphkit.pipeline.demo_model import demo_model

PWNED = "graphkit_fuzz_pwned"  # a file name that injected shell code would create


@dataclass
class ModelCase:
    """A generated model file."""

    data: bytes
    label: str
    valid: bool = False  # a well-formed model onnxruntime runs
    invalid: bool = False  # a graph the issue lists as invalid (must not be accepted)
    proto: onnx.ModelProto | None = None  # the parsed model, when it was built as a proto


def demo_variant(choices: Choices) -> onnx.ModelProto:
    """The built-in demo model with a random seed, channel count and size (valid, dynamic batch)."""
    return demo_model(seed=choices.integer(0, 3), channels=choices.pick([2, 4, 8]), size=choices.pick([4, 8, 16]))


def segmentation_model(size: int = 16, static_batch: bool = False) -> onnx.ModelProto:
    """A tiny wseg-shaped model: ``image [N,3,S,S] -> cls [N,20], mask [N,21,S,S]`` (valid)."""
    rng = np.random.default_rng(0)
    batch: str | int = 1 if static_batch else "batch"
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["logits"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("Softmax", ["logits"], ["mask"], name="softmax", axis=1),
        helper.make_node("ReduceMean", ["logits"], ["pooled"], name="pool", axes=[2, 3], keepdims=0),
        helper.make_node("Slice", ["pooled", "starts", "ends", "axes"], ["cls"], name="fg"),
    ]
    inits = [
        numpy_helper.from_array(rng.standard_normal((21, 3, 1, 1)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(21).astype(np.float32), "b"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "starts"),
        numpy_helper.from_array(np.array([21], dtype=np.int64), "ends"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
    ]
    graph = helper.make_graph(
        nodes,
        "fuzz-segmentation",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, size, size])],
        [
            helper.make_tensor_value_info("cls", TensorProto.FLOAT, [batch, 20]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, [batch, 21, size, size]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model


def valid_model(choices: Choices) -> ModelCase:
    """A valid model: a demo variant (most often), a static-batch demo, or the segmentation model."""
    kind = choices.pick(["demo", "demo", "demo", "static", "segmentation"])
    if kind == "segmentation":
        model = segmentation_model(size=choices.pick([8, 16]), static_batch=choices.chance(0.3))
    else:
        model = demo_variant(choices)
        if kind == "static":
            for value in list(model.graph.input) + list(model.graph.output):
                value.type.tensor_type.shape.dim[0].dim_value = 1
    return ModelCase(model.SerializeToString(), f"valid-{kind}", valid=True, proto=model)


# --- byte-level corruption -------------------------------------------------------------------


def corrupt_bytes(choices: Choices, data: bytes) -> tuple[bytes, str]:
    """Truncate, flip, splice or replace ``data``; returns the new bytes and what was done."""
    kind = choices.pick(["truncate", "truncate", "flip", "flip", "flip", "random", "empty", "tiny", "huge-length"])
    if kind == "truncate":
        return data[: choices.integer(1, max(1, len(data) - 1))], "truncated"
    if kind == "flip":
        out = bytearray(data)
        for _ in range(choices.pick([1, 1, 2, 4, 16])):
            position = choices.integer(0, len(out) - 1)
            out[position] ^= 1 << choices.integer(0, 7)
        return bytes(out), "byte-flipped"
    if kind == "random":
        return choices.data(choices.pick([1, 10, 100, 2000])), "random-bytes"
    if kind == "empty":
        return b"", "empty"
    if kind == "tiny":
        return choices.data(choices.integer(1, 12)), "tiny-random"
    # a graph field (7, length-delimited) whose varint length claims gigabytes
    return b"\x08\x07\x3a\xff\xff\xff\xff\x0f" + choices.data(2), "huge-length-field"


def corrupted_model(choices: Choices) -> ModelCase:
    """A valid model's bytes, corrupted."""
    base = valid_model(choices)
    data, label = corrupt_bytes(choices, base.data)
    return ModelCase(data, f"bytes-{label}")


# --- invalid graphs ---------------------------------------------------------------------------


def _cycle(m):
    m.graph.node[0].input[0] = m.graph.node[1].output[0]  # conv reads relu, relu reads conv


def _dangling(m):
    m.graph.node[1].input[0] = "produced_by_nobody"


def _duplicate_output(m):
    m.graph.node[1].output[0] = m.graph.node[0].output[0]


def _duplicate_initializer(m):
    m.graph.initializer.append(m.graph.initializer[0])


def _unknown_op(m):
    m.graph.node[1].op_type = "NoSuchOp"


def _unknown_domain(m):
    m.graph.node[1].domain = "com.example.fuzz"
    m.opset_import.append(helper.make_opsetid("com.example.fuzz", 1))


def _opset_99(m):
    m.opset_import[0].version = 99


def _ir_999(m):
    m.ir_version = 999


def _raw_data_short(m):
    tensor = m.graph.initializer[0]
    tensor.raw_data = tensor.raw_data[: len(tensor.raw_data) // 2]


def _complex_input(m):
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.COMPLEX64


def _untyped_input(m):
    m.graph.input[0].ClearField("type")


def _sequence_input(m):
    value = m.graph.input[0]
    value.type.CopyFrom(helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, None)))


def _empty_op(m):
    m.graph.node[1].op_type = ""


INVALID_GRAPHS = {
    "cycle": _cycle,
    "dangling-input": _dangling,
    "duplicate-output-name": _duplicate_output,
    "duplicate-initializer": _duplicate_initializer,
    "unknown-op": _unknown_op,
    "unknown-domain": _unknown_domain,
    "opset-99": _opset_99,
    "ir-version-999": _ir_999,
    "raw-data-length": _raw_data_short,
    "complex-input": _complex_input,
    "untyped-input": _untyped_input,
    "sequence-input": _sequence_input,
    "empty-op-type": _empty_op,
}


def _nan_weights(m):
    tensor = m.graph.initializer[0]
    values = numpy_helper.to_array(tensor).copy()
    values.flat[0] = np.nan
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))


def _huge_dims(m):
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value = 1
    dims[-1].dim_value = 2**31 - 1


def _zero_dim(m):
    m.graph.input[0].type.tensor_type.shape.dim[-1].dim_value = 0


def _negative_dim(m):
    m.graph.input[0].type.tensor_type.shape.dim[-1].dim_value = -3


def _hostile_names(m):
    old = m.graph.output[0].name
    new = f"out\n{PWNED} $(touch {PWNED}) `touch {PWNED}`; touch {PWNED} #"
    m.graph.output[0].name = new
    for node in m.graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _no_nodes(m):
    del m.graph.node[:]
    m.graph.output[0].CopyFrom(m.graph.input[0])
    del m.graph.output[1:]


def _external_outside(m):
    tensor = m.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../secret.bin"


def _external_missing(m):
    tensor = m.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "missing.data"


def _bad_attribute(m):
    for node in m.graph.node:
        if node.op_type == "Transpose":
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("perm", [0, 0, 1, 2]))
            return


# Odd but not listed as invalid: handled either way, never a crash.
ODD_GRAPHS = {
    "nan-weights": _nan_weights,
    "huge-dims": _huge_dims,
    "zero-dim": _zero_dim,
    "negative-dim": _negative_dim,
    "hostile-names": _hostile_names,
    "no-nodes": _no_nodes,
    "external-data-outside": _external_outside,
    "external-data-missing": _external_missing,
    "bad-attribute": _bad_attribute,
}


def mutated_graph(choices: Choices) -> ModelCase:
    """A demo variant with one graph-level mutation (listed-invalid or merely odd)."""
    model = demo_variant(choices)
    listed = choices.chance(0.6)
    name = choices.pick(sorted(INVALID_GRAPHS if listed else ODD_GRAPHS))
    (INVALID_GRAPHS if listed else ODD_GRAPHS)[name](model)
    return ModelCase(model.SerializeToString(), f"graph-{name}", invalid=listed, proto=model)


def model_case(choices: Choices) -> ModelCase:
    """Any model file: valid (about 40 %), corrupted bytes or a mutated graph."""
    roll = choices.unit()
    if roll < 0.4:
        return valid_model(choices)
    if roll < 0.7:
        return corrupted_model(choices)
    return mutated_graph(choices)
