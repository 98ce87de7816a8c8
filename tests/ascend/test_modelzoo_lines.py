"""ModelZoo ais_bench command lines, copied verbatim, run through ``graphkit infer``/``perf`` (ort).

Only the model path changes (an ONNX file in place of the OM) and ``python3 -m ais_bench``
becomes ``graphkit infer``/``graphkit perf``; shell variables are set as the guide sets them.
Sources (README of each ModelZoo folder, xiaobingling93-pixel/Ascend-ModelZoo-PyTorch, a mirror
of Ascend/ModelZoo-PyTorch):

- Wseg (ACL_PyTorch/contrib/cv/segmentation/Wseg/README.md):
  ``python3 -m ais_bench --model=wideresnet_bs${bs}.om --batchsize=${bs} --input ${prep_data}
  --output result --output_dirname result_bs${bs} --outfmt BIN`` and
  ``python3 -m ais_bench --model=wideresnet_bs${bs}.om --loop=50 --batchsize=${bs}``;
  its postprocess reads ``{name}_0.bin`` (cls) and ``{name}_1.bin`` (mask).
- ResNet18 (ACL_PyTorch/built-in/cv/Resnet18_for_PyTorch/README.md):
  ``python3 -m ais_bench --model ./resnet18_bs${bs}.om --input ./prep_dataset/ --output ./result/
  --output_dir resnet18_bs${bs} --outfmt TXT`` (``--output_dir`` is argparse's abbreviation of
  ``--output_dirname``) and ``python3 -m ais_bench --model resnet18_bs${bs}.om --device 1 --loop 100``.
- ResNet50 (ACL_PyTorch/built-in/cv/Resnet50_Pytorch_Infer/README.md):
  ``python3 -m ais_bench --model ./resnet50_bs64.om --input ./prep_dataset/ --output ./
  --output_dirname result --outfmt TXT`` (no ``--batchsize``: ais_bench takes the OM's batch).
- InceptionV3 (ACL_PyTorch/built-in/cv/InceptionV3_for_Pytorch/README.md):
  ``python -m ais_bench --model inceptionv3_bs${bs}.om --input ./prep_dataset/ --output ./
  --output_dirname ./result/ --outfmt TXT --batchsize ${bs}`` (a relative ``--output_dirname``;
  ais_bench writes the summary at ``os.path.join(output, output_dirname) + "_summary.json"``,
  here ``result/_summary.json``) and ``python -m ais_bench --model inceptionv3_bs${bs}.om
  --batchsize ${bs}``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import numpy as np
import onnx
import pytest

wseg = pytest.importorskip("graphkit.wseg.network")
export = pytest.importorskip("graphkit.wseg.export")


def _graphkit(command: str, args: list[str], cwd):
    return subprocess.run([sys.executable, "-m", "graphkit", command, *args], capture_output=True, text=True, cwd=cwd)


def _expand(line: str, env: dict[str, str]) -> list[str]:
    words = shlex.split(line.replace("\\\n", " "))
    assert words[0] in ("python", "python3") and words[1:3] == ["-m", "ais_bench"]
    out = []
    for word in words[3:]:
        for name, value in env.items():
            word = word.replace("${" + name + "}", value)
        assert "$" not in word, word
        out.append(word)
    return out


WSEG_INFER = """python3 -m ais_bench --model=wideresnet_bs${bs}.om --batchsize=${bs} \\
--input ${prep_data} --output result --output_dirname result_bs${bs} --outfmt BIN"""
WSEG_PERF = "python3 -m ais_bench --model=wideresnet_bs${bs}.om --loop=50 --batchsize=${bs}"
RESNET18_INFER = (
    "python3 -m ais_bench --model ./resnet18_bs${bs}.om --input ./prep_dataset/ --output ./result/ "
    "--output_dir resnet18_bs${bs} --outfmt TXT"
)
RESNET18_PERF = "python3 -m ais_bench --model resnet18_bs${bs}.om --device 1 --loop 100"
RESNET50_INFER = (
    "python3 -m ais_bench --model ./resnet50_bs64.om --input ./prep_dataset/ --output ./ --output_dirname result "
    "--outfmt TXT"
)


def _onnx_for(words: list[str], path) -> list[str]:
    """The guide's words with the OM path replaced by ``path`` (the only change allowed)."""
    replaced = []
    for word in words:
        if word.endswith(".om"):
            replaced.append(f"--model={path}" if word.startswith("--model=") else str(path))
        else:
            replaced.append(word)
    assert replaced != words
    return replaced


@pytest.fixture(scope="module")
def tiny_wseg(tmp_path_factory):
    """The wseg graph at 1/32 width and 32x32 (dynamic batch), with seeded weights."""
    import torch

    torch.manual_seed(0)
    model = export.export_onnx(wseg.WsegModel(width=1 / 32), input_size=(32, 32), opset=13)
    path = tmp_path_factory.mktemp("wseg") / "wideresnet_dybs.onnx"
    onnx.save_model(model, path)
    return path


def test_wseg_inference_line_produces_the_postprocess_files(tiny_wseg, tmp_path):
    import onnxruntime as ort

    prep = tmp_path / "prep_bin"
    prep.mkdir()
    rng = np.random.default_rng(0)
    images = {}
    for i in range(6):  # Wseg_preprocess writes one file per sample: {image}_{i}.bin
        name = f"2007_000033_{i}"
        images[name] = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
        images[name].tofile(prep / f"{name}.bin")
    words = _onnx_for(_expand(WSEG_INFER, {"bs": "4", "prep_data": str(prep)}), tiny_wseg)
    assert words[0] == f"--model={tiny_wseg}" and "--output_dirname" in words and words[-1] == "BIN"
    result = _graphkit("infer", words, tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "result" / "result_bs4"
    session = ort.InferenceSession(str(tiny_wseg), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names[:2] == ["cls", "mask"]
    for name, image in images.items():
        cls_ref, mask_ref = session.run(None, {"image": image})[:2]
        # What the postprocess reads: {name}_0.bin (cls, 20 floats) and {name}_1.bin (mask, 21 x H x W).
        cls = np.fromfile(out / f"{name}_0.bin", dtype=np.float32).reshape(cls_ref.shape[1:])
        mask = np.fromfile(out / f"{name}_1.bin", dtype=np.float32).reshape(mask_ref.shape[1:])
        np.testing.assert_allclose(cls, cls_ref[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(mask, mask_ref[0], rtol=1e-4, atol=1e-5)
    assert len(list(out.iterdir())) == 6 * len(names)  # the two padding samples of batch 2 are dropped
    summary = json.loads((tmp_path / "result" / "result_bs4_summary.json").read_text())
    assert summary["batchsize"] == 4 and summary["model_batch"] == 4 and summary["batches"] == 2


def test_wseg_perf_line(tiny_wseg, tmp_path):
    words = _onnx_for(_expand(WSEG_PERF, {"bs": "4"}), tiny_wseg)
    result = _graphkit(
        "perf", [*words, "--input-size", "32", "32", "--output", str(tmp_path / "p"), "--json"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    run = report["results"][0]
    assert report["loop"] == 50 and run["host_run_time"]["count"] == 50
    assert run["input_shapes"] == {"image": [4, 3, 32, 32]} and run["batchsize"] == 4
    # The same line through graphkit infer (ais_bench's pure inference: no --input, zeros).
    pure = _graphkit("infer", [*words, "--json"], tmp_path)
    assert pure.returncode == 0, pure.stderr
    summary = json.loads(pure.stdout)
    assert summary["host_run_time"]["count"] == 50 and summary["model_batch"] == 4 and summary["input_files"] == 0


def _prep_dataset(folder, count):
    folder.mkdir()
    rng = np.random.default_rng(2)
    arrays = {}
    for i in range(count):
        name = f"ILSVRC2012_val_{i + 1:08d}"
        arrays[name] = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
        arrays[name].tofile(folder / f"{name}.bin")
    return arrays


def _reference(model, image):
    import onnxruntime as ort

    batch = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_inputs()[0].shape[0]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": np.repeat(image, batch, axis=0)})[0][0]


def test_resnet18_txt_line_with_abbreviated_output_dir(classifier, tmp_path):
    model = classifier(tmp_path / "resnet18_bs4.onnx", [4, 3, 8, 8], classes=10)  # static batch 4, like resnet18_bs4.om
    arrays = _prep_dataset(tmp_path / "prep_dataset", 6)
    words = _onnx_for(_expand(RESNET18_INFER, {"bs": "4"}), "./resnet18_bs4.onnx")
    assert "--output_dir" in words  # argparse's abbreviation of --output_dirname, as ais_bench accepts it
    result = _graphkit("infer", words, tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "result" / "resnet18_bs4"
    for name, image in arrays.items():
        # imagenet_acc_eval.py reads each {name}_0.txt as one row of class scores.
        got = np.loadtxt(out / f"{name}_0.txt")
        np.testing.assert_allclose(got, _reference(model, image), atol=2e-6)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}_0.txt" for n in arrays)


def test_resnet18_perf_line_device_1_is_one_clear_line(classifier, tmp_path):
    classifier(tmp_path / "resnet18_bs4.onnx", [4, 3, 8, 8], classes=10)
    words = _onnx_for(_expand(RESNET18_PERF, {"bs": "4"}), "resnet18_bs4.onnx")
    refused = _graphkit("perf", words, tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--device 1: the ort backend runs on this host" in refused.stderr
    # The loop part of the line runs once the device choice is dropped.
    words = [w for w in words if w not in ("--device", "1")]
    ran = _graphkit("perf", [*words, "--output", str(tmp_path / "p"), "--json"], tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["results"][0]["host_run_time"]["count"] == 100


def test_resnet50_txt_line_pads_the_last_batch(classifier, tmp_path):
    model = classifier(
        tmp_path / "resnet50_bs8.onnx", [8, 3, 8, 8], classes=10
    )  # the guide's OM is static bs64; 8 here
    arrays = _prep_dataset(tmp_path / "prep_dataset", 10)  # 2 batches, the second padded with its first file
    words = _onnx_for(_expand(RESNET50_INFER, {}), "./resnet50_bs8.onnx")
    result = _graphkit("infer", words, tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "result"
    assert len(list(out.glob("*.txt"))) == 10
    for name, image in arrays.items():
        np.testing.assert_allclose(np.loadtxt(out / f"{name}_0.txt"), _reference(model, image), atol=2e-6)
    summary = json.loads((tmp_path / "result_summary.json").read_text())
    assert summary["batches"] == 2 and summary["files_per_batch"] == 8
    # No --batchsize: ais_bench's get_batchsize takes dim 0 of the first input, the OM's batch, so the
    # throughput counts 8 samples per run.
    assert summary["batchsize"] == 8 and summary["model_batch"] == 8
    assert summary["throughput"] == pytest.approx(1000 * 8 / summary["host_run_time"]["mean"])
    assert "note: the model runs batches" not in result.stdout
    # filesinfo as ais_bench joins it: the --input text with its ./, the --output text + dirname + name.
    first = summary["filesinfo"]["0"]
    assert first == {
        "infiles": ["./prep_dataset/ILSVRC2012_val_00000001.bin"],
        "outfiles": ["./result/ILSVRC2012_val_00000001_0.txt"],
    }


INCEPTION_INFER = """python -m ais_bench \\
        --model inceptionv3_bs${bs}.om \\
        --input ./prep_dataset/ \\
        --output ./ \\
        --output_dirname ./result/ \\
        --outfmt TXT \\
        --batchsize ${bs}"""
INCEPTION_PERF = "python -m ais_bench --model inceptionv3_bs${bs}.om --batchsize ${bs}"


def _postprocess_from_summary(summary_file, folder):
    """A ModelZoo-style postprocess: read the summary, open each sample's outfiles[0] as written
    there (relative to the folder the inference ran in), take the arg-max class."""
    summary = json.loads(summary_file.read_text())
    classes = {}
    for sample in summary["filesinfo"].values():
        name = sample["infiles"][0].split("/")[-1].split(".")[0]
        classes[name] = int(np.argmax(np.loadtxt(folder / sample["outfiles"][0])))
    return classes


def test_inception_line_relative_output_dirname_and_a_postprocess_that_opens_filesinfo(classifier, tmp_path):
    model = classifier(tmp_path / "inceptionv3_bs4.onnx", [4, 3, 8, 8], classes=10)
    arrays = _prep_dataset(tmp_path / "prep_dataset", 6)
    words = _onnx_for(_expand(INCEPTION_INFER, {"bs": "4"}), "inceptionv3_bs4.onnx")
    assert words[words.index("--output_dirname") + 1] == "./result/"
    result = _graphkit("infer", words, tmp_path)
    assert result.returncode == 0, result.stderr
    # ais_bench: output_prefix = os.path.join("./", "./result/"); summary = output_prefix + "_summary.json".
    summary_file = tmp_path / "result" / "_summary.json"
    assert summary_file.is_file() and not (tmp_path / "result_summary.json").exists()
    summary = json.loads(summary_file.read_text())
    assert summary["filesinfo"]["0"]["outfiles"] == ["././result/ILSVRC2012_val_00000001_0.txt"]
    assert summary["filesinfo"]["0"]["infiles"] == ["./prep_dataset/ILSVRC2012_val_00000001.bin"]
    expected = {name: int(np.argmax(_reference(model, image))) for name, image in arrays.items()}
    assert _postprocess_from_summary(summary_file, tmp_path) == expected
    # The pure-inference line: --batchsize given, the static batch 4 runs.
    perf = _graphkit(
        "perf", [*_onnx_for(_expand(INCEPTION_PERF, {"bs": "4"}), "inceptionv3_bs4.onnx"), "--json"], tmp_path
    )
    assert perf.returncode == 0, perf.stderr
    assert json.loads(perf.stdout)["results"][0]["input_shapes"] == {"image": [4, 3, 8, 8]}


@pytest.mark.parametrize("dirname", ["bs1_out/", "data/bin_out", "./result"])
def test_relative_output_dirnames_as_ais_bench_joins_them(classifier, tmp_path, dirname):
    classifier(tmp_path / "m_bs1.onnx", [1, 3, 8, 8], classes=10)
    _prep_dataset(tmp_path / "prep", 2)
    result = _graphkit(
        "infer", ["m_bs1.onnx", "--input", "prep", "--output", "out", "--output_dirname", dirname], tmp_path
    )
    assert result.returncode == 0, result.stderr
    prefix = tmp_path / "out" / dirname
    assert sorted(p.name for p in prefix.glob("*.bin")) == [
        "ILSVRC2012_val_00000001_0.bin",
        "ILSVRC2012_val_00000002_0.bin",
    ]
    assert (tmp_path / ("out/" + dirname + "_summary.json")).is_file()


@pytest.mark.parametrize("dirname", ["../escape", "a/../../b", "/tmp/abs"])
def test_output_dirnames_that_leave_output_are_one_line(classifier, tmp_path, dirname):
    classifier(tmp_path / "m_bs1.onnx", [1, 3, 8, 8], classes=10)
    result = _graphkit("infer", ["m_bs1.onnx", "--output", "out", "--output_dirname", dirname], tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"--output_dirname '{dirname}'" in result.stderr and not (tmp_path / "out").exists()
