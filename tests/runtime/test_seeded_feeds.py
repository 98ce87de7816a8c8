"""One seeded-data generator: golden sets, random feeds and perf draw the same data for a seed."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from graphkit.check.golden import make_inputs
from graphkit.runtime.feeds import random_feeds, seeded_array, seeded_feeds
from graphkit.util.errors import InputError


def model_with(*inputs):
    values = [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape in inputs]
    nodes = [helper.make_node("Identity", [v.name], [f"{v.name}_out"]) for v in values]
    outputs = [helper.make_tensor_value_info(f"{name}_out", kind, shape) for name, kind, shape in inputs]
    return helper.make_model(helper.make_graph(nodes, "g", values, outputs))


MODEL = model_with(
    ("x", TensorProto.FLOAT, ["batch", 3]),
    ("h", TensorProto.FLOAT16, ["batch", 2]),
    ("ids", TensorProto.INT64, ["batch", 5]),
    ("mask", TensorProto.BOOL, ["batch", 4]),
)


def test_golden_inputs_and_random_feeds_are_the_same_data():
    golden = make_inputs(MODEL, {"batch": 2}, seed=3)
    feeds = random_feeds(MODEL, seed=3, dims={"batch": 2})
    assert list(golden) == list(feeds) == ["x", "h", "ids", "mask"]
    for name in golden:
        assert golden[name].dtype == feeds[name].dtype
        np.testing.assert_array_equal(golden[name], feeds[name])  # same generator, same bytes
    assert feeds["ids"].min() >= 0 and feeds["ids"].max() <= 3 and feeds["mask"].dtype == np.bool_


def test_the_data_is_numpys_generator_drawn_in_float32():
    # pinned against numpy's documented PCG64 stream: the same bytes on every CPU and OS
    rng = np.random.default_rng(0)
    expected = rng.standard_normal((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(seeded_feeds({"x": (2, 3)}, {"x": np.dtype("float32")}, 0)["x"], expected)
    assert seeded_array(np.random.default_rng(1), (1000,), np.int32, (5, 6)).tolist().count(5) in range(400, 600)


def test_ranges_and_bad_dtypes():
    ints = seeded_feeds({"i": (50,)}, {"i": np.dtype("int64")}, 0, {"i": (10, 12)})["i"]
    assert set(ints.tolist()) == {10, 11, 12}
    with pytest.raises(InputError, match="input 's': cannot generate random data of type <U1"):
        seeded_array(np.random.default_rng(0), (2,), np.dtype("<U1"), name="s")
