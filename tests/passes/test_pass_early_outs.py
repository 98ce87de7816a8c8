"""softmax-transpose and rule passes return early (no graph import) when no node could start a
match: the result must be exactly what the full scan gives, on models where the early test says
"nothing" and on near misses where it must not."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from graphkit_passes import softmax_transpose
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.model_io import content_hash
from graphkit.testing import make_model
from graphkit.transform import rules
from graphkit.transform.registry import get_pass

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 5])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)


def _softmax_models() -> dict[str, onnx.ModelProto]:
    def model(*nodes):
        return make_model(list(nodes), [X], [Y], opset=13)

    return {
        "plain softmax": model(helper.make_node("Softmax", ["x"], ["y"], axis=1)),
        "transpose elsewhere": model(
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
            helper.make_node("Relu", ["t"], ["r"]),
            helper.make_node("Softmax", ["r"], ["y"], axis=-1),
        ),
        "transpose before only": model(
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
            helper.make_node("Softmax", ["t"], ["y"], axis=-1),
        ),
        "transpose after only": model(
            helper.make_node("LogSoftmax", ["x"], ["s"], axis=1),
            helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 3, 1]),
        ),
        "folds": model(
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
            helper.make_node("Softmax", ["t"], ["s"], axis=-1),
            helper.make_node("Transpose", ["s"], ["y"], perm=[0, 3, 1, 2]),
        ),
    }


@pytest.mark.parametrize("name", list(_softmax_models()))
def test_softmax_transpose_early_out_gives_the_full_scan_result(name, monkeypatch):
    model = _softmax_models()[name]
    assert softmax_transpose._any_candidate(model.graph) == (name not in ("plain softmax", "transpose elsewhere"))
    fast = get_pass("softmax-transpose")()(model)
    monkeypatch.setattr(softmax_transpose, "_any_candidate", lambda graph: True)
    full = get_pass("softmax-transpose")()(model)
    assert fast.modified == full.modified
    assert content_hash(fast.model) == content_hash(full.model)
    assert [(d.site, d.reason) for d in fast.declined] == [(d.site, d.reason) for d in full.declined]
    assert full.modified == (name == "folds") and bool(full.declined) == ("only" in name)


def _bn_model(producer: str) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    params = [numpy_helper.from_array(rng.random(3).astype(np.float32) + 0.5, n) for n in ("s", "b", "m", "v")]
    weight = numpy_helper.from_array(rng.random((3, 3, 1, 1)).astype(np.float32), "W")
    first = (
        helper.make_node("Conv", ["x", "W"], ["c"]) if producer == "Conv" else helper.make_node("Relu", ["x"], ["c"])
    )
    nodes = [first, helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"])]
    return make_model(nodes, [X], [Y], [weight, *params], opset=13)


@pytest.mark.parametrize("producer", ["Conv", "Relu", "none"])
def test_rule_pass_early_out_gives_the_full_scan_result(producer, monkeypatch):
    model = (
        make_model([helper.make_node("Relu", ["x"], ["y"])], [X], [Y], opset=13)
        if producer == "none"
        else _bn_model(producer)
    )
    fast = get_pass("fold-batchnorm")()(model)
    graph = rules.to_graph(model)
    outcome = rules.apply_rules(graph, get_pass("fold-batchnorm").rules, model)  # the full scan, no early test
    assert fast.modified == bool(outcome.counts) == (producer == "Conv")
    assert [(d.site, d.reason) for d in fast.declined] == [(d.site, d.reason) for d in outcome.declined]
    assert bool(fast.declined) == (producer == "Relu")
    if not fast.modified:
        assert fast.model is model
