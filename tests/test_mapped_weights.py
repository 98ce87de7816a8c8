"""Weights kept in their files for a whole run (issue 24): mapped external-data stubs.

The model is the large-model benchmark's, at toy size (hidden 64, two blocks): its MatMul and
Add weights live in an external data file, and the generic preset folds its Shape chains.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import onnx
import pytest
import xxhash

from benchmarks.large_models import build_model
from graphkit.diff.matching import tensor_hash
from graphkit.ir import external_data
from graphkit.ir.external_data import is_mapped, mapped_span, tensor_array
from graphkit.ir.graph import to_graph
from graphkit.ir.model_io import check_model, content_hash, infer_shapes, load_model, save_model
from graphkit.runtime.ort import create_session
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.record import PassStatus
from graphkit.util.errors import ModelLoadError

HIDDEN = 64


@pytest.fixture(autouse=True)
def map_small_weights(monkeypatch):
    """Map weights of 1 KiB or more (the toy model's MatMul weights are 16 KiB; the biases 256 bytes)."""
    monkeypatch.setattr(external_data, "MAP_MIN_BYTES", 1024)


@pytest.fixture
def external_model(tmp_path):
    path = tmp_path / "src" / "m.onnx"
    path.parent.mkdir()
    build_model(path, blocks=2, hidden=HIDDEN)
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mapped_load_leaves_the_weights_in_their_file_with_the_same_hashes(external_model):
    mapped = load_model(external_model, mapped=True)
    loaded = load_model(external_model)
    stubs = [t for t in mapped.graph.initializer if is_mapped(t)]
    assert [t.name for t in stubs] == ["w0", "w1"]  # the biases (256 bytes) are read into the proto
    assert all(not t.HasField("raw_data") for t in stubs)
    assert content_hash(mapped) == content_hash(loaded)
    inline = {t.name: t for t in loaded.graph.initializer}
    for stub in stubs:
        assert tensor_hash(stub) == tensor_hash(inline[stub.name])
        np.testing.assert_array_equal(tensor_array(stub), onnx.numpy_helper.to_array(inline[stub.name]))
    # a changed weight changes the hash
    other = external_model.parent / "other.onnx"
    build_model(other, blocks=2, hidden=HIDDEN, seed=7)
    assert content_hash(load_model(other, mapped=True)) != content_hash(mapped)


@pytest.mark.parametrize("optimization", ["none", "all"])
def test_sessions_over_mapped_weights_give_the_in_memory_outputs_bit_for_bit(external_model, optimization):
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, HIDDEN)).astype(np.float32)}
    mapped = load_model(external_model, mapped=True)
    before = content_hash(mapped)
    got = create_session(mapped, optimization=optimization).run(None, feeds)[0]
    want = create_session(load_model(external_model), optimization=optimization).run(None, feeds)[0]
    assert got.tobytes() == want.tobytes()
    assert content_hash(mapped) == before  # the session's skeleton was a copy


def test_checker_and_shape_inference_run_on_the_skeleton_and_keep_the_stubs(external_model):
    mapped = load_model(external_model, mapped=True)
    check_model(mapped)
    inferred = infer_shapes(mapped)
    assert [t.name for t in inferred.graph.initializer if is_mapped(t)] == ["w0", "w1"]
    assert [v.name for v in inferred.graph.input] == ["x"]
    shapes = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info
    }
    assert shapes["blk0_mm"] == ["batch", "seq", HIDDEN]
    # a wrong graph over mapped weights still fails the checker
    broken = load_model(external_model, mapped=True)
    broken.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(Exception, match="NoSuchOp"):
        check_model(broken)


def test_a_mapped_weight_is_read_only_and_its_file_cannot_change(external_model):
    data = external_model.parent / "m.onnx.data"
    before = _digest(data)
    mapped = load_model(external_model, mapped=True)
    array = tensor_array(mapped.graph.initializer[0])
    with pytest.raises(ValueError, match="read-only"):
        array[0, 0] = 1.0
    constant = next(t for t in to_graph(mapped).tensors().values() if t.name == "w0")
    with pytest.raises(ValueError, match="read-only"):
        constant.values[...] = 0.0
    assert _digest(data) == before


@pytest.mark.parametrize("external", [False, True])
def test_saving_an_unchanged_mapped_model_reproduces_its_weights(external_model, tmp_path, external):
    mapped = load_model(external_model, mapped=True)
    (tmp_path / "out").mkdir()
    out = save_model(mapped, tmp_path / "out" / "m.onnx", external_data=external)
    assert (out.parent / "m.onnx.data").exists() == external
    reloaded = load_model(out)
    original = load_model(external_model)
    assert content_hash(reloaded) == content_hash(original)
    for a, b in zip(reloaded.graph.initializer, original.graph.initializer):
        assert a.name == b.name
        assert a.raw_data == b.raw_data and list(a.dims) == list(b.dims)
    if not external:  # inline: the bytes of the same model loaded into memory and saved
        assert out.read_bytes() == save_model(original, tmp_path / "in_memory.onnx").read_bytes()


def test_apply_over_mapped_weights_writes_the_in_memory_result(external_model, tmp_path, gk, monkeypatch):
    inline = tmp_path / "inline" / "m.onnx"
    inline.parent.mkdir()
    save_model(load_model(external_model), inline, external_data=False)
    mapped = _applied(gk, monkeypatch, external_model, tmp_path / "mapped.onnx", map_min_bytes=1024)
    assert mapped == _applied(gk, monkeypatch, inline, tmp_path / "in_memory.onnx", map_min_bytes=1 << 30)
    result = onnx.load_from_string(mapped)
    assert len(result.graph.node) < 17 and not any(n.op_type == "Shape" for n in result.graph.node)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in result.graph.initializer)


def _applied(gk, monkeypatch, source, out, map_min_bytes: int) -> bytes:
    """The bytes `graphkit apply --preset generic` writes for ``source`` with that mapping limit."""
    monkeypatch.setattr(external_data, "MAP_MIN_BYTES", map_min_bytes)
    code, _, err = gk("apply", source, out, "--preset", "generic")
    assert code == 0, err
    return out.read_bytes()


def _edit_stub(path, name, **entries):
    model = onnx.load(str(path), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.name == name)
    for entry in tensor.external_data:
        if entry.key in entries:
            entry.value = entries[entry.key]
    onnx.save(model, str(path))


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("truncate", "lies outside"),
        ("dotdot", "is not a file beside the model"),
        ("absolute", "is not a file beside the model"),
        ("symlink", "is a symbolic link"),
        ("past_end", "lies outside"),
        ("short_length", "need 16384"),
    ],
)
def test_a_damaged_external_file_is_one_error_line(external_model, tmp_path, gk, damage, expected):
    data = external_model.parent / "m.onnx.data"
    if damage == "truncate":
        os.truncate(data, data.stat().st_size - 100)
    elif damage == "dotdot":
        (tmp_path / "m.onnx.data").write_bytes(data.read_bytes())
        _edit_stub(external_model, "w0", location="../m.onnx.data")
    elif damage == "absolute":  # a user's absolute location is never taken for a mapped stub
        _edit_stub(external_model, "w0", location=str(data))
    elif damage == "symlink":  # refused as onnx.load refuses it
        elsewhere = tmp_path / "elsewhere.data"
        data.rename(elsewhere)
        data.symlink_to(elsewhere)
    elif damage == "past_end":
        _edit_stub(external_model, "b1", offset=str(data.stat().st_size - 8))
    else:
        _edit_stub(external_model, "w0", length="1000")
    with pytest.raises(ModelLoadError, match=expected):
        load_model(external_model, mapped=True)
    code, out, err = gk("apply", external_model, tmp_path / "out.onnx", "--preset", "generic")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphkit: error: ") and expected in lines[0], err
    assert str(external_model) in lines[0]
    assert not (tmp_path / "out.onnx").exists()
    if damage in ("dotdot", "absolute"):  # diff reads the stubs from their files too, under the same rule
        code, _, err = gk("diff", external_model, external_model)
        assert code == 2 and "is not a file beside the model" in err, err


def test_localize_over_mapped_weights_finds_the_in_memory_answer(external_model, tmp_path, gk):
    """B's second MatMul weight differs: localize names its output, from mapped and from inline models."""
    changed = tmp_path / "b" / "m.onnx"
    changed.parent.mkdir()
    shutil.copy(external_model, changed)
    data = np.fromfile(external_model.parent / "m.onnx.data", dtype=np.float32)
    w1_start = HIDDEN * HIDDEN + HIDDEN  # w0 and b0 come first (float32 elements)
    data[w1_start : w1_start + 8] += 1.0
    data.tofile(changed.parent / "m.onnx.data")
    answers = []
    for a, b in ((external_model, changed), _inline_copies(external_model, changed, tmp_path)):
        code, out, err = gk("localize", a, b, "--dims", "seq=3", "--json")
        assert code == 1, err
        answers.append(json.loads(out))
    mapped, inline = answers
    assert mapped["first_divergent"] == inline["first_divergent"]
    assert "blk1_mm" in json.dumps(mapped["first_divergent"])


def _inline_copies(*paths_and_folder):
    *paths, folder = paths_and_folder
    copies = []
    for index, path in enumerate(paths):
        copy = folder / f"inline{index}" / "m.onnx"
        copy.parent.mkdir()
        save_model(load_model(path), copy, external_data=False)
        copies.append(copy)
    return copies


def test_large_inline_weights_are_mapped_where_they_lie_in_the_model_file(external_model, tmp_path, gk, monkeypatch):
    inline = tmp_path / "inline" / "m.onnx"
    inline.parent.mkdir()
    save_model(load_model(external_model), inline, external_data=False)
    in_memory = tmp_path / "in_memory.onnx"
    monkeypatch.setattr(external_data, "MAP_MIN_BYTES", 1 << 20)
    assert gk("apply", inline, in_memory, "--preset", "generic")[0] == 0  # 16 KiB weights: in the proto
    monkeypatch.setattr(external_data, "MAP_MIN_BYTES", 1024)
    mapped = load_model(inline, mapped=True)
    stubs = {t.name: mapped_span(t) for t in mapped.graph.initializer if is_mapped(t)}
    assert sorted(stubs) == ["w0", "w1"]  # the biases (256 bytes) stay in the proto
    assert {path for path, _, _ in stubs.values()} == {inline.resolve()}
    assert content_hash(mapped) == content_hash(load_model(inline))
    np.testing.assert_array_equal(
        tensor_array(next(t for t in mapped.graph.initializer if t.name == "w1")),
        onnx.numpy_helper.to_array(next(t for t in load_model(inline).graph.initializer if t.name == "w1")),
    )
    linked = tmp_path / "linked" / "m.onnx"  # a model file that is a symbolic link (as in a download cache)
    linked.parent.mkdir()
    linked.symlink_to(inline)
    for source, out in ((inline, tmp_path / "mapped.onnx"), (linked, tmp_path / "linked.onnx")):
        code, _, err = gk("apply", source, out, "--preset", "generic")
        assert code == 0, err
        assert out.read_bytes() == in_memory.read_bytes()


def test_passes_that_read_a_mapped_weight_fold_it_as_in_memory(tmp_path, gk, monkeypatch):
    """fold-constants reads a mapped weight (Transpose of it is constant): same output as in memory."""
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((HIDDEN, HIDDEN), dtype=np.float32)
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
            onnx.helper.make_node("MatMul", ["x", "wt"], ["y"]),
        ],
        "fold",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", HIDDEN])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", HIDDEN])],
        [onnx.numpy_helper.from_array(weight, "w")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    source = tmp_path / "src" / "m.onnx"
    source.parent.mkdir()
    save_model(model, source, external_data=True)
    mapped = _applied(gk, monkeypatch, source, tmp_path / "mapped.onnx", map_min_bytes=1024)
    assert mapped == _applied(gk, monkeypatch, source, tmp_path / "in_memory.onnx", map_min_bytes=1 << 30)
    folded = onnx.load_from_string(mapped)
    assert [n.op_type for n in folded.graph.node] == ["MatMul"]
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(folded.graph.initializer[0]), weight.T)


class _ReadsWithToArray(Pass):
    """A user pass written before weights were mapped: it reads a weight with numpy_helper.to_array."""

    name = "reads-with-to-array"

    def run(self, model):
        onnx.numpy_helper.to_array(model.graph.initializer[0])
        return PassResult(model, False)


def test_a_pass_reading_a_mapped_weight_with_to_array_fails_with_a_hint(external_model):
    from graphkit.transform.manager import PassManager

    model = load_model(external_model, mapped=True)
    assert is_mapped(model.graph.initializer[0])
    run = PassManager([_ReadsWithToArray()], on_failure="skip").run(model)
    record = run.records[0]
    assert record.status is PassStatus.ROLLED_BACK
    assert "read them with graphkit.api.tensor_array" in record.error
    assert content_hash(run.model) == content_hash(model)


def test_a_weight_file_written_after_load_is_an_error_and_nothing_is_written(external_model, tmp_path):
    """Another process rewriting the data file mid-run: the stub's bytes are no longer what was
    loaded (and hashed, and validated), so reading or saving them is refused."""
    mapped = load_model(external_model, mapped=True)
    data = next(external_model.parent.glob("*.data"))
    data.write_bytes(data.read_bytes())  # same bytes, a new write: what was validated is no longer provable
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    with pytest.raises(ModelLoadError, match="changed during the run"):
        save_model(mapped, out)
    assert list(out.parent.iterdir()) == []
    assert content_hash(load_model(external_model, mapped=True)) == content_hash(load_model(external_model))


def test_apply_may_write_over_its_own_source(external_model, tmp_path, gk, monkeypatch):
    """`apply m.onnx m.onnx`, the onnxslim habit: the mapped weights are read from the old files
    while the new ones are written beside them and renamed into place."""
    want = _applied(gk, monkeypatch, external_model, tmp_path / "elsewhere.onnx", map_min_bytes=1024)
    assert _applied(gk, monkeypatch, external_model, external_model, map_min_bytes=1024) == want


PREPACKING = "session.disable_prepacking"


@pytest.mark.parametrize("optimization", ["none", "all"])
def test_sessions_over_many_mapped_bytes_do_not_prepack_and_agree_within_tolerance(
    external_model, monkeypatch, optimization
):
    """From NO_PREPACK_MIN_BYTES of mapped weights (lowered to 1 KiB here) a session holds no
    pre-packed copy of them; its outputs move at most in the last bits of the in-memory ones."""
    from graphkit.runtime import ort as graphkit_ort

    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, HIDDEN)).astype(np.float32)}
    mapped = load_model(external_model, mapped=True)
    below = create_session(mapped, optimization=optimization)
    with pytest.raises(RuntimeError, match="does not have configuration"):
        below.get_session_options().get_session_config_entry(PREPACKING)
    monkeypatch.setattr(graphkit_ort, "NO_PREPACK_MIN_BYTES", 1024)
    session = create_session(mapped, optimization=optimization)
    assert session.get_session_options().get_session_config_entry(PREPACKING) == "1"
    got = session.run(None, feeds)[0]
    want = create_session(load_model(external_model), optimization=optimization).run(None, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


RELU_TO_ABS = '''
from graphkit.ir.model_io import clone
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.registry import register


@register("relu-to-abs-mapped")
class ReluToAbs(Pass):
    """Relu becomes Abs (wrong on purpose)."""

    def run(self, model):
        out = clone(model)
        for node in out.graph.node:
            if node.op_type == "Relu":
                node.op_type = "Abs"
        return PassResult(out, True)
'''


def test_a_wrong_pass_still_fails_on_sessions_that_do_not_prepack(external_model, tmp_path, gk, monkeypatch):
    """Golden set, pass checks and final check all run without pre-packing: a Relu turned into
    an Abs is still caught (exit 1, no model)."""
    from graphkit.runtime import ort as graphkit_ort

    monkeypatch.setattr(graphkit_ort, "NO_PREPACK_MIN_BYTES", 1024)
    (tmp_path / "passes").mkdir()
    (tmp_path / "passes" / "wrong.py").write_text(RELU_TO_ABS)
    out = tmp_path / "o.onnx"
    args = ["apply", external_model, out, "--passes", "relu-to-abs-mapped", "--passes-dir", tmp_path / "passes"]
    code, _, err = gk(*args, "--strict")
    assert code == 1, err
    assert not out.exists()
    report = json.loads((tmp_path / "o.graphkit" / "report.json").read_text())
    record = next(r for r in report["passes"] if r["name"] == "relu-to-abs-mapped")
    assert record["status"] == "rolled-back" and not record["validation"]["passed"]


@pytest.mark.parametrize(
    "offset, length", [(0, 0), (0, None), (5, 100), (65535, 70000), (65536, 65536), (-7, 7), (1, -1)]
)
def test_a_file_range_hashes_like_its_bytes_wherever_it_lies(tmp_path, offset, length):
    """The digest is taken from a map that starts at the page boundary below ``offset``."""
    from graphkit.ir.external_data import _file_digest

    data = np.random.default_rng(0).bytes(3 * 65536 + 123)
    path = tmp_path / "d.bin"
    path.write_bytes(data)
    offset = offset % len(data)
    length = len(data) - offset if length is None else length % (len(data) - offset + 1)
    want = xxhash.xxh3_128(data[offset : offset + length]).digest()
    assert _file_digest(path, offset, length, "t") == want


def test_an_output_with_external_data_loads_in_onnx_and_passes_its_checker(external_model, tmp_path, gk, monkeypatch):
    """onnx 1.23 refuses a data file with a second hard link ("a potential hardlink attack"): the
    output's data file is moved out of the run folder, not linked. Outputs equal the source's."""
    from graphkit.ir import model_io

    monkeypatch.setattr(model_io, "too_big_for_one_file", lambda model: True)  # saved like a 2 GB model
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    _applied(gk, monkeypatch, external_model, out, map_min_bytes=1024)
    data = out.with_name("m.onnx.data")
    assert data.stat().st_nlink == 1
    onnx.checker.check_model(str(out))
    loaded = onnx.load(str(out))
    assert any(
        t.data_location == onnx.TensorProto.EXTERNAL
        for t in onnx.load(str(out), load_external_data=False).graph.initializer
    )
    assert not (tmp_path / "out" / "m.graphkit" / "m.onnx.data").exists()
    import onnxruntime as ort

    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, HIDDEN)).astype(np.float32)}
    want = ort.InferenceSession(str(external_model)).run(None, feeds)[0]
    got = ort.InferenceSession(loaded.SerializeToString()).run(None, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # fold/reorder of exact ops: equal up to rounding


def test_a_session_over_mapped_weights_and_past_2_gb_of_small_ones_reads_its_temporary_file(
    external_model, monkeypatch
):
    """The temporary-file path of create_session (small weights alone past 2 GB) keeps the data
    beside the file: not under the "/" folder given for mapped stubs."""
    from graphkit.runtime import ort as graphkit_ort

    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, HIDDEN)).astype(np.float32)}
    mapped = load_model(external_model, mapped=True)
    want = create_session(mapped).run(None, feeds)[0]
    monkeypatch.setattr(graphkit_ort, "too_big_for_one_file", lambda model: True)
    got = create_session(mapped).run(None, feeds)[0]
    assert got.tobytes() == want.tobytes()  # the same weights and graph: the same bits
