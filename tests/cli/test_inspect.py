"""graphkit inspect: figures checked against counts made independently of the summary code."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.model_summary import summarize


def conv_mlp_model(batch="N"):
    """Conv(3->8, k3, pad1) on 16x16, Relu, Flatten, Gemm(2048->10, transB), MatMul(10x4): analytic MACs below."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    g = numpy_helper.from_array(rng.standard_normal((10, 8 * 16 * 16)).astype(np.float32), "g")
    gb = numpy_helper.from_array(np.zeros(10, np.float32), "gb")
    m = numpy_helper.from_array(rng.standard_normal((10, 4)).astype(np.float32), "m")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "g", "gb"], ["h"], transB=1),
        helper.make_node("MatMul", ["h", "m"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [w, g, gb, m],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def analytic_macs(batch):
    conv = batch * 8 * 16 * 16 * (3 * 3 * 3)  # every output element: C_in * kh * kw multiplies
    gemm = batch * 10 * (8 * 16 * 16)
    matmul = batch * 4 * 10
    return {"Conv": conv, "Gemm": gemm, "MatMul": matmul}


@pytest.mark.parametrize("batch", [1, 3])
def test_macs_match_the_layer_arithmetic(batch):
    summary = summarize(conv_mlp_model(), {"N": batch})
    assert summary.macs == analytic_macs(batch)
    assert summary.macs_unknown == 0


def test_counts_and_parameters_match_independent_counts():
    model = conv_mlp_model()
    summary = summarize(model)
    assert summary.op_counts == dict(Counter(n.op_type for n in model.graph.node))
    arrays = [numpy_helper.to_array(t) for t in model.graph.initializer]
    assert summary.parameters == sum(a.size for a in arrays) == 8 * 27 + 10 * 2048 + 10 + 40
    assert summary.parameter_bytes == sum(a.nbytes for a in arrays)
    assert [t.dims for t in summary.inputs] == [("N", 3, 16, 16)]
    # batch defaults to 1 on a symbolic dim 0 named otherwise
    assert summary.mac_dims == {"batch": 1}
    assert summary.macs == analytic_macs(1)


def test_unknown_symbolic_dim_is_named_not_guessed():
    model = conv_mlp_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    summary = summarize(model)
    assert summary.macs_unknown >= 1 and "Conv" not in summary.macs
    assert any("--dim" in note for note in summary.notes)
    assert summarize(model, {"H": 16}).macs == analytic_macs(1)


def test_torch_exported_model_against_torch_layer_arithmetic(tmp_path):
    torch = pytest.importorskip("torch")
    from graphkit.testing import export_legacy

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 5, stride=2, groups=3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(6, 4, 1),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 14 * 14, 7),
    )
    model = export_legacy(net, (torch.zeros(2, 3, 32, 32),), ["x"], ["y"], opset=13)
    out = (32 - 5) // 2 + 1  # 14
    expected = 6 * out * out * (3 // 3) * 5 * 5 + 4 * out * out * 6 + 7 * 4 * out * out
    summary = summarize(model, {"batch": 1})
    assert summary.total_macs == expected
    assert summary.parameters == sum(p.numel() for p in net.parameters())


def test_cli_text_json_and_external_data(tmp_path, cli):
    model = conv_mlp_model()
    path = tmp_path / "m.onnx"
    onnx.save(
        model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="m.data", size_threshold=0
    )
    text = cli("inspect", path, "--dim", "N=2")
    assert text.returncode == 0, text.stderr
    assert "input  x float[N,3,16,16]" in text.stdout
    assert "external data m.data" in text.stdout
    assert all(len(line) <= 100 for line in text.stdout.splitlines())
    data = json.loads(cli("inspect", path, "--dim", "N=2", "--json").stdout)
    assert data["macs"]["by_op"] == analytic_macs(2)
    assert data["external_data"] == {"m.data": (path.parent / "m.data").stat().st_size}


@pytest.mark.parametrize(
    "args, needle",
    [(["nothere.onnx"], "nothere.onnx"), (["{model}", "--dim", "N=0"], "--dim"), (["{model}", "--dim", "N"], "--dim")],
)
def test_bad_input_is_one_line(tmp_path, cli, args, needle):
    path = tmp_path / "m.onnx"
    onnx.save(conv_mlp_model(), path)
    result = cli("inspect", *[a.format(model=path) for a in args])
    assert result.returncode == 2
    assert result.stderr.startswith("graphkit: error:") and needle in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
