"""Pre-check and commands on the tiny wseg variant (same graph as the real model, width 1/32, 64x64)."""

from __future__ import annotations

import onnx
import pytest

from graphkit.ascend import AtcSpec, run_handoff
from graphkit.ascend.precheck import precheck

wseg = pytest.importorskip("graphkit.wseg.network")
export = pytest.importorskip("graphkit.wseg.export")


@pytest.fixture(scope="module")
def tiny_raw():
    return export.export_onnx(wseg.WsegModel(width=1 / 32), input_size=(64, 64), opset=11)


def _modelzoo_fix(model: onnx.ModelProto) -> onnx.ModelProto:
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    nodes = list(fixed.graph.node)
    i = next(k for k, n in enumerate(nodes) if n.op_type == "Softmax")
    softmax = onnx.helper.make_node("Softmax", [nodes[i - 1].input[0]], [nodes[i + 1].output[0]], name="fix", axis=1)
    del fixed.graph.node[:]
    fixed.graph.node.extend(nodes[: i - 1] + [softmax] + nodes[i + 2 :])
    del fixed.graph.value_info[:]
    return fixed


def test_tiny_wseg_raw_export(tiny_raw):
    report = precheck(tiny_raw, cann="6.0", batch_sizes=[1, 4, 8, 16])
    assert report.counts["error"] == 0
    perf = [f for f in report.findings if f.level == "perf"]
    assert [f.rule for f in perf] == ["softmax-transpose"] and "softmax-transpose" in perf[0].hint
    assert {f.node for f in report.findings if f.rule == "symbolic-dim"} == {"mask"}


def test_tiny_wseg_modelzoo_fix_is_a_softmax_error(tiny_raw):
    report = precheck(_modelzoo_fix(tiny_raw), cann="6.0")
    assert [f.rule for f in report.findings if f.level == "error"] == ["softmax-axis"]


def test_tiny_wseg_handoff_commands(tiny_raw, tmp_path):
    path = tmp_path / "wseg_tiny.onnx"
    onnx.save_model(tiny_raw, path)
    summary = run_handoff(AtcSpec(batch_sizes=[1, 4, 8, 16], dynamic_batch_sizes=[1, 4, 8, 16]), path, tmp_path)
    assert len(summary["commands"]) == 5
    assert "--input_shape=image:16,3,64,64" in summary["commands"][3]
    assert "--dynamic_batch_size=1,4,8,16" in summary["commands"][4]
