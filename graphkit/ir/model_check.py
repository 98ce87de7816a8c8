"""Is this ONNX model one graphkit can trust? The one validity check every command runs.

:func:`invalid_reason` returns why graphkit refuses a parseable model (one line), or None:
text fields that are not UTF-8, unknown IR or opset versions, unknown ops, names defined twice
or never, cycles and out-of-order nodes, graph inputs graphkit cannot feed, initializers whose
bytes do not match their dims, and the ONNX checker on the graph without its large weights.
Ops of custom domains are valid. :func:`graphkit.ir.model_io.load_user_model` runs it on every
model a user names; :func:`check_tensor_sizes` is the initializer-size part alone (for the
verify-each instrument). See docs/valid-models.md.
"""

from __future__ import annotations

import onnx

from graphkit.ir.shapes import dims_of, skeleton
from graphkit.util.errors import PassError, one_line, printable


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
                schema = onnx.defs.get_schema(node.op_type, versions[domain], domain)
            except onnx.defs.SchemaError:
                where = f"domain '{domain}'" if domain else "ONNX"
                return f"{label}: op '{node.op_type}' does not exist in {where} opset {versions[domain]}"
            problem = _omitted_output_problem(node, schema, label)
            if problem:
                return problem
    return None


def _omitted_output_problem(node: onnx.NodeProto, schema: onnx.defs.OpSchema, label: str) -> str | None:
    """An empty output name where the op's output is not optional (onnxruntime 1.32 crashes
    creating a session over a Split with one; the ONNX checker lets it pass)."""
    formal = schema.outputs
    for index, name in enumerate(node.output):
        if name or not formal:
            continue
        parameter = formal[min(index, len(formal) - 1)]
        if parameter.option != onnx.defs.OpSchema.FormalParameterOption.Optional:
            return (
                f"{label}: output {index} has an empty name, but {node.op_type}'s output "
                f"'{parameter.name}' is not optional (only optional outputs may be omitted)"
            )
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
        for axis, dim in enumerate(dims_of(value) or ()):
            if isinstance(dim, int) and dim <= 0:
                return (
                    f"graph input '{value.name}' axis {axis} has size {dim}; declared sizes must be "
                    "positive (or symbolic, a name)"
                )
    return None
