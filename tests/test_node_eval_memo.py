"""evaluate_node answers a node it evaluated before on the same inputs from memory: the answer must
be what onnxruntime computes for this node, and anything the result depends on must miss."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

import graphkit.runtime.node_eval as node_eval
from graphkit.runtime.node_eval import evaluate_node
from graphkit.runtime.ort import create_session


def _like(opset: int = 17, ir_version: int = 8) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph([], "like", [], []), opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def _by_onnxruntime(node: onnx.NodeProto, arrays: dict[str, np.ndarray], opset: int = 17) -> list[np.ndarray]:
    inputs = [
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for name, a in arrays.items()
    ]
    outputs = [onnx.ValueInfoProto(name=o) for o in node.output if o]
    model = helper.make_model(
        helper.make_graph([node], "one", inputs, outputs), opset_imports=[helper.make_opsetid("", opset)]
    )
    model.ir_version = 8
    return create_session(model).run([o.name for o in outputs], arrays)


@pytest.fixture
def sessions(monkeypatch):
    """Counts the onnxruntime sessions evaluate_node opens (the real ones), on an empty memo."""
    monkeypatch.setattr(node_eval, "_MEMO", type(node_eval._MEMO)())
    opened = []
    real = node_eval.create_session

    def counting(model, *args, **kwargs):
        opened.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(node_eval, "create_session", counting)
    return opened


def test_same_node_on_same_inputs_runs_once_under_any_names(sessions):
    arrays = {"a": np.array([2, 3], dtype=np.int64), "b": np.array([4, 5], dtype=np.int64)}
    first = evaluate_node(helper.make_node("Concat", ["a", "b"], ["c"], axis=0), arrays, _like())
    renamed = {"x": arrays["a"], "y": arrays["b"]}
    second = evaluate_node(helper.make_node("Concat", ["x", "y"], ["z"], axis=0, name="other"), renamed, _like())
    assert len(sessions) == 1
    assert list(second) == ["z"]
    np.testing.assert_array_equal(second["z"], first["c"])
    np.testing.assert_array_equal(second["z"], np.array([2, 3, 4, 5], dtype=np.int64))


def test_a_returned_array_is_the_callers_own(sessions):
    node = helper.make_node("Transpose", ["t"], ["u"], perm=[1, 0])
    arrays = {"t": np.arange(6, dtype=np.int64).reshape(2, 3)}
    first = evaluate_node(node, arrays, _like())
    first["u"][0, 0] = 99  # the caller changes its copy
    second = evaluate_node(node, arrays, _like())
    assert second["u"][0, 0] == 0
    assert len(sessions) == 1


@pytest.mark.parametrize(
    "change",
    ["input bytes", "input dtype", "input shape", "attribute", "opset", "aliasing", "outputs asked"],
)
def test_each_part_of_the_key_misses_and_gives_onnxruntimes_answer(sessions, change):
    base_node = helper.make_node("Transpose", ["t"], ["u"], perm=[1, 0])
    base = {"t": np.arange(6, dtype=np.int64).reshape(2, 3)}
    evaluate_node(base_node, base, _like())
    node, arrays, opset = base_node, base, 17
    if change == "input bytes":
        arrays = {"t": base["t"] + 1}
    elif change == "input dtype":
        arrays = {"t": base["t"].astype(np.int32)}
    elif change == "input shape":
        arrays = {"t": base["t"].reshape(3, 2)}
    elif change == "attribute":
        node = helper.make_node("Transpose", ["t"], ["u"], perm=[0, 1])
    elif change == "opset":
        opset = 13
    elif change == "aliasing":  # Sub(x, x) vs Sub(x, y) with other values under the same name order
        evaluate_node(helper.make_node("Sub", ["p", "q"], ["r"]), {"p": base["t"], "q": base["t"] * 2}, _like())
        node, arrays = helper.make_node("Sub", ["p", "p"], ["r"]), {"p": base["t"]}
    elif change == "outputs asked":  # Dropout with its optional mask not asked for
        arrays = {"t": base["t"].astype(np.float32)}
        evaluate_node(helper.make_node("Dropout", ["t"], ["u", "mask"]), arrays, _like())
        node = helper.make_node("Dropout", ["t"], ["u", ""])
    before = len(sessions)
    got = evaluate_node(node, arrays, _like(opset))
    assert len(sessions) == before + 1  # a miss: onnxruntime ran
    for name, want in zip([o for o in node.output if o], _by_onnxruntime(node, arrays, opset)):
        np.testing.assert_array_equal(got[name], want)
        assert got[name].dtype == want.dtype


def test_random_ops_and_failures_are_never_remembered(sessions):
    node = helper.make_node("RandomUniformLike", ["t"], ["u"])
    arrays = {"t": np.zeros((64,), dtype=np.float32)}
    evaluate_node(node, arrays, _like())
    evaluate_node(node, arrays, _like())
    assert len(sessions) == 2  # each evaluation a draw of its own, none remembered
    bad = helper.make_node("Reshape", ["d", "s"], ["r"])
    wrong = {"d": np.arange(6, dtype=np.int64), "s": np.array([4], dtype=np.int64)}
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error, each time
            evaluate_node(bad, wrong, _like())
    assert len(sessions) == 4


def test_large_inputs_are_evaluated_each_time(sessions):
    node = helper.make_node("Neg", ["t"], ["u"])
    arrays = {"t": np.ones(node_eval.MEMO_MAX_BYTES // 8 + 1, dtype=np.int64)}
    evaluate_node(node, arrays, _like())
    evaluate_node(node, arrays, _like())
    assert len(sessions) == 2


def test_the_memory_stays_within_its_budget_and_forgets_the_oldest(sessions, monkeypatch):
    monkeypatch.setattr(node_eval, "MEMO_TOTAL_BYTES", 10 * 1024)
    node = helper.make_node("Neg", ["t"], ["u"])
    for k in range(12):  # 12 entries of 2 KiB each (1 KiB in, 1 KiB out): the last 5 fit
        evaluate_node(node, {"t": np.full(128, k, dtype=np.int64)}, _like())
    assert node_eval._MEMO.nbytes <= 10 * 1024 and len(node_eval._MEMO) == 5
    before = len(sessions)
    evaluate_node(node, {"t": np.full(128, 11, dtype=np.int64)}, _like())  # the newest: remembered
    assert len(sessions) == before
    got = evaluate_node(node, {"t": np.full(128, 0, dtype=np.int64)}, _like())  # the oldest: forgotten
    assert len(sessions) == before + 1
    np.testing.assert_array_equal(got["u"], np.zeros(128, dtype=np.int64))


OPS = {
    "Add": (2, {}),
    "Mul": (2, {}),
    "Sub": (2, {}),
    "Max": (2, {}),
    "Neg": (1, {}),
    "Abs": (1, {}),
}


@settings(max_examples=40, deadline=None)
@given(
    op=st.sampled_from(sorted(OPS)),
    values=st.lists(st.integers(-5, 5), min_size=1, max_size=6),
    other=st.lists(st.integers(-5, 5), min_size=6, max_size=6),
    dtype=st.sampled_from([np.int64, np.int32, np.float32]),
    repeat=st.booleans(),
)
def test_memo_agrees_with_onnxruntime(op, values, other, dtype, repeat):
    node_eval._MEMO.clear()
    arity, attrs = OPS[op]
    a = np.array(values, dtype=dtype)
    b = np.array(other[: len(values)], dtype=dtype)
    arrays = {"a": a, "b": b} if arity == 2 else {"a": a}
    node = helper.make_node(op, list(arrays), ["y"], **attrs)
    first = evaluate_node(node, arrays, _like())
    if repeat:  # the second answer comes from memory (one entry), under new names
        renamed = {f"n{k}": v for k, v in arrays.items()}
        again = evaluate_node(helper.make_node(op, list(renamed), ["w"], **attrs), renamed, _like())
        assert len(node_eval._MEMO) == 1
        np.testing.assert_array_equal(again["w"], first["y"])
    np.testing.assert_array_equal(first["y"], _by_onnxruntime(node, arrays)[0])
