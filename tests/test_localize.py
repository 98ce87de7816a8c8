"""graphkit.check.localize: the first divergent tensor on corrupted pairs, chunking, inputs, the CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.check.localize import localize
from graphkit.check.localize_feeds import feeds_for, golden_feeds, load_npz_feeds
from graphkit.diff.model_diff import diff_models
from graphkit.ir.model_io import clone, content_hash
from graphkit.testing import export_legacy, make_model, modelzoo_softmax_fix
from graphkit.util.errors import GoldenError, InputError, ModelLoadError

ATOL, RTOL = 1e-6, 1e-6


def add_chain(constants, tensor_prefix="t", node_prefix="add"):
    """x -> Add(c0) -> Add(c1) -> ... -> y: a chain of len(constants) named Add nodes."""
    nodes, inits, prev = [], [], "x"
    for i, value in enumerate(constants):
        out = "y" if i == len(constants) - 1 else f"{tensor_prefix}{i}"
        inits.append(numpy_helper.from_array(np.full(4, value, np.float32), f"c{i}"))
        nodes.append(helper.make_node("Add", [prev, f"c{i}"], [out], name=f"{node_prefix}{i}"))
        prev = out
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        inits,
    )


GOOD = [float(i) for i in range(10)]
BAD = GOOD[:5] + [5.5] + GOOD[6:]  # node add5 corrupted


@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_corrupted_node_in_a_chain_is_named(chunk_size):
    a, b = add_chain(GOOD), add_chain(BAD)
    feeds = feeds_for(a, b, seed=1, dims={"batch": 2})
    result = localize(a, b, feeds, atol=ATOL, rtol=RTOL, chunk_size=chunk_size)
    first = result.first_divergent
    assert result.diverged
    assert (first.tensor, first.node, first.op_type, first.position) == ("t5", "add5", "Add", 5)
    assert first.max_abs == pytest.approx(0.5, rel=1e-6)
    assert first.mismatch_fraction == 1.0
    assert [c.tensor for c in result.compared] == [f"t{i}" for i in range(6)]
    assert all(c.passed and c.max_abs == 0.0 for c in result.compared[:5])
    assert result.runs == -(-6 // chunk_size)  # stops at the chunk holding t5
    assert result.inputs == {"x": [2, 4]}


def test_identical_models_do_not_diverge():
    a = add_chain(GOOD)
    result = localize(a, clone(a), feeds_for(a, a, dims={"batch": 1}), atol=ATOL, rtol=RTOL, chunk_size=4)
    assert not result.diverged
    assert len(result.compared) == 10 and result.runs == 3
    assert result.summary_line().startswith("no divergence: 10 tensors")


def test_localize_does_not_mutate_the_models():
    a, b = add_chain(GOOD), add_chain(BAD)
    hashes = content_hash(a), content_hash(b)
    localize(a, b, feeds_for(a, b, dims={"batch": 1}), atol=ATOL, rtol=RTOL, chunk_size=2)
    assert (content_hash(a), content_hash(b)) == hashes


def test_renamed_tensors_are_paired_through_the_diff():
    a = add_chain(GOOD)
    b = add_chain(BAD, tensor_prefix="renamed_", node_prefix="pass_")
    result = localize(a, b, feeds_for(a, b, dims={"batch": 1}), atol=ATOL, rtol=RTOL, chunk_size=4)
    first = result.first_divergent
    assert (first.tensor, first.tensor_a, first.node) == ("renamed_5", "t5", "pass_5")
    assert result.unpaired == 0


def test_tolerances_decide():
    a, b = add_chain(GOOD), add_chain(GOOD[:5] + [5.0001] + GOOD[6:])
    feeds = feeds_for(a, b, dims={"batch": 1})
    assert not localize(a, b, feeds, atol=1e-3, rtol=0.0).diverged
    result = localize(a, b, feeds, atol=1e-6, rtol=0.0)
    assert result.first_divergent.node == "add5"
    assert result.first_divergent.max_abs == pytest.approx(1e-4, rel=0.05)


def test_shape_difference_is_a_divergence():
    a = make_model(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0], name="tr"), helper.make_node("Neg", ["t"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])],
    )
    b = make_model(
        [helper.make_node("Identity", ["x"], ["t"], name="tr"), helper.make_node("Neg", ["t"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    result = localize(a, b, feeds_for(a, b), atol=ATOL, rtol=RTOL)
    assert result.first_divergent.tensor == "t"
    assert result.first_divergent.note == "shape differs: A (3, 2) vs B (2, 3)"


def test_result_dict_and_text():
    a, b = add_chain(GOOD), add_chain(BAD)
    result = localize(a, b, feeds_for(a, b, dims={"batch": 1}), atol=ATOL, rtol=RTOL)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {
        "schema_version",
        "diverged",
        "first_divergent",
        "atol",
        "rtol",
        "inputs",
        "candidates",
        "unpaired",
        "runs",
        "nodes_run",
        "peak_live_tensors",
        "compared",
        "skipped",
    }
    assert set(data["first_divergent"]) == {
        "tensor",
        "tensor_a",
        "node",
        "op_type",
        "position",
        "shape_a",
        "shape_b",
        "max_abs",
        "max_rel",
        "mismatch_fraction",
        "passed",
        "note",
    }
    assert data["first_divergent"]["node"] == "add5" and data["schema_version"] == 1
    text = result.to_text()
    assert text.splitlines()[0].startswith("first divergent tensor 't5' from node 'add5' (Add): max abs 0.5")


def test_bad_feeds_and_inputs(tmp_path):
    a, b = add_chain(GOOD), add_chain(BAD)
    with pytest.raises(InputError, match="do not match the model's inputs"):
        localize(a, b, {"nope": np.zeros((1, 4), np.float32)}, atol=ATOL, rtol=RTOL)
    with pytest.raises(InputError, match="no such file"):
        load_npz_feeds(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(InputError, match="junk.npz"):
        load_npz_feeds(tmp_path / "junk.npz")
    with pytest.raises(GoldenError, match="no inputs"):
        golden_feeds(tmp_path)


def test_model_onnxruntime_cannot_load_is_a_user_error():
    a = add_chain(GOOD)
    b = clone(a)
    b.graph.node[3].op_type = "NoSuchOp"
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load model B"):
        localize(a, b, feeds_for(a, b, dims={"batch": 1}), atol=ATOL, rtol=RTOL)


def test_golden_folder_feeds(tmp_path):
    np.savez(tmp_path / "b1.inputs.npz", x=np.ones((1, 4), np.float32))
    np.savez(tmp_path / "b1.outputs.npz", y=np.ones((1, 4), np.float32))
    feeds, path = golden_feeds(tmp_path)
    assert path.name == "b1.inputs.npz" and list(feeds) == ["x"]


# --- Legacy torch export: the ModelZoo opset-11 softmax "fix" ---------------------------------


def _export_legacy(module, example, path, outputs):
    model = export_legacy(module, (example,), ["image"], list(outputs), batch_dim="-1")
    onnx.save(model, str(path))
    return model


@pytest.fixture(scope="module")
def tiny_softmax_export(tmp_path_factory):
    torch = pytest.importorskip("torch")

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 5, 3, padding=1)
            self.out = torch.nn.Conv2d(5, 2, 1)

        def forward(self, x):
            y = self.conv(x).permute(0, 2, 3, 1).softmax(-1).permute(0, 3, 1, 2)
            return self.out(y)

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("softmax") / "head.onnx"
    return _export_legacy(Head(), torch.randn(1, 3, 8, 8), path, ["mask"])


@pytest.mark.parametrize("keep_name", [True, False])
def test_modelzoo_softmax_fix_on_a_legacy_torch_export(tiny_softmax_export, keep_name):
    a = tiny_softmax_export
    assert [n.op_type for n in a.graph.node] == ["Conv", "Transpose", "Softmax", "Transpose", "Conv"]
    b = modelzoo_softmax_fix(a, keep_softmax_output_name=keep_name)
    diff = diff_models(a, b)
    assert diff.op_count_delta() == {"Transpose": (2, 0)}
    expected = {"Softmax": {"attributes", "inputs"}}
    if keep_name:  # the consumer is rewired to the Softmax output
        expected["Conv"] = {"inputs"}
    assert {c.after.op_type: set(c.changes) for c in diff.nodes_changed} == expected
    result = localize(a, b, feeds_for(a, b, dims={"batch": 2}), atol=1e-5, rtol=1e-4)
    first = result.first_divergent
    assert (first.node, first.op_type) == ("/Softmax", "Softmax")
    assert first.tensor == b.graph.node[1].output[0]
    assert first.tensor_a == "/Transpose_1_output_0"  # the NCHW softmax result in A
    assert first.max_abs > 0.05 and first.mismatch_fraction > 0.5
    assert [c.op_type for c in result.compared] == ["Conv", "Softmax"]


@pytest.fixture(scope="module")
def tiny_wseg_export(tmp_path_factory):
    torch = pytest.importorskip("torch")
    wseg = pytest.importorskip("graphkit.wseg.network")
    model = wseg.WsegModel(width=1 / 32)
    path = tmp_path_factory.mktemp("wseg") / "wseg.onnx"
    return _export_legacy(model, torch.randn(1, 3, 64, 64), path, ["cls", "mask"])


def test_modelzoo_softmax_fix_on_tiny_wseg(tiny_wseg_export):
    a = tiny_wseg_export
    b = modelzoo_softmax_fix(a)
    diff = diff_models(a, b)
    assert diff.op_count_delta() == {"Transpose": (2, 0)}
    assert diff.summary_line() == "-2 Transpose, 4 nodes changed"
    assert [n.name for n in diff.nodes_removed] == ["/Transpose", "/Transpose_1"]
    changed = {c.after.name: set(c.changes) for c in diff.nodes_changed}
    assert changed.pop("/Softmax") == {"attributes", "inputs"}
    # The three consumers of the old NCHW result now read the Softmax output.
    assert changed == {"/Reshape_1": {"inputs"}, "/Shape_8": {"inputs"}, "/Resize_1": {"inputs"}}
    assert diff.inputs.is_empty() and diff.outputs.is_empty() and not diff.initializers_changed
    result = localize(a, b, feeds_for(a, b, dims={"batch": 1}), atol=1e-5, rtol=1e-4, chunk_size=64)
    first = result.first_divergent
    assert (first.node, first.op_type, first.tensor) == ("/Softmax", "Softmax", "/Softmax_output_0")
    # A's tensor of the same name is NHWC; the comparison takes the NCHW result the consumers read.
    assert first.tensor_a == "/Transpose_1_output_0" and first.note == ""
    assert first.max_abs > 0.05 and first.mismatch_fraction > 0.5
    assert all(c.passed for c in result.compared[:-1]) and len(result.compared) > 100
    assert result.skipped == []


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def chain_files(tmp_path):
    onnx.save(add_chain(GOOD), tmp_path / "a.onnx")
    onnx.save(add_chain(BAD), tmp_path / "b.onnx")
    return tmp_path / "a.onnx", tmp_path / "b.onnx"


def test_cli_localize_random_inputs(cli, chain_files):
    done = cli("localize", *chain_files, "--dims", "batch=2", "--atol", "1e-6", "--rtol", "1e-6", "--chunk-size", "4")
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("first divergent tensor 't5' from node 'add5' (Add)")


def test_cli_localize_json_with_npz_inputs_and_golden(cli, chain_files, tmp_path):
    np.savez(tmp_path / "in.npz", x=np.zeros((3, 4), np.float32))
    done = cli("localize", *chain_files, "--inputs", tmp_path / "in.npz", "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["first_divergent"]["node"] == "add5" and data["inputs"] == {"x": [3, 4]}
    golden = tmp_path / "golden"
    golden.mkdir()
    np.savez(golden / "inputs.npz", x=np.zeros((2, 4), np.float32))
    done = cli("localize", chain_files[0], chain_files[0], "--golden", golden)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no divergence: 10 tensors")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dims", "batch"], "--dim"),
        (["--dim", "batch=0"], "--dim"),
        (["--inputs", "missing.npz"], "missing.npz"),
        (["--golden", "nowhere"], "nowhere"),
    ],
)
def test_cli_localize_bad_input_is_one_line_exit_2(cli, chain_files, tmp_path, extra, message):
    """(Without --dim the batch is 1, as in apply: see test_cli_localize_batch_defaults_to_one.)"""
    done = cli("localize", *chain_files, *extra, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_cli_localize_missing_and_non_onnx_model(cli, chain_files, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage" * 50)
    for bad in (tmp_path / "missing.onnx", junk):
        done = cli("localize", chain_files[0], bad, "--dims", "batch=1")
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0]


def test_a_model_without_nodes_is_an_error_naming_it(cli, chain_files, tmp_path):
    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    empty = make_model([], [value], [value])  # output = input: valid, but nothing to localize
    onnx.save(empty, tmp_path / "empty.onnx")
    with pytest.raises(InputError, match="model A has no nodes"):
        localize(empty, add_chain(GOOD), {"x": np.zeros((1, 4), np.float32)})
    for pair in ((tmp_path / "empty.onnx", chain_files[1]), (chain_files[0], tmp_path / "empty.onnx")):
        done = cli("localize", *pair, "--dims", "batch=1")
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"({tmp_path / 'empty.onnx'}) has no nodes" in lines[0], done.stderr


def test_nothing_to_compare_is_an_error_not_a_pass():
    a = add_chain(GOOD)
    other = make_model(
        [helper.make_node("Relu", ["x"], ["z"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])],
    )
    with pytest.raises(InputError, match="nothing to compare: none of the 1 tensors of model B"):
        localize(a, other, {"x": np.zeros((1, 4), np.float32)})


def test_random_inputs_too_large_are_refused_before_allocating():
    a = add_chain(GOOD)
    with pytest.raises(InputError, match=r"the random inputs need 64\.0 GiB .*, over the 3\.0 GiB budget"):
        feeds_for(a, a, dims={"batch": 2**32})  # 2**32 x 4 float32


def test_text_report_escapes_control_characters_in_names():
    a = add_chain(GOOD, tensor_prefix="t\x1b[2J")
    b = add_chain(BAD, tensor_prefix="t\x1b[2J")
    text = localize(a, b, feeds_for(a, b, dims={"batch": 1}), atol=ATOL, rtol=RTOL).to_text()
    assert "\x1b" not in text and "first divergent tensor 't\\x1b[2J5'" in text


# --- Segment-wise (lockstep) execution: same answer as exposing every tensor at once -----------


def random_dag(seed: int, size: int = 40, planted: dict[int, float] | None = None, reverse_branches=False):
    """A seeded DAG of Add/Mul/Sub nodes, each reading one or two earlier tensors and its own constant.

    ``planted`` changes the constant of the given nodes (a divergence). Two graph outputs: the last
    tensor and a mid-graph one, so branches end in more than one place. ``reverse_branches``
    emits the same DAG in another valid topological order (the reversed-in-pairs order below).
    """
    rng = np.random.default_rng(seed)
    nodes, inits, tensors = [], [], ["x"]
    for i in range(size):
        reads = [tensors[int(rng.integers(max(0, len(tensors) - 6), len(tensors)))]]
        if rng.random() < 0.5:
            reads.append(tensors[int(rng.integers(0, len(tensors)))])
        value = float(rng.uniform(0.5, 1.5)) + (planted or {}).get(i, 0.0)
        inits.append(numpy_helper.from_array(np.full(4, value, np.float32), f"c{i}"))
        op = ["Add", "Mul", "Sub"][i % 3]
        first = helper.make_node(op, [reads[0], f"c{i}"], [f"u{i}"], name=f"n{i}a")
        body = [first]
        if len(reads) == 2:
            body.append(helper.make_node("Add", [f"u{i}", reads[1]], [f"v{i}"], name=f"n{i}b"))
        else:
            body.append(helper.make_node("Relu", [f"u{i}"], [f"v{i}"], name=f"n{i}b"))
        nodes += body
        tensors.append(f"v{i}")
    if reverse_branches:  # swap independent neighbours: still topological, another node order
        order = list(nodes)
        for k in range(0, len(order) - 1):
            first, second = order[k], order[k + 1]
            if not set(first.output) & set(second.input):
                order[k], order[k + 1] = second, first
        nodes = order
    outputs = [f"v{size - 1}", f"v{size // 2}"]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 4]) for name in outputs],
        inits,
    )


def first_divergent_by_exposing_everything(a, b, feeds):
    """The reference: run each whole model once with every tensor exposed; first B tensor that differs."""
    from graphkit.runtime.ort import run_ort

    def everything(model):
        exposed = clone(model)
        names = [t for n in model.graph.node for t in n.output]
        del exposed.graph.output[:]
        exposed.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
        return run_ort(exposed, feeds)

    values_a, values_b = everything(a), everything(b)
    for node in b.graph.node:
        for tensor in node.output:
            if not np.allclose(values_b[tensor], values_a[tensor], atol=ATOL, rtol=RTOL):
                return tensor, node.name
    return None


@pytest.mark.parametrize(
    "planted",
    [{0: 0.25}, {17: 0.25}, {39: 0.25}, {9: 0.3, 24: -0.2}, {30: 0.1, 5: 0.5}],
    ids=["first-node", "middle", "last-node", "two-divergences", "two-divergences-reversed-plant"],
)
@pytest.mark.parametrize("chunk_size", [1, 5, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segments_name_the_same_node_as_exposing_everything(planted, chunk_size, seed):
    a, b = random_dag(seed), random_dag(seed, planted=planted)
    feeds = feeds_for(a, b, seed=seed, dims={"N": 2})
    expected = first_divergent_by_exposing_everything(a, b, feeds)
    result = localize(a, b, feeds, atol=ATOL, rtol=RTOL, chunk_size=chunk_size)
    assert expected is not None and result.diverged
    assert (result.first_divergent.tensor, result.first_divergent.node) == expected
    # Each node ran at most once per model, and B stopped at the divergent node's segment.
    assert result.nodes_run["b"] <= len(b.graph.node) and result.nodes_run["a"] <= len(a.graph.node)
    assert result.nodes_run["b"] > result.first_divergent.position


@pytest.mark.parametrize("planted", [{3: 0.25}, {21: 0.25}, {38: 0.25}])
def test_models_in_different_node_orders(planted):
    """A's node order differs from B's: A's tensors computed early are held until compared."""
    a = random_dag(3, reverse_branches=True)
    b = random_dag(3, planted=planted)
    assert [n.name for n in a.graph.node] != [n.name for n in b.graph.node]
    feeds = feeds_for(a, b, seed=0, dims={"N": 3})
    expected = first_divergent_by_exposing_everything(a, b, feeds)
    result = localize(a, b, feeds, atol=ATOL, rtol=RTOL, chunk_size=2)
    assert (result.first_divergent.tensor, result.first_divergent.node) == expected


def test_live_tensors_stay_bounded_on_a_long_chain():
    """On a 200-node chain only the tensor crossing each boundary is held, not everything computed."""
    constants = [float(i % 7) for i in range(200)]
    a = add_chain(constants)
    result = localize(a, clone(a), feeds_for(a, a, dims={"N": 1}), atol=ATOL, rtol=RTOL, chunk_size=3)
    assert not result.diverged and len(result.compared) == 200
    assert result.nodes_run == {"a": 200, "b": 200}  # every node ran once per model
    assert result.runs == 67
    assert 1 <= result.peak_live_tensors <= 4


def test_nan_matches_only_nan():
    a = add_chain(GOOD)
    x = np.array([[1.0, np.nan, 2.0, 3.0]], np.float32)
    assert not localize(a, clone(a), {"x": x}, atol=ATOL, rtol=RTOL).diverged  # NaN in both: equal
    b = clone(a)
    b.graph.initializer[4].CopyFrom(numpy_helper.from_array(np.array([4, np.nan, 4, 4], np.float32), "c4"))
    first = localize(a, b, {"x": np.zeros((1, 4), np.float32)}, atol=ATOL, rtol=RTOL).first_divergent
    assert (first.node, first.mismatch_fraction) == ("add4", 0.25) and np.isnan(first.max_abs)


def test_cli_localize_batch_defaults_to_one(cli, chain_files, tmp_path):
    """The same batch default as apply: a dynamic-batch model runs without --dim (issue 25)."""
    done = cli("localize", *chain_files, "--json", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)["inputs"]["x"][0] == 1


def two_input_model():
    """x [N,4] + z [N,4] -> y: the symbolic dim N is shared by both inputs."""
    return make_model(
        [helper.make_node("Add", ["x", "z"], ["y"], name="add")],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )


@pytest.mark.parametrize(
    "feeds, message",
    [
        ({"x": np.zeros((2, 5), np.float32), "z": np.zeros((2, 5), np.float32)}, "axis 1 is 4 in the model, 5"),
        ({"x": np.zeros((2, 4, 1), np.float32), "z": np.zeros((2, 4), np.float32)}, "has rank 2 [N,4], the array"),
        ({"x": np.zeros((2, 4), np.float64), "z": np.zeros((2, 4), np.float32)}, "float32 in the model, the array is"),
        ({"x": np.zeros((2, 4), np.float32), "z": np.zeros((3, 4), np.float32)}, "dim 'N' (axis 0) is 3, but 2"),
    ],
)
def test_inputs_that_contradict_the_declared_dims_are_refused(feeds, message):
    """Arrays onnxruntime would broadcast or reject deep inside were accepted as the model's inputs."""
    model = two_input_model()
    with pytest.raises(InputError) as info:
        localize(model, model, feeds, atol=ATOL, rtol=RTOL)
    assert message in str(info.value) and "model A" in str(info.value)


def test_cli_localize_inputs_of_the_wrong_shape_is_one_line_exit_2(cli, chain_files, tmp_path):
    np.savez(tmp_path / "in.npz", x=np.zeros((3, 7), np.float32))
    done = cli("localize", *chain_files, "--inputs", tmp_path / "in.npz")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "input 'x' of model A: axis 1 is 4 in the model, 7 in the array" in lines[0]
