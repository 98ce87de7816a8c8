"""Node provenance: which pass made each node, recorded in the node's ONNX ``metadata_props``.

After a pass returns a new model, :func:`record_provenance` compares it with the pass's input:
a node of the output counts as *made by the pass* when no node of the input has the same
:func:`node_key` (domain, op type, inputs, outputs, attributes), that is when the pass added it
or changed its op, wiring or attributes. Such a node gets ``graphkit.pass`` (the pass's
registered name) and ``graphkit.step`` (its 1-based position in the run). Every other node is
one the pass kept (renaming it does not count): it carries exactly the provenance its
counterpart in the input had, also when the pass's IR dropped node metadata on the way
(onnx-graphsurgeon does). A pass that changed nothing is thereby left exactly as it returned
its input, so content hashes, the honesty check and idempotence are unaffected by provenance;
a pass that did change the model gets the same stamps every time it runs the same way, so the
validation cache keys (which hash the whole model, metadata included) stay reproducible.

Provenance never changes numerics: onnx's checker and onnxruntime ignore node metadata.
:func:`strip_provenance` removes it (``graphkit apply --strip-provenance``,
``output.provenance: false``); :func:`provenance_of` reads it back (``graphkit diff``,
``graphkit localize``). Only ``graphkit.``-prefixed keys are written or removed; other
metadata a node carries is left as the pass returned it. Nodes inside subgraphs (If/Loop bodies)
are not stamped: the If/Loop node itself is, when its body changed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import onnx
import xxhash

PREFIX = "graphkit."
PASS_KEY = "graphkit.pass"
STEP_KEY = "graphkit.step"

_GRAPH_TYPES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


@dataclass(frozen=True)
class Provenance:
    """The pass that made a node, and its 1-based step in the run that applied it (None if absent)."""

    pass_name: str
    step: int | None = None

    @property
    def label(self) -> str:
        """``pass 'fold-constants' (step 3)``."""
        name = self.pass_name if len(self.pass_name) <= 120 else self.pass_name[:117] + "..."
        return f"pass '{name}'" + (f" (step {self.step})" if self.step is not None else "")

    def to_dict(self) -> dict:
        return {"pass": self.pass_name, "step": self.step}


def node_key(node: onnx.NodeProto) -> tuple:
    """What a node computes, independent of its name, doc string and metadata.

    Two nodes with the same key are the same computation on the same tensors. Attributes are
    compared by content in name order; a subgraph attribute ignores its nodes' names, doc
    strings and metadata the same way.
    """
    digest = xxhash.xxh3_128()  # attributes by digest: a large Constant is not held twice
    for attribute in sorted(node.attribute, key=lambda a: a.name):
        if attribute.type in _GRAPH_TYPES:
            attribute = _without_node_annotations(attribute)
        data = attribute.SerializeToString(deterministic=True)
        digest.update(b"%d:" % len(data))
        digest.update(data)
    domain = "" if node.domain == "ai.onnx" else node.domain
    return (domain, node.op_type, node.overload, tuple(node.input), tuple(node.output), digest.digest())


def _without_node_annotations(attribute: onnx.AttributeProto) -> onnx.AttributeProto:
    copy = onnx.AttributeProto()
    copy.CopyFrom(attribute)
    copy.doc_string = ""
    for graph in [copy.g] if copy.type == onnx.AttributeProto.GRAPH else list(copy.graphs):
        for inner in graph.node:
            _clear_annotations(inner)
    return copy


def _clear_annotations(node: onnx.NodeProto) -> None:
    node.name = ""
    node.doc_string = ""
    del node.metadata_props[:]
    for attribute in node.attribute:
        for graph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs):
            for inner in graph.node:
                _clear_annotations(inner)


def _graphkit_entries(node: onnx.NodeProto) -> list[tuple[str, str]]:
    return [(e.key, e.value) for e in node.metadata_props if e.key.startswith(PREFIX)]


def _set_graphkit_entries(node: onnx.NodeProto, entries: list[tuple[str, str]]) -> None:
    if _graphkit_entries(node) == entries:
        return
    kept = [(e.key, e.value) for e in node.metadata_props if not e.key.startswith(PREFIX)]
    del node.metadata_props[:]
    for key, value in [*kept, *entries]:
        node.metadata_props.add(key=key, value=value)


def record_provenance(before: onnx.ModelProto, after: onnx.ModelProto, pass_name: str, step: int) -> int:
    """Stamp the nodes of ``after`` that ``before`` lacks with ``pass_name`` and ``step``, in place.

    Nodes ``after`` kept from ``before`` get (back) the provenance they had there. ``before`` is
    never changed; nothing happens when ``after`` is ``before``. Returns the number of nodes
    stamped as made by this pass.
    """
    if after is before:
        return 0
    kept: dict[tuple, list[list[tuple[str, str]]]] = defaultdict(list)
    for node in before.graph.node:
        kept[node_key(node)].append(_graphkit_entries(node))
    stamp = [(PASS_KEY, pass_name), (STEP_KEY, str(step))]
    made = 0
    for node in after.graph.node:
        earlier = kept.get(node_key(node))
        if earlier:
            _set_graphkit_entries(node, earlier.pop(0))
        else:
            _set_graphkit_entries(node, stamp)
            made += 1
    return made


def provenance_of(node: onnx.NodeProto) -> Provenance | None:
    """The pass that made ``node``, or None when it carries no ``graphkit.pass`` entry."""
    entries = dict(_graphkit_entries(node))
    name = entries.get(PASS_KEY)
    if not name:
        return None
    step = entries.get(STEP_KEY, "")
    # hostile metadata: "²" is a digit to isdigit() but not to int(); 5,000 digits exceed int()'s limit
    return Provenance(name, int(step) if step.isascii() and step.isdigit() and len(step) <= 9 else None)


def provenance_by_index(model: onnx.ModelProto) -> dict[int, Provenance]:
    """Node index in the main graph -> its provenance, for the nodes that carry one."""
    found = {}
    for index, node in enumerate(model.graph.node):
        provenance = provenance_of(node)
        if provenance is not None:
            found[index] = provenance
    return found


def strip_provenance(model: onnx.ModelProto) -> int:
    """Remove every ``graphkit.`` metadata entry from the model's nodes (subgraphs and functions
    included), in place; returns the number of nodes that carried one."""
    stripped = 0
    graphs = [model.graph, *[f for f in model.functions]]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            if _graphkit_entries(node):
                _set_graphkit_entries(node, [])
                stripped += 1
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attribute.g)
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    graphs.extend(attribute.graphs)
    return stripped
