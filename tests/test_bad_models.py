"""Parseable but invalid graphs: every command that reads a model refuses them the same way.

Each bad model is built with onnx.helper (the ONNX checker is never run on it) and handed to
every command through the CLI: exit code 2, exactly one line ``graphkit: error: <file>: invalid
model: <problem>`` on stderr, no traceback. Models that are valid ONNX but that onnxruntime
cannot run (a custom-domain op) pass where nothing runs them (diff) and are one-line errors
where something does.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.ascend.precheck import precheck
from graphkit.cli.main import main
from graphkit.ir.model_check import invalid_reason
from graphkit.ir.model_io import load_user_model
from graphkit.pipeline.demo_model import demo_model
from graphkit.util.errors import ModelLoadError, one_line

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])


def model(nodes, inputs=(X,), outputs=(Y,), inits=(), opset=13, ir_version=8, opsets=None):
    """A model straight from onnx.helper: no checker, no shape inference."""
    graph = helper.make_graph(list(nodes), "bad", list(inputs), list(outputs), list(inits))
    made = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", opset)])
    made.ir_version = ir_version
    return made


def relu(**kwargs):
    return model([helper.make_node("Relu", ["x"], ["y"], name="relu")], **kwargs)


def cycle():
    return model(
        [
            helper.make_node("Add", ["x", "back"], ["a"], name="add"),
            helper.make_node("Relu", ["a"], ["back"], name="loop"),
            helper.make_node("Identity", ["a"], ["y"], name="out"),
        ]
    )


def self_loop():
    return model([helper.make_node("Add", ["x", "y"], ["y"], name="self")])


def undefined_input():
    return model([helper.make_node("Add", ["x", "ghost"], ["y"], name="add")])


def duplicate_output():
    return model(
        [helper.make_node("Relu", ["x"], ["y"], name="one"), helper.make_node("Relu", ["x"], ["y"], name="two")]
    )


def duplicate_initializer():
    w = numpy_helper.from_array(np.ones((1, 4), np.float32), "w")
    return model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], inits=[w, w])


def initializer_shadowing_a_node():
    w = numpy_helper.from_array(np.ones((1, 4), np.float32), "y")
    return model([helper.make_node("Relu", ["x"], ["y"], name="relu")], inits=[w])


def raw_data_too_short():
    w = numpy_helper.from_array(np.ones((1, 4), np.float32), "w")
    w.raw_data = w.raw_data[:8]
    return model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], inits=[w])


def untyped_input():
    value = onnx.ValueInfoProto(name="x")
    return relu(inputs=[value])


def sequence_input():
    element = helper.make_tensor_type_proto(TensorProto.FLOAT, [1, 4])
    value = helper.make_value_info("x", helper.make_sequence_type_proto(element))
    index = numpy_helper.from_array(np.array(0, np.int64), "i")
    return model([helper.make_node("SequenceAt", ["x", "i"], ["y"], name="at")], inputs=[value], inits=[index])


def complex_input():
    value = helper.make_tensor_value_info("x", TensorProto.COMPLEX64, [1, 4])
    out = helper.make_tensor_value_info("y", TensorProto.COMPLEX64, [1, 4])
    return model([helper.make_node("Identity", ["x"], ["y"], name="id")], inputs=[value], outputs=[out])


def unknown_domain():
    return model([helper.make_node("Foo", ["x"], ["y"], name="foo", domain="com.example")])


def custom_op():
    """Valid ONNX: the custom domain is imported. onnxruntime has no kernel for it."""
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)]
    return model([helper.make_node("Foo", ["x"], ["y"], name="foo", domain="com.example")], opsets=opsets)


BAD = {
    "cycle": (cycle, "the graph has a cycle: node 'add' (Add) -> node 'loop' (Relu) -> node 'add' (Add)"),
    "self-loop": (self_loop, "the graph has a cycle: node 'self' (Add) -> node 'self' (Add)"),
    "undefined-input": (undefined_input, "node 'add' (Add) reads 'ghost', which no node"),
    "duplicate-output": (duplicate_output, "tensor 'y' is defined twice: by node 'two' (Relu) and by node 'one'"),
    "duplicate-initializer": (duplicate_initializer, "initializer 'w' is defined twice"),
    "duplicate-input": (lambda: relu(inputs=[X, X]), "graph input 'x' is declared twice"),
    "initializer-shadows-output": (initializer_shadowing_a_node, "tensor 'y' is defined twice"),
    "unknown-op": (
        lambda: model([helper.make_node("Frobnicate", ["x"], ["y"], name="f")]),
        "op 'Frobnicate' does not exist in ONNX opset 13",
    ),
    "unknown-domain": (unknown_domain, "uses domain 'com.example', which the model's opset_import does not declare"),
    "opset-99": (lambda: relu(opset=99), "opset 99 of the ONNX domain does not exist"),
    "ir-version-999": (lambda: relu(ir_version=999), "ir_version 999 is newer than this onnx release reads"),
    "raw-data-length": (raw_data_too_short, "initializer 'w' holds 8 bytes, but dims [1, 4] need 16"),
    "complex-input": (complex_input, "graph input 'x' has complex elements"),
    "untyped-input": (untyped_input, "graph input 'x' has no type"),
    "sequence-input": (sequence_input, "graph input 'x' is a sequence; graphkit feeds tensor inputs only"),
    "empty-op-type": (lambda: model([helper.make_node("", ["x"], ["y"], name="blank")]), "has an empty op_type"),
    # the ONNX checker lets it pass and onnxruntime 1.32 crashes (SIGSEGV) creating a session over it
    "omitted-required-output": (
        lambda: model([helper.make_node("Split", ["x"], ["y", ""], axis=1, name="split")]),
        "node 'split' (Split): output 1 has an empty name, but Split's output 'outputs' is not optional",
    ),
    "dim-zero": (
        lambda: relu(inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [0, 4])]),
        "graph input 'x' axis 0 has size 0; declared sizes must be positive",
    ),
    "dim-negative": (
        lambda: relu(inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, -4])]),
        "graph input 'x' axis 1 has size -4; declared sizes must be positive",
    ),
    "unsorted": (
        lambda: model(
            [
                helper.make_node("Relu", ["a"], ["y"], name="second"),
                helper.make_node("Relu", ["x"], ["a"], name="first"),
            ]
        ),
        "nodes are not in topological order: node 'second' (Relu) reads 'a' before node 'first'",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_invalid_reason_names_the_problem(name):
    build, expected = BAD[name]
    assert expected in invalid_reason(build())


def test_valid_models_have_no_invalid_reason():
    assert invalid_reason(demo_model()) is None
    assert invalid_reason(relu()) is None
    assert invalid_reason(custom_op()) is None  # custom domains are valid ONNX
    unknown_rank = relu(outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    assert invalid_reason(unknown_rank) is None
    symbolic = relu(inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", None])])
    assert invalid_reason(symbolic) is None
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.0], np.float32), "s"), numpy_helper.from_array(np.array([1], np.int64)), [4]
    )
    reads_sparse = model([helper.make_node("Add", ["x", "s"], ["y"])])
    reads_sparse.graph.sparse_initializer.append(sparse)
    assert invalid_reason(reads_sparse) is None
    strings = model(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Identity", ["t"], ["u"])],
        outputs=[Y, helper.make_tensor_value_info("u", TensorProto.STRING, [1])],
        inits=[helper.make_tensor("t", TensorProto.STRING, [1], [b"text"])],
    )
    assert invalid_reason(strings) is None  # string tensors inside the graph are fine; only inputs must be numeric
    omitted_optional = model([helper.make_node("Dropout", ["x"], ["y", ""])])  # the mask output is optional
    assert invalid_reason(omitted_optional) is None


def test_subgraphs_may_read_outer_names_but_not_undefined_ones():
    def with_branch(read: str):
        branch = helper.make_graph(
            [helper.make_node("Relu", [read], ["b"])], "branch", [], [helper.make_tensor_value_info("b", 1, [1, 4])]
        )
        cond = numpy_helper.from_array(np.array(True), "cond")
        node = helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch, else_branch=branch)
        return model([node], inits=[cond])

    assert invalid_reason(with_branch("x")) is None
    assert "node 'if' (If) reads 'nowhere'" in invalid_reason(with_branch("nowhere"))


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A valid model, a golden set made from it and a pipeline, shared by the CLI matrix."""
    root = tmp_path_factory.mktemp("bad-models")
    good = root / "good.onnx"
    onnx.save(demo_model(), good)
    assert main(["golden", "make", str(good), "-o", str(root / "golden"), "--batch-sizes", "1"]) == 0
    pipeline = root / "p.yaml"
    pipeline.write_text(
        f"name: bad\nsource: {{builtin: demo}}\npasses: [eliminate-noops]\noutput: {{dir: {root}/run}}\n"
    )
    return root


def commands(root, path):
    """Every command that reads a model, with the bad model where the model goes."""
    out = root / "out"
    return {
        "apply": ["apply", root / "p.yaml", "--input", path, "--output", out / "run"],
        "golden make": ["golden", "make", path, "-o", out / "golden"],
        "validate": ["validate", path, "--golden", root / "golden"],
        "diff (A)": ["diff", path, root / "good.onnx"],
        "diff (B)": ["diff", root / "good.onnx", path],
        "localize": ["localize", root / "good.onnx", path],
        "perf": ["perf", path, "-o", out / "perf", "--loop", "1"],
        "infer": ["infer", path, "--input", root, "--output", out / "infer"],
        "eval": ["eval", path, "--out", out / "eval", "--data-root", root],
        "atc precheck": ["atc", "precheck", path],
        "atc commands": ["atc", "commands", path, "-o", out / "atc"],
        "atc build": ["atc", "build", path, "-o", out / "atc-build"],
    }


def run(argv, capfd) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capfd.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("graphkit: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("name", sorted(BAD))
def test_every_command_refuses_the_invalid_graph_with_one_line(name, setting, tmp_path, capfd):
    build, expected = BAD[name]
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(build().SerializeToString())
    for command, argv in commands(setting, path).items():
        code, _, err = run(argv, capfd)
        assert code == 2, (command, err)
        assert_one_error_line(err, f"{path}: invalid model: ", expected)
    assert not (setting / "out").exists()  # nothing written by any command


def test_missing_truncated_and_random_files_are_one_line_in_every_command(setting, tmp_path, capfd):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(demo_model().SerializeToString()[:300])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    for path, expected in (
        (tmp_path / "missing.onnx", "no such file"),
        (truncated, "not a valid ONNX model"),
        (garbage, "not a valid ONNX model"),
        (tmp_path, "is a directory"),
    ):
        for command, argv in commands(setting, path).items():
            code, _, err = run(argv, capfd)
            assert code == 2, (command, err)
            assert_one_error_line(err, str(path), expected)


def test_perf_of_a_missing_file_is_one_line_as_a_user_runs_it(tmp_path, cli):
    result = cli("perf", tmp_path / "missing.onnx")
    assert result.returncode == 2
    assert result.stderr == f"graphkit: error: {tmp_path / 'missing.onnx'}: no such file\n"


@pytest.mark.parametrize("command", ["apply", "perf", "atc precheck"])
def test_a_cyclic_graph_as_a_user_runs_it(command, setting, tmp_path, cli):
    path = tmp_path / "cycle.onnx"
    path.write_bytes(cycle().SerializeToString())
    result = cli(*commands(setting, path)[command])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{path}: invalid model: the graph has a cycle" in result.stderr


def test_precheck_reports_an_invalid_graph_as_an_error():
    report = precheck(cycle())
    assert report.has_errors
    assert [(f.rule, f.level) for f in report.findings] == [("invalid-graph", "error")]
    assert "cycle" in report.findings[0].message


def test_custom_domain_ops_pass_through_diff_and_are_named_where_onnxruntime_must_run_them(setting, tmp_path, capfd):
    path = tmp_path / "custom.onnx"
    path.write_bytes(custom_op().SerializeToString())
    assert load_user_model(path).graph.node[0].domain == "com.example"
    code, out, err = run(["diff", path, path, "--exit-code"], capfd)
    assert (code, err) == (0, "")
    code, out, err = run(["diff", setting / "good.onnx", path, "--json"], capfd)
    assert code == 0 and "com.example::Foo" in out
    for argv in (commands(setting, path)["golden make"], commands(setting, path)["perf"], ["localize", path, path]):
        code, _, err = run(argv, capfd)
        assert code == 2, (argv, err)
        assert_one_error_line(err, "onnxruntime cannot load")
    code, _, err = run(commands(setting, path)["golden make"], capfd)
    assert "custom-domain ops com.example::Foo are valid ONNX but need an onnxruntime kernel" in err
    code, out, err = run(["atc", "precheck", path], capfd)
    assert code == 1 and "custom-domain" in out  # ATC's own verdict: it has no parser for the op


def test_load_user_model_error_names_the_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(cycle().SerializeToString())
    with pytest.raises(ModelLoadError, match=r"m\.onnx: invalid model: the graph has a cycle"):
        load_user_model(path)


def test_one_line_strips_ansi_colour_and_control_characters():
    text = "\x1b[1;31m2026-01-01 [E:onnxruntime:, inference_session.cc:1] Exception\nduring\tinit\x1b[m\x00 end"
    assert (
        one_line(RuntimeError(text)) == "2026-01-01 [E:onnxruntime:, inference_session.cc:1] Exception during init end"
    )
    assert one_line("\x1b]0;title\x07plain") == "plain"
    assert one_line("x" * 500, limit=None) == "x" * 500


CUSTOM_PASS = '''
import onnx
from graphkit.ir.model_io import clone
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.registry import register


@register("relu-to-custom-op")
class ReluToCustomOp(Pass):
    """Turn Relu into a custom-domain op (valid ONNX) that onnxruntime has no kernel for."""

    def run(self, model):
        out = clone(model)
        for node in out.graph.node:
            if node.op_type == "Relu":
                node.op_type, node.domain = "MyRelu", "com.example"
        out.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
        return PassResult(out, True)
'''


def test_a_pass_emitting_an_op_onnxruntime_cannot_run_is_rolled_back_with_the_reason(tmp_path, cli):
    (tmp_path / "passes").mkdir()
    (tmp_path / "passes" / "custom.py").write_text(CUSTOM_PASS)
    (tmp_path / "p.yaml").write_text(
        f"name: c\nsource: {{builtin: demo}}\ngolden: {{dir: {tmp_path / 'g'}, batch_sizes: [1]}}\n"
        f"pass_dirs: [{tmp_path / 'passes'}]\npasses: [relu-to-custom-op]\noutput: {{dir: {tmp_path / 'run'}}}\n"
    )
    result = cli("apply", tmp_path / "p.yaml")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "pass 'relu-to-custom-op' failed validation: case b1: onnxruntime cannot load the model" in result.stderr
    assert "custom-domain ops com.example::MyRelu are valid ONNX but need an onnxruntime kernel" in result.stderr
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_onnxruntime_load_errors_are_one_clean_line():
    """Straight to onnxruntime (no model check): its C++ source location and signature are cut."""
    from graphkit.runtime.ort import create_session
    from graphkit.util.errors import RuntimeLoadError

    with pytest.raises(RuntimeLoadError) as caught:
        create_session(relu(ir_version=999))
    message = str(caught.value)
    assert message.startswith("onnxruntime cannot load the model: [ONNXRuntimeError] : 1 : FAIL : Unsupported model")
    assert "onnxruntime_src" not in message and "::Model(" not in message and "\n" not in message
