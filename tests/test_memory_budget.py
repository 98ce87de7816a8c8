"""The memory budget: every input graphkit makes is sized against the 3 GiB the README states
(and RLIMIT_AS) before it is allocated, and running out anyway is one line, never a traceback."""

from __future__ import annotations

import resource
import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

from graphkit.runtime.feeds import MEMORY_BUDGET, check_allocatable


@pytest.fixture
def seq_model(tmp_path):
    """x [batch, seq] -> Relu -> Neg -> y: the size of every tensor follows --dim seq."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Neg", ["t"], ["y"])],
        "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq"])],
    )
    path = tmp_path / "seq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _graphkit(*args, address_space: int | None = None, cwd=None) -> subprocess.CompletedProcess:
    def limit():
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run(
        [sys.executable, "-m", "graphkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit,
        cwd=cwd,
    )


def _one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("graphkit: error: ")]
    assert len(lines) == 1 and result.stderr.strip().splitlines()[-1] == lines[0], result.stderr
    return lines[0]


def test_the_budget_is_the_stated_3_gib_not_the_free_memory():
    just_under = {"x": (MEMORY_BUDGET // 4,)}
    assert MEMORY_BUDGET == 3 * 2**30
    assert check_allocatable(just_under, {"x": "float32"}, "x") == MEMORY_BUDGET
    with pytest.raises(Exception, match=r"x need 3\.0 GiB \('x' \[805306369\]\), over the 3\.0 GiB budget"):
        check_allocatable({"x": (MEMORY_BUDGET // 4 + 1,)}, {"x": "float32"}, "x")


def test_apply_with_a_billion_wide_dim_is_refused_before_allocating(tmp_path, seq_model):
    """Was: 4 GB per golden case allocated (over 16 GB before the kernel killed it)."""
    result = _graphkit("apply", seq_model, "-o", tmp_path / "run", "--dim", "seq=1000000000")
    line = _one_error_line(result)
    assert "need 3.7 GiB" in line and "over the 3.0 GiB budget" in line
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_infer_with_a_billion_wide_shape_is_refused_before_allocating(tmp_path, seq_model):
    result = _graphkit("infer", "--model", seq_model, "--dymShape", "x:1000000000,4", "--output", tmp_path / "out")
    line = _one_error_line(result)
    assert "over the 3.0 GiB budget" in line and "[1000000000, 4]" in line
    assert not (tmp_path / "out").exists()


def test_running_out_of_address_space_past_the_checks_is_one_line(tmp_path, seq_model):
    """Under ulimit -v 3 GiB, 40M-wide inputs pass the size check (160 MB) but the comparison's
    float64 temporaries do not fit: that was numpy's _ArrayMemoryError traceback."""
    result = _graphkit(
        "apply", seq_model, "-o", tmp_path / "run", "--dim", "seq=40000000", address_space=3 * 2**30, cwd=tmp_path
    )
    line = _one_error_line(result)
    assert "out of memory" in line or "budget" in line or "memory" in line.lower()
    assert not (tmp_path / "run" / "model.onnx").exists()
