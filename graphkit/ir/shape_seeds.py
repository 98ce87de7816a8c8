"""Types that ONNX's shape inference leaves unknown, computed from shape vectors with symbolic dims.

ONNX's inference gives a ``Reshape`` whose target is computed (``Concat`` of ``Shape`` slices)
no rank below opset 14, and it does not follow ``Range``/``Where`` on shapes at all, so the same
graph is typed at opset 17 and untyped at opset 13. :func:`symbolic_seeds` evaluates the shape
vectors of a graph element by element (:func:`graphkit.ir.shape_eval.evaluate_partial`: ints and
symbolic dims) and returns value infos for the outputs whose rank or dims inference left unknown:

- ``Reshape(x, t)``: rank ``len(t)``; element ``k > 0`` is ``k``, ``0`` is ``x``'s dim, a symbolic
  element is its dim name (or product, below), ``-1`` is ``x``'s element count over the product of
  the other elements, as monomials in the named dims (names cancel by name, the coefficient must
  divide): a static dim, a name, or a product;
- ``Expand(x, s)``: the broadcast of ``x``'s dims with ``s``;
- ``ConstantOfShape(s)``: the dims of ``s``;
- ``Range(start, limit, delta)``: ``[n]``, ``n`` static when all three are, the limit's dim name
  when ``start`` is 0 and ``delta`` 1;
- ``MatMul(a, b)`` with ``b``'s dim -2 static (a weight): ``a``'s last dim is that dim (the one
  seed taken from a consumer: a MatMul runs only when the two agree). Swin's attention output
  ``Reshape(ctx, [Shape(h)[0], 16, -1])`` below opset 14 then has a static last dim, which
  fold-shapes writes into the target.

Products of dims: ``Mul`` of shape elements that are dims or such products (MobileViT's
``Shape(x)[0] * 4``) is remembered as a monomial, and a dim that is a product of named dims with a
coefficient is seeded as the name ``unk__product:4*batch`` (:data:`PRODUCT_PREFIX`). ONNX's
inference copies that name like any other, so a later ``Reshape`` computes its ``-1`` from it:
MobileViT's ``[-1, 2, 8, 2]`` of ``[batch, 16, 16, 16]`` is ``128*batch``, the ``[-1, 16, 64, 4]``
after it ``batch``, and ``[Shape(x)[0] * 4, 64, -1]`` has the static last dim 16 that fold-shapes
writes into the target. Exact for every value of the named dims: ``Reshape`` keeps the element
count, the ``-1`` is by definition that count over the others' product, and a product of dims and
a positive int is that same product for every size (a 0-sized dim makes the source's ``-1``
itself undefined). ONNX's own ``unk__N`` names cancel within one inference but never enter a
seeded dim (they are renumbered on every inference); a sum, difference or quotient of dims stays
unknown.

Every dim given is implied by the node's semantics and the input types (named dims stay named;
an unknown stays unknown), or, for the MatMul seed, by the model running at all, so it is exact
on every input the source model accepts: seeding it only lets inference go on from there.
:func:`graphkit.ir.shapes.infer_value_types` reruns inference with these seeds until none is new
(up to ONNX's fresh ``unk__N`` names, which it renames every round).

Cost: the constants of the graph are read once per inference (:class:`GraphConstants`), and each
round evaluates only the shape vectors that a node to seed reads (producers first, on demand);
a graph whose names change meaning along the node list is evaluated in order instead.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.ir.shape_eval import PARTIAL_OPS, Partial, Sym, attr_value, constant_value, evaluate_partial
from graphkit.ir.value_type import Dim, ValueType

ONNX_DOMAINS = ("", "ai.onnx")
# A dim name that stands for a product of dims: "unk__product:4*batch" is 4 * batch. The "unk__"
# prefix keeps it out of what graphkit reports or pins as a named dim, like ONNX's own unk__N.
PRODUCT_PREFIX = "unk__product:"
# a product of dims: a non-negative coefficient and the sorted names multiplied
Monomial = tuple[int, tuple[str, ...]]
# the largest constant (elements) read as a shape vector
SMALL_ELEMENTS = 64
# the ops whose output type symbolic_seeds computes from shape vectors
SEEDED_OPS = ("Reshape", "Expand", "ConstantOfShape", "Range")
# the ops whose partial value evaluate_partial computes from their input's type alone
TYPE_READERS = ("Shape", "Size")


class GraphConstants:
    """The small integer constants of one graph, read once: its initializers and the value of each
    ``Constant`` node (by node index), each as the array and, for integers and bools, the
    :class:`graphkit.ir.shape_eval.Partial` vector. :func:`symbolic_seeds` reads the same graph
    once per inference round, and the rounds change only value infos, never nodes or initializers.
    """

    def __init__(self, graph: onnx.GraphProto):
        self.constants: dict[str, np.ndarray] = {}
        self.partial: dict[str, Partial] = {}
        inputs = {v.name for v in graph.input}
        for tensor in graph.initializer:
            if tensor.name in inputs or tensor.data_location == onnx.TensorProto.EXTERNAL:
                continue
            if len(tensor.dims) > 1 or int(np.prod(tensor.dims, dtype=np.int64)) > SMALL_ELEMENTS:
                continue  # _entry drops it: never converted
            entry = _entry(numpy_helper.to_array(tensor))
            if entry is not None:
                self.constants[tensor.name] = entry[0]
                if entry[1] is not None:
                    self.partial[tensor.name] = entry[1]
        self.nodes: dict[int, tuple[np.ndarray, Partial | None] | None] = {
            index: _entry(constant_value(node))
            for index, node in enumerate(graph.node)
            if node.op_type == "Constant" and node.domain in ONNX_DOMAINS
        }
        self.producers = _producers(graph)
        self.produced = {name for node in graph.node for name in node.output}
        self.matmuls = [index for index, node in enumerate(graph.node) if node.op_type == "MatMul"]


def _producers(graph: onnx.GraphProto) -> dict[str, int] | None:
    """The node whose first output is each name, for evaluating nodes on demand; None when a name
    is produced twice or is also an initializer, or a node reads its own or a later node's output
    (then every node is evaluated in order, as the meaning of a name changes along the list)."""
    producers: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        if node.output and node.output[0]:
            if node.output[0] in producers:
                return None
            producers[node.output[0]] = index
    if any(tensor.name in producers for tensor in graph.initializer):
        return None
    for index, node in enumerate(graph.node):
        if any(producers.get(name, -1) >= index for name in node.input):
            return None
    return producers


def _entry(array: np.ndarray | None) -> tuple[np.ndarray, Partial | None] | None:
    """A constant as read by shape evaluation: None when it is too large or not a vector."""
    if array is None or array.size > SMALL_ELEMENTS or array.ndim > 1:
        return None
    if array.dtype.kind in "iu" or array.dtype == np.bool_:
        return array, Partial(array.ndim, [int(v) for v in array.reshape(-1)], array.dtype)
    return array, None


class _Values:
    """The :class:`graphkit.ir.shape_eval.KnownValues` of one pass over a graph: small integer
    constants (initializers, Constant nodes) and the partial shape vectors of the nodes evaluated
    so far. Nodes are evaluated on demand: those feeding a node to seed, producers first."""

    def __init__(self, graph: onnx.GraphProto, types: dict[str, ValueType], opset: int, constants: GraphConstants):
        self.partial: dict[str, Partial] = dict(constants.partial)
        self.constants: dict[str, np.ndarray] = dict(constants.constants)
        self.products: dict[tuple, Monomial] = {}
        self._graph, self._types, self._opset, self._graph_constants = graph, types, opset, constants
        self._evaluated = 0  # with no producer map: every node below this index is evaluated
        self._done: set[int] = set()  # with one: the nodes evaluated

    def record_products(self, node: onnx.NodeProto, result: Partial, types: dict[str, ValueType]) -> None:
        """Remember the monomial behind each opaque element of ``Mul``'s result (both factors known)."""
        parts = [self.partial.get(name) for name in node.input]
        if any(p is None for p in parts) or len(parts) != 2:
            return
        for i, elem in enumerate(result.elems):
            if isinstance(elem, Sym) and elem.key[0] == "opaque":
                x, y = (p.elems[i if len(p.elems) > 1 else 0] for p in parts)
                product = _times(_monomial(x, self, types), _monomial(y, self, types))
                if product is not None:
                    self.products[elem.key] = product

    def is_const(self, name: str) -> bool:
        return name in self.constants or (name in self.partial and self.partial[name].known() is not None)

    def value(self, name: str) -> np.ndarray:
        if name in self.constants:
            return self.constants[name]
        return self.partial[name].known()

    def evaluate_inputs(self, index: int, names: list[str]) -> None:
        """Evaluate the values ``names`` that node ``index`` reads: each one's producer when it comes
        before the node, after the values that producer reads (a ``Shape`` or ``Size`` reads only
        types). The values read are those of evaluating every node before ``index`` in order."""
        nodes = self._graph.node
        producers = self._graph_constants.producers
        if producers is None:
            while self._evaluated < index:
                self._evaluate(self._evaluated)
                self._evaluated += 1
            return
        done = self._done
        stack = [(p, False) for p in (producers.get(name) for name in names) if p is not None and p < index]
        while stack:
            at, ready = stack.pop()
            if at in done:
                continue
            if ready:
                done.add(at)
                self._evaluate(at)
                continue
            stack.append((at, True))
            node = nodes[at]
            if node.op_type in TYPE_READERS or node.op_type not in PARTIAL_OPS or node.domain not in ONNX_DOMAINS:
                continue  # its value does not depend on its inputs' values (or it has none)
            for name in nodes[at].input:
                p = producers.get(name)
                if p is not None and p < at and p not in done:
                    stack.append((p, False))

    def _evaluate(self, index: int) -> None:
        node = self._graph.node[index]
        if node.domain not in ONNX_DOMAINS:
            return
        if node.op_type == "Constant":
            entry = self._graph_constants.nodes[index]
            if entry is not None:
                self.constants[node.output[0]] = entry[0]
                if entry[1] is not None:
                    self.partial[node.output[0]] = entry[1]
            return
        if node.op_type not in PARTIAL_OPS:
            return  # evaluate_partial gives None
        result = evaluate_partial(node, self, self._types, self._opset)
        if result is not None and node.output:
            self.partial[node.output[0]] = result
            if node.op_type == "Mul":
                self.record_products(node, result, self._types)


def symbolic_seeds(
    model: onnx.ModelProto, types: dict[str, ValueType], opset: int, constants: GraphConstants | None = None
) -> list[onnx.ValueInfoProto]:
    """Value infos for node outputs whose rank or some dims ``types`` leaves unknown and that the
    shape vectors feeding them determine (see the module docstring); empty when there are none.
    ``constants``: :class:`GraphConstants` of ``model.graph`` (the same nodes and initializers)
    when the caller already has them."""
    if constants is None:
        constants = GraphConstants(model.graph)
    values = _Values(model.graph, types, opset, constants)
    outputs = {v.name for v in model.graph.output}
    seeds = []
    for index, node in enumerate(model.graph.node):
        if node.op_type not in SEEDED_OPS or node.domain not in ONNX_DOMAINS:
            continue
        if not node.output or not node.output[0] or node.output[0] in outputs:
            continue
        current = types.get(node.output[0])
        if current is not None and current.dims is not None and all(_known(d) for d in current.dims):
            continue
        values.evaluate_inputs(index, _shape_inputs(node))
        dims = _output_dims(node, values, types)
        if dims is None:
            continue
        if current is not None and current.dims is not None:
            if len(current.dims) != len(dims):
                continue
            dims = tuple(old if _known(old) else new for old, new in zip(current.dims, dims))
            if dims == current.dims:
                continue
        elem_type = current.elem_type if current is not None else _elem_type(node, types)
        if not elem_type:
            continue
        seeds.append(onnx.helper.make_tensor_value_info(node.output[0], elem_type, list(dims)))
    return _with_matmul_seeds(model, types, seeds, constants)


def _shape_inputs(node: onnx.NodeProto) -> list[str]:
    """The inputs whose values :func:`_output_dims` reads for a node of :data:`SEEDED_OPS`."""
    if node.op_type == "Range":
        return list(node.input[:3])
    if node.op_type == "ConstantOfShape":
        return list(node.input[-1:])
    return list(node.input[1:2])


def _with_matmul_seeds(
    model: onnx.ModelProto, types: dict[str, ValueType], seeds: list[onnx.ValueInfoProto], constants: GraphConstants
) -> list[onnx.ValueInfoProto]:
    """``seeds`` plus, for each ``MatMul(a, b)`` whose ``b`` has a static dim -2 ``K`` and whose
    ``a`` (a node's output of known rank, not a graph output) has a last dim that is not static,
    ``a``'s dims with the last one ``K`` (a forward seed of ``a`` is completed, not replaced)."""
    by_name = {seed.name: seed for seed in seeds}
    produced = constants.produced
    outputs = {v.name for v in model.graph.output}
    for node in (model.graph.node[index] for index in constants.matmuls):
        if node.op_type != "MatMul" or node.domain not in ONNX_DOMAINS or len(node.input) != 2:
            continue
        a, b = types.get(node.input[0]), types.get(node.input[1])
        if a is None or b is None or a.dims is None or b.dims is None or len(b.dims) < 2 or not a.dims:
            continue
        inner = b.dims[-2]
        name = node.input[0]
        if not isinstance(inner, int) or name not in produced or name in outputs or not a.elem_type:
            continue
        seed = by_name.get(name)
        dims = _seed_dims(seed) if seed is not None else [d if _known(d) else None for d in a.dims]
        if len(dims) != len(a.dims) or isinstance(dims[-1], int):
            continue
        dims[-1] = inner
        by_name[name] = onnx.helper.make_tensor_value_info(name, a.elem_type, dims)
    return list(by_name.values())


def _seed_dims(seed: onnx.ValueInfoProto) -> list[Dim]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in seed.type.tensor_type.shape.dim]


def _known(dim: Dim) -> bool:
    """A static dim or a name that says something (ONNX's fresh ``unk__N`` names say nothing)."""
    return isinstance(dim, int) or (isinstance(dim, str) and not dim.startswith("unk__"))


def _elem_type(node: onnx.NodeProto, types: dict[str, ValueType]) -> int:
    if node.op_type in ("Reshape", "Expand"):
        source = types.get(node.input[0])
        return source.elem_type if source is not None else 0
    if node.op_type == "ConstantOfShape":
        value = attr_value(node, "value", None)
        return value.data_type if value is not None else onnx.TensorProto.FLOAT
    if node.op_type == "Range":
        source = types.get(node.input[0])
        return source.elem_type if source is not None else 0
    return 0


def _dim_of(elem, types: dict[str, ValueType], values: _Values | None = None) -> Dim:
    """A shape-vector element as a dim: the int, the named dim, a product of dims (a
    :data:`PRODUCT_PREFIX` name), or None."""
    if not isinstance(elem, Sym):
        return int(elem)
    if elem.key[0] == "param":
        return elem.key[1]
    if elem.key[0] == "axis":
        source = types.get(elem.key[1])
        if source is not None and source.dims is not None and elem.key[2] < len(source.dims):
            dim = source.dims[elem.key[2]]
            return dim if _known(dim) or _is_product(dim) else None
    if elem.key[0] == "opaque" and values is not None and elem.key in values.products:
        return _as_dim(values.products[elem.key])
    return None


def _is_product(dim: Dim) -> bool:
    return isinstance(dim, str) and dim.startswith(PRODUCT_PREFIX)


def dim_monomial(dim: Dim) -> Monomial | None:
    """``dim`` as a monomial: a static dim, a name or a product name; None for an unknown. An ONNX
    ``unk__N`` name is a factor too (it cancels by name within one inference), but never ends up
    in a dim that is seeded (:func:`_as_dim`): ONNX renumbers them on every inference."""
    if isinstance(dim, int):
        return (dim, ()) if dim >= 0 else None
    if _is_product(dim):
        coef, *names = dim[len(PRODUCT_PREFIX) :].split("*")
        return (int(coef), tuple(sorted(names))) if coef.isdigit() and names else None
    return (1, (dim,)) if isinstance(dim, str) else None


def _monomial(elem, values: _Values, types: dict[str, ValueType]) -> Monomial | None:
    """A shape-vector element as a monomial (None when it is not a known product of dims)."""
    if isinstance(elem, Sym) and elem.key[0] == "opaque":
        return values.products.get(elem.key)
    return dim_monomial(_dim_of(elem, types))


def _times(a: Monomial | None, b: Monomial | None) -> Monomial | None:
    if a is None or b is None:
        return None
    return (a[0] * b[0], tuple(sorted(a[1] + b[1])))


def _as_dim(product: Monomial) -> Dim:
    """A monomial as a dim: an int, a name, or a :data:`PRODUCT_PREFIX` name (None for a zero coefficient)."""
    coef, names = product
    if not names:
        return coef
    if coef <= 0 or not all(_known(name) and "*" not in name for name in names):
        return None  # a "*" inside a name would be read back as two factors
    return names[0] if coef == 1 and len(names) == 1 else PRODUCT_PREFIX + "*".join([str(coef), *names])


def _output_dims(node: onnx.NodeProto, values: _Values, types: dict[str, ValueType]) -> tuple[Dim, ...] | None:
    op = node.op_type
    if op == "Range":
        return _range_dims(node, values, types)
    if len(node.input) < (1 if op == "ConstantOfShape" else 2):
        return None
    shape = values.partial.get(node.input[-1] if op == "ConstantOfShape" else node.input[1])
    if shape is None or shape.rank != 1:
        return None
    target = [_dim_of(e, types, values) for e in shape.elems]
    if op == "ConstantOfShape":
        return tuple(target)
    source = types.get(node.input[0])
    source_dims = source.dims if source is not None else None
    if op == "Reshape":
        return _reshape_dims(node, shape, target, source_dims)
    if op == "Expand":
        return _expand_dims(target, source_dims)
    return None


def _reshape_dims(node, shape: Partial, target: list[Dim], source_dims) -> tuple[Dim, ...] | None:
    allowzero = attr_value(node, "allowzero", 0)
    dims: list[Dim] = []
    for axis, (elem, dim) in enumerate(zip(shape.elems, target)):
        if not isinstance(elem, Sym) and int(elem) == 0 and not allowzero:
            copied = source_dims[axis] if source_dims is not None and axis < len(source_dims) else None
            dims.append(copied if _known(copied) or _is_product(copied) else None)
        elif not isinstance(elem, Sym) and int(elem) == -1:
            dims.append(-1)
        else:
            dims.append(dim if isinstance(dim, str) or (isinstance(dim, int) and dim >= 0) else None)
    if -1 in dims:
        position = dims.index(-1)
        others = [d for i, d in enumerate(dims) if i != position]
        dims[position] = _quotient(source_dims, others)
    return tuple(dims)


def _quotient(total: tuple[Dim, ...] | None, part: list[Dim]) -> Dim:
    """The dim that ``-1`` stands for: the product of ``total`` over the product of ``part``, as
    monomials in the named dims (names cancel by name; the coefficient must divide): an int, a
    name or a product name; None when a dim is unknown or the division is not exact."""
    if total is None:
        return None
    numerator, denominator = (1, ()), (1, ())
    for dim in total:
        numerator = _times(numerator, dim_monomial(dim))
    for dim in part:
        denominator = _times(denominator, dim_monomial(dim))
    if numerator is None or denominator is None or denominator[0] <= 0 or numerator[0] % denominator[0]:
        return None
    names = list(numerator[1])
    for name in denominator[1]:
        if name not in names:
            return None
        names.remove(name)
    return _as_dim((numerator[0] // denominator[0], tuple(names)))


def _expand_dims(target: list[Dim], source_dims) -> tuple[Dim, ...] | None:
    if source_dims is None:
        return None
    rank = max(len(target), len(source_dims))
    left = [1] * (rank - len(source_dims)) + list(source_dims)
    right = [1] * (rank - len(target)) + list(target)
    dims: list[Dim] = []
    for a, b in zip(left, right):
        if a == 1:
            dims.append(b)
        elif b == 1 or a == b:
            dims.append(a)
        else:
            dims.append(None)  # unknown against a named or static dim: left to the run time
    return tuple(dims)


def _range_dims(node: onnx.NodeProto, values: _Values, types: dict[str, ValueType]) -> tuple[Dim, ...] | None:
    parts = [values.partial.get(name) for name in node.input[:3]]
    if len(parts) != 3 or any(p is None or p.rank != 0 or p.dtype.kind not in "iu" for p in parts):
        return None
    start, limit, delta = (p.elems[0] for p in parts)
    if isinstance(start, Sym) or isinstance(delta, Sym) or int(delta) == 0:
        return None
    if not isinstance(limit, Sym):
        return (max(int(np.ceil((int(limit) - int(start)) / int(delta))), 0),)
    if int(start) == 0 and int(delta) == 1:
        return (_dim_of(limit, types),)
    return None
