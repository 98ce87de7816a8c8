"""Shape inference that stays cheap on large models, and helpers to read and refine dims.

:func:`infer_value_types` is the one path for shape inference on a model: it runs ONNX shape
inference on a *skeleton* of the model (:func:`skeleton`): initializers
larger than :data:`SKELETON_MAX_ELEMENTS` are replaced by graph inputs of the same type and
shape, so a 500 MB model is inferred without copying its weights (small integer tensors, which
shape inference reads for Reshape targets and the like, are kept). :func:`with_inferred_shapes`
returns a copy of a model whose ``value_info`` is freshly inferred (stale entries dropped) and
whose unknown output dims are refined.

Dims are represented as ``int`` (static), ``str`` (a named symbolic dim) or ``None`` (unknown).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import onnx

from graphkit.ir.external_data import tensor_array
from graphkit.ir.shape_seeds import GraphConstants, symbolic_seeds
from graphkit.ir.value_type import RANDOM_OPS, Dim, ValueType  # noqa: F401 - RANDOM_OPS re-exported
from graphkit.util.errors import PassError, one_line

SKELETON_MAX_ELEMENTS = 4096
# ONNX's name for a dim it knows nothing about, new in every inference (not graphkit's
# "unk__product:..." names, which say what the dim is)
FRESH_NAME = re.compile(r"unk__\d+")
# rounds of seeding ONNX's inference with the types graphkit.ir.shape_seeds computes
SEED_ROUNDS = 8


def dims_of(value: onnx.ValueInfoProto) -> tuple[Dim, ...] | None:
    """The dims of a tensor value info (None when it declares no shape)."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param if d.dim_param else None) for d in tensor.shape.dim
    )


def format_dims(dims: tuple[Dim, ...] | list[Dim] | None) -> str:
    """Dims for display: ``[2,batch,?]`` (``?`` an unknown dim), ``[?]`` when the rank is unknown."""
    if dims is None:
        return "[?]"
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def io_signature(value: onnx.ValueInfoProto) -> tuple:
    """(name, element type, dims or None) of a graph input or output (dims as :func:`dims_of`)."""
    return (value.name, value.type.tensor_type.elem_type, dims_of(value))


def set_dims(value: onnx.ValueInfoProto, dims: tuple[Dim, ...]) -> None:
    """Overwrite the dims of a tensor value info in place."""
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for dim in dims:
        entry = shape.dim.add()
        if isinstance(dim, int):
            entry.dim_value = dim
        elif isinstance(dim, str):
            entry.dim_param = dim


def skeleton(
    model: onnx.ModelProto,
    max_elements: int = SKELETON_MAX_ELEMENTS,
    keep_value_info: bool = True,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> onnx.ModelProto:
    """A copy of ``model`` without its large initializers (they become typed graph inputs).

    Nodes, small initializers and value infos are shared by value, never the weights' bytes.
    ``input_shapes`` (name -> dims) fixes the dims of those graph inputs in the copy.
    """
    skel = onnx.ModelProto()
    skel.ir_version = max(model.ir_version, 4)
    skel.opset_import.extend(model.opset_import)
    skel.functions.extend(model.functions)
    graph = skel.graph
    graph.name = model.graph.name
    graph.node.extend(model.graph.node)
    graph.output.extend(model.graph.output)
    if keep_value_info:
        graph.value_info.extend(model.graph.value_info)
    inits = {t.name for t in model.graph.initializer}
    graph.input.extend(v for v in model.graph.input if v.name not in inits)
    for tensor in model.graph.initializer:
        count = 1
        for d in tensor.dims:
            count *= d
        if count <= max_elements and tensor.data_location != onnx.TensorProto.EXTERNAL:
            graph.initializer.append(tensor)
        else:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    if input_shapes:
        for value in graph.input:
            if value.name in input_shapes:
                set_dims(value, tuple(int(d) for d in input_shapes[value.name]))
    return skel


def infer_value_types(
    model: onnx.ModelProto,
    strict: bool = False,
    keep_value_info: bool = False,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, ValueType]:
    """Element types and dims of every tensor that shape inference can type, by name.

    This is graphkit's one path for "infer on the graph without its large weights": ONNX shape
    inference (``data_prop`` on) runs on :func:`skeleton` of ``model``. Stored ``value_info`` is
    ignored unless ``keep_value_info`` (it may be stale); ``input_shapes`` fixes graph input dims.
    Raises PassError when inference fails (``strict`` also fails on inconsistent shapes).
    """
    skel = skeleton(model, keep_value_info=keep_value_info, input_shapes=input_shapes)
    for _ in range(4):
        try:
            inferred = onnx.shape_inference.infer_shapes(skel, check_type=False, strict_mode=strict, data_prop=True)
        except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError) as exc:
            raise PassError(f"shape inference failed: {one_line(exc, 300)}") from exc
        seeds = _resize_symbol_seeds(inferred)
        if not seeds:
            break
        skel.graph.value_info.extend(seeds)
    proposed: set[bytes] = set()
    rounds_seen: set[tuple] = set()  # each round's seeds, ONNX's fresh names numbered in order
    constants = GraphConstants(skel.graph)  # the rounds change value infos only
    opset = _default_opset(skel)
    for _ in range(SEED_ROUNDS):
        # where ONNX gives up (a computed Reshape target below opset 14, Range, Expand of a
        # computed shape), the shape vectors still say the rank and dims: seed them, infer again
        types = value_types(inferred.graph)
        seeds = symbolic_seeds(inferred, types, opset, constants)
        fresh = {seed.SerializeToString() for seed in seeds} - proposed
        renamed = _fresh_names_numbered(seeds)
        if not fresh or renamed in rounds_seen:  # nothing new (or only ONNX's fresh names are): done
            return types
        proposed |= fresh
        rounds_seen.add(renamed)
        # infer again from the skeleton's own value infos plus the seeds: the types inferred
        # downstream of an unknown (fresh ``unk__N`` names) must not outlive it
        seeded = {seed.name for seed in seeds}
        kept = [v for v in skel.graph.value_info if v.name not in seeded]
        del skel.graph.value_info[:]
        skel.graph.value_info.extend(kept + seeds)
        try:
            inferred = onnx.shape_inference.infer_shapes(skel, check_type=False, strict_mode=strict, data_prop=True)
        except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError) as exc:
            raise PassError(f"shape inference failed: {one_line(exc, 300)}") from exc
    return value_types(inferred.graph)


def _fresh_names_numbered(seeds: list[onnx.ValueInfoProto]) -> tuple:
    """The seeds as (name, element type, dims) with ONNX's fresh ``unk__N`` dim names numbered by
    first appearance: inference names an unknown dim afresh every round, so seeds that differ from
    an earlier round's only in those names say nothing new."""
    numbers: dict[str, str] = {}
    renamed = []
    for seed in seeds:
        dims = dims_of(seed)
        if dims is not None:
            dims = tuple(
                numbers.setdefault(d, f"unk#{len(numbers)}") if isinstance(d, str) and FRESH_NAME.fullmatch(d) else d
                for d in dims
            )
        renamed.append((seed.name, seed.type.tensor_type.elem_type, dims))
    return tuple(renamed)


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def known_value_types(model: onnx.ModelProto) -> dict[str, ValueType]:
    """:func:`infer_value_types` (non-strict, stored value_info as a hint), or the declared types
    of ``model`` when inference fails: for readers that must go on without inference."""
    try:
        return infer_value_types(model, strict=False, keep_value_info=True)
    except PassError:
        return value_types(model.graph)


def symbolic_value_types(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, ValueType]:
    """Types of the produced values from onnxruntime's symbolic shape inference, on :func:`skeleton`.

    A second opinion, better than ONNX's through shape chains feeding Resize/Reshape; empty when
    it fails (it is best-effort: any failure leaves the shapes unknown).
    """
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    skel = skeleton(model, keep_value_info=False, input_shapes=input_shapes)
    try:
        inferred = SymbolicShapeInference.infer_shapes(skel, auto_merge=True)
    except Exception:  # noqa: BLE001 - best effort, see the docstring
        return {}
    if inferred is None:
        return {}
    return {
        v.name: ValueType(v.type.tensor_type.elem_type, dims_of(v))
        for v in inferred.graph.value_info
        if v.type.HasField("tensor_type")
    }


def value_types(graph: onnx.GraphProto) -> dict[str, ValueType]:
    """Element type and dims of every typed value and initializer of ``graph``, by name."""
    types: dict[str, ValueType] = {}
    for values in (graph.input, graph.value_info, graph.output):
        for value in values:
            if value.type.HasField("tensor_type"):
                tensor = value.type.tensor_type
                dims = (
                    tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
                    if tensor.HasField("shape")
                    else None
                )  # dims_of, inline: this runs once per inference round on every value
                types[value.name] = ValueType(tensor.elem_type, dims)
    for tensor in graph.initializer:
        types[tensor.name] = ValueType(tensor.data_type, tuple(int(d) for d in tensor.dims))
    return types


def _resize_symbol_seeds(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Value infos that keep a named dim through Resize axes with constant scale 1.

    onnx's Resize inference gives a fresh ``unk__N`` for ``dim * 1.0`` when the dim is
    symbolic; the output dim is provably the input dim, so it keeps its name.
    """
    graph = model.graph
    known = {v.name: v for v in list(graph.input) + list(graph.value_info) + list(graph.output)}
    inits = {t.name: t for t in graph.initializer}
    seeds = []
    for node in graph.node:
        if node.op_type != "Resize" or len(node.input) < 3 or node.input[2] not in inits:
            continue
        scales = tensor_array(inits[node.input[2]]).reshape(-1)
        source, target = known.get(node.input[0]), known.get(node.output[0])
        if source is None or target is None or node.output[0] in {o.name for o in graph.output}:
            continue
        src, dst = dims_of(source), dims_of(target)
        if src is None or dst is None or len(src) != len(dst) or len(scales) != len(src):
            continue
        new = tuple(s if scale == 1.0 and isinstance(s, str) and d != s else d for s, d, scale in zip(src, dst, scales))
        if new != dst:
            seeds.append(
                onnx.helper.make_tensor_value_info(node.output[0], target.type.tensor_type.elem_type, list(new))
            )
    existing = {v.name for v in graph.value_info}
    if any(seed.name in existing for seed in seeds):
        kept = [v for v in graph.value_info if v.name not in {seed.name for seed in seeds}]
        del graph.value_info[:]
        graph.value_info.extend(kept)
    return seeds


def refine_dims(declared: tuple[Dim, ...] | None, inferred: tuple[Dim, ...] | None) -> tuple[Dim, ...] | None:
    """``declared`` with unknown or symbolic dims replaced by static inferred ones.

    Static declared dims are never changed; a named dim is only replaced by a static value;
    unknown dims take a named dim from inference. Returns None when nothing would change.
    """
    if inferred is None:
        return None
    if declared is None:
        return inferred if any(d is not None for d in inferred) else None
    if len(declared) != len(inferred):
        return None
    refined = []
    for old, new in zip(declared, inferred):
        if isinstance(old, int) or new is None:
            refined.append(old)
        elif isinstance(new, int) or old is None:
            refined.append(new)
        else:
            refined.append(old)
    refined = tuple(refined)
    return refined if refined != declared else None


def with_inferred_shapes(model: onnx.ModelProto, refine_outputs: bool = True) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with fresh ``value_info`` and refined outputs; see :func:`apply_inferred_shapes`."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy, apply_inferred_shapes(copy, refine_outputs)


def apply_inferred_shapes(model: onnx.ModelProto, refine_outputs: bool = True, strict: bool = True) -> int:
    """Replace ``value_info`` of ``model`` (in place) by freshly inferred entries.

    With ``refine_outputs``, unknown or symbolic output dims that inference proves static (and
    unknown ones it can name) are filled in; static output dims are never changed. Returns the
    number of output dims refined. Raises PassError when strict shape inference fails.
    """
    del model.graph.value_info[:]
    types = infer_value_types(model, strict=strict)
    outputs = {o.name for o in model.graph.output}
    inputs = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        for name in node.output:
            if not name or name in outputs or name in inputs or name not in types:
                continue
            vtype = types[name]
            if vtype.dims is None:
                continue
            model.graph.value_info.append(onnx.helper.make_tensor_value_info(name, vtype.elem_type, list(vtype.dims)))
    refined_count = 0
    if refine_outputs:
        for value in model.graph.output:
            if not value.type.HasField("tensor_type") or value.name not in types:
                continue
            old = dims_of(value)
            new = refine_dims(old, types[value.name].dims)
            if new is not None:
                refined_count += sum(1 for a, b in zip(old or (None,) * len(new), new) if a != b)
                set_dims(value, new)
    return refined_count


def output_refinements(model: onnx.ModelProto, types: dict[str, ValueType]) -> int:
    """How many output dims :func:`apply_inferred_shapes` would refine, given inferred ``types``."""
    count = 0
    for value in model.graph.output:
        if value.name in types and value.type.HasField("tensor_type"):
            old = dims_of(value)
            new = refine_dims(old, types[value.name].dims)
            if new is not None:
                count += sum(1 for a, b in zip(old or (None,) * len(new), new) if a != b)
    return count


def fresh_name(base: str, names: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2``... : the first not in ``names`` (which it joins)."""
    name, k = base, 1
    while name in names:
        name = f"{base}_{k}"
        k += 1
    names.add(name)
    return name
