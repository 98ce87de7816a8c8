"""onnx-graphsurgeon as the pass IR: convert a ModelProto to a ``gs.Graph`` and back.

Neither function mutates the model it is given. :func:`to_graph` is cheap: graphsurgeon keeps
the model's own ``TensorProto`` objects (initializers, ``Constant`` node tensors, subgraph and
function tensors) behind lazily loaded constants instead of copying them. graphsurgeon's
exporter writes each such constant's name back into that shared proto before copying it out
(for an unnamed ``Constant`` attribute tensor this alone adds ``name: ""`` to the input), so
:func:`to_model` first gives every lazily loaded constant whose proto would change a private
copy; protos whose name already matches (every untouched initializer) are never copied.
:func:`to_model` also restores the model-level fields that graphsurgeon does not carry (IR
version, producer, metadata, functions, non-default opset imports).

Rewrite helpers shared by every pass (built-in, rule-based and user passes): rewire the
readers of a value (:func:`replace_all_uses`), remove a node in place of its input
(:func:`bypass_node`), drop producers that no longer feed anything (:func:`remove_dead`), read a
constant (:func:`constant_value`), a value's element type and dims from shape inference run once
per pass run (:class:`ValueTypes`), make a fresh name (:func:`fresh_name`), add an initializer
(:func:`add_initializer`). Assign graphsurgeon node inputs by index (``node.inputs[i] = t``);
these helpers do, and keep the tensors' producer/consumer lists consistent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import numpy_helper
from onnx_graphsurgeon.ir.tensor import LazyValues

from graphkit.ir.external_data import is_mapped, tensor_array
from graphkit.ir.shapes import Dim, ValueType, known_value_types
from graphkit.util.errors import PassError

DEFAULT_DOMAINS = (None, "", "ai.onnx")


def to_graph(model: onnx.ModelProto) -> gs.Graph:
    """The model's main graph as a graphsurgeon Graph (shares, never changes, the model's tensors).

    A mapped weight (:func:`graphkit.ir.external_data.is_mapped`) stays lazy; read, it is a
    read-only memory map of its file (:class:`MappedValues`).
    """
    graph = gs.import_onnx(model)
    if any(is_mapped(tensor) for tensor in model.graph.initializer):
        for tensor in graph.tensors().values():
            values = getattr(tensor, "_values", None)
            if isinstance(values, LazyValues) and is_mapped(values.tensor):
                tensor._values = MappedValues(values.tensor)
    return graph


class MappedValues(LazyValues):
    """graphsurgeon's lazy constant values for a mapped weight: loaded, a read-only memory map
    (:func:`graphkit.ir.external_data.tensor_array`); exported, still the stub."""

    def load(self) -> np.ndarray:
        return tensor_array(self.tensor)


def to_model(graph: gs.Graph, like: onnx.ModelProto, opset: int | None = None) -> onnx.ModelProto:
    """Export ``graph`` as a model with the model-level fields of ``like``.

    ``opset`` overrides the default-domain opset (for passes that change it). The protos the
    graph shares with the model it was imported from are left as they were.
    """
    _detach_renamed_constants(graph)
    lifted = _lift_large_initializers(graph)
    try:
        model = gs.export_onnx(graph, do_type_check=False)
    finally:
        _put_back(lifted)
    if lifted:  # the large weights, copied once (the exporter would copy them twice)
        names = {constant.name for constant, _ in lifted}
        value_info = [v for v in model.graph.value_info if v.name not in names]
        del model.graph.value_info[:]
        model.graph.value_info.extend(value_info)
        model.graph.initializer.extend(_tensor_proto(constant) for constant, _ in lifted)
    model.ir_version = like.ir_version
    model.producer_name = like.producer_name
    model.producer_version = like.producer_version
    model.domain = like.domain
    model.model_version = like.model_version
    model.doc_string = like.doc_string
    del model.metadata_props[:]
    model.metadata_props.extend(like.metadata_props)
    del model.functions[:]
    model.functions.extend(like.functions)
    del model.opset_import[:]
    for entry in like.opset_import:
        copy = model.opset_import.add()
        copy.CopyFrom(entry)
        if opset is not None and entry.domain in ("", "ai.onnx"):
            copy.version = opset
    return model


LIFT_MIN_BYTES = 1 << 16


def _lift_large_initializers(graph: gs.Graph) -> list[tuple[gs.Constant, list[tuple[gs.Node, int]]]]:
    """Swap large dense initializers for placeholders so that export does not copy them.

    Returns each lifted constant with the (node, input slot) pairs it was taken from. Graphs
    with subgraphs (outer-scope references) and constants that are graph outputs are left alone.
    """
    if any(isinstance(v, gs.Graph) for node in graph.nodes for v in node.attrs.values()):
        return []
    outputs = {id(t) for t in graph.outputs}
    lifted = []
    for tensor in list(graph.tensors().values()):
        if not isinstance(tensor, gs.Constant) or id(tensor) in outputs or not _large_dense(tensor):
            continue
        uses = [(node, i) for node in list(tensor.outputs) for i, t in enumerate(node.inputs) if t is tensor]
        placeholder = gs.Variable(tensor.name, dtype=tensor.dtype, shape=tensor.shape)
        for node, i in uses:
            node.inputs[i] = placeholder
        lifted.append((tensor, uses))
    return lifted


def _put_back(lifted: list[tuple[gs.Constant, list[tuple[gs.Node, int]]]]) -> None:
    for constant, uses in lifted:
        for node, i in uses:
            node.inputs[i] = constant


def _large_dense(constant: gs.Constant) -> bool:
    values = constant._values
    if isinstance(values, LazyValues):
        count = 1
        for dim in values.tensor.dims:
            count *= dim
        return values.tensor.data_location != onnx.TensorProto.EXTERNAL and count * 4 >= LIFT_MIN_BYTES
    return isinstance(values, np.ndarray) and values.nbytes >= LIFT_MIN_BYTES


def _tensor_proto(constant: gs.Constant) -> onnx.TensorProto:
    """The constant's proto: the model's own (already named right, or a private copy) or a new one."""
    values = constant._values
    if isinstance(values, LazyValues):
        if not _named(values.tensor, constant.name):  # a private copy (see _detach_renamed_constants)
            values.tensor.name = constant.name
        return values.tensor
    return numpy_helper.from_array(np.asarray(values), constant.name)


def _detach_renamed_constants(graph: gs.Graph) -> None:
    """Give each lazily loaded constant that export would rename its own copy of its proto.

    Walks the graph, its subgraphs (node attributes, at any depth) and its functions.
    """
    seen_graphs: set[int] = set()
    seen_constants: set[int] = set()
    pending: list[gs.Graph] = [graph, *getattr(graph, "functions", [])]
    while pending:
        current = pending.pop()
        if id(current) in seen_graphs:
            continue
        seen_graphs.add(id(current))
        constants = [t for t in current.tensors().values() if isinstance(t, gs.Constant)]
        for node in current.nodes:
            for value in node.attrs.values():
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(item, gs.Graph):
                        pending.append(item)
                    elif isinstance(item, gs.Constant):
                        constants.append(item)
        for constant in constants:
            if id(constant) in seen_constants:
                continue
            seen_constants.add(id(constant))
            values = constant._values
            if isinstance(values, LazyValues) and not _named(values.tensor, constant.name):
                private = onnx.TensorProto()
                private.CopyFrom(values.tensor)
                constant._values = LazyValues(private)


def _named(tensor: onnx.TensorProto, name: str) -> bool:
    """True when setting ``tensor.name = name`` would leave the proto's content unchanged."""
    return tensor.HasField("name") and tensor.name == name


# --- rewrite helpers ----------------------------------------------------------------------------


def producer(tensor: gs.Tensor) -> gs.Node | None:
    """The node that writes ``tensor`` (None for graph inputs and initializers)."""
    return tensor.inputs[0] if len(tensor.inputs) == 1 else None


def is_default_domain(node: gs.Node) -> bool:
    """True for ONNX-domain nodes (custom domains are never rewritten by the built-in passes)."""
    return node.domain in DEFAULT_DOMAINS


def node_site(node: gs.Node) -> str:
    """The name a report uses for ``node``: its name, else its first output's name."""
    return node.name or (node.outputs[0].name if node.outputs else node.op)


def output_names(graph: gs.Graph) -> set[str]:
    """Names of the graph outputs."""
    return {t.name for t in graph.outputs}


def replace_all_uses(graph: gs.Graph, old: gs.Tensor, new: gs.Tensor, *, graph_outputs: bool = False) -> int:
    """Make every node that reads ``old`` read ``new`` instead; returns the number of inputs rewired.

    Subgraph nodes that read ``old`` from the outer scope are rewired too. Graph outputs that
    are ``old`` stay ``old`` unless ``graph_outputs`` (that renames a graph output: only for a
    pass that declares ``changes_io``; see :func:`bypass_node` to keep output names).
    """
    count = 0
    for consumer in list(old.outputs):
        for index, tensor in enumerate(consumer.inputs):
            if tensor is old:
                consumer.inputs[index] = new
                count += 1
    if graph_outputs:
        for index, tensor in enumerate(graph.outputs):
            if tensor is old:
                graph.outputs[index] = new
                count += 1
    return count


def bypass_node(graph: gs.Graph, node: gs.Node, source: gs.Tensor | None = None) -> str | None:
    """Remove ``node`` so that the readers of its first output read ``source`` (default: its first input).

    Graph output names never change: when the node's output is a graph output, the producer of
    ``source`` writes that output instead. When that is impossible (``source`` is a graph input,
    an initializer or itself a graph output) nothing changes and the reason is returned; None
    means done. Producers left without readers are removed (:func:`remove_dead`).
    """
    source = node.inputs[0] if source is None else source
    result = node.outputs[0]
    outputs = output_names(graph)
    if result.name in outputs:
        writer = producer(source)
        if writer is None or source.name in outputs or any(t is source for t in graph.inputs):
            what = "graph output" if source.name in outputs else "graph input or constant"
            return f"output '{result.name}' is a graph output fed directly by {what} '{source.name}'; removing would rename it"
        node.outputs.clear()
        writer.outputs[writer.outputs.index(source)] = result
        replace_all_uses(graph, source, result)
    else:
        node.outputs.clear()
        replace_all_uses(graph, result, source)
    remove_nodes(graph, [node])
    return None


def node_index(graph: gs.Graph, node: gs.Node) -> int | None:
    """The position of ``node`` in ``graph.nodes`` by identity (graphsurgeon's ``==`` compares
    structure, slowly), or None when it is not there. One C-speed scan over the node ids."""
    try:
        return list(map(id, graph.nodes)).index(id(node))
    except ValueError:
        return None


def is_removed(node: gs.Node) -> bool:
    """True for a node taken out by :func:`remove_nodes`, :func:`remove_dead` or :func:`bypass_node`
    (they clear its outputs; every node in a graph has at least one): an O(1) liveness test for
    loops over a snapshot of ``graph.nodes``."""
    return not node.outputs


def remove_nodes(graph: gs.Graph, nodes: list[gs.Node]) -> None:
    """Detach and remove ``nodes``; then remove producers left without readers (:func:`remove_dead`)."""
    if id(graph) in _DEFERRED:  # detach now, drop from graph.nodes when the deferral ends
        freed = []
        for node in nodes:
            if node.inputs or node.outputs:  # not detached yet (a rewrite may have cleared its outputs)
                freed.extend(node.inputs)
                node.inputs.clear()
                node.outputs.clear()
        _detach_dead(graph, freed, None)
        return
    ids = list(map(id, graph.nodes))  # C-speed scans below: no per-node Python loop over the graph
    freed: list[gs.Tensor] = []
    doomed: set[int] = set()
    for node in nodes:
        if id(node) in doomed or id(node) not in ids:
            continue
        freed.extend(node.inputs)
        node.inputs.clear()
        node.outputs.clear()
        doomed.add(id(node))
    doomed |= _detach_dead(graph, freed, ids)
    _delete(graph, ids, doomed)


def remove_dead(graph: gs.Graph, tensors: list[gs.Tensor]) -> None:
    """Remove default-domain producers of ``tensors`` that no longer feed anything (transitively).

    Nodes whose outputs are read, or are graph outputs, stay; so do custom-domain nodes.
    """
    if id(graph) in _DEFERRED:
        _detach_dead(graph, tensors, None)
        return
    ids = list(map(id, graph.nodes))
    _delete(graph, ids, _detach_dead(graph, tensors, ids))


def _detach_dead(graph: gs.Graph, tensors: list[gs.Tensor], ids: list[int] | None) -> set[int]:
    """Detach the dead producers of ``tensors`` (see :func:`remove_dead`); returns their ids.

    ``ids``: the node ids of ``graph.nodes`` (producers outside it stay), or None when edits are
    deferred (every producer not yet removed counts as in the graph)."""
    outputs = output_names(graph)
    doomed: set[int] = set()
    stack = list(tensors)
    while stack:
        tensor = stack.pop()
        if tensor.outputs or tensor.name in outputs:
            continue
        writer = producer(tensor)
        if writer is None or not is_default_domain(writer):
            continue
        if any(t.outputs or t.name in outputs for t in writer.outputs):
            continue
        if ids is not None and id(writer) not in ids:
            continue
        inputs = list(writer.inputs)
        writer.inputs.clear()
        writer.outputs.clear()
        doomed.add(id(writer))
        stack.extend(inputs)
    return doomed


def _delete(graph: gs.Graph, ids: list[int], doomed: set[int]) -> None:
    """Delete the nodes whose ids are ``doomed`` from ``graph.nodes`` (``ids``: its node ids in order)."""
    if len(doomed) > 16:
        graph.nodes[:] = [n for n, i in zip(graph.nodes, ids) if i not in doomed]
        return
    for position in sorted((ids.index(i) for i in doomed), reverse=True):
        del graph.nodes[position]


class _Deferral:
    """Pending edits of one graph's node list (see :func:`deferred_node_edits`)."""

    def __init__(self, graph: gs.Graph):
        self.graph = graph
        self.inserts: dict[int, tuple[gs.Node, list[gs.Node]]] = {}  # anchor id -> (anchor, nodes before it)
        self.names: set[str] | None = None  # taken tensor and node names, once fresh_name needs them


_DEFERRED: dict[int, _Deferral] = {}


@contextmanager
def deferred_node_edits(graph: gs.Graph) -> Iterator[None]:
    """Within: :func:`remove_nodes`/:func:`remove_dead` only detach nodes (:func:`is_removed`) and
    :func:`insert_before` records; on exit ``graph.nodes`` is rebuilt once, in the order the same
    edits made one by one would give. Makes a rewrite O(1) in the graph size instead of O(n) (the
    scans for a node's position); iterate a snapshot of ``graph.nodes`` inside. :func:`fresh_name`
    sees the inserted nodes' names; names of nodes removed inside stay taken until the end."""
    if id(graph) in _DEFERRED:
        yield
        return
    state = _DEFERRED[id(graph)] = _Deferral(graph)
    try:
        yield
    finally:
        del _DEFERRED[id(graph)]
        rebuilt: list[gs.Node] = []

        def emit(node: gs.Node) -> None:
            anchor = state.inserts.pop(id(node), None)
            for inserted in anchor[1] if anchor else ():
                emit(inserted)
            if not is_removed(node):
                rebuilt.append(node)

        for node in list(graph.nodes):
            emit(node)
        graph.nodes[:] = rebuilt


def insert_before(graph: gs.Graph, anchor: gs.Node, nodes: list[gs.Node]) -> None:
    """Put ``nodes`` just before ``anchor`` in ``graph.nodes`` (recorded while edits are deferred)."""
    state = _DEFERRED.get(id(graph))
    if state is None:
        position = node_index(graph, anchor)
        if position is None:
            raise PassError(f"cannot insert before '{anchor.name}': it is not in the graph")
        graph.nodes[position:position] = nodes
        return
    state.inserts.setdefault(id(anchor), (anchor, []))[1].extend(nodes)
    if state.names is not None:
        for node in nodes:
            state.names.add(node.name)
            state.names.update(t.name for t in (*node.inputs, *node.outputs))


def constant_value(tensor: gs.Tensor) -> np.ndarray | None:
    """The value of an initializer or a ``Constant`` node's output (``value`` attribute), else None."""
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    writer = producer(tensor)
    if writer is not None and writer.op == "Constant" and is_default_domain(writer):
        value = writer.attrs.get("value")
        if isinstance(value, gs.Constant):
            return np.asarray(value.values)
    return None


def fresh_name(graph: gs.Graph, base: str) -> str:
    """``base``, or ``base_1``, ``base_2``...: the first name no tensor or node of ``graph`` uses."""
    state = _DEFERRED.get(id(graph))
    if state is not None and state.names is None:
        state.names = set(graph.tensors()) | {n.name for n in graph.nodes}
    taken = state.names if state is not None else set(graph.tensors()) | {n.name for n in graph.nodes}
    name, k = base, 1
    while name in taken:
        name = f"{base}_{k}"
        k += 1
    return name


def add_initializer(graph: gs.Graph, base: str, values: np.ndarray) -> gs.Constant:
    """A new constant named :func:`fresh_name` of ``base``; it becomes an initializer once a node reads it."""
    return gs.Constant(fresh_name(graph, base), np.ascontiguousarray(values))


class ValueTypes:
    """Element types and dims of a model's values, from one shape inference (per pass run).

    ``ValueTypes(model)`` runs non-strict ONNX shape inference on a skeleton of the model (large
    weights left out, stored value_info kept as a hint); when inference fails, the declared types
    are used. Dims are ``int`` (static), ``str`` (symbolic) or ``None`` (unknown). Values created
    by the pass itself are unknown (None): a pass that needs them reruns inference on its output.
    """

    def __init__(self, model: onnx.ModelProto):
        self._types = known_value_types(model)
        for node in model.graph.node:  # Constant outputs, in case inference could not run
            if node.op_type == "Constant" and node.output[0] not in self._types:
                for attr in node.attribute:
                    if attr.name == "value":
                        self._types[node.output[0]] = ValueType(attr.t.data_type, tuple(attr.t.dims))

    def _get(self, value: gs.Tensor | str) -> ValueType | None:
        name = value if isinstance(value, str) else value.name
        found = self._types.get(name)
        if found is None and isinstance(value, gs.Constant):
            return ValueType(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(value.dtype)), tuple(value.shape))
        return found

    def shape(self, value: gs.Tensor | str) -> tuple[Dim, ...] | None:
        """The dims of ``value`` (None when its rank is unknown)."""
        found = self._get(value)
        return None if found is None else found.dims

    def dtype(self, value: gs.Tensor | str) -> int | None:
        """The ONNX element type (``onnx.TensorProto.FLOAT``...) of ``value``, None when unknown."""
        found = self._get(value)
        return found.elem_type if found is not None and found.elem_type else None

    def rank(self, value: gs.Tensor | str) -> int | None:
        """The rank of ``value`` (None when unknown)."""
        dims = self.shape(value)
        return None if dims is None else len(dims)
