"""ONNX export of the wseg model: the ModelZoo form, the opset-13 form, numerics against torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from graphkit.ir.model_io import content_hash, default_opset, graph_inputs, load_model, op_counts
from graphkit.runtime.feeds import input_dims
from graphkit.runtime.ort import run_ort
from graphkit.util.errors import InputError, SpecError
from graphkit.util.typed_config import from_mapping
from graphkit.wseg import export as export_module
from graphkit.wseg.export import (
    ExportSpec,
    build_model,
    check_spec,
    export_from_spec,
    export_onnx,
    torch_reference,
)

TINY = 1 / 32
SIZE = [64, 64]
# ORT vs torch on the tiny model, measured: max abs 1.4e-6 (cls), 5.4e-7 (mask); max rel 7e-6.
ATOL, RTOL = 1e-5, 1e-5


@pytest.fixture(scope="module")
def legacy():
    return export_from_spec(ExportSpec(width=TINY, input_size=SIZE, seed=0))


@pytest.fixture(scope="module")
def opset13():
    return export_from_spec(ExportSpec(width=TINY, input_size=SIZE, seed=0, opset=13))


def image(batch: int, size=SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, *size)).astype(np.float32)


def dims(value) -> list:
    return input_dims(value)


def neighbours(model: onnx.ModelProto, op_type: str) -> list[tuple[str, str, str]]:
    """(producer op, op, consumer op) around each node of ``op_type``."""
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers = {i: n for n in model.graph.node for i in n.input}
    found = []
    for node in model.graph.node:
        if node.op_type == op_type:
            found.append((producers[node.input[0]].op_type, op_type, consumers[node.output[0]].op_type))
    return found


def attribute(node: onnx.NodeProto, name: str):
    return next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name)


def test_legacy_export_is_the_modelzoo_form(legacy):
    model = legacy.model
    onnx.checker.check_model(model)
    assert default_opset(model) == 11
    (image_input,) = graph_inputs(model)
    assert image_input.name == "image" and dims(image_input) == ["batch", 3, 64, 64]
    assert [o.name for o in model.graph.output] == ["cls", "mask"]
    assert [dims(o)[0] for o in model.graph.output] == ["batch", "batch"]
    assert dims(model.graph.output[0])[1] == 20


def test_legacy_export_has_the_reference_graph(legacy):
    model = legacy.model
    assert len(model.graph.node) == 294  # as the reference implementation exports at full width
    counts = op_counts(model)
    assert counts["Conv"] == 57 and counts["BatchNormalization"] == 17  # 33 of 50 BN folded into convs
    assert neighbours(model, "Softmax") == [("Transpose", "Softmax", "Transpose")]
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    assert attribute(softmax, "axis") == 3
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 3
    for node in resizes:
        assert attribute(node, "mode") == b"linear"
        assert attribute(node, "coordinate_transformation_mode") == b"align_corners"


def test_opset13_export_has_a_single_channel_softmax(opset13):
    model = opset13.model
    onnx.checker.check_model(model)
    assert default_opset(model) == 13
    assert op_counts(model)["Transpose"] == 0
    (softmax,) = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert attribute(softmax, "axis") == 1


@pytest.mark.parametrize("form", ["legacy", "opset13"])
@pytest.mark.parametrize("batch", [1, 2])
def test_onnxruntime_matches_torch(request, form, batch):
    exported = request.getfixturevalue(form)
    feeds = {"image": image(batch, seed=batch)}
    got = run_ort(exported.model, feeds)
    want = exported.reference(feeds)
    assert got["mask"].shape == (batch, 21, 64, 64) and got["cls"].shape == (batch, 20)
    for name in ("cls", "mask"):
        np.testing.assert_allclose(got[name], want[name], atol=ATOL, rtol=RTOL, err_msg=name)


def test_height_and_width_are_not_baked_into_the_graph(legacy):
    # The legacy graph computes every resize size from the input's shape: feed another size.
    model = onnx.ModelProto()
    model.CopyFrom(legacy.model)
    for i, value in enumerate((None, None, 96, 80)):
        if value is not None:
            model.graph.input[0].type.tensor_type.shape.dim[i].dim_value = value
    feeds = {"image": image(1, size=(96, 80))}
    got = run_ort(model, feeds)
    want = legacy.reference(feeds)
    assert got["mask"].shape == (1, 21, 96, 80)
    np.testing.assert_allclose(got["mask"], want["mask"], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize(("opset", "size"), [(11, (128, 96)), (13, (72, 72))])
def test_legacy_graph_does_not_depend_on_the_traced_size(opset, size):
    model = build_model(ExportSpec(width=TINY, seed=0))
    quick = export_onnx(model, input_size=size, opset=opset)  # traced at 64x64, input declared at size
    traced_at_size = export_module._export_legacy(model, (1, 3, *size), opset, True)
    export_module._set_metadata(traced_at_size, export_module.WEIGHTS_METADATA_KEY, model.weights_description)
    assert dims(graph_inputs(quick)[0]) == ["batch", 3, *size]
    assert content_hash(quick) == content_hash(traced_at_size)


def test_export_records_the_weights_in_metadata(legacy):
    assert legacy.weights == "random (seed 0)"
    assert {p.key: p.value for p in legacy.model.metadata_props}["graphkit.weights"] == "random (seed 0)"


def test_export_from_spec_unpacks_and_saves(tmp_path):
    path = tmp_path / "sub" / "tiny.onnx"
    model, reference, weights = export_from_spec(ExportSpec(width=TINY, input_size=SIZE, seed=2), path)
    assert weights == "random (seed 2)"
    assert content_hash(load_model(path)) == content_hash(model)
    assert [p.name for p in tmp_path.rglob("*")] == ["sub", "tiny.onnx"]  # no temporary files left
    outputs = reference({"image": image(1)})
    assert set(outputs) == {"cls", "mask"} and outputs["mask"].dtype == np.float32


def test_export_onnx_on_a_model_object(tmp_path):
    model = build_model(ExportSpec(width=TINY, seed=4))
    proto = export_onnx(model, tmp_path / "m.onnx", input_size=(32, 48), batch=2, opset=13)
    assert dims(graph_inputs(proto)[0]) == ["batch", 3, 32, 48]
    feeds = {"image": image(2, size=(32, 48))}
    np.testing.assert_allclose(
        run_ort(tmp_path / "m.onnx", feeds)["cls"], torch_reference(model)(feeds)["cls"], atol=ATOL, rtol=RTOL
    )


def test_torch_reference_rejects_wrong_feeds(legacy):
    with pytest.raises(InputError, match="do not match"):
        legacy.reference({"input": image(1)})
    with pytest.raises(InputError, match=r"must be \[N,3,H,W\]"):
        legacy.reference({"image": np.zeros((1, 1, 64, 64), np.float32)})


def test_spec_maps_from_a_pipeline_section():
    section = {"model": "wseg", "weights": None, "seed": 3, "width": 0.25, "input_size": [128, 96], "opset": 13}
    spec = from_mapping(ExportSpec, section, "source.export")
    assert (spec.seed, spec.width, spec.input_size, spec.opset, spec.exporter) == (3, 0.25, [128, 96], 13, "legacy")
    with pytest.raises(SpecError, match="source.export.exporter"):
        from_mapping(ExportSpec, {"exporter": "onnxscript"}, "source.export")
    with pytest.raises(SpecError, match="unknown key 'with'"):
        from_mapping(ExportSpec, {"with": 1}, "source.export")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"width": 0.0}, r"export.width: must be in \(0, 1\]"),
        ({"width": 2.0}, "export.width"),
        ({"input_size": [64]}, "export.input_size"),
        ({"input_size": [8, 64]}, "export.input_size"),
        ({"opset": 9}, "legacy exporter supports opsets 11..20"),
        ({"exporter": "dynamo", "opset": 13}, "dynamo exporter writes opset 18 or later"),
    ],
)
def test_bad_specs_are_refused(changes, match):
    with pytest.raises(SpecError, match=match):
        check_spec(ExportSpec(**changes))


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "graphkit", "export", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_export_maps_every_flag_and_is_deterministic_across_processes(tmp_path):
    out = tmp_path / "tiny.onnx"
    flags = ["--width", str(TINY), "--seed", "5", "--input-size", "64", "48", "--opset", "13", "--static-batch"]
    done = run_cli(*flags, "--exporter", "legacy", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["weights"] == "random (seed 5)" and report["opset"] == 13 and report["exporter"] == "legacy"
    assert report["input"] == {"name": "image", "shape": [1, 3, 64, 48]}
    assert report["outputs"] == ["cls", "mask"] and report["nodes"] == len(load_model(out).graph.node)
    # the same spec exported in this process gives the same bytes: export is deterministic
    same = export_from_spec(
        ExportSpec(width=TINY, seed=5, input_size=[64, 48], opset=13, dynamic_batch=False, exporter="legacy")
    )
    assert report["content_hash"] == content_hash(load_model(out)) == content_hash(same.model)
    assert dims(same.model.graph.output[0]) == [1, 20]


def test_cli_bad_option_exits_2_with_one_line_and_no_file(tmp_path):
    out = tmp_path / "x.onnx"
    done = run_cli("--exporter", "dynamo", "--opset", "11", "-o", str(out))
    assert done.returncode == 2
    assert done.stderr.startswith("graphkit: error: export.opset: the dynamo exporter writes opset 18 or later")
    assert done.stderr.strip().count("\n") == 0 and not out.exists()


@pytest.mark.slow
def test_dynamo_export_matches_torch():
    result = export_from_spec(ExportSpec(width=TINY, input_size=SIZE, exporter="dynamo", opset=18))
    assert default_opset(result.model) == 18
    assert [i.name for i in graph_inputs(result.model)] == ["image"]
    assert dims(graph_inputs(result.model)[0])[0] == "batch"
    for batch in (1, 3):
        feeds = {"image": image(batch)}
        got, want = run_ort(result.model, feeds), result.reference(feeds)
        for name in ("cls", "mask"):
            np.testing.assert_allclose(got[name], want[name], atol=ATOL, rtol=RTOL, err_msg=name)


@pytest.mark.slow
def test_full_size_legacy_export():
    result = export_from_spec(ExportSpec())
    assert len(result.model.graph.node) == 294
    assert dims(graph_inputs(result.model)[0]) == ["batch", 3, 1024, 1024]
    assert neighbours(result.model, "Softmax") == [("Transpose", "Softmax", "Transpose")]
