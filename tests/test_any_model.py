"""Any model, first try (issue 12): the one-command form, minimal pipelines, golden defaults read
from the model, the user cache folder, batch stacking for a batch made dynamic, and messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.check.golden import load_golden
from graphkit.check.golden_defaults import gather_table_size, golden_defaults
from graphkit.runtime.feeds import load_npz
from graphkit.runtime.ort import create_session, run_session
from graphkit.transform.presets import PRESETS, pass_names
from graphkit.transform.registry import get_pass
from graphkit.util.user_cache import cache_root


def _model(nodes, inputs, outputs, inits, opset=13):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def static_cnn(batch: int = 1) -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu -> Identity -> GlobalAveragePool -> Flatten, static batch."""
    rng = np.random.default_rng(0)
    inits = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "scale": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "bias": rng.standard_normal(4).astype(np.float32),
        "mean": rng.standard_normal(4).astype(np.float32),
        "var": rng.uniform(0.5, 1.5, 4).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("Identity", ["r"], ["i"]),
        helper.make_node("GlobalAveragePool", ["i"], ["p"]),
        helper.make_node("Flatten", ["p"], ["logits"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])],
        inits,
    )


def tiny_bert(vocab: int = 50, hidden: int = 8, batch: str | int = "batch", seq: str = "seq") -> onnx.ModelProto:
    """Token ids (int64 [batch, seq]) -> Gather over an embedding table, + token types, masked by
    attention_mask (int64 0/1) -> a mean over the sequence (via Shape arithmetic) -> [batch, hidden].

    The Gather fails in onnxruntime for an id >= vocab: golden inputs must respect the table size.
    """
    rng = np.random.default_rng(1)
    inits = {
        "word_emb": rng.standard_normal((vocab, hidden)).astype(np.float32),
        "type_emb": rng.standard_normal((2, hidden)).astype(np.float32),
        "axes1": np.array([1], np.int64),
        "axes2": np.array([2], np.int64),
        "eps": np.array(1e-6, np.float32),
    }
    nodes = [
        helper.make_node("Gather", ["word_emb", "input_ids"], ["we"]),
        helper.make_node("Gather", ["type_emb", "token_type_ids"], ["te"]),
        helper.make_node("Add", ["we", "te"], ["emb"]),
        helper.make_node("Identity", ["emb"], ["emb_id"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axes2"], ["mask3"]),
        helper.make_node("Mul", ["emb_id", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axes1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["maskf", "axes1"], ["count"], keepdims=1),
        helper.make_node("Add", ["count", "eps"], ["count_eps"]),
        helper.make_node("Div", ["summed", "count_eps"], ["pooled"]),
    ]
    ints = [batch, seq]
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ints),
            helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ints),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ints),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [batch, hidden])],
        inits,
    )


def detector_split() -> onnx.ModelProto:
    """A detector-like head exported at batch 1: the image rows are concatenated with a constant
    prior row and split back with sizes [1, 1] baked for batch 1. Valid at batch 1; at batch 3 the
    Split sizes no longer add up, so the batch is not really dynamic."""
    inits = {"prior": np.arange(6, dtype=np.float32).reshape(1, 6), "split": np.array([1, 1], np.int64)}
    nodes = [
        helper.make_node("Relu", ["image"], ["r"]),
        helper.make_node("Concat", ["r", "prior"], ["both"], axis=0),
        helper.make_node("Split", ["both", "split"], ["scores", "anchors"], axis=0),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 6])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 6]),
            helper.make_tensor_value_info("anchors", TensorProto.FLOAT, [1, 6]),
        ],
        inits,
    )


def detector_counts() -> onnx.ModelProto:
    """Batch 1 image [1, 6] -> per-anchor scores [6, 1]: the output's dim 0 is a count of anchors,
    not the batch, so the samples are not rows of the output."""
    nodes = [helper.make_node("Transpose", ["image"], ["per_anchor"], perm=[1, 0])]
    return _model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("per_anchor", TensorProto.FLOAT, [6, 1])],
        {},
    )


def detector_like() -> onnx.ModelProto:
    """Batch 1 image [1, 6] -> scores; the detections' dim 0 is a count, not the batch: a Reshape
    flattens the batch into the boxes ([1, 6] -> [3, 2]), and a Split has sizes baked for batch 1."""
    inits = {"shape": np.array([3, 2], np.int64), "split": np.array([1, 2], np.int64)}
    nodes = [
        helper.make_node("Relu", ["image"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["boxes"]),
        helper.make_node("Split", ["boxes", "split"], ["best", "rest"], axis=0),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 6])],
        [
            helper.make_tensor_value_info("best", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("rest", TensorProto.FLOAT, [2, 2]),
        ],
        inits,
    )


@pytest.fixture
def models(tmp_path):
    paths = {}
    for name, model in {
        "cnn": static_cnn(),
        "bert": tiny_bert(),
        "dets": detector_split(),
        "detc": detector_counts(),
    }.items():
        paths[name] = tmp_path / f"{name}.onnx"
        onnx.save(model, paths[name])
    return paths


def _report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("graphkit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_static_batch_model_one_command_generic(gk, models, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = gk("apply", models["cnn"], "-o", out, "--preset", "generic")
    assert code == 0, err
    report = _report(out)
    assert report["golden"]["cases"] == ["b1"]
    assert any("dynamic batch was not proven" in note for note in report["golden"]["notes"])
    assert "dynamic batch was not proven" in stdout
    names = pass_names(PRESETS["generic"])
    first_run = [p["name"] for p in report["passes"] if p.get("iteration") in (None, 1)]
    assert first_run == names  # each pass once; the fixed-point group's passes again per further iteration
    assert report["passes"][0]["group"] == "1" and report["passes"][-1]["group"] is None
    written = onnx.load(out / "model.onnx")
    assert {n.op_type for n in written.graph.node} == {"Conv", "Relu", "GlobalAveragePool", "Flatten"}
    assert report["final"]["validation"]["passed"] is True


def test_dynamic_batch_bert_with_seq_dim(gk, models, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = gk("apply", models["bert"], "-o", out, "--preset", "generic", "--dim", "seq=32")
    assert code == 0, err
    report = _report(out)
    assert report["golden"]["cases"] == ["b1", "b2"]
    golden = load_golden(report["golden"]["dir"])
    assert golden.cases[0].inputs["input_ids"].shape == (1, 32)  # seq at its two sizes: 32 given, 24 chosen
    inputs = golden.cases[1].inputs
    assert inputs["input_ids"].shape == (2, 24) and inputs["input_ids"].dtype == np.int64
    assert inputs["input_ids"].min() >= 0 and inputs["input_ids"].max() <= 49  # the table has 50 rows
    assert inputs["input_ids"].max() > 3  # ids cover the vocabulary, not just [0, 4)
    assert set(np.unique(inputs["attention_mask"])) <= {0, 1}
    assert set(np.unique(inputs["token_type_ids"])) <= {0, 1}
    assert "Identity" not in {n.op_type for n in onnx.load(out / "model.onnx").graph.node}


def test_sequence_dim_default_and_unknown_dim_names_the_flag(gk, models, tmp_path):
    code, _, err = gk("apply", models["bert"], "-o", tmp_path / "a")
    assert code == 0, err
    assert "symbolic dim 'seq' (input 'input_ids' axis 1) set to 16 and 12; give --dim seq=N (or N,M)" in err
    image = tiny_bert()
    image.graph.input.append(helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, "height"]))
    onnx.save(image, tmp_path / "img.onnx")
    code, _, err = gk("apply", tmp_path / "img.onnx", "-o", tmp_path / "b")
    assert code == 2
    assert _error_line(err).endswith(
        "input 'pixels' axis 2 is symbolic ('height'); give its size with --dim height=N (in a pipeline file: golden.dims)"
    )
    assert not (tmp_path / "b").exists()
    code, _, err = gk("apply", tmp_path / "img.onnx", "-o", tmp_path / "b", "--dim", "height=5")
    assert code == 0, err


def test_input_range_beyond_the_table_is_the_source_models_problem(gk, models, tmp_path):
    code, _, err = gk("apply", models["bert"], "-o", tmp_path / "o", "--input-range", "input_ids=0:5000")
    assert code == 2
    line = _error_line(err)
    assert f"{models['bert']}: golden case b1: the producer failed: the source model failed to run" in line
    assert "indices element out of data bounds" in line
    code, _, err = gk("apply", models["bert"], "-o", tmp_path / "o", "--input-range", "input_ids=5:1")
    assert code == 2 and "LO must be <= HI" in _error_line(err)
    code, _, err = gk("apply", models["bert"], "-o", tmp_path / "o", "--input-range", "nope=0:1")
    assert code == 2 and "the model has no input 'nope'" in _error_line(err)


def test_passes_only_pipeline_with_input(gk, models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("passes-only.yaml").write_text("passes: [eliminate-noops, fold-batchnorm]\n")
    code, stdout, err = gk("apply", "passes-only.yaml", "--input", models["cnn"])
    assert code == 0, err
    report = _report(tmp_path / "runs" / "passes-only")
    assert report["pipeline"] == "passes-only" and report["source"]["description"] == str(models["cnn"])
    truncated = tmp_path / "my.onnx"
    truncated.write_bytes(models["cnn"].read_bytes()[:200])
    code, _, err = gk("apply", "passes-only.yaml", "--input", truncated)
    assert code == 2
    line = _error_line(err)
    assert line.startswith(f"graphkit: error: {truncated}: not a valid ONNX model") and "yaml" not in line.lower()
    code, _, err = gk("apply", truncated, "-o", tmp_path / "t")
    assert code == 2 and "not a valid ONNX model" in _error_line(err)
    code, _, err = gk("apply", "passes-only.yaml")
    assert code == 2
    assert _error_line(err) == (
        "graphkit: error: passes-only.yaml: source: required key is missing; give it in the file "
        "(source: {onnx: MODEL.onnx}) or name the model with --input MODEL.onnx"
    )


def test_yaml_named_onnx_and_onnx_named_yaml_are_one_line(gk, models, tmp_path):
    (tmp_path / "p.onnx").write_text("passes: [eliminate-noops]\n")
    code, _, err = gk("apply", tmp_path / "p.onnx", "-o", tmp_path / "o")
    assert code == 2 and "holds text (a YAML pipeline?), not an ONNX model" in _error_line(err)
    (tmp_path / "m.yaml").write_bytes(models["cnn"].read_bytes())
    code, _, err = gk("apply", tmp_path / "m.yaml")
    assert code == 2 and "holds binary data (an ONNX model?), not a YAML pipeline" in _error_line(err)
    code, _, err = gk("apply", models["cnn"], "--passes", "eliminate-noop", "-o", tmp_path / "o")
    assert code == 2 and "did you mean: eliminate-noops" in _error_line(err)
    code, _, err = gk("apply", models["cnn"], "--input", models["bert"], "-o", tmp_path / "o")
    assert code == 2 and "is already the model" in _error_line(err)
    assert not (tmp_path / "o").exists()


def test_source_rejected_by_onnxruntime_is_one_line(gk, tmp_path):
    """The T5-at-opset-11 kind: int64 Min is invalid before opset 12."""
    graph = helper.make_graph(
        [helper.make_node("Min", ["a", "a"], ["b"])],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("b", TensorProto.INT64, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    onnx.save(model, tmp_path / "t5.onnx")
    code, _, err = gk("apply", tmp_path / "t5.onnx", "-o", tmp_path / "o")
    assert code == 2
    assert _error_line(err).startswith(
        f"graphkit: error: {tmp_path / 't5.onnx'}: onnxruntime cannot load the source model:"
    )
    assert "Min" in err and not (tmp_path / "o").exists()


def test_presets_list_exact_registered_passes(gk):
    code, stdout, _ = gk("passes", "--presets", "--json")
    assert code == 0 and json.loads(stdout) == PRESETS
    assert PRESETS["generic"][-1] == {"softmax-transpose": {"allow_opset_upgrade": False}}
    for name in pass_names(PRESETS["generic"])[:-1]:
        cls = get_pass(name)
        assert cls.exact and not cls.changes_opset
    code, stdout, _ = gk("passes", "--presets")
    assert "generic" in stdout and "fold-shapes" in stdout


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHKIT_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("GRAPHKIT_CACHE")
    assert cache_root() == tmp_path / "xdg" / "graphkit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "graphkit"


def test_tests_never_write_the_home_cache():
    assert cache_root() != Path.home() / ".cache" / "graphkit"


def test_cache_ls_reuse_and_clear(gk, models, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHKIT_CACHE", str(tmp_path / "cache"))
    code, _, err = gk("apply", models["cnn"], "-o", tmp_path / "o")
    assert code == 0, err
    code, _, err = gk("apply", models["cnn"], "-o", tmp_path / "o")
    assert code == 0 and _report(tmp_path / "o")["golden"]["reused"] is True
    code, stdout, _ = gk("cache", "ls", "--json")
    listing = json.loads(stdout)
    assert listing["root"] == str(tmp_path / "cache")
    [entry] = [e for e in listing["entries"] if e["kind"] == "golden"]
    assert entry["name"].startswith("cnn-") and entry["bytes"] > 0
    assert {e["kind"] for e in listing["entries"]} <= {"golden", "validation"}  # the validation cache too
    for outside in (tmp_path / "cache" / "golden" / ".." / "..", tmp_path / "o", "/etc"):
        code, _, err = gk("cache", "clear", outside)
        assert code == 2
        line = _error_line(err)
        assert "not inside the cache folder" in line or "not a cache entry" in line
    assert (tmp_path / "o" / "model.onnx").exists() and Path(entry["path"]).exists()
    code, stdout, _ = gk("cache", "clear")
    assert code == 0 and f"removed {entry['path']}" in stdout and not Path(entry["path"]).exists()
    code, stdout, _ = gk("cache", "ls")
    assert "(empty)" in stdout


def _run(model, feeds):
    return run_session(create_session(model), feeds)


def test_dynamic_batch_proven_by_batch_stacking(gk, models, tmp_path):
    out = tmp_path / "o"
    code, stdout, err = gk("apply", models["cnn"], "-o", out, "--passes", "fold-batchnorm,dynamic-batch")
    assert code == 0, err
    record = _report(out)["passes"][1]
    assert record["status"] == "applied"
    assert any(n.startswith("batch stacking: 3 stacked samples at batch 3") for n in record["notes"])
    written, source = onnx.load(out / "model.onnx"), onnx.load(models["cnn"])
    rng = np.random.default_rng(5)
    samples = [rng.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(3)]
    stacked = _run(written, {"image": np.concatenate(samples)})["logits"]
    alone = np.concatenate([_run(source, {"image": s})["logits"] for s in samples])
    np.testing.assert_allclose(stacked, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("dets", "dynamic batch not proven: the model fails at batch 3 (3 stacked samples)"),
        ("detc", "dynamic batch not proven: output 'per_anchor' has dim 0 of size 6, not the batch 1"),
    ],
)
def test_dynamic_batch_on_a_detector_whose_batch_is_not_dynamic_is_rejected(gk, models, tmp_path, name, reason):
    out = tmp_path / "o"
    code, stdout, err = gk("apply", models[name], "-o", out, "--passes", "dynamic-batch")
    assert code == 0, err  # the one-command form rolls the pass back and goes on
    record = _report(out)["passes"][0]
    if record["status"] == "unchanged":  # the pass itself sees the baked batch and declines, with the reason
        assert name == "dets" and any("dim 0 is not the batch" in d["reason"] for d in record["declined"])
    else:  # applied, then batch stacking rejects it
        assert record["status"] == "rolled-back" and reason in record["error"]
        assert " kept " in next(line for line in stdout.splitlines() if "rolled-back" in line)
    written = onnx.load(out / "model.onnx")
    assert written.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # still static
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"passes: [dynamic-batch]\noutput: {{dir: {tmp_path / 'stop'}}}\n")
    code, _, err = gk("apply", pipeline, "--input", models[name])
    if record["status"] == "unchanged":
        assert code == 0 and "dynamic batch was not proven" in _report(tmp_path / "stop")["golden"]["notes"][0]
    else:
        assert code == 1 and reason in err and not (tmp_path / "stop" / "model.onnx").exists()


def test_rollback_reason_is_whole_in_the_report_and_cut_at_a_word_in_the_summary(gk, models, tmp_path):
    out = tmp_path / "o"
    code, stdout, _ = gk("apply", models["detc"], "-o", out, "--passes", "dynamic-batch")
    record = _report(out)["passes"][0]
    assert record["error"].endswith(
        "(declined: keep the static batch, or export the model with a dynamic batch) "
        "(pass #1; passes applied before it: none)"
    )
    lines = stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if "rolled-back" in line)
    assert "1 kept" in lines[index]
    reason = lines[index + 1]  # the reason goes on the line under its row, cut at a word to fit 100 columns
    assert reason.startswith("    ") and reason.endswith("…") and len(reason) <= 100
    assert (out / "summary.txt").read_text() == stdout.rstrip("\n")


def test_golden_defaults_from_the_model():
    bert = tiny_bert(vocab=77)
    assert gather_table_size(bert, "input_ids") == 77 and gather_table_size(bert, "attention_mask") is None
    defaults = golden_defaults(bert, None, {"seq": 9}, {"token_type_ids": [0, 0]})
    assert defaults.batch_sizes == [1, 2] and defaults.dims == {"seq": [9, 7]} and defaults.dynamic_batch
    assert defaults.input_ranges == {"token_type_ids": [0, 0], "input_ids": [0, 76], "attention_mask": [0, 1]}
    static = golden_defaults(tiny_bert(batch=4), None, {"seq": 3})
    assert static.batch_sizes == [4] and not static.dynamic_batch
    assert golden_defaults(static_cnn(batch=2), [2]).notes == []


def test_golden_inputs_of_a_real_run_stay_in_the_table(gk, models, tmp_path):
    code, _, err = gk("apply", models["bert"], "-o", tmp_path / "o", "--dim", "seq=64")
    assert code == 0, err
    directory = Path(_report(tmp_path / "o")["golden"]["dir"])
    ids = load_npz(directory / "b2.inputs.npz")["input_ids"]
    assert ids.shape == (2, 48) and ids.max() <= 49  # b2 at seq's second size (3/4 of 64)


def test_batch_stacking_catches_a_model_that_mixes_samples(gk, tmp_path):
    """Softmax over axis 0 is 1.0 at batch 1 (the golden case passes) but mixes samples at batch 3."""
    model = _model(
        [helper.make_node("Softmax", ["x"], ["y"], axis=0)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        {},
    )
    onnx.save(model, tmp_path / "mix.onnx")
    code, _, err = gk("apply", tmp_path / "mix.onnx", "-o", tmp_path / "o", "--passes", "dynamic-batch")
    assert code == 0, err
    record = _report(tmp_path / "o")["passes"][0]
    assert record["status"] == "rolled-back"
    assert "at batch 3 (3 stacked samples), sample 0 differs from a run on that sample alone: y" in record["error"]
    assert record["validation"]["passed"] is True  # the batch-1 golden case alone could not tell


def test_golden_make_uses_the_model_defaults(gk, models, tmp_path):
    code, _, err = gk("golden", "make", models["bert"], "-o", tmp_path / "g", "--batch-sizes", "2", "--dim", "seq=40")
    assert code == 0, err
    inputs = load_golden(tmp_path / "g").cases[0].inputs
    assert inputs["input_ids"].shape == (2, 40) and 3 < inputs["input_ids"].max() <= 49
    assert set(np.unique(inputs["attention_mask"])) <= {0, 1}


def test_a_fifo_given_to_apply_is_one_line_not_a_hang(gk, tmp_path):
    for name in ("f.onnx", "f"):
        os.mkfifo(tmp_path / name)
        code, _, err = gk("apply", tmp_path / name, "-o", tmp_path / "o")
        assert code == 2 and "not a regular file" in _error_line(err)


FORCE_DYNAMIC = '''
from graphkit.ir.model_io import clone
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.registry import register


@register("force-dynamic-batch")
class ForceDynamicBatch(Pass):
    """Name dim 0 of every input and output 'batch' without looking at the graph (wrong on purpose)."""

    exact = True
    changes_io = True

    def run(self, model):
        out = clone(model)
        for value in [*out.graph.input, *out.graph.output]:
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
        return PassResult(out, True)
'''


def test_batch_stacking_rejects_a_pass_that_only_renames_the_batch(gk, models, tmp_path):
    """The Split sizes stay baked for batch 1: at batch 3 the written model would fail."""
    (tmp_path / "passes").mkdir()
    (tmp_path / "passes" / "force.py").write_text(FORCE_DYNAMIC)
    out = tmp_path / "o"
    args = ("apply", models["dets"], "-o", out, "--passes", "force-dynamic-batch", "--passes-dir", tmp_path / "passes")
    code, stdout, err = gk(*args)
    assert code == 0, err  # the one-command form rolls the pass back and goes on
    record = _report(out)["passes"][0]
    assert record["status"] == "rolled-back"
    assert "dynamic batch not proven: the model fails at batch 3 (3 stacked samples)" in record["error"]
    written = onnx.load(out / "model.onnx")
    assert written.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # still static
