"""fold-shapes: structure, numerics at batch 1 and 2, checker, idempotence, declines."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from graphkit.ir.model_io import op_counts
from graphkit.ir.shapes import dims_of
from graphkit.testing import (
    assert_declines,
    assert_idempotent,
    assert_numerically_equal,
    assert_pass_rewrites,
    export_legacy,
    make_model,
    run_pass,
)
from graphkit.transform.registry import get_pass

torch = pytest.importorskip("torch")
F = torch.nn.functional
FoldShapes = get_pass("fold-shapes")


class WsegLike(torch.nn.Module):
    """The wseg export pattern: Resize to another tensor's size, view(size(0), -1), upsampling x4."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.c2 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        a = self.c1(x)
        b = self.c2(a)
        up = F.interpolate(b, size=a.shape[2:], mode="bilinear", align_corners=True)
        mask = F.interpolate(up, size=x.shape[2:], mode="bilinear", align_corners=True)
        cls = self.fc(b.view(b.size(0), -1))
        return cls, torch.softmax(mask, dim=1)


def export(module, shape=(1, 3, 16, 16), opset=11) -> onnx.ModelProto:
    return export_legacy(module, (torch.randn(*shape),), ["image"], ["cls", "mask"], opset)


@pytest.fixture(scope="module")
def wseg_like():
    torch.manual_seed(0)
    return export(WsegLike())


@pytest.mark.parametrize("opset", [11, 13])
def test_wseg_pattern_folds_all_shape_ops_and_types_mask(opset):
    torch.manual_seed(0)
    model = export(WsegLike(), opset=opset)
    assert op_counts(model)["Shape"] > 0
    result = assert_pass_rewrites(FoldShapes(), model, atol=1e-6, rtol=1e-6, dims={"batch": 1})
    for batch in (2, 3):
        from graphkit.testing import assert_numerically_equal

        assert_numerically_equal(model, result.model, atol=1e-6, rtol=1e-6, dims={"batch": batch})
    counts = op_counts(result.model)
    assert counts["Shape"] == 0 and counts["Gather"] == 0 and counts["Concat"] == 0
    assert result.counts["resize_sizes_to_scales"] == 2
    assert result.counts["reshape_targets_rewritten"] == 1
    outputs = {v.name: dims_of(v) for v in result.model.graph.output}
    assert outputs == {"cls": ("batch", 5), "mask": ("batch", 6, 16, 16)}
    inputs = {v.name: dims_of(v) for v in result.model.graph.input}
    assert inputs == {"image": ("batch", 3, 16, 16)}
    for value in result.model.graph.value_info:  # every intermediate dim static except the batch
        dims = dims_of(value)
        assert all(isinstance(d, int) for d in dims[1:]), (value.name, dims)
        assert dims[0] == "batch" or len(dims) == 1, (value.name, dims)  # rank-1: roi constants
    assert not result.declined
    assert_idempotent(FoldShapes(), result.model)


def test_keeps_names_of_graph_tensors(wseg_like):
    result = run_pass(FoldShapes(), wseg_like)
    before = {o for n in wseg_like.graph.node for o in n.output}
    for node in result.model.graph.node:
        assert all(o in before for o in node.output)


def static_shape_model(opset: int = 13) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Cast", ["s"], ["sf"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", ["sf", "two"], ["m"]),
        helper.make_node("Cast", ["m"], ["mi"], to=onnx.TensorProto.INT64),
        helper.make_node("Reshape", ["x", "flat"], ["xf"]),
        helper.make_node("Add", ["xf", "bias"], ["y"]),
        helper.make_node("Expand", ["one", "mi"], ["big"]),
        helper.make_node("ReduceSum" if opset < 13 else "Identity", ["big"], ["z"]),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.array([2.0], np.float32), "two"),
        onnx.numpy_helper.from_array(np.array([-1], np.int64), "flat"),
        onnx.numpy_helper.from_array(np.arange(24, dtype=np.float32), "bias"),
        onnx.numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3, 4])],
        [
            helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [24]),
            helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None),
        ],
        inits,
        opset=opset,
    )


def test_size_limit_keeps_a_broadcast_that_would_grow_the_model():
    model = static_shape_model()
    result = run_pass(FoldShapes(size_limit_bytes=64), model)
    # Expand(one, [4, 6, 8]) -> 768 bytes > 64: the Expand stays, its shape input folds.
    assert op_counts(result.model)["Expand"] == 1
    assert op_counts(result.model)["Shape"] == 0
    assert any("limit" in d.reason for d in result.declined)
    from graphkit.testing import assert_numerically_equal

    assert_numerically_equal(model, result.model, atol=0, rtol=0)
    big = run_pass(FoldShapes(size_limit_bytes=4096), model)
    assert op_counts(big.model)["Expand"] == 0


def test_custom_domain_node_blocks_folding_and_passes_through():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Mystery", ["s"], ["t"], domain="custom.ai"),
        helper.make_node("Identity", ["x"], ["y"]),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])],
    )
    model.opset_import.append(helper.make_opsetid("custom.ai", 1))
    result = FoldShapes()(model)
    custom = [n for n in result.model.graph.node if n.domain == "custom.ai"]
    assert len(custom) == 1 and custom[0].input[0] == "s"
    assert op_counts(result.model)["Shape"] == 0  # folded into an initializer named 's'
    assert "s" in {t.name for t in result.model.graph.initializer}


def test_declines_inexact_resize_scale():
    class Odd(torch.nn.Module):
        def forward(self, x, y):
            return F.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=True)

    model = export_legacy(Odd(), (torch.randn(1, 2, 3, 3), torch.randn(1, 2, 7, 10)), ["x", "y"], ["out"])
    result = run_pass(FoldShapes(), model)
    assert any("not exact" in d.reason for d in result.declined)
    resize = [n for n in result.model.graph.node if n.op_type == "Resize"][0]
    assert len(resize.input) == 4  # sizes kept


def test_declines_when_nothing_to_fold():
    model = make_model(
        [
            helper.make_node("Relu", ["x"], ["y"]),
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("ConstantOfShape", ["s"], ["z"]),
        ],
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3])],
        [
            helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["n", 3]),
        ],
    )
    assert_declines(FoldShapes(), model, reason_contains="symbolic dim")


# --- Concat(ConstantOfShape(Shape(..)), X) -> Pad(X) ----------------------------------------------

F32 = onnx.TensorProto.FLOAT


def fill_node(shape: str, out: str, value: float | None) -> onnx.NodeProto:
    if value is None:
        return helper.make_node("ConstantOfShape", [shape], [out])
    return helper.make_node(
        "ConstantOfShape", [shape], [out], value=onnx.numpy_helper.from_array(np.array([value], np.float32))
    )


def fill_concat_model(
    layout: str = "zx", value: float | None = None, opset: int = 11, x_dims=("batch", 20, 8, 8), slice_axis: int = 1
) -> onnx.ModelProto:
    """The wseg background pattern: z = ConstantOfShape(Shape(x[:, :1])); y = Concat(layout of z/x, axis 1).

    ``layout`` lists the Concat inputs: ``z`` the fill, ``x`` the input, ``w`` a second input
    (x + 1), ``o`` a second fill with value 1.
    """
    nodes = [
        helper.make_node("Slice", ["x", "zero", "one", "slice_axis"], ["x0"]),
        helper.make_node("Shape", ["x0"], ["s"]),
        fill_node("s", "z", value),
        fill_node("s", "o", 1.0),
        helper.make_node("Add", ["x", "one_f"], ["w"]),
        helper.make_node("Concat", list(layout), ["y"], axis=1),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.array([0], np.int64), "zero"),
        onnx.numpy_helper.from_array(np.array([1], np.int64), "one"),
        onnx.numpy_helper.from_array(np.array([slice_axis], np.int64), "slice_axis"),
        onnx.numpy_helper.from_array(np.array(1.0, np.float32), "one_f"),
    ]
    channels = sum({"z": 1, "o": 1, "x": 20, "w": 20}[c] for c in layout)
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", F32, list(x_dims))],
        [helper.make_tensor_value_info("y", F32, [x_dims[0], channels, 8, 8])],
        inits,
        opset=opset,
    )
    return _pruned(model)


def _pruned(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the helper nodes the layout does not use (a model with dead nodes would fold them)."""
    used = set(model.graph.node[-1].input)
    keep = [n for n in model.graph.node[:-1] if n.output[0] in used or n.op_type in ("Slice", "Shape")]
    keep.append(model.graph.node[-1])
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def special_feeds(batch: int) -> dict[str, np.ndarray]:
    """Random x with inf, -inf, NaN and -0.0 planted in every channel block."""
    x = np.random.default_rng(batch).standard_normal((batch, 20, 8, 8)).astype(np.float32)
    x[:, :, 0, 0] = np.inf
    x[:, :, 0, 1] = -np.inf
    x[:, :, 1, 0] = np.nan
    x[:, :, 1, 1] = -0.0
    x[-1, 0, :, :] = np.nan
    return {"x": x}


def assert_bit_exact(reference: onnx.ModelProto, candidate: onnx.ModelProto, feeds) -> None:
    from graphkit.runtime.ort import run_ort

    expected, actual = run_ort(reference, feeds), run_ort(candidate, feeds)
    assert list(expected) == list(actual)
    for name in expected:
        assert expected[name].shape == actual[name].shape and expected[name].dtype == actual[name].dtype
        assert expected[name].tobytes() == actual[name].tobytes(), f"output {name} is not bit-exact"


@pytest.mark.parametrize(
    ("layout", "value", "opset", "pads"),
    [
        ("zx", None, 11, [[1, 0]]),  # the wseg case, fill value absent (= float 0)
        ("zx", 0.0, 13, [[1, 0]]),
        ("zx", 1.0, 11, [[1, 0]]),  # what the wseg export writes (torch.ones_like): any value is exact
        ("xz", 0.0, 11, [[0, 1]]),  # fill last: padded after
        ("zxz", None, 18, [[1, 1]]),  # same fill on both sides: one Pad, before and after
        ("xzw", 0.0, 11, [[1, 0]]),  # between two inputs: pads the one to its right, Concat stays
    ],
)
def test_concat_fill_becomes_pad_bit_exact(layout, value, opset, pads):
    model = fill_concat_model(layout, value, opset)
    result = run_pass(FoldShapes(), model)
    assert result.modified and not result.declined, result.declined
    counts = op_counts(result.model)
    assert counts["Shape"] == 0 and counts["ConstantOfShape"] == 0 and counts["Slice"] == 0
    assert counts["Pad"] == len(pads)
    assert result.counts["concat_fill_to_pad"] == layout.count("z")
    assert counts["Concat"] == (1 if "w" in layout else 0)
    producers = {o: n for n in result.model.graph.node for o in n.output}
    assert "y" in producers  # the Concat's output name is kept
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in result.model.graph.initializer}
    for pad, (before, after) in zip([n for n in result.model.graph.node if n.op_type == "Pad"], pads):
        assert inits[pad.input[1]].tolist() == [0, before, 0, 0, 0, after, 0, 0]
        assert inits[pad.input[2]].dtype == np.float32 and inits[pad.input[2]] == np.float32(value or 0.0)
    assert {v.name: dims_of(v) for v in result.model.graph.output}["y"][0] == "batch"
    for batch in (1, 2):
        assert_bit_exact(model, result.model, special_feeds(batch))
    assert_idempotent(FoldShapes(), result.model)


def test_fill_of_unnamed_dims_is_proven_through_the_slice():
    model = fill_concat_model("zx", 0.0, 13, x_dims=(None, 20, 8, 8))
    result = run_pass(FoldShapes(), model)
    assert op_counts(result.model)["Pad"] == 1 and op_counts(result.model)["Shape"] == 0
    assert_bit_exact(model, result.model, special_feeds(2))


@pytest.mark.parametrize(("layout", "value", "opset"), [("zx", 1.0, 11), ("xz", 2.5, 13), ("zxz", -3.0, 18)])
def test_pad_with_zero_adds_the_fill_as_a_border_mask(layout, value, opset):
    """ATC's Pad takes constant_value 0 only: a non-zero fill becomes Pad(X, 0) + constant mask."""
    from graphkit.runtime.ort import run_ort

    model = fill_concat_model(layout, value, opset)
    result = run_pass(FoldShapes(pad_with_zero=True), model)
    counts = op_counts(result.model)
    assert counts["Shape"] == 0 and counts["ConstantOfShape"] == 0 and counts["Pad"] == 1 and counts["Add"] == 1
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in result.model.graph.initializer}
    pad = next(n for n in result.model.graph.node if n.op_type == "Pad")
    assert float(inits[pad.input[2]]) == 0.0
    add = next(n for n in result.model.graph.node if n.op_type == "Add")
    mask = inits[add.input[1]]
    assert mask.shape == (1, 20 + len(layout) - 1, 1, 1) and set(np.unique(mask).tolist()) == {0.0, value}
    for batch in (1, 2):
        feeds = special_feeds(batch)
        expected, actual = run_ort(model, feeds)["y"], run_ort(result.model, feeds)["y"]
        np.testing.assert_array_equal(actual, expected)  # equal values, NaN where NaN (-0 may become +0)
    assert_idempotent(FoldShapes(pad_with_zero=True), result.model)
    zero_fill = run_pass(FoldShapes(pad_with_zero=True), fill_concat_model(layout, 0.0, opset))
    assert op_counts(zero_fill.model)["Add"] == 0  # a zero fill needs no mask


def test_option_off_keeps_the_fill():
    model = fill_concat_model("zx", 0.0)
    result = run_pass(FoldShapes(concat_fill_to_pad=False), model)
    assert op_counts(result.model)["Pad"] == 0 and op_counts(result.model)["Shape"] == 1


def declined_reasons(model: onnx.ModelProto) -> list[str]:
    result = run_pass(FoldShapes(), model)
    assert op_counts(result.model)["Pad"] == 0 and op_counts(result.model)["ConstantOfShape"] >= 1
    return [d.reason for d in result.declined]


def test_declines_fill_whose_other_dims_differ():
    # the fill copies the shape of another input whose batch is another symbol: not provably x's
    nodes = [
        helper.make_node("Shape", ["other"], ["s"]),
        fill_node("s", "z", 0.0),
        helper.make_node("Concat", ["z", "x"], ["y"], axis=1),
    ]
    model = make_model(
        nodes,
        [
            helper.make_tensor_value_info("x", F32, ["batch", 20, 8, 8]),
            helper.make_tensor_value_info("other", F32, ["n", 1, 8, 8]),
        ],
        [helper.make_tensor_value_info("y", F32, ["batch", 21, 8, 8])],
    )
    reasons = declined_reasons(model)
    assert any("dim 0 (n) is not provably dim 0 of x (batch)" in r for r in reasons), reasons


def test_declines_fill_of_an_input_sliced_on_another_axis():
    # x0 = x[:1] (axis 0): its unnamed dim 0 is not x's, and the Concat is on axis 1
    model = fill_concat_model("zx", 0.0, 13, x_dims=(None, 20, 8, 8), slice_axis=0)
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 40  # z is [1,20,8,8]
    reasons = declined_reasons(model)
    assert any("its dim 0 (" in r and "is not provably dim 0 of x" in r for r in reasons), reasons


def test_declines_symbolic_extent_values_that_differ_and_old_opsets():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        fill_node("s", "z", 0.0),
        helper.make_node("Concat", ["z", "x"], ["y"], axis=1),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", F32, ["batch", "c", 8, 8])],
        [helper.make_tensor_value_info("y", F32, ["batch", None, 8, 8])],
    )
    reasons = declined_reasons(model)
    assert any("extent on axis 1 is symbolic" in r for r in reasons), reasons
    reasons = declined_reasons(fill_concat_model("zox", 0.0))  # fills 0 and 1 both padding x
    assert any("differs from another fill padding x" in r for r in reasons), reasons
    reasons = declined_reasons(fill_concat_model("zx", 0.0, opset=10))
    assert any("opset >= 11" in r for r in reasons), reasons


@pytest.fixture(scope="module")
def tiny_wseg():
    pytest.importorskip("graphkit.wseg.network")
    from graphkit.wseg.export import ExportSpec, export_from_spec

    return export_from_spec(ExportSpec(width=0.03125, input_size=[32, 32])).model


def test_tiny_wseg_pipeline_leaves_no_shape_op(tiny_wseg):
    from graphkit.testing import assert_numerically_equal

    model = tiny_wseg
    assert op_counts(model)["Shape"] > 0
    for name in ("softmax-transpose", "eliminate-noops"):
        model = run_pass(get_pass(name)(), model).model
    result = run_pass(FoldShapes(), model)
    counts = op_counts(result.model)
    assert counts["Shape"] == 0 and counts["ConstantOfShape"] == 0 and counts["Pad"] == 1
    assert result.counts["concat_fill_to_pad"] == 1 and not result.declined, result.declined
    outputs = {v.name: dims_of(v) for v in result.model.graph.output}
    assert outputs == {"cls": ("batch", 20), "mask": ("batch", 21, 32, 32)}
    for value in result.model.graph.value_info:  # every intermediate dim static except the batch
        dims = dims_of(value)
        assert dims is not None and all(isinstance(d, int) for d in dims[1:]), (value.name, dims)
        assert not dims or isinstance(dims[0], int) or dims[0] == "batch", (value.name, dims)
    for batch in (1, 2):
        assert_numerically_equal(model, result.model, atol=0, rtol=0, dims={"batch": batch})
    assert_idempotent(FoldShapes(), result.model)


def test_tiny_wseg_export_folds_alone_too(tiny_wseg):
    from graphkit.testing import assert_numerically_equal

    result = run_pass(FoldShapes(), tiny_wseg)
    assert op_counts(result.model)["Shape"] == 0
    assert {v.name: dims_of(v) for v in result.model.graph.output}["mask"] == ("batch", 21, 32, 32)
    assert len(result.model.graph.node) < len(tiny_wseg.graph.node)
    for batch in (1, 2):
        assert_numerically_equal(tiny_wseg, result.model, atol=1e-6, rtol=1e-6, dims={"batch": batch})


def attention_scale_model() -> onnx.ModelProto:
    """Attention's scalar shape arithmetic: head = dim / 2 (rank 0) -> Unsqueeze -> Concat into a Reshape target.

    The scalar is also read as a float scale (``x / sqrt(head)``), so folding it must keep rank 0:
    a shape-(1,) initializer makes the Unsqueeze rank 2 and the Concat invalid.
    """
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "i2"], ["dim"], axis=0),  # rank 0
        helper.make_node("Div", ["dim", "two"], ["head"]),  # rank 0, folded from static dims
        helper.make_node("Unsqueeze", ["head", "ax0"], ["head1"]),
        helper.make_node("Concat", ["lead", "head1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["split"]),
        helper.make_node("Cast", ["head"], ["headf"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Sqrt", ["headf"], ["scale"]),
        helper.make_node("Div", ["split", "scale"], ["y"]),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.array(2, np.int64), "i2"),
        onnx.numpy_helper.from_array(np.array(2, np.int64), "two"),
        onnx.numpy_helper.from_array(np.array([0], np.int64), "ax0"),
        onnx.numpy_helper.from_array(np.array([0, 3, 2], np.int64), "lead"),
    ]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        inits,
    )


def test_rank0_scalar_from_shapes_folds_to_a_rank0_initializer():
    model = attention_scale_model()
    result = assert_pass_rewrites(FoldShapes(), model, atol=0, rtol=0, dims={"batch": 2})
    assert op_counts(result.model).get("Shape", 0) == 0 and op_counts(result.model).get("Concat", 0) == 0
    scalars = [t for t in result.model.graph.initializer if t.name in ("head", "scale")]
    assert scalars and all(list(t.dims) == [] for t in scalars)
    assert dims_of(result.model.graph.output[0]) == ("batch", 3, 2, 2)
    assert_idempotent(FoldShapes(), result.model)


def merged_dims_model() -> onnx.ModelProto:
    """x.view(x.size(0) * x.size(1), 4), as text models write it: a target element that is no axis of x."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "i0"], ["b"], axis=0),
        helper.make_node("Gather", ["shape", "i1"], ["s"], axis=0),
        helper.make_node("Mul", ["b", "s"], ["bs"]),
        helper.make_node("Unsqueeze", ["bs", "ax0"], ["bs1"]),
        helper.make_node("Concat", ["bs1", "four"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.array(0, np.int64), "i0"),
        onnx.numpy_helper.from_array(np.array(1, np.int64), "i1"),
        onnx.numpy_helper.from_array(np.array([0], np.int64), "ax0"),
        onnx.numpy_helper.from_array(np.array([4], np.int64), "four"),
    ]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", "seq", 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 4])],
        inits,
    )


def test_one_symbolic_target_element_becomes_minus_one():
    model = merged_dims_model()
    result = assert_pass_rewrites(FoldShapes(), model, atol=0, rtol=0, dims={"batch": 2, "seq": 3})
    assert_numerically_equal(model, result.model, atol=0, rtol=0, dims={"batch": 3, "seq": 5})
    assert result.counts["reshape_symbolic_to_minus_one"] == 1
    assert op_counts(result.model) == {"Reshape": 1}
    target = [t for t in result.model.graph.initializer if t.name != "x"][0]
    assert onnx.numpy_helper.to_array(target).tolist() == [-1, 4]
    assert_idempotent(FoldShapes(), result.model)


def test_two_symbolic_target_elements_decline_with_what_to_do():
    model = merged_dims_model()
    # a second unknown element: [batch*seq, seq', 4] -> only one may become -1
    model.graph.node[5].input[:] = ["bs1", "bs1", "four"]
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, None, 4]))
    result = run_pass(FoldShapes(), model)
    reasons = [d.reason for d in result.declined]
    assert any("at most one can become -1" in r and "fix-input-shape" in r for r in reasons), reasons
    assert op_counts(result.model)["Shape"] == 1
