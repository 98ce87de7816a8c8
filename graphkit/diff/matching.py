"""Node matching between two ONNX models: which node of B is which node of A.

Nodes are matched in four steps:

1. by name, where a name is non-empty and unique in both graphs;
2. by structure, in B's topological order: same domain and op type, and the same producers
   (inputs that map to the same tensors, or constants -- initializers or Constant outputs --
   with the same content), with attributes then all inputs then only the non-constant inputs
   required to agree;
3. backwards from matched consumers: an unmatched producer feeding the same input slot of a
   matched pair, with the same op type (steps 2 and 3 repeat while they find pairs);
4. by position, as a last resort: the op-type sequences of the nodes still unmatched are
   aligned in topological order (``difflib``), and aligned nodes of the same op type pair up.

Matched nodes map their outputs onto each other (:attr:`NodeMatcher.tmap`), the tensor
correspondence that :mod:`graphkit.diff.model_diff` reports and that region checks and
:mod:`graphkit.check.localize` use for renamed tensors. Content hashes (:func:`tensor_hash`)
identify constants by value.
"""

from __future__ import annotations

import difflib
import functools
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import onnx
import xxhash

from graphkit.diff.formatting import shape_text
from graphkit.diff.records import Change, NodeInfo
from graphkit.ir.external_data import external_chunks, is_external, is_mapped, raw_digest


def tensor_hash(tensor: onnx.TensorProto, folder: Path | None = None) -> str:
    """xxh3-64 hex of a tensor's values (raw bytes hashed in place; typed fields otherwise).

    Raw bytes go in through their digest (:func:`graphkit.ir.external_data.raw_digest`), so a
    mapped weight is hashed once per run. With ``folder`` (the model file's folder), an
    external-data stub is hashed from its file in pieces. Either way the same weight gives the
    same hash as when it is loaded into the proto.
    """
    digest = xxhash.xxh3_64()
    digest.update(b"%d:%s|" % (tensor.data_type, ",".join(map(str, tensor.dims)).encode()))
    if folder is not None and is_external(tensor):  # a stub as read from a file: checked against its folder
        raw = xxhash.xxh3_128()
        for piece in external_chunks(tensor, folder):
            raw.update(piece)
        digest.update(raw.digest())
    elif tensor.HasField("raw_data") or is_mapped(tensor):
        digest.update(raw_digest(tensor))
    else:
        values = onnx.TensorProto()
        values.CopyFrom(tensor)
        values.name = ""
        values.doc_string = ""
        digest.update(values.SerializeToString(deterministic=True))
    return digest.hexdigest()


@functools.cache
def dtype_name(elem_type: int) -> str:
    if elem_type == 0:
        return "undefined"
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        if elem_type not in onnx.TensorProto.DataType.values():
            return f"unknown-type-{elem_type}"
        return onnx.TensorProto.DataType.Name(elem_type).lower()


# Attribute text and constant hashes are remembered by the attribute's (tensor's) bytes where they
# are a function of those bytes alone and small: a diff reads every node's attributes and every
# Constant of both models, after every pass. A tensor stored outside the proto is never remembered.
_PLAIN_TYPES = frozenset(
    {
        onnx.AttributeProto.INT,
        onnx.AttributeProto.INTS,
        onnx.AttributeProto.FLOAT,
        onnx.AttributeProto.FLOATS,
        onnx.AttributeProto.STRING,
        onnx.AttributeProto.STRINGS,
        onnx.AttributeProto.TENSOR,
    }
)
_MEMO_MAX_BYTES = 1024
_MEMO_ENTRIES = 8192
_text_memo: dict[bytes, str] = {}
_hash_memo: dict[bytes, str] = {}


def _remembered(memo: dict[bytes, str], message, compute) -> str:
    """``compute(message)``, remembered in ``memo`` by ``message``'s bytes (small messages only)."""
    if message.ByteSize() > _MEMO_MAX_BYTES:
        return compute(message)
    key = message.SerializeToString()
    value = memo.get(key)
    if value is None:
        value = compute(message)
        if len(memo) >= _MEMO_ENTRIES:
            memo.clear()
        memo[key] = value
    return value


def _inline(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location != onnx.TensorProto.EXTERNAL


def attribute_text(attr: onnx.AttributeProto) -> str:
    """The attribute's value as text (a tensor by its dtype, shape and content hash)."""
    if attr.type not in _PLAIN_TYPES or (attr.type == onnx.AttributeProto.TENSOR and not _inline(attr.t)):
        return _attribute_text(attr)
    return _remembered(_text_memo, attr, _attribute_text)


def _attribute_text(attr: onnx.AttributeProto) -> str:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, onnx.TensorProto):
        return f"tensor {dtype_name(value.data_type)}{shape_text(tuple(value.dims))} #{tensor_hash(value)}"
    if isinstance(value, onnx.GraphProto):
        return f"graph #{xxhash.xxh3_64(value.SerializeToString(deterministic=True)).hexdigest()}"
    if isinstance(value, bytes):
        return repr(value.decode("utf-8", "replace"))
    if isinstance(value, list):
        items = [
            attribute_text(onnx.helper.make_attribute("x", [v]))
            if isinstance(v, (onnx.TensorProto, onnx.GraphProto))
            else v
            for v in value
        ]
        items = [i.decode("utf-8", "replace") if isinstance(i, bytes) else i for i in items]
        return repr(items)
    return repr(value)


def node_info(node: onnx.NodeProto, index: int) -> NodeInfo:
    return NodeInfo(
        name=node.name,
        op_type=node.op_type,
        domain=node.domain or "",
        index=index,
        inputs=tuple(node.input),
        outputs=tuple(node.output),
        attributes={a.name: attribute_text(a) for a in node.attribute},
    )


def constant_outputs(nodes: list[onnx.NodeProto]) -> dict[str, str]:
    """Output name -> content hash of every default-domain Constant node."""
    hashes = {}
    for node in nodes:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output and node.attribute:
            attr = node.attribute[0]
            if attr.type == onnx.AttributeProto.TENSOR:
                remembered = _inline(attr.t)
                hashes[node.output[0]] = (
                    _remembered(_hash_memo, attr.t, tensor_hash) if remembered else tensor_hash(attr.t)
                )
            else:
                hashes[node.output[0]] = xxhash.xxh3_64(f"{attr.name}={attribute_text(attr)}".encode()).hexdigest()
    return hashes


class NodeMatcher:
    """Pairs nodes of A with nodes of B (see the module docstring) and maps tensors A -> B."""

    def __init__(self, a, b, inits_a, inits_b):
        self.nodes_a = list(a.graph.node)
        self.nodes_b = list(b.graph.node)
        self.inits_a = inits_a
        self.inits_b = inits_b
        # Content hash of every constant value: initializers and Constant node outputs.
        self.const_a = {**{n: i.hash for n, i in inits_a.items()}, **constant_outputs(self.nodes_a)}
        self.const_b = {**{n: i.hash for n, i in inits_b.items()}, **constant_outputs(self.nodes_b)}
        self.attrs_a = [self._attr_key(n) for n in self.nodes_a]
        self.attrs_b = [self._attr_key(n) for n in self.nodes_b]
        self.pair_of_b: dict[int, tuple[int, str]] = {}
        self.pair_of_a: dict[int, int] = {}
        self.tmap: dict[str, str] = {}
        self.tmap_b: dict[str, str] = {}
        inputs_b = {v.name for v in b.graph.input}
        for value in a.graph.input:
            if value.name in inputs_b:
                self._map_tensor(value.name, value.name)
        for name in inits_a:
            if name in inits_b:
                self._map_tensor(name, name)
        self._map_tensor("", "")
        self.producer_a = {t: (i, k) for i, n in enumerate(self.nodes_a) for k, t in enumerate(n.output) if t}
        self.producer_b = {t: (i, k) for i, n in enumerate(self.nodes_b) for k, t in enumerate(n.output) if t}
        self.consumers_a = defaultdict(list)
        for i, node in enumerate(self.nodes_a):
            for t in node.input:
                if t:
                    self.consumers_a[t].append(i)
        self.consumers_b = defaultdict(list)
        for i, node in enumerate(self.nodes_b):
            for k, t in enumerate(node.input):
                if t:
                    self.consumers_b[t].append((i, k))
        self.outputs_a = {o.name for o in a.graph.output}
        self.outputs_b = {o.name for o in b.graph.output}

    @staticmethod
    def _attr_key(node: onnx.NodeProto) -> str:
        return "|".join(f"{a.name}={attribute_text(a)}" for a in sorted(node.attribute, key=lambda a: a.name))

    def _map_tensor(self, ta: str, tb: str) -> None:
        if ta not in self.tmap and tb not in self.tmap_b:
            self.tmap[ta] = tb
            self.tmap_b[tb] = ta

    def _pair(self, ia: int, ib: int, how: str) -> None:
        self.pair_of_b[ib] = (ia, how)
        self.pair_of_a[ia] = ib
        for ta, tb in zip(self.nodes_a[ia].output, self.nodes_b[ib].output):
            if ta and tb:
                self._map_tensor(ta, tb)

    def match(self) -> None:
        self._match_by_name()
        for _ in range(4):
            before = len(self.pair_of_b)
            self._match_forward()
            self._match_backward()
            if len(self.pair_of_b) == before:
                break
        self._match_by_position()

    def _match_by_position(self) -> None:
        """Last resort: align the op-type sequences of the still unmatched nodes (topological order)."""
        left_a = [i for i in range(len(self.nodes_a)) if i not in self.pair_of_a]
        left_b = [i for i in range(len(self.nodes_b)) if i not in self.pair_of_b]
        if not left_a or not left_b:
            return
        ops_a = [(self.nodes_a[i].domain, self.nodes_a[i].op_type) for i in left_a]
        ops_b = [(self.nodes_b[i].domain, self.nodes_b[i].op_type) for i in left_b]
        matcher = difflib.SequenceMatcher(a=ops_a, b=ops_b, autojunk=False)
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                self._pair(left_a[block.a + k], left_b[block.b + k], "position")

    def _match_by_name(self) -> None:
        names_a = Counter(n.name for n in self.nodes_a if n.name)
        names_b = Counter(n.name for n in self.nodes_b if n.name)
        index_a = {n.name: i for i, n in enumerate(self.nodes_a) if names_a[n.name] == 1}
        for ib, node in enumerate(self.nodes_b):
            if node.name and names_b[node.name] == 1 and node.name in index_a:
                self._pair(index_a[node.name], ib, "name")

    # A tensor's identity for structural matching: its B name when mapped, its content hash when
    # it is an initializer, else unknown (None).
    def _key_a(self, tensor: str):
        if tensor in self.tmap:
            return ("t", self.tmap[tensor])
        if tensor in self.const_a:
            return ("c", self.const_a[tensor])
        return None

    def _key_b(self, tensor: str):
        if tensor in self.tmap_b:
            return ("t", tensor)
        if tensor in self.const_b:
            return ("c", self.const_b[tensor])
        return None

    def _match_forward(self) -> None:
        unmatched_a = defaultdict(list)
        for ia, node in enumerate(self.nodes_a):
            if ia not in self.pair_of_a:
                unmatched_a[(node.domain, node.op_type)].append(ia)
        for ib, node_b in enumerate(self.nodes_b):
            if ib in self.pair_of_b:
                continue
            candidates = self._forward_candidates(node_b, unmatched_a.get((node_b.domain, node_b.op_type), ()))
            if not candidates:
                continue
            best = self._best_forward(ib, node_b, candidates)
            if best is not None:
                self._pair(best, ib, "structure")

    def _forward_candidates(self, node_b, same_op: list[int]) -> list[int]:
        """Unmatched A nodes of B's op type that could share B's producers.

        Every structural level needs B's non-constant inputs to be mapped, and a candidate must
        then read the A side of each; so the consumers of the first one are the only candidates.
        """
        variable = [t for t in node_b.input if t and t not in self.const_b]
        if any(t not in self.tmap_b for t in variable):
            return []
        if variable:
            op = (node_b.domain, node_b.op_type)
            readers = self.consumers_a.get(self.tmap_b[variable[0]], ())
            return sorted(
                {
                    ia
                    for ia in readers
                    if ia not in self.pair_of_a and (self.nodes_a[ia].domain, self.nodes_a[ia].op_type) == op
                }
            )
        return [ia for ia in same_op if ia not in self.pair_of_a]

    def _best_forward(self, ib: int, node_b, candidates: list[int]) -> int | None:
        keys_b = [self._key_b(t) for t in node_b.input]
        variable_b = [k for k, t in zip(keys_b, node_b.input) if t not in self.const_b]
        levels: list[list[int]] = [[], [], []]
        for ia in candidates:
            node_a = self.nodes_a[ia]
            keys_a = [self._key_a(t) for t in node_a.input]
            same_inputs = len(keys_a) == len(keys_b) and all(k is not None and k == kb for k, kb in zip(keys_a, keys_b))
            if same_inputs and self.attrs_a[ia] == self.attrs_b[ib]:
                levels[0].append(ia)
            elif same_inputs and keys_b:
                levels[1].append(ia)
            else:
                variable_a = [k for k, t in zip(keys_a, node_a.input) if t not in self.const_a]
                if variable_b and variable_a == variable_b and all(k is not None for k in variable_a):
                    levels[2].append(ia)
        for found in levels:
            if found:
                return min(found, key=lambda ia: abs(ia / max(len(self.nodes_a), 1) - ib / max(len(self.nodes_b), 1)))
        return None

    def _match_backward(self) -> None:
        for ib in range(len(self.nodes_b) - 1, -1, -1):
            if ib in self.pair_of_b:
                continue
            node_b = self.nodes_b[ib]
            for k_out, tb in enumerate(node_b.output):
                ia = self._backward_candidate(node_b, k_out, tb)
                if ia is not None:
                    self._pair(ia, ib, "structure")
                    break

    def _backward_candidate(self, node_b, k_out: int, tb: str) -> int | None:
        sources = []
        if tb in self.outputs_b and tb in self.outputs_a:
            sources.append(tb)
        for consumer, slot in self.consumers_b.get(tb, ()):
            if consumer in self.pair_of_b:
                inputs_a = self.nodes_a[self.pair_of_b[consumer][0]].input
                if slot < len(inputs_a):
                    sources.append(inputs_a[slot])
        for ta in sources:
            produced = self.producer_a.get(ta)
            if produced is None:
                continue
            ia, k = produced
            node_a = self.nodes_a[ia]
            if (
                ia not in self.pair_of_a
                and k == k_out
                and (node_a.domain, node_a.op_type) == (node_b.domain, node_b.op_type)
            ):
                return ia
        return None

    def initializer_slot_pairs(self) -> Iterable[tuple[str, str]]:
        """(A initializer, B initializer) read by the same input slot of a matched node pair."""
        for ib, (ia, _) in self.pair_of_b.items():
            for ta, tb in zip(self.nodes_a[ia].input, self.nodes_b[ib].input):
                if ta in self.inits_a and tb in self.inits_b and ta != tb:
                    yield ta, tb

    def node_changes(self, ia: int, ib: int, info_a: NodeInfo, info_b: NodeInfo) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if info_a.name != info_b.name:
            changes["name"] = Change(info_a.name, info_b.name)
        if info_a.domain != info_b.domain:
            changes["domain"] = Change(info_a.domain, info_b.domain)
        if info_a.op_type != info_b.op_type:
            changes["op_type"] = Change(info_a.op_type, info_b.op_type)
        attributes = {}
        for key in sorted(set(info_a.attributes) | set(info_b.attributes)):
            before, after = info_a.attributes.get(key), info_b.attributes.get(key)
            if before != after:
                attributes[key] = Change(before, after)
        if attributes:
            changes["attributes"] = attributes
        if not self._same_inputs(info_a.inputs, info_b.inputs):
            changes["inputs"] = Change(list(info_a.inputs), list(info_b.inputs))
        if len(info_a.outputs) != len(info_b.outputs) or any(
            bool(x) != bool(y) for x, y in zip(info_a.outputs, info_b.outputs)
        ):
            changes["outputs"] = Change(list(info_a.outputs), list(info_b.outputs))
        return changes

    def _same_inputs(self, inputs_a, inputs_b) -> bool:
        if len(inputs_a) != len(inputs_b):
            return False
        for ta, tb in zip(inputs_a, inputs_b):
            if self.tmap.get(ta) == tb or ta == tb:
                continue
            if ta in self.const_a and tb in self.const_b and self.const_a[ta] == self.const_b[tb]:
                continue
            return False
        return True
