"""Golden inputs the user names (issue 20 item 4): npz files (one case, or NAME:INDEX keys), an
image folder with its preprocessing, token-id files, per-input distributions of the seeded
cases; the report names each case's source; bad files are one line and exit 2."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from graphkit.check.golden import load_golden


def _model(nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def text_model(vocab: int = 20) -> onnx.ModelProto:
    """input_ids, attention_mask [batch, seq] int64 -> masked sum of embeddings [batch, 4]."""
    emb = np.random.default_rng(0).standard_normal((vocab, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["e"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "ax2"], ["m3"]),
        helper.make_node("Mul", ["e", "m3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "ax1"], ["pooled"], keepdims=0),
    ]
    ints = ["batch", "seq"]
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ints),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ints),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 4])],
        {"emb": emb, "ax1": np.array([1], np.int64), "ax2": np.array([2], np.int64)},
    )


def image_model() -> onnx.ModelProto:
    """image [N, 3, 8, 8] float -> Conv 1x1 -> [N, 2, 8, 8]."""
    w = np.random.default_rng(1).standard_normal((2, 3, 1, 1)).astype(np.float32)
    return _model(
        [helper.make_node("Conv", ["image", "w"], ["y"])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 8, 8])],
        {"w": w},
    )


@pytest.fixture
def models(tmp_path):
    onnx.save(text_model(), tmp_path / "text.onnx")
    onnx.save(image_model(), tmp_path / "img.onnx")
    return tmp_path


def _report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def _ids(batch: int, seq: int, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(0, 20, (batch, seq)).astype(np.int64),
        "attention_mask": np.ones((batch, seq), np.int64),
    }


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("graphkit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_npz_cases_join_the_seeded_ones_and_the_report_names_their_source(gk, models):
    one = _ids(3, 7)
    np.savez(models / "one.npz", **one)
    two = {f"{name}:{i}": value for i in range(2) for name, value in _ids(1, 5 + i, seed=i).items()}
    np.savez(models / "two.npz", **two)
    out = models / "o"
    code, stdout, err = gk("apply", models / "text.onnx", "-o", out, "--inputs", models / "one.npz",
                           "--inputs", models / "two.npz", "--preset", "generic")  # fmt: skip
    assert code == 0, err
    report = _report(out)
    assert report["golden"]["cases"] == ["b1", "b2", "u1", "u2", "u3"]
    assert report["golden"]["inputs"] == (
        f"seeded noise (b1, b2); {models / 'one.npz'} (u1); {models / 'two.npz'} [0] (u2); {models / 'two.npz'} [1] (u3)"
    )
    assert f"inputs: seeded noise (b1, b2); {models / 'one.npz'} (u1)" in report["claim"]
    assert "u1: batch 3, seq 7" in report["claim"] and "u3: batch 1, seq 6" in report["claim"]
    golden = load_golden(report["golden"]["dir"])
    np.testing.assert_array_equal(golden.cases[2].inputs["input_ids"], one["input_ids"])
    assert golden.manifest["cases"][3]["source"] == f"{models / 'two.npz'} [0]"
    # the same data reuses the set; other data gets another one
    code, _, err = gk("apply", models / "text.onnx", "-o", out, "--inputs", models / "one.npz")
    assert code == 0 and _report(out)["golden"]["reused"] is False  # another request (two.npz left out)
    code, _, err = gk("apply", models / "text.onnx", "-o", out, "--inputs", models / "one.npz")
    assert code == 0 and _report(out)["golden"]["reused"] is True


def test_token_file_case_with_the_other_inputs_seeded(gk, models):
    (models / "ids.txt").write_text("1 2 3 4\n5, 6, 7, 19\n\n")
    pipeline = models / "p.yaml"
    pipeline.write_text(
        f"source: {{onnx: {models / 'text.onnx'}}}\npasses: []\ngolden: {{inputs: {{tokens: [{{file: {models / 'ids.txt'}, input: input_ids}}]}}}}\n"
    )
    code, _, err = gk("apply", pipeline, "-o", models / "o")
    assert code == 0, err
    golden = load_golden(_report(models / "o")["golden"]["dir"])
    case = golden.cases[-1]
    assert case.label == "u1" and case.dims == {"seq": 4, "batch": 2}
    np.testing.assert_array_equal(case.inputs["input_ids"], [[1, 2, 3, 4], [5, 6, 7, 19]])
    assert case.inputs["attention_mask"].shape == (2, 4) and set(np.unique(case.inputs["attention_mask"])) <= {0, 1}


def test_image_folder_with_preprocessing(gk, models):
    folder = models / "imgs"
    folder.mkdir()
    Image.new("RGB", (16, 12), (255, 0, 51)).save(folder / "a.png")
    Image.new("RGB", (8, 8), (0, 255, 0)).save(folder / "b.png")
    (folder / "notes.txt").write_text("not an image")
    pipeline = models / "p.yaml"
    pipeline.write_text(
        f"source: {{onnx: {models / 'img.onnx'}}}\npasses: []\n"
        f"golden: {{inputs: {{images: {{dir: {folder}, mean: [0.5, 0.5, 0.5], std: [0.5, 0.25, 0.5]}}}}}}\n"
    )
    code, _, err = gk("apply", pipeline, "-o", models / "o")
    assert code == 0, err
    report = _report(models / "o")
    assert f"images {folder} (a.png, b.png) (u1)" in report["golden"]["inputs"]
    image = load_golden(report["golden"]["dir"]).cases[-1].inputs["image"]
    assert image.shape == (2, 3, 8, 8) and image.dtype == np.float32
    # (pixel / 255 - mean) / std, per channel; a flat colour survives the resize
    np.testing.assert_allclose(image[0, :, 3, 3], [1.0, -2.0, -0.6], atol=1e-6, rtol=0)
    np.testing.assert_allclose(image[1, :, 0, 0], [-1.0, 2.0, -1.0], atol=1e-6, rtol=0)


def test_distributions_of_the_seeded_cases(gk, models):
    np.savez(models / "data.npz", **_ids(2, 6))
    pipeline = models / "p.yaml"
    pipeline.write_text(
        f"source: {{onnx: {models / 'text.onnx'}}}\npasses: []\n"
        "golden:\n  distributions:\n    input_ids: {kind: data}\n    attention_mask: {kind: int, low: 1, high: 1}\n"
        f"  inputs: {{files: [{models / 'data.npz'}]}}\n"
    )
    code, _, err = gk("apply", pipeline, "-o", models / "o")
    assert code == 0, err
    golden = load_golden(_report(models / "o")["golden"]["dir"])
    seeded = golden.cases[1].inputs
    assert set(np.unique(seeded["input_ids"])) <= set(np.unique(_ids(2, 6)["input_ids"]))
    assert (seeded["attention_mask"] == 1).all()
    onnx.save(image_model(), models / "img.onnx")
    pipeline.write_text(
        f"source: {{onnx: {models / 'img.onnx'}}}\npasses: []\n"
        "golden: {distributions: {image: {kind: uniform, low: 2, high: 3}}}\n"
    )
    code, _, err = gk("apply", pipeline, "-o", models / "o2")
    assert code == 0, err
    image = load_golden(_report(models / "o2")["golden"]["dir"]).cases[0].inputs["image"]
    assert image.min() >= 2 and image.max() < 3


def _truncated(path: Path) -> Path:
    np.savez(path, **_ids(1, 4))
    path.write_bytes(path.read_bytes()[:100])
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: np.savez(d / "x.npz", input_ids=np.zeros((1, 4), np.int32), attention_mask=np.ones((1, 4), np.int64)),
         "input 'input_ids' is int32, the model's input is int64"),
        (lambda d: np.savez(d / "x.npz", input_ids=np.zeros((1, 4, 1), np.int64), attention_mask=np.ones((1, 4), np.int64)),
         "input 'input_ids' has rank 3 [1, 4, 1], the model's input has rank 2 ['batch', 'seq']"),
        (lambda d: np.savez(d / "x.npz", input_ids=np.zeros((1, 4), np.int64)), "input 'attention_mask' is missing"),
        (lambda d: np.savez(d / "x.npz", input_ids=np.full((1, 4), np.nan), attention_mask=np.ones((1, 4), np.int64)),
         "input 'input_ids' holds NaN but the model's input is int64"),
        (lambda d: np.savez(d / "x.npz", input_ids=np.zeros((1, 4), np.int64), attention_mask=np.ones((1, 5), np.int64)),
         "dim 'seq' is 4 in input 'input_ids' and 5 in input 'attention_mask'"),
        (lambda d: np.savez(d / "x.npz", ids=np.zeros((1, 4), np.int64)), "the model has no input 'ids'"),
        (lambda d: _truncated(d / "x.npz"), "golden inputs file is"),
        (lambda d: (d / "x.npz").write_text("hello"), "not a readable .npz file"),
    ],
)  # fmt: skip
def test_bad_npz_files_are_one_line_and_exit_2(gk, models, make, message):
    make(models)
    code, _, err = gk("apply", models / "text.onnx", "-o", models / "o", "--inputs", models / "x.npz")
    assert code == 2
    line = _error_line(err)
    assert f"{models / 'x.npz'}" in line and message in line, line
    assert not (models / "o").exists()


@pytest.mark.parametrize(
    ("golden", "message"),
    [
        ("{inputs: {images: {dir: DIR}}}", "no images in the folder"),
        ("{inputs: {tokens: [{file: DIR/t.txt}]}}", "t.txt:2: 'nan' is not an integer token id"),
        ("{inputs: {tokens: [{file: DIR/u.txt}]}}", "u.txt:2: 3 ids, the first line has 2"),
        ("{distributions: {input_ids: {kind: data}}}", "kind 'data' needs the user's data for input 'input_ids'"),
        ("{distributions: {ids: {kind: normal}}}", "the model has no input 'ids'"),
        ("{distributions: {input_ids: {kind: uniform, low: 3, high: 1}}}", "must be <= high"),
    ],
)
def test_bad_pipeline_inputs_are_one_line_and_exit_2(gk, models, golden, message):
    folder = models / "empty"
    folder.mkdir()
    (folder / "t.txt").write_text("1 2\nnan 3\n")
    (folder / "u.txt").write_text("1 2\n3 4 5\n")
    pipeline = models / "p.yaml"
    pipeline.write_text(
        f"source: {{onnx: {models / 'text.onnx'}}}\npasses: []\ngolden: {golden.replace('DIR', str(folder))}\n"
    )
    code, _, err = gk("apply", pipeline, "-o", models / "o")
    assert code == 2
    assert message in _error_line(err)
    assert not (models / "o").exists()


def test_golden_make_takes_inputs_too(gk, models):
    np.savez(models / "one.npz", **_ids(2, 3))
    code, stdout, err = gk("golden", "make", models / "text.onnx", "-o", models / "g", "--inputs", models / "one.npz")
    assert code == 0, err
    golden = load_golden(models / "g")
    assert [c.label for c in golden.cases] == ["b1", "b1-d2", "u1"]
    assert golden.manifest["cases"][2]["source"] == str(models / "one.npz")
    assert golden.manifest["user_inputs"] == [{"label": "u1", "digest": golden.manifest["user_inputs"][0]["digest"]}]
    moved = models / "moved.npz"  # the same data under another name reuses the set
    moved.write_bytes((models / "one.npz").read_bytes())
    code, stdout, err = gk("golden", "make", models / "text.onnx", "-o", models / "g", "--inputs", moved)
    assert code == 0 and stdout.startswith("reused golden set"), err


def test_an_npz_is_read_without_pickles(gk, models):
    """A member holding Python objects is refused (never unpickled)."""
    path = models / "obj.npz"
    with zipfile.ZipFile(path, "w") as archive, archive.open("input_ids.npy", "w") as member:
        np.lib.format.write_array(member, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = gk("apply", models / "text.onnx", "-o", models / "o", "--inputs", path)
    assert code == 2 and "holds Python objects" in _error_line(err)
