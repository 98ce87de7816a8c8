"""Load and save ONNX models safely.

- :func:`load_model` and :func:`save_model` stream tensors one at a time
  (:mod:`graphkit.ir.protostream`), so peak memory stays near the model's own size.
- :func:`load_model` turns every way a file can be bad (missing, empty, truncated, not ONNX,
  missing external data) into one :class:`~graphkit.util.errors.ModelLoadError` naming the file.
- :func:`load_user_model` is what every command calls on a model file a user names: it loads
  the file and refuses graphs graphkit cannot trust (:func:`invalid_reason`: cycles, undefined
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

from graphkit.ir.protostream import read_model, write_model
from graphkit.ir.shapes import skeleton
from graphkit.util.errors import ModelLoadError, ModelSaveError, PassError, one_line, printable
from graphkit.util.files import atomic_paths

PROTOBUF_LIMIT = 2**31 - 1  # bytes; a serialized ModelProto cannot exceed this
SINGLE_FILE_LIMIT = PROTOBUF_LIMIT - 64 * 2**20  # above this, weights go to an external data file
EXTERNAL_THRESHOLD = 1024  # bytes; tensors at least this big go to the data file


def load_model(path: str | os.PathLike, load_external_data: bool = True) -> onnx.ModelProto:
    """Read an ONNX file (and its external data) or raise ModelLoadError naming the file."""
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
            model = read_model(handle)  # one tensor at a time: peak memory ~ the model's size
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a valid ONNX model (truncated or not ONNX: {one_line(exc, 200)})") from exc
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    _check_plausible(model, path)
    if load_external_data and _uses_external_data(model):
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as exc:
            raise ModelLoadError(f"{path}: external data missing or unreadable ({one_line(exc, 200)})") from exc
    return model


def load_user_model(path: str | os.PathLike, load_external_data: bool = True) -> onnx.ModelProto:
    """Load a model file named by a user and check it; the one entry point of every command.

    Raises ModelLoadError ``"<path>: invalid model: <problem>"`` (see :func:`invalid_reason`)
    for a parseable but invalid graph, and load_model's errors for unreadable files.
    """
    model = load_model(path, load_external_data)
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
    summing the parts costs a few milliseconds and never trips the 2 GB protobuf limit.
    """
    graph = model.graph
    parts = (
        graph.initializer,
        graph.sparse_initializer,
        graph.node,
        graph.input,
        graph.output,
        graph.value_info,
        model.functions,
        model.metadata_props,
    )
    return sum(item.ByteSize() + 6 for group in parts for item in group) + 4096


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
            if external_data:  # onnx writes the data file beside the model under ``location``
                to_save = onnx.ModelProto()
                to_save.CopyFrom(model)
                onnx.save_model(
                    to_save,
                    str(tmp_model),
                    save_as_external_data=True,
                    all_tensors_to_one_file=True,
                    location=data_name,
                    size_threshold=EXTERNAL_THRESHOLD,
                )
            else:
                with open(tmp_model, "wb", buffering=1 << 20) as handle:
                    write_model(model, handle)  # one tensor at a time, no whole-model buffer
        except ValueError as exc:
            raise ModelSaveError(f"{path}: cannot write model ({one_line(exc, 200)})") from exc
    return path


def check_model(model: onnx.ModelProto, what: str = "model") -> None:
    """Run the ONNX checker; raise PassError naming ``what`` and the checker's message."""
    try:
        if too_big_for_one_file(model):
            with tempfile.TemporaryDirectory() as tmp:
                saved = save_model(model, Path(tmp) / "check.onnx", external_data=True)
                onnx.checker.check_model(str(saved))
        else:
            onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise PassError(f"{what} fails the ONNX checker: {one_line(exc, 200)}") from exc


def check_tensor_sizes(model: onnx.ModelProto, what: str = "model") -> None:
    """Every raw-data initializer holds exactly the bytes its dims and data type need."""
    for tensor in model.graph.initializer:
        problem = _tensor_data_problem(tensor)
        if problem:
            raise PassError(f"{what}: {problem}")


# Element types packed below one byte per element in raw_data.
_SUB_BYTE_BITS = {
    onnx.TensorProto.INT4: 4,
    onnx.TensorProto.UINT4: 4,
    onnx.TensorProto.FLOAT4E2M1: 4,
    **{getattr(onnx.TensorProto, name): 2 for name in ("INT2", "UINT2") if hasattr(onnx.TensorProto, name)},
}
# Element types graphkit can feed a graph input with (numpy arrays of real numbers or bools).
_UNFEEDABLE_TYPES = {
    onnx.TensorProto.UNDEFINED: "no element type",
    onnx.TensorProto.STRING: "string elements",
    onnx.TensorProto.COMPLEX64: "complex elements",
    onnx.TensorProto.COMPLEX128: "complex elements",
}


def _tensor_data_problem(tensor: onnx.TensorProto) -> str | None:
    """Why an initializer's data type or raw_data size is wrong, or None."""
    name = f"initializer '{tensor.name}'"
    if tensor.data_type not in onnx.TensorProto.DataType.values() or tensor.data_type == onnx.TensorProto.UNDEFINED:
        return f"{name} has unknown data type {tensor.data_type}"
    if any(dim < 0 for dim in tensor.dims):
        return f"{name} has a negative dim in {list(tensor.dims)}"
    if not tensor.HasField("raw_data"):
        return None
    if tensor.data_type == onnx.TensorProto.STRING:
        return f"{name}: string tensors cannot use raw_data"
    count = 1
    for dim in tensor.dims:
        count *= dim
    bits = _SUB_BYTE_BITS.get(tensor.data_type)
    if bits is None:
        try:
            bits = 8 * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, ValueError, TypeError):
            return None  # an exotic type numpy cannot describe: the ONNX checker judges it
    expected = (count * bits + 7) // 8
    if len(tensor.raw_data) != expected:
        return f"{name} holds {len(tensor.raw_data)} bytes, but dims {list(tensor.dims)} need {expected}"
    return None


def invalid_reason(model: onnx.ModelProto) -> str | None:
    """Why graphkit refuses ``model`` (one line), or None when it is valid.

    Valid means: an IR version and opsets this onnx release knows; every node has an op type,
    a domain the model imports and, in the ONNX domains, an op that exists at that opset;
    single assignment (no name defined twice: graph inputs, initializers, node outputs); every
    node input defined, no cycle, nodes in topological order; graph inputs are tensors of a
    real numeric or bool type with dims > 0 (or symbolic); initializer data matches its dims;
    and the ONNX checker passes (run on the graph without its large weights; graph inputs and
    outputs of unknown rank are accepted). Ops of custom domains are valid: whether a runtime
    can execute them is the runtime's question. See docs/valid-models.md.
    """
    for check in (_text_problem, _version_problem, _node_problem, _name_problem, _dataflow_problem, _input_problem):
        problem = check(model)
        if problem:
            return printable(problem)
    for tensor in model.graph.initializer:
        problem = _tensor_data_problem(tensor)
        if problem:
            return printable(problem)
    light = skeleton(model)
    light.graph.sparse_initializer.extend(model.graph.sparse_initializer)  # the skeleton leaves them out
    for value in [*light.graph.input, *light.graph.output]:
        if value.type.HasField("tensor_type") and not value.type.tensor_type.HasField("shape"):
            value.type.tensor_type.shape.SetInParent()  # unknown rank is fine here (the checker wants the field)
    try:
        onnx.checker.check_model(light)
    except (onnx.checker.ValidationError, ValueError) as exc:
        return f"fails the ONNX checker: {one_line(exc, 300)}"
    return None


def _text_problem(model: onnx.ModelProto) -> str | None:
    """The first string field that is not UTF-8 text (protobuf hands such fields over as bytes)."""
    return _bad_text(model, "model")


def _bad_text(message, where: str) -> str | None:
    # Only string and message fields are read: tensor payloads (bytes, numbers) are never touched.
    # ListFields: only the fields that are set (an unset string is "", an unset message empty).
    for field, content in message.ListFields():
        is_repeated = field.is_repeated
        if field.type == field.TYPE_STRING:
            values = content if is_repeated else [content]
            for value in values:
                if not isinstance(value, str):
                    return f"{where}.{field.name} {bytes(value[:32])!r} is not UTF-8 text"
        elif field.type == field.TYPE_MESSAGE:
            children = content if is_repeated else [content]
            for index, child in enumerate(children):
                label = f"{where}.{field.name}[{index}]" if is_repeated else f"{where}.{field.name}"
                problem = _bad_text(child, label)
                if problem:
                    return problem
    return None


def _version_problem(model: onnx.ModelProto) -> str | None:
    if model.ir_version > onnx.IR_VERSION:
        return f"ir_version {model.ir_version} is newer than this onnx release reads (at most {onnx.IR_VERSION})"
    highest = {"": onnx.defs.onnx_opset_version(), "ai.onnx.ml": onnx.helper.VERSION_TABLE[-1][3]}
    seen = set()
    for entry in model.opset_import:
        domain = "" if entry.domain == "ai.onnx" else entry.domain
        if domain in seen:
            return f"opset_import lists domain '{entry.domain}' twice"
        seen.add(domain)
        label = f"domain '{entry.domain}'" if domain else "the ONNX domain"
        if entry.version < 1:
            return f"opset {entry.version} of {label} is not a version"
        if domain in highest and entry.version > highest[domain]:
            return f"opset {entry.version} of {label} does not exist (this onnx release knows up to {highest[domain]})"
    if "" not in seen and any(n.domain in ("", "ai.onnx") for n in model.graph.node):
        return "the graph uses ONNX ops but opset_import has no version for the ONNX domain"
    return None


def _node_label(node: onnx.NodeProto, index: int) -> str:
    op = node.op_type or "no op type"
    return f"node '{node.name}' ({op})" if node.name else f"node #{index} ({op})"


def _node_problem(model: onnx.ModelProto) -> str | None:
    versions = {("" if e.domain == "ai.onnx" else e.domain): e.version for e in model.opset_import}
    functions = {(f.domain, f.name) for f in model.functions}
    for index, node in enumerate(model.graph.node):
        label = _node_label(node, index)
        if not node.op_type:
            return f"{label} has an empty op_type"
        domain = "" if node.domain == "ai.onnx" else node.domain
        if domain not in versions:
            return f"{label} uses domain '{node.domain}', which the model's opset_import does not declare"
        if domain in ("", "ai.onnx.ml") and (node.domain, node.op_type) not in functions:
            try:
                onnx.defs.get_schema(node.op_type, versions[domain], domain)
            except onnx.defs.SchemaError:
                where = f"domain '{domain}'" if domain else "ONNX"
                return f"{label}: op '{node.op_type}' does not exist in {where} opset {versions[domain]}"
    return None


def _name_problem(model: onnx.ModelProto) -> str | None:
    graph = model.graph
    defined: dict[str, str] = {}
    for value in graph.input:
        if value.name in defined:
            return f"graph input '{value.name}' is declared twice"
        defined[value.name] = "a graph input"
    initializers = set()
    for name in [t.name for t in graph.initializer] + [t.values.name for t in graph.sparse_initializer]:
        if name in initializers:
            return f"initializer '{name}' is defined twice"
        initializers.add(name)
        defined.setdefault(name, "an initializer")
    for index, node in enumerate(graph.node):
        for name in node.output:
            if not name:
                continue  # an omitted optional output
            if name in defined:
                return f"tensor '{name}' is defined twice: by {_node_label(node, index)} and by {defined[name]}"
            defined[name] = _node_label(node, index)
    return None


def _subgraphs(node: onnx.NodeProto):
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            yield from attribute.graphs


def _initializer_names(graph: onnx.GraphProto) -> set[str]:
    """Names of dense and sparse initializers."""
    return {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}


def _free_names(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from its enclosing scopes."""
    defined = {v.name for v in graph.input} | _initializer_names(graph)
    used: set[str] = set()
    for node in graph.node:
        used.update(name for name in node.input if name)
        for sub in _subgraphs(node):
            used |= _free_names(sub)
        defined.update(node.output)
    used.update(v.name for v in graph.output)
    return used - defined


def _dataflow_problem(model: onnx.ModelProto) -> str | None:
    """Undefined inputs, cycles and out-of-order nodes of the main graph."""
    graph = model.graph
    sources = {v.name for v in graph.input} | _initializer_names(graph)
    producer = {name: i for i, node in enumerate(graph.node) for name in node.output if name}
    reads: list[list[str]] = []
    for index, node in enumerate(graph.node):
        names = [name for name in node.input if name]
        for sub in _subgraphs(node):
            names.extend(sorted(_free_names(sub)))
        for name in names:
            if name not in sources and name not in producer:
                return f"{_node_label(node, index)} reads '{name}', which no node, initializer or graph input produces"
        reads.append([name for name in names if name not in sources])
    for value in graph.output:
        if value.name not in sources and value.name not in producer:
            return f"graph output '{value.name}' is never produced"
    # Kahn's algorithm: whatever cannot be scheduled lies on or behind a cycle.
    waiting = [len({producer[name] for name in names}) for names in reads]
    consumers: dict[int, set[int]] = {}
    for index, names in enumerate(reads):
        for first in {producer[name] for name in names}:
            consumers.setdefault(first, set()).add(index)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    done = 0
    while ready:
        index = ready.pop()
        done += 1
        for consumer in consumers.get(index, ()):
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                ready.append(consumer)
    if done < len(graph.node):
        cycle = _find_cycle(graph, reads, producer, waiting)
        names = " -> ".join(_node_label(graph.node[i], i) for i in cycle)
        return f"the graph has a cycle: {names}"
    for index, names in enumerate(reads):
        late = next((name for name in names if producer[name] >= index), None)
        if late is not None:
            return (
                f"nodes are not in topological order: {_node_label(graph.node[index], index)} reads '{late}' "
                f"before {_node_label(graph.node[producer[late]], producer[late])} produces it (sort the nodes)"
            )
    return None


def _find_cycle(graph, reads, producer, waiting) -> list[int]:
    """One cycle among the nodes Kahn's algorithm could not schedule, as node indices."""
    start = next(i for i, count in enumerate(waiting) if count > 0)
    path: list[int] = []
    position: dict[int, int] = {}
    index = start
    while index not in position:
        position[index] = len(path)
        path.append(index)
        index = next(producer[name] for name in reads[index] if waiting[producer[name]] > 0)
    return [*path[position[index] :], index]


def _input_problem(model: onnx.ModelProto) -> str | None:
    """Graph inputs graphkit cannot feed; element types no ONNX release defines anywhere."""
    known = set(onnx.TensorProto.DataType.values())
    for what, values in (("graph output", model.graph.output), ("value_info", model.graph.value_info)):
        for value in values:
            if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type not in known:
                return f"{what} '{value.name}' has unknown element type {value.type.tensor_type.elem_type}"
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        kind = value.type.WhichOneof("value")
        if kind is None:
            return f"graph input '{value.name}' has no type"
        if kind != "tensor_type":
            kind = kind.removesuffix("_type")
            return f"graph input '{value.name}' is a {kind}; graphkit feeds tensor inputs only"
        elem = value.type.tensor_type.elem_type
        if elem not in onnx.TensorProto.DataType.values() or elem in _UNFEEDABLE_TYPES:
            what = _UNFEEDABLE_TYPES.get(elem, f"unknown element type {elem}")
            return f"graph input '{value.name}' has {what}; graphkit feeds tensors of real numbers or bools"
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.WhichOneof("value") == "dim_value" and dim.dim_value <= 0:
                return (
                    f"graph input '{value.name}' axis {axis} has size {dim.dim_value}; declared sizes must be "
                    "positive (or symbolic, a name)"
                )
    return None


def infer_shapes(model: onnx.ModelProto, what: str = "model", strict: bool = True) -> onnx.ModelProto:
    """Return ``model`` with inferred value_info; raise PassError on inconsistent shapes."""
    try:
        if too_big_for_one_file(model):
            with tempfile.TemporaryDirectory() as tmp:
                saved = save_model(model, Path(tmp) / "shapes.onnx", external_data=True)
                onnx.shape_inference.infer_shapes_path(str(saved), str(saved), check_type=True, strict_mode=strict)
                return load_model(saved)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=strict, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError) as exc:
        raise PassError(f"{what}: shape inference failed: {one_line(exc, 200)}") from exc


def content_hash(model: onnx.ModelProto) -> str:
    """A stable 128-bit hex fingerprint of everything in the model, weights included.

    Nodes, I/O and metadata are hashed through their deterministic serialization; initializer
    bytes are hashed in place (no copy), so this stays fast on models of hundreds of MB.
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
        if tensor.HasField("raw_data"):
            digest.update(tensor.raw_data)
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


def default_opset(model: onnx.ModelProto) -> int:
    """The opset version of the default ONNX domain (0 when absent)."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 0


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
