"""Load and save ONNX models safely.

- :func:`load_model` and :func:`save_model` stream tensors one at a time
  (:mod:`graphkit.ir.protostream`), so peak memory stays near the model's own size.
  ``load_model(..., mapped=True)`` (what ``apply`` and ``localize`` use) leaves the weights of
  1 MiB or more in their files as mapped stubs (:mod:`graphkit.ir.external_data`): the model
  in memory is the graph, and weights are read, hashed, handed to onnxruntime and saved from
  the files.
- :func:`load_model` turns every way a file can be bad (missing, empty, truncated, not ONNX,
  missing external data) into one :class:`~graphkit.util.errors.ModelLoadError` naming the file.
- :func:`load_user_model` is what every command calls on a model file a user names: it loads
  the file and refuses graphs graphkit cannot trust (:func:`graphkit.ir.model_check.invalid_reason`: cycles, undefined
  or duplicate names, unknown ops or versions, inconsistent weights, inputs graphkit cannot
  feed), with one line naming the file and the problem. Custom-domain ops are allowed.
- :func:`save_model` writes atomically (temp file in the target folder, then rename), switching
  to an external data file when the model is over the 2 GB protobuf limit or when asked.
- :func:`check_model` / :func:`infer_shapes` wrap the ONNX checker and shape inference, also
  for models over 2 GB (through a temporary file).
- :func:`content_hash` is a fast, stable fingerprint of a model's full content.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import onnx
import xxhash
from google.protobuf.message import DecodeError

from graphkit.ir.external_data import (
    is_mapped,
    map_external_data,
    mapped_span,
    raw_digest,
)
from graphkit.ir.model_check import invalid_reason
from graphkit.ir.protostream import copy_field, read_model, write_model
from graphkit.ir.weight_file import WeightFileWriter
from graphkit.util.errors import ModelLoadError, ModelSaveError, PassError, one_line
from graphkit.util.files import atomic_paths

PROTOBUF_LIMIT = 2**31 - 1  # bytes; a serialized ModelProto cannot exceed this
SINGLE_FILE_LIMIT = PROTOBUF_LIMIT - 64 * 2**20  # above this, weights go to an external data file
EXTERNAL_THRESHOLD = 1024  # bytes; tensors at least this big go to the data file


def load_model(path: str | os.PathLike, load_external_data: bool = True, mapped: bool = False) -> onnx.ModelProto:
    """Read an ONNX file (and its external data) or raise ModelLoadError naming the file.

    ``mapped=True`` leaves external weights in their files as mapped stubs
    (:func:`graphkit.ir.external_data.map_external_data`: checked now, read through read-only
    memory maps later) instead of loading them into the proto, and so are inline weights of at
    least :data:`graphkit.ir.external_data.MAP_MIN_BYTES` (stubs over their bytes in ``path``).
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory, not an ONNX file")
    if not path.is_file():  # reading a FIFO or a device would block or never end
        raise ModelLoadError(f"{path}: not a regular file (a device, FIFO or socket)")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: file is empty")
    try:
        with open(path, "rb", buffering=1 << 20) as handle:
            # one tensor at a time: peak memory ~ the model's size (mapped: large weights left in the file)
            model = read_model(handle, path.name if mapped and load_external_data else None)
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a valid ONNX model (truncated or not ONNX: {one_line(exc, 200)})") from exc
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    _check_plausible(model, path)
    if load_external_data and mapped and _uses_external_data(model):
        try:
            map_external_data(model, path.parent, path.name)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{path}: {exc}") from exc
    elif load_external_data and _uses_external_data(model):
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as exc:
            raise ModelLoadError(f"{path}: external data missing or unreadable ({one_line(exc, 200)})") from exc
    return model


def load_user_model(path: str | os.PathLike, load_external_data: bool = True, mapped: bool = False) -> onnx.ModelProto:
    """Load a model file named by a user and check it; the one entry point of every command.

    Raises ModelLoadError ``"<path>: invalid model: <problem>"`` (see :func:`invalid_reason`)
    for a parseable but invalid graph, and load_model's errors for unreadable files.
    """
    model = load_model(path, load_external_data, mapped)
    problem = invalid_reason(model)
    if problem:
        raise ModelLoadError(f"{path}: invalid model: {problem}")
    return model


def _check_plausible(model: onnx.ModelProto, path: Path) -> None:
    # Protobuf parses many non-ONNX byte strings (and truncated files cut at a field
    # boundary) without complaint; a real model has an IR version, an opset and a graph.
    if model.ir_version <= 0 or not model.HasField("graph") or len(model.opset_import) == 0:
        raise ModelLoadError(f"{path}: not a valid ONNX model (no IR version, opset or graph; truncated or not ONNX)")
    if not model.graph.output:
        raise ModelLoadError(f"{path}: not a valid ONNX model (graph has no outputs; truncated?)")
    produced = {o for n in model.graph.node for o in n.output}
    produced |= {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    produced |= {t.values.name for t in model.graph.sparse_initializer}
    missing = [o.name for o in model.graph.output if o.name not in produced]
    if missing:
        raise ModelLoadError(f"{path}: not a valid ONNX model (outputs {missing} are never produced; truncated?)")


def _uses_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def model_size(model: onnx.ModelProto) -> int:
    """Serialized size in bytes, summed part by part (within a few bytes per part).

    ``ModelProto.ByteSize()`` costs as much as serializing the whole model (1.7 s at 520 MB);
    summing the parts costs a few milliseconds and never trips the 2 GB protobuf limit. A raw
    weight is counted from its dims (:func:`_raw_tensor_size`): reading its bytes, even for their
    length, copies them.
    """
    graph = model.graph
    weights = sum(_raw_tensor_size(tensor) + 6 for tensor in graph.initializer)
    parts = (
        graph.sparse_initializer,
        graph.node,
        graph.input,
        graph.output,
        graph.value_info,
        model.functions,
        model.metadata_props,
    )
    return weights + sum(item.ByteSize() + 6 for group in parts for item in group) + 4096


def _raw_tensor_size(tensor: onnx.TensorProto) -> int:
    """A tensor's serialized size, from its dims when it holds raw data of a fixed-width type."""
    if is_mapped(tensor):
        return mapped_span(tensor)[2] + tensor.ByteSize()
    if not tensor.HasField("raw_data"):
        return tensor.ByteSize()
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return tensor.ByteSize()
    count = 1
    for dim in tensor.dims:
        count *= dim
    if itemsize * count < 4096 or tensor.data_type == onnx.TensorProto.STRING:
        return tensor.ByteSize()  # small: exact; sub-byte types (4-bit) are over-counted, never under
    return itemsize * count + len(tensor.name) + 16 + 11 * len(tensor.dims)


def too_big_for_one_file(model: onnx.ModelProto) -> bool:
    """Whether the model must be stored (and handed to onnx/ORT) with external data."""
    return model_size(model) > SINGLE_FILE_LIMIT


def save_model(
    model: onnx.ModelProto,
    path: str | os.PathLike,
    external_data: bool | None = None,
) -> Path:
    """Write ``model`` to ``path`` atomically; returns the path.

    ``external_data=None`` stores weights in ``<name>.data`` beside the model only when the
    model is too large for one protobuf file. Nothing is left half-written on failure.
    """
    path = Path(path)
    if external_data is None:
        external_data = too_big_for_one_file(model)
    data_name = path.name + ".data"
    with atomic_paths(path, path.parent / data_name) as (tmp_model, _):
        try:
            if external_data:
                _save_external(model, Path(tmp_model), data_name)
            else:
                with open(tmp_model, "wb", buffering=1 << 20) as handle:
                    write_model(model, handle)  # one tensor at a time, no whole-model buffer
        except ValueError as exc:
            raise ModelSaveError(f"{path}: cannot write model ({one_line(exc, 200)})") from exc
    return path


def _save_external(model: onnx.ModelProto, tmp_model: Path, data_name: str) -> None:
    """Write ``model`` to ``tmp_model`` with its large weights streamed to ``data_name`` beside it.

    Each main-graph initializer of at least EXTERNAL_THRESHOLD bytes of ``raw_data`` is written
    to the data file as it is (no copy of the model, no re-serialization of the weights) and
    replaced by an external-data stub in a light copy of the graph: what onnx's own
    ``save_as_external_data`` moves out, without its copy of the model (``Constant`` nodes and
    typed-field tensors stay in the proto, as there). Large weights start on aligned offsets,
    and a save of many mapped bytes copies them with direct I/O (:mod:`graphkit.ir.weight_file`).
    """
    light = without_initializers(model)
    mapped_bytes = sum(mapped_span(t)[2] for t in model.graph.initializer if is_mapped(t))
    with WeightFileWriter(tmp_model.parent / data_name, mapped_bytes) as data:
        for tensor in model.graph.initializer:
            if not is_mapped(tensor):  # mapped weights are copied from their files, never through the proto
                size = len(tensor.raw_data) if tensor.HasField("raw_data") else 0
                if size < EXTERNAL_THRESHOLD or tensor.data_location == onnx.TensorProto.EXTERNAL:
                    light.graph.initializer.append(tensor)
                    continue
            offset, size = data.append(tensor)
            stub = light.graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
            stub.doc_string = tensor.doc_string
            stub.metadata_props.extend(tensor.metadata_props)
            stub.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(size))):
                stub.external_data.add(key=key, value=value)
    with open(tmp_model, "wb", buffering=1 << 20) as handle:
        write_model(light, handle)


def without_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every field but the main graph's initializers (no weight copied)."""
    light = onnx.ModelProto()
    for descriptor, value in model.ListFields():
        if descriptor.name != "graph":
            copy_field(light, descriptor, value)
    for descriptor, value in model.graph.ListFields():
        if descriptor.name != "initializer":
            copy_field(light.graph, descriptor, value)
    return light


def check_model(model: onnx.ModelProto, what: str = "model") -> None:
    """Run the ONNX checker; raise PassError naming ``what`` and the checker's message.

    Mapped weights stay in their files: the checker sees their stubs (a skeleton copy).
    """
    try:
        if has_mapped_weights(model):
            onnx.checker.check_model(_skeleton(model)[0])
        elif too_big_for_one_file(model):
            with tempfile.TemporaryDirectory() as tmp:
                saved = save_model(model, Path(tmp) / "check.onnx", external_data=True)
                onnx.checker.check_model(str(saved))
        else:
            onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise PassError(f"{what} fails the ONNX checker: {one_line(exc, 200)}") from exc


def infer_shapes(model: onnx.ModelProto, what: str = "model", strict: bool = True) -> onnx.ModelProto:
    """Return ``model`` with inferred value_info; raise PassError on inconsistent shapes.

    Mapped weights stay in their files: inference runs on the skeleton (their stubs), and the
    result keeps them mapped.
    """
    try:
        if has_mapped_weights(model):
            skeleton, added = _skeleton(model)
            inferred = onnx.shape_inference.infer_shapes(skeleton, check_type=True, strict_mode=strict, data_prop=True)
            kept = [value for value in inferred.graph.input if value.name not in added]
            del inferred.graph.input[:]
            inferred.graph.input.extend(kept)
            inferred.graph.initializer.extend(t for t in model.graph.initializer if is_mapped(t))
            return inferred
        if too_big_for_one_file(model):
            with tempfile.TemporaryDirectory() as tmp:
                saved = save_model(model, Path(tmp) / "shapes.onnx", external_data=True)
                onnx.shape_inference.infer_shapes_path(str(saved), str(saved), check_type=True, strict_mode=strict)
                return load_model(saved)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=strict, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError) as exc:
        raise PassError(f"{what}: shape inference failed: {one_line(exc, 200)}") from exc


def has_mapped_weights(model: onnx.ModelProto) -> bool:
    """Whether any main-graph weight of ``model`` is a mapped stub (see :func:`load_model`)."""
    return any(is_mapped(tensor) for tensor in model.graph.initializer)


def _skeleton(model: onnx.ModelProto) -> tuple[onnx.ModelProto, set[str]]:
    """A copy of ``model`` whose mapped weights are typed graph inputs (the ONNX checker and
    shape inference would otherwise look for their files relative to the working folder), and
    the names of the inputs added. The weights themselves were checked at load (their files'
    ranges and lengths: :func:`graphkit.ir.external_data.map_external_data`)."""
    skeleton = without_initializers(model)
    declared = {value.name for value in model.graph.input}
    added: set[str] = set()
    for tensor in model.graph.initializer:
        if not is_mapped(tensor):
            skeleton.graph.initializer.append(tensor)
        elif tensor.name not in declared:
            skeleton.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
            added.add(tensor.name)
    return skeleton, added


def content_hash(model: onnx.ModelProto) -> str:
    """A stable 128-bit hex fingerprint of everything in the model, weights included.

    Nodes, I/O and metadata are hashed through their deterministic serialization; each raw
    weight through its own digest (:func:`graphkit.ir.external_data.raw_digest`: a mapped weight
    hashed once from its file, to the same digest as the same weight held in the proto).
    """
    digest = xxhash.xxh3_128()
    header = onnx.ModelProto()
    header.ir_version = model.ir_version
    header.opset_import.extend(model.opset_import)
    header.metadata_props.extend(model.metadata_props)
    header.functions.extend(model.functions)
    digest.update(header.SerializeToString(deterministic=True))
    _hash_graph(model.graph, digest)
    return digest.hexdigest()


def _hash_graph(graph: onnx.GraphProto, digest) -> None:
    for group in (graph.input, graph.output, graph.value_info, graph.node, graph.sparse_initializer):
        digest.update(b"|%d|" % len(group))
        for item in group:
            digest.update(item.SerializeToString(deterministic=True))
    digest.update(b"|init|%d|" % len(graph.initializer))
    for tensor in graph.initializer:
        digest.update(tensor.name.encode())
        digest.update(b"%d:%s" % (tensor.data_type, ",".join(map(str, tensor.dims)).encode()))
        if tensor.HasField("raw_data") or is_mapped(tensor):
            digest.update(raw_digest(tensor))  # a mapped weight: hashed once, from its file
        else:
            digest.update(tensor.SerializeToString(deterministic=True))


def subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Every name read inside the node's subgraphs (If/Loop/Scan bodies; outer-scope captures
    included, recursively): names a dead-code or folding pass must keep alive."""
    reads: set[str] = set()
    for attribute in node.attribute:
        graphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for graph in graphs:
            for inner in graph.node:
                reads.update(inner.input)
                reads |= subgraph_reads(inner)
            reads.update(o.name for o in graph.output)
    return reads


def remove_initializers(graph: onnx.GraphProto, names: set[str]) -> int:
    """Delete the initializers called ``names`` in place; returns how many went.

    Rebuilding the list instead (``del graph.initializer[:]`` then ``extend``) copies every kept
    tensor twice, 1 GB of extra memory per pass on a 500 MB model.
    """
    removed = 0
    for index in range(len(graph.initializer) - 1, -1, -1):
        if graph.initializer[index].name in names:
            del graph.initializer[index]
            removed += 1
    return removed


def remove_nodes_at(graph: onnx.GraphProto, indices: set[int]) -> int:
    """Delete the nodes at ``indices`` in place, keeping the others' order; returns how many went.

    Like :func:`remove_initializers`, this avoids rebuilding the list, which copies every kept
    node (and each ``Constant`` node's tensor). Runs of consecutive indices go in one slice.
    """
    ordered = sorted(i for i in indices if 0 <= i < len(graph.node))
    runs: list[list[int]] = []
    for index in ordered:
        if runs and runs[-1][1] == index:
            runs[-1][1] = index + 1
        else:
            runs.append([index, index + 1])
    for start, end in reversed(runs):
        del graph.node[start:end]
    return len(ordered)


ONNX_DOMAINS = ("", "ai.onnx")
"""The two spellings of the default ONNX domain in ``NodeProto.domain`` and ``opset_import``."""


def default_opset(model: onnx.ModelProto) -> int:
    """The opset version of the default ONNX domain (0 when absent)."""
    for entry in model.opset_import:
        if entry.domain in ONNX_DOMAINS:
            return entry.version
    return 0


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The real inputs of the graph (initializers listed as inputs excluded)."""
    inits = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in inits]


def op_counts(model: onnx.ModelProto) -> Counter:
    """Number of nodes per op type (custom domains prefixed with ``domain::``)."""
    return Counter(
        f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in model.graph.node
    )


def clone(model: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy of ``model``."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy
