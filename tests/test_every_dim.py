"""Every symbolic dim is checked at two sizes (issue 20 item 3): a pass that bakes a sequence
length or an image side into a constant is rejected, in the pipeline and the one-command form;
the sizes chosen, the cases planned and the dims the source cannot run at are reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from graphkit.check.golden import load_golden, make_or_load_golden
from graphkit.check.golden_cases import plan_cases
from graphkit.check.golden_defaults import dim_sizes, golden_defaults, second_size
from graphkit.check.golden_validation import validate_against_golden
from graphkit.runtime.ort import ValidationRuntime, create_session, run_session
from graphkit.util.errors import GoldenError


def _model(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def attention_bert(vocab: int = 30, hidden: int = 8, heads: int = 2) -> onnx.ModelProto:
    """input_ids [batch, seq] -> embedding -> one self-attention head split whose Reshape targets
    come from Shape(input_ids) (Gather 0 = batch, Gather 1 = seq), as exported transformers do."""
    rng = np.random.default_rng(3)
    inits = {
        "emb": rng.standard_normal((vocab, hidden)).astype(np.float32),
        "i0": np.array(0, np.int64),
        "i1": np.array(1, np.int64),
        "heads": np.array([heads, hidden // heads], np.int64),
        "hid": np.array([hidden], np.int64),
        "ax0": np.array([0], np.int64),
    }
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["x"]),
        helper.make_node("Shape", ["input_ids"], ["shape"]),
        helper.make_node("Gather", ["shape", "i0"], ["b"]),
        helper.make_node("Gather", ["shape", "i1"], ["s"]),
        helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
        helper.make_node("Unsqueeze", ["s", "ax0"], ["s1"]),
        helper.make_node("Concat", ["b1", "s1", "heads"], ["split_shape"], axis=0),
        helper.make_node("Reshape", ["x", "split_shape"], ["xh"]),
        helper.make_node("Transpose", ["xh"], ["q"], perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["xh"], ["kt"], perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "q"], ["ctx"]),
        helper.make_node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3]),
        helper.make_node("Concat", ["b1", "s1", "hid"], ["merge_shape"], axis=0),
        helper.make_node("Reshape", ["ctx_t", "merge_shape"], ["hidden_states"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("hidden_states", TensorProto.FLOAT, ["batch", "seq", hidden])],
        inits,
    )


def spatial_cnn(channels: int = 4) -> onnx.ModelProto:
    """image [N, 3, H, W] -> Conv -> a softmax over all pixels: Reshape to [N, C, H*W] and back,
    with H and W read from Shape (as exported CNNs with a spatial attention do)."""
    rng = np.random.default_rng(4)
    inits = {
        "w": rng.standard_normal((channels, 3, 3, 3)).astype(np.float32),
        "i2": np.array(2, np.int64),
        "i3": np.array(3, np.int64),
        "head": np.array([0, channels], np.int64),
        "ax0": np.array([0], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["y"], ["shape"]),
        helper.make_node("Gather", ["shape", "i2"], ["h"]),
        helper.make_node("Gather", ["shape", "i3"], ["w_"]),
        helper.make_node("Mul", ["h", "w_"], ["hw"]),
        helper.make_node("Unsqueeze", ["hw", "ax0"], ["hw1"]),
        helper.make_node("Unsqueeze", ["h", "ax0"], ["h1"]),
        helper.make_node("Unsqueeze", ["w_", "ax0"], ["w1"]),
        helper.make_node("Concat", ["head", "hw1"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["y", "flat_shape"], ["flat"]),
        helper.make_node("Softmax", ["flat"], ["attn"], axis=2),
        helper.make_node("Concat", ["head", "h1", "w1"], ["back_shape"], axis=0),
        helper.make_node("Reshape", ["attn", "back_shape"], ["heat"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("heat", TensorProto.FLOAT, ["N", channels, "H", "W"])],
        inits,
    )


# A user pass that is wrong on purpose: Gather(Shape(x), axis) becomes the constant `value`.
BAKE = '''
import numpy as np
from onnx import helper, numpy_helper
from graphkit.ir.model_io import clone
from graphkit.transform.pass_base import Pass, PassResult, option
from graphkit.transform.registry import register
from dataclasses import dataclass


@dataclass
class BakeOptions:
    axis: int = option(1, "which Gather(Shape) index to bake")
    value: int = option(16, "the constant it becomes")


@register("bake-dim")
class BakeDim(Pass):
    """Replace Gather(Shape(x), axis) by a constant (wrong on purpose: the dim is symbolic)."""

    Options = BakeOptions

    def run(self, model):
        out = clone(model)
        shapes = {n.output[0] for n in out.graph.node if n.op_type == "Shape"}
        consts = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
        changed = 0
        for index, node in enumerate(list(out.graph.node)):
            if node.op_type != "Gather" or node.input[0] not in shapes:
                continue
            if int(consts.get(node.input[1], -1)) != self.options.axis:
                continue
            value = numpy_helper.from_array(np.array(self.options.value, np.int64))
            out.graph.node.remove(node)
            out.graph.node.insert(index, helper.make_node("Constant", [], [node.output[0]], value=value))
            changed += 1
        return PassResult(out, bool(changed), counts={"baked": changed})
'''


@pytest.fixture(scope="module")
def pass_dir(tmp_path_factory):
    """One folder for the module: a pass name is registered from one file only."""
    folder = tmp_path_factory.mktemp("passes")
    (folder / "bake.py").write_text(BAKE)
    return folder


@pytest.fixture
def files(tmp_path, pass_dir):
    (tmp_path / "passes").symlink_to(pass_dir)
    onnx.save(attention_bert(), tmp_path / "bert.onnx")
    onnx.save(spatial_cnn(), tmp_path / "cnn.onnx")
    return tmp_path


def _report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def test_the_baked_model_is_really_wrong_at_another_size():
    """The premise: baking seq = 16 runs at seq 16 and fails at seq 20 (what the issue saw)."""
    model = attention_bert()
    ids = {"input_ids": np.ones((1, 16), np.int64)}
    baked = onnx.load_from_string(model.SerializeToString())
    for node in baked.graph.node:
        if node.op_type == "Gather" and node.input[1] == "i1":
            node.CopyFrom(
                helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(np.array(16, np.int64)))
            )
    run_session(create_session(baked), ids)
    with pytest.raises(Exception, match="(?i)reshape|shape"):
        run_session(create_session(baked), {"input_ids": np.ones((1, 20), np.int64)})


def test_second_sizes_are_never_multiples():
    for first in range(1, 300):
        second = second_size(first)
        assert second >= 2 and second != first
        if first > 2:
            assert first % second and second % first, (first, second)
            assert second < first  # the second case costs less than one at the first size
    assert [second_size(n) for n in (16, 32, 3, 1024)] == [12, 24, 2, 768]


def test_dim_sizes_syntax():
    assert dim_sizes("seq", 32) == ([32, 24], "symbolic dim 'seq' checked at 32 and 24 (second size chosen)")
    assert dim_sizes("seq", [32, 45]) == ([32, 45], None)
    for kept in ([32, 32], [32]):  # one size on purpose (a manifest records [32])
        sizes, note = dim_sizes("seq", kept)
        assert sizes == [32] and note == "symbolic dim 'seq' kept at one size (32): not exercised at a second size"
    with pytest.raises(GoldenError, match="'seq' sizes 16 and 32 are multiples of each other.*16,12"):
        dim_sizes("seq", [16, 32])
    for bad in ([], [1, 2, 3], [0], [True], "8"):
        with pytest.raises(GoldenError, match="'seq' must be a size >= 1 or two sizes"):
            dim_sizes("seq", bad)


def test_cases_alternate_the_sizes_at_no_extra_batch_cost():
    cases = plan_cases([1, 2], {"seq": [16, 12], "H": [8, 6]}, seed=0)
    assert [(c.label, c.dims, c.second) for c in cases] == [
        ("b1", {"seq": 16, "H": 8, "batch": 1}, False),
        ("b2", {"seq": 12, "H": 6, "batch": 2}, True),
    ]
    # one batch size: one more case at the second sizes; no symbolic dim: the plan of before
    assert [c.label for c in plan_cases([4], {"seq": [16, 12]}, 0)] == ["b4", "b4-d2"]  # a static batch 4
    symbolic = plan_cases([4], {"seq": [16, 12]}, 0, symbolic_batch=True)  # batch 1 costs least
    assert [(c.label, c.dims) for c in symbolic] == [
        ("b4", {"seq": 16, "batch": 4}),
        ("b1-d2", {"seq": 12, "batch": 1}),
    ]
    assert [(c.label, c.dims, c.seed) for c in plan_cases([1, 2], {}, 5)] == [
        ("b1", {"batch": 1}, 6),
        ("b2", {"batch": 2}, 7),
    ]


def test_shared_dims_stay_consistent_across_inputs(tmp_path):
    """Two inputs sharing 'seq' get the same size in every case; the golden set holds both sizes."""
    model = attention_bert()
    model.graph.input.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "seq"]))
    model.graph.node.append(helper.make_node("Identity", ["mask"], ["mask_out"]))
    model.graph.output.append(helper.make_tensor_value_info("mask_out", TensorProto.FLOAT, ["batch", "seq"]))
    defaults = golden_defaults(model)
    assert defaults.dims == {"seq": [16, 12]}
    golden, _ = make_or_load_golden(model, tmp_path / "g", batch_sizes=defaults.batch_sizes, dims=defaults.dims)
    shapes = [(c.inputs["input_ids"].shape, c.inputs["mask"].shape) for c in golden.cases]
    assert shapes == [((1, 16), (1, 16)), ((2, 12), (2, 12))]


def test_bert_seq_baking_is_rejected_by_the_pipeline(gk, files):
    pipeline = files / "p.yaml"
    pipeline.write_text(
        f"source: {{onnx: {files / 'bert.onnx'}}}\npass_dirs: [{files / 'passes'}]\npasses: [bake-dim]\n"
    )
    code, stdout, err = gk("apply", pipeline, "-o", files / "run")
    assert code == 1, err
    assert not (files / "run" / "model.onnx").exists()
    record = _report(files / "run")["passes"][0]
    assert record["status"] == "failed"
    cases = {c["label"]: c["passed"] for c in record["validation"]["cases"]}
    assert cases == {"b1": True, "b2": False}  # seq 16 (the baked value) passes; seq 12 cannot


def test_region_mode_rejects_the_seq_baking_too(gk, files):
    """Region checks run the rewritten region at every golden case's shapes: both seq sizes."""
    pipeline = files / "p.yaml"
    pipeline.write_text(
        f"source: {{onnx: {files / 'bert.onnx'}}}\npass_dirs: [{files / 'passes'}]\npasses: [bake-dim]\n"
        "validate: {mode: region}\n"
    )
    code, _, err = gk("apply", pipeline, "-o", files / "run")
    assert code == 1, err
    assert not (files / "run" / "model.onnx").exists()
    assert _report(files / "run")["passes"][0]["status"] == "failed"


def test_bert_seq_baking_is_rolled_back_in_the_one_command_form(gk, files):
    args = ("apply", files / "bert.onnx", "--passes", "bake-dim", "--passes-dir", files / "passes")
    code, stdout, err = gk(*args, "-o", files / "a")
    assert code == 0, err  # the pass is rolled back: the model written is the source, which is right
    assert stdout.splitlines()[0].endswith("OK with 1 pass rolled back (bake-dim)")
    written = onnx.load(files / "a" / "model.onnx")
    assert "Constant" not in {n.op_type for n in written.graph.node}
    run_session(create_session(written), {"input_ids": np.ones((1, 20), np.int64)})
    code, stdout, err = gk(*args, "-o", files / "b", "--strict")
    assert code == 1 and not (files / "b" / "model.onnx").exists()
    assert "strict: pass(es) rolled back: bake-dim" in err


@pytest.mark.parametrize("axis", [2, 3])
def test_cnn_height_or_width_baking_is_rejected(gk, files, axis):
    pipeline = files / "p.yaml"
    options = f"{{bake-dim: {{axis: {axis}, value: 8}}}}"
    pipeline.write_text(
        f"source: {{onnx: {files / 'cnn.onnx'}}}\npass_dirs: [{files / 'passes'}]\npasses: [{options}]\n"
        "golden: {dims: {H: 8, W: 8}}\n"
    )
    code, _, err = gk("apply", pipeline, "-o", files / "run")
    assert code == 1, err
    assert not (files / "run" / "model.onnx").exists()
    code, _, err = gk(
        "apply", files / "cnn.onnx", "-o", files / "one", "--passes-dir", files / "passes",
        "--set", f"passes=[{options}]", "--dim", "H=8", "--dim", "W=8", "--strict",
    )  # fmt: skip
    assert code == 1 and not (files / "one" / "model.onnx").exists()
    record = _report(files / "one")["passes"][0]
    assert record["status"] == "rolled-back" and "b2" in record["error"]


def test_a_correct_pass_on_the_same_models_still_passes(gk, files):
    for model, dims in (("bert.onnx", []), ("cnn.onnx", ["--dim", "H=8", "--dim", "W=8,5"])):
        out = files / model.split(".")[0]
        code, stdout, err = gk(
            "apply", files / model, "-o", out, "--preset", "generic", "--strict", "--regenerate-golden", *dims
        )
        assert code == 0, err
        assert stdout.splitlines()[0].endswith(" - OK")  # nothing rolled back
        assert (out / "model.onnx").exists() and _report(out)["golden"]["unexercised_dims"] == {}
    bert = _report(files / "bert")
    assert bert["golden"]["dims"] == {"seq": [16, 12], "batch": [1, 2]}
    # the cost: the same two golden forwards as one size would take (b2 at 12 tokens is smaller)
    golden = [(f["case"], f["batch"]) for f in bert["forwards"] if f["purpose"].startswith("golden")]
    assert golden == [("b1", 1), ("b2", 2)]
    report = _report(files / "cnn")
    assert report["golden"]["dims"] == {"H": [8, 6], "W": [8, 5], "batch": [1, 2]}
    assert report["claim"] == (
        "equal within atol 1e-05 / rtol 0.0001 to the source model (onnxruntime) on 2 case(s) "
        "(b1: batch 1, H 8, W 8; b2: batch 2, H 6, W 5); inputs: seeded noise (b1, b2)"
    )


def test_a_dim_the_source_cannot_run_at_a_second_size_is_named(gk, tmp_path):
    """The source adds a constant [1, 3, 8, 8] tensor: H = W = 8 is the only size it runs at."""
    model = _model(
        [helper.make_node("Add", ["image", "bias"], ["out"])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        {"bias": np.ones((1, 3, 8, 8), np.float32)},
    )
    onnx.save(model, tmp_path / "fixed.onnx")
    out = tmp_path / "o"
    code, stdout, err = gk("apply", tmp_path / "fixed.onnx", "-o", out, "--dim", "H=8", "--dim", "W=8")
    assert code == 0, err
    report = _report(out)
    assert report["golden"]["cases"] == ["b1", "b2"]
    assert set(report["golden"]["unexercised_dims"]) == {"H", "W"}
    assert "the source fails at H=6, W=6" in report["golden"]["unexercised_dims"]["H"]
    assert "not exercised at a second size: H, W" in " ".join(stdout.split())  # the line may fold at 100 columns
    assert load_golden(report["golden"]["dir"]).cases[1].inputs["image"].shape == (2, 3, 8, 8)


OPS = ["Relu", "Neg", "Abs", "Sigmoid", "Tanh", "Exp"]


def _two_dim_graph(ops: list[str], usage: str, baked_axis: int | None, baked_value: int) -> onnx.ModelProto:
    """x [batch, p, q] -> unary ops -> a use of p or q read from Shape: a Reshape to
    [batch, p * q] (usage 'reshape') or the ops' result plus x scaled by p + q (usage 'scale'). With
    ``baked_axis``, that Gather(Shape) is the constant ``baked_value`` (the wrong pass's result)."""
    inits = {"ax0": np.array([0], np.int64), "i0": np.array(0, np.int64)}
    nodes, last = [], "x"
    for index, op in enumerate(ops):
        nodes.append(helper.make_node(op, [last], [f"u{index}"]))
        last = f"u{index}"
    nodes.append(helper.make_node("Shape", ["x"], ["shape"]))
    for axis in (1, 2):
        name = f"d{axis}"
        if axis == baked_axis:
            value = numpy_helper.from_array(np.array(baked_value, np.int64))
            nodes.append(helper.make_node("Constant", [], [name], value=value))
        else:
            inits[f"i{axis}"] = np.array(axis, np.int64)
            nodes.append(helper.make_node("Gather", ["shape", f"i{axis}"], [name]))
    nodes.append(helper.make_node("Gather", ["shape", "i0"], ["d0"]))
    if usage == "reshape":
        nodes += [
            helper.make_node("Mul", ["d1", "d2"], ["pq"]),
            helper.make_node("Unsqueeze", ["d0", "ax0"], ["b1"]),
            helper.make_node("Unsqueeze", ["pq", "ax0"], ["pq1"]),
            helper.make_node("Concat", ["b1", "pq1"], ["target"], axis=0),
            helper.make_node("Reshape", [last, "target"], ["y"]),
        ]
        out_shape = ["batch", "pq"]
    else:
        nodes += [
            helper.make_node("Add", ["d1", "d2"], ["both"]),
            helper.make_node("Cast", ["both"], ["scale"], to=TensorProto.FLOAT),
            # x itself is scaled: the unary ops may zero their result (Relu(Neg(Relu(x))) is 0),
            # which would make a baked dim harmless and the case uninformative
            helper.make_node("Mul", ["x", "scale"], ["scaled"]),
            helper.make_node("Add", [last, "scaled"], ["y"]),
        ]
        out_shape = ["batch", "p", "q"]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "p", "q"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        inits,
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(st.sampled_from(OPS), min_size=0, max_size=3),
    usage=st.sampled_from(["reshape", "scale"]),
    axis=st.sampled_from([1, 2]),
    p=st.integers(2, 9),
    q=st.integers(2, 9),
    second=st.one_of(st.none(), st.integers(2, 12)),
)
@example(ops=["Relu", "Neg", "Relu"], usage="scale", axis=1, p=2, q=2, second=None)  # the ops alone give 0
def test_property_baking_either_symbolic_dim_is_rejected(tmp_path_factory, ops, usage, axis, p, q, second):
    """Random graphs with two symbolic dims; a pass that bakes one at its first golden size passes
    the first case but not the set: validation rejects it. Without the bake, validation passes.

    Checked at optimization level none (the strict mode): onnxruntime's basic level rewrites a
    Reshape target Concat(batch, p * q) into [0, -1] whatever p is, so the baked Reshape runs
    there (docs/validation.md, "What two sizes prove")."""
    strict = ValidationRuntime(optimization="none")
    dims = {"p": p, "q": q}
    if second is not None and second != dims["p"] and second % dims["p"] and dims["p"] % second:
        dims["p"] = [p, second]  # the two sizes given explicitly
    source = _two_dim_graph(ops, usage, None, 0)
    defaults = golden_defaults(source, None, dims)
    golden, _ = make_or_load_golden(
        source, tmp_path_factory.mktemp("g"), batch_sizes=defaults.batch_sizes, dims=defaults.dims, runtime=strict
    )
    first = defaults.dims["p" if axis == 1 else "q"][0]
    assert validate_against_golden(source, golden, runtime=strict).passed
    baked = _two_dim_graph(ops, usage, axis, first)
    validation = validate_against_golden(baked, golden, runtime=strict)
    assert validation.cases[0].passed and not validation.passed


# A user pass that is wrong on purpose: the model's first output is multiplied by +inf.
POISON = '''
import numpy as np
from onnx import helper, numpy_helper
from graphkit.ir.model_io import clone
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.registry import register


@register("poison-output")
class PoisonOutput(Pass):
    """Multiply the first output by +inf (wrong on purpose)."""

    def run(self, model):
        out = clone(model)
        name = out.graph.output[0].name
        out.graph.initializer.append(numpy_helper.from_array(np.array(np.inf, np.float32), "poison_inf"))
        for node in out.graph.node:
            node.output[:] = [name + "_raw" if o == name else o for o in node.output]
        out.graph.node.append(helper.make_node("Mul", [name + "_raw", "poison_inf"], [name]))
        return PassResult(out, True)
'''


def _strict_json(text: str) -> dict:
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_the_report_of_a_failing_run_is_strict_json_with_a_schema_version(gk, files):
    (files / "more").mkdir()
    (files / "more" / "poison.py").write_text(POISON)
    pipeline = files / "p.yaml"
    pipeline.write_text(
        f"source: {{onnx: {files / 'bert.onnx'}}}\npass_dirs: [{files / 'more'}]\npasses: [poison-output]\n"
    )
    code, _, err = gk("apply", pipeline, "-o", files / "run")
    assert code == 1, err
    text = (files / "run" / "report.json").read_text()
    report = _strict_json(text)  # a NaN/Infinity literal would raise
    assert report["schema_version"] == 2 and report["status"] == "failed" and report["claim"] is None
    record = report["passes"][0]
    assert record["status"] == "failed" and record["max_abs"] == {"hidden_states": "inf"}
    code, stdout, _ = gk("apply", pipeline, "-o", files / "run", "--json")
    assert code == 1 and _strict_json(stdout)["passes"][0]["max_abs"] == {"hidden_states": "inf"}


def test_localize_in_the_one_command_form_prints_its_answer(gk, files):
    out = files / "o"
    args = ("apply", files / "bert.onnx", "-o", out, "--passes", "bake-dim", "--passes-dir", files / "passes")
    code, stdout, err = gk(*args, "--localize")
    assert code == 0, err
    line = next(line for line in stdout.splitlines() if "localize (case b2)" in line)
    assert line.startswith("note:    pass 'bake-dim': localize (case b2): ")
    assert _report(out)["passes"][0]["artifacts"]["localize"]


def hidden_reshape_model():
    """x [batch, seq, 4] -> Reshape(x, Concat(batch, seq * 4)): onnxruntime's rewrites (level basic
    and up) turn that target into [0, -1], so a seq baked into it still runs there at any seq."""
    shape = helper.make_node("Shape", ["x"], ["s"])
    nodes = [shape]
    for axis in range(3):
        index = numpy_helper.from_array(np.array(axis, np.int64), f"i{axis}")
        nodes.append(helper.make_node("Gather", ["s", index.name], [f"d{axis}"]))
    zero = numpy_helper.from_array(np.array([0], np.int64), "zero")
    nodes += [
        helper.make_node("Mul", ["d1", "d2"], ["flat"]),
        helper.make_node("Unsqueeze", ["d0", "zero"], ["b1"]),
        helper.make_node("Unsqueeze", ["flat", "zero"], ["f1"]),
        helper.make_node("Concat", ["b1", "f1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(a, np.int64), f"i{a}") for a in range(3)] + [zero]
    graph = helper.make_graph(
        nodes,
        "hidden",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "flat"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_a_bake_that_onnxruntimes_rewrites_hide_is_caught_unoptimized(gk, tmp_path, pass_dir):
    """At the default level the baked model passes every case (ORT rewrote the Reshape target);
    the final check runs the second-size case once more at optimization none and rejects it."""
    onnx.save(hidden_reshape_model(), tmp_path / "m.onnx")
    (tmp_path / "passes").symlink_to(pass_dir)
    args = ("apply", tmp_path / "m.onnx", tmp_path / "o.onnx", "--passes", "bake-dim", "--passes-dir")
    code, stdout, err = gk(*args, tmp_path / "passes")
    assert code == 1, stdout
    assert not (tmp_path / "o.onnx").exists()
    report = _report(tmp_path / "o.graphkit")
    record = report["passes"][0]
    assert record["status"] == "applied"  # the per-pass check (optimized) did not see it
    failed = [c for c in report["final"]["validation"]["cases"] if not c["passed"]]
    assert [c["label"] for c in failed] == ["b2"] and "at optimization none" in failed[0]["error"]
    fine = gk("apply", tmp_path / "m.onnx", tmp_path / "ok.onnx", "--passes", "eliminate-noops")
    assert fine[0] == 0, fine[2]
