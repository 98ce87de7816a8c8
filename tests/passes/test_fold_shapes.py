"""fold-shapes: structure, numerics at batch 1 and 2, checker, idempotence, declines."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from onnx import helper

from graphkit.model import op_counts
from graphkit.registry import get_pass
from graphkit.shapes import dims_of
from graphkit.testing import assert_declines, assert_idempotent, assert_pass_rewrites, make_model, run_pass

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
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        (torch.randn(*shape),),
        buffer,
        dynamo=False,
        opset_version=opset,
        input_names=["image"],
        output_names=["cls", "mask"],
        dynamic_axes={"image": {0: "batch"}, "cls": {0: "batch"}, "mask": {0: "batch"}},
    )
    return onnx.load_from_string(buffer.getvalue())


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

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(
        Odd(),
        (torch.randn(1, 2, 3, 3), torch.randn(1, 2, 7, 10)),
        buffer,
        dynamo=False,
        opset_version=11,
        input_names=["x", "y"],
        output_names=["out"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}, "out": {0: "batch"}},
    )
    model = onnx.load_from_string(buffer.getvalue())
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


def test_tiny_wseg_export_goal():
    wseg = pytest.importorskip("graphkit.models.wseg")
    from graphkit.models.export import export_onnx
    from graphkit.testing import assert_numerically_equal

    model = export_onnx(wseg.tiny_model(), input_size=(64, 64), opset=11, dynamic_batch=True)
    result = run_pass(FoldShapes(), model)
    outputs = {v.name: dims_of(v) for v in result.model.graph.output}
    assert outputs["mask"] == ("batch", 21, 64, 64)
    assert len(result.model.graph.node) < len(model.graph.node)
    for value in result.model.graph.value_info:
        assert all(isinstance(d, int) for d in dims_of(value)[1:]), value.name
    for batch in (1, 2):
        assert_numerically_equal(model, result.model, atol=1e-5, rtol=1e-5, dims={"batch": batch})
    assert_idempotent(FoldShapes(), result.model)
