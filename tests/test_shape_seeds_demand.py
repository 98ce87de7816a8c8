"""graphkit.ir.shape_seeds reads a graph's constants once per inference and evaluates only the shape
vectors a seeded node reads: the seeds are those of evaluating every node in order, a graph whose
names change meaning along the node list is evaluated in order, and a changed graph is read
afresh (nothing is kept between calls of infer_value_types)."""

from __future__ import annotations

import onnx
import pytest

from graphkit.ir.shape_seeds import GraphConstants, symbolic_seeds
from graphkit.ir.shapes import infer_value_types, skeleton, value_types
from graphkit.testing import parse_model

from .test_shape_seeds import head_split


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.shape_inference.infer_shapes(skeleton(model, keep_value_info=False), data_prop=True)


def _seeds(model: onnx.ModelProto, in_order: bool) -> list[bytes]:
    constants = GraphConstants(model.graph)
    if in_order:
        constants.producers = None  # the in-order evaluation every node gets without a producer map
    opset = model.opset_import[0].version
    return sorted(s.SerializeToString() for s in symbolic_seeds(model, value_types(model.graph), opset, constants))


@pytest.mark.parametrize("opset", [13, 17])
def test_on_demand_seeds_are_the_in_order_seeds(opset):
    model = _inferred(head_split(opset))
    assert GraphConstants(model.graph).producers is not None
    on_demand = _seeds(model, in_order=False)
    assert on_demand == _seeds(model, in_order=True)
    if opset == 13:  # ONNX leaves the computed Reshape target without a rank there: a seed is due
        assert on_demand


def test_the_matmul_and_minus_one_seeds_are_the_in_order_seeds():
    model = parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[batch, seq, 8] x) => (float[batch, seq, 4] y)
        <float[8, 4] w = {1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32},
         int64[1] zero = {0}, int64[1] one = {1}, int64[1] minus = {-1}>
        { s = Shape(x)
          b = Gather<axis=0>(s, zero)
          t = Concat<axis=0>(b, minus)
          r = Reshape(x, t)
          t2 = Concat<axis=0>(b, one, minus)
          r2 = Reshape(r, t2)
          s2 = Shape(x)
          r3 = Reshape(r2, s2)
          y = MatMul(r3, w) }
        """
    )
    inferred = _inferred(model)
    on_demand = _seeds(inferred, in_order=False)
    assert on_demand == _seeds(inferred, in_order=True)
    assert len(on_demand) >= 2  # r (a -1 over batch*seq*8) and r3 (last dim from the weight)


def test_a_name_read_before_its_producer_makes_the_evaluation_in_order():
    """A node list out of order (a reader before its producer): no producer map, so no node sees a
    value that evaluation in order would not have given it yet."""
    model = _inferred(head_split(13))
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend([nodes[-1], *nodes[:-1]])  # e = Add(e3, x) first
    assert GraphConstants(model.graph).producers is None
    twice = _inferred(head_split(13))
    twice.graph.node.add().CopyFrom(onnx.helper.make_node("Identity", ["x"], ["s"]))  # "s" produced twice
    assert GraphConstants(twice.graph).producers is None


def test_a_changed_graph_gets_fresh_shapes():
    """Two calls on one ModelProto edited in between: the second reads the edited target."""
    model = head_split(13)
    assert infer_value_types(model)["r"].dims == ("batch", "seq", 2, 4)
    for tensor in model.graph.initializer:
        if tensor.name == "two_four_a":
            tensor.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(tensor) * 4, tensor.name))
        if tensor.name == "two_four_b":
            tensor.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(tensor) // 4, tensor.name))
    assert infer_value_types(model)["r"].dims == ("batch", "seq", 8, 1)


# NonZero's count is a fresh ``unk__N`` each inference round; the seed of r copies it.
FRESH_NAME = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[4, 8] x) => (float[?, ?] y)
<int64[1] one = {1}, int64[1] two = {2}, int64[1] ax0 = {0}, int64[1] minus = {-1}>
{ nz = NonZero(x)
  s = Shape(nz)
  n = Slice(s, one, two, ax0)
  t = Concat<axis=0>(n, minus)
  f = Cast<to=1>(nz)
  r = Reshape(f, t)
  y = Relu(r) }
"""


def test_seeds_new_only_in_onnx_fresh_names_end_the_rounds(monkeypatch):
    from graphkit.ir import shapes

    rounds = []
    real = shapes.symbolic_seeds
    monkeypatch.setattr(shapes, "symbolic_seeds", lambda *a, **k: rounds.append(1) or real(*a, **k))
    types = infer_value_types(parse_model(FRESH_NAME))
    assert len(rounds) == 2  # the second round's seed is the first's with the count renamed
    dims = types["r"].dims
    assert dims is not None and dims[1] == 2 and dims[0].startswith("unk__")


def test_fresh_names_are_numbered_in_order_and_their_pattern_kept():
    from graphkit.ir.shapes import _fresh_names_numbered

    def seeds(*dims):
        return [onnx.helper.make_tensor_value_info(f"v{i}", 1, list(d)) for i, d in enumerate(dims)]

    assert _fresh_names_numbered(seeds(["unk__3", 2], ["unk__3"])) == _fresh_names_numbered(
        seeds(["unk__7", 2], ["unk__7"])
    )
    assert _fresh_names_numbered(seeds(["unk__3", 2], ["unk__3"])) != _fresh_names_numbered(
        seeds(["unk__7", 2], ["unk__8"])
    )
    assert _fresh_names_numbered(seeds(["seq", 2])) != _fresh_names_numbered(seeds(["unk__1", 2]))
    # graphkit's product names say what the dim is: never renumbered
    assert _fresh_names_numbered(seeds(["unk__product:4*batch", 2])) != _fresh_names_numbered(
        seeds(["unk__product:8*batch", 2])
    )
