"""The plug-in mechanism as a user package uses it: entry points of a distribution on sys.path.

Each test writes a tiny installed distribution (a module plus a ``*.dist-info`` folder whose
``entry_points.txt`` declares a stage and backends) and runs graphkit in a fresh
process with that folder on ``PYTHONPATH``: no mock, the same lookup as an installed plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graphkit.util.errors import GraphkitError
from graphkit.util.plugin_registry import Registry

PLUGIN = """
import json
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from graphkit.pipeline.plugins import Source, SourceKind, Stage, plugin_logger
from graphkit.runtime.backend import Backend, TensorInfo
from graphkit.util.errors import SpecError


def parse_note(raw, where):
    if not isinstance(raw.get("text"), str):
        raise SpecError(f"{where}.text: expected a string")
    return raw["text"]


def run_note(text, context):
    (context.run_dir / "note.txt").write_text(text + " " + context.model_path.name)
    return {"text": text, "model": context.model_path.name}


NOTE = Stage(parse_note, run_note, report_key="note", order=50, message="writing the note ...")


def parse_scaled(raw, where, weights):
    scale = (raw or {}).get("scale", 2.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise SpecError(f"{where}.scale: expected a number")
    return float(scale)


def load_scaled(scale):
    plugin_logger("scaled").info("building the scaled model ...")
    node = helper.make_node("Mul", ["x", "k"], ["y"])
    k = helper.make_tensor("k", TensorProto.FLOAT, [], [scale])
    graph = helper.make_graph(
        [node], "scaled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [k],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return Source(model, "scaled", f"scaled by {scale}", details={"scale": scale})


SCALED = SourceKind(parse_scaled, load_scaled)


class Doubler(Backend):
    name = "doubler"

    def __init__(self, model_path, **options):
        self.inputs = [TensorInfo("x", (None,), np.dtype(np.float32))]
        self.outputs = [TensorInfo("y", (None,), np.dtype(np.float32))]

    def run(self, feeds):
        return {"y": np.asarray(feeds["x"]) * 2}
"""

ENTRY_POINTS = """
[graphkit.stages]
handoff.note = user_plugin:NOTE

[graphkit.sources]
scaled = user_plugin:SCALED

[graphkit.backends]
doubler = user_plugin:Doubler
broken = user_plugin_missing:Nothing

[graphkit.passes]
drop-relu-pairs = user_passes:drop_relu_pairs
not-a-pass = user_plugin:NOTE
"""

PASSES = """
from graphkit.transform.rules import Rule, rule_pass


@rule_pass("drop-relu-pairs")
def drop_relu_pairs():
    \"\"\"Relu(Relu(x)) -> Relu(x) (exact): a plug-in pass.\"\"\"
    return Rule(lambda op, x: op.Relu(op.Relu(x)), lambda op, x: op.Relu(x), name="pair")
"""


def _site(site: Path, module: str, text: str, entry_points: str) -> Path:
    """An installed distribution in ``site``: module ``module`` and its entry points."""
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (site / f"{module}.py").write_text(text)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return site


@pytest.fixture
def plugin_path(tmp_path) -> Path:
    site = _site(tmp_path / "site", "user_plugin", PLUGIN, ENTRY_POINTS)
    (site / "user_passes.py").write_text(PASSES)
    return site


def _run(args, plugin_path: Path, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "graphkit", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_a_user_stage_runs_in_a_pipeline(plugin_path, tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        textwrap.dedent("""
        name: plug
        source: {builtin: demo}
        golden: {batch_sizes: [1]}
        passes: [eliminate-noops]
        handoff:
          note: {text: hello}
        """)
    )
    done = _run(["apply", str(pipeline), "-o", str(tmp_path / "run")], plugin_path, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["note"] == {"text": "hello", "model": "model.onnx"}
    assert report["handoff"] is None and report["eval"] is None  # the built-in stages did not run
    assert (tmp_path / "run" / "note.txt").read_text() == "hello model.onnx"
    assert "note" in report["stages"]
    assert "writing the note ..." in done.stderr

    # the section is typed before any pass runs; the error names the key
    pipeline.write_text(pipeline.read_text().replace("text: hello", "text: 3"))
    bad = _run(["apply", str(pipeline), "-o", str(tmp_path / "run2")], plugin_path, tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("graphkit: error: ")
    assert "handoff.note.text: expected a string" in bad.stderr
    assert not (tmp_path / "run2").exists()

    # unknown handoff keys list the registered ones, the user's included
    pipeline.write_text(pipeline.read_text().replace("note:", "nite:"))
    unknown = _run(["apply", str(pipeline), "-o", str(tmp_path / "run3")], plugin_path, tmp_path)
    assert unknown.returncode == 2
    assert "handoff: unknown key 'nite'; known keys: " in unknown.stderr
    assert "atc" in unknown.stderr and "note" in unknown.stderr.split("known keys:")[1]


def test_a_user_backend_is_found_by_name_and_a_broken_one_is_one_line(plugin_path, tmp_path):
    code = textwrap.dedent("""
        import numpy as np
        from graphkit.runtime.backend import BACKENDS, open_backend
        from graphkit.util.errors import GraphkitError
        with open_backend("doubler", "unused") as backend:
            print(backend.run({"x": np.array([1.0, 2.0], np.float32)})["y"].tolist())
        try:
            open_backend("broken", "unused")
        except GraphkitError as exc:
            print("error:", exc)
        print(sorted(BACKENDS))
    """)
    done = _run([], plugin_path, tmp_path, code=code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "[2.0, 4.0]"
    assert lines[1].startswith("error: backend 'broken' (user_plugin_missing:Nothing")
    assert "ModuleNotFoundError" in lines[1]
    assert {"ort", "torch", "doubler", "broken"} <= set(eval(lines[2]))  # noqa: S307 - our own print


def test_a_user_source_kind_loads_the_model(plugin_path, tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: s\nsource: {scaled: {scale: 3}}\ngolden: {batch_sizes: [2]}\npasses: [dead-code]\n")
    done = _run(["apply", str(pipeline), "-o", str(tmp_path / "run")], plugin_path, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["source"]["kind"] == "scaled" and report["source"]["export"] == {"scale": 3.0}
    assert "building the scaled model ..." in done.stderr
    # the resolved pipeline keeps the kind under source: it reads back to the same run
    written = (tmp_path / "run" / "pipeline.yaml").read_text()
    assert "scaled:" in written and "plugin" not in written
    again = _run(
        ["apply", str(tmp_path / "run" / "pipeline.yaml"), "-o", str(tmp_path / "run2")], plugin_path, tmp_path
    )
    assert again.returncode == 0, again.stderr
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "run2" / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(session.run(None, {"x": x})[0], x * 3)

    # typed by the plug-in, errors name the key; --weights is refused for a kind that takes none
    pipeline.write_text("name: s\nsource: {scaled: {scale: big}}\n")
    bad = _run(["apply", str(pipeline), "-o", str(tmp_path / "run3")], plugin_path, tmp_path)
    assert bad.returncode == 2 and "source.scaled.scale: expected a number" in bad.stderr
    pipeline.write_text("name: s\nsource: {scaled: {}, builtin: demo}\n")
    two = _run(["apply", str(pipeline), "-o", str(tmp_path / "run4")], plugin_path, tmp_path)
    assert two.returncode == 2 and "give exactly one of onnx, export, builtin" in two.stderr
    pipeline.write_text("name: s\nsource: {scaled: {}}\n")
    weights = _run(["apply", str(pipeline), "-o", str(tmp_path / "run5"), "--weights", "w.pth"], plugin_path, tmp_path)
    assert weights.returncode == 2
    assert "is source.scaled, not an export; weights only apply to source.export" in weights.stderr
    # without the plug-in installed, the key is unknown (one line, exit 2)
    plain = subprocess.run(
        [sys.executable, "-m", "graphkit", "apply", str(pipeline), "-o", str(tmp_path / "run6")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert plain.returncode == 2 and "source: unknown key 'scaled'" in plain.stderr


def test_registry_imports_a_reference_only_when_looked_up(tmp_path, monkeypatch):
    (tmp_path / "lazy_thing.py").write_text("import sys\nsys.modules['lazy_thing_loaded'] = True\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry[int] = Registry(None, "thing")
    registry.register("answer", "lazy_thing:VALUE")
    registry.register("missing", "no_such_module_here:VALUE")
    assert "answer" in registry and "lazy_thing_loaded" not in sys.modules
    assert registry["answer"] == 42 and "lazy_thing_loaded" in sys.modules
    with pytest.raises(GraphkitError, match=r"thing 'missing' \(no_such_module_here:VALUE.*ModuleNotFoundError"):
        registry["missing"]
    with pytest.raises(KeyError):
        registry["nothing"]
    del registry["answer"]
    assert list(registry) == ["missing"]


def test_a_pass_installed_through_the_entry_point_runs_in_a_pipeline(plugin_path, tmp_path):
    model = tmp_path / "relus.onnx"
    code = (
        "import onnx; from graphkit.testing import parse_model; onnx.save(parse_model("
        '\'<ir_version: 8, opset_import: ["" : 17]> g (float[1,3] x) => (float[1,3] y) '
        "{ a = Relu(x) b = Relu(a) y = Neg(b) }'), 'relus.onnx')"
    )
    assert _run([], plugin_path, tmp_path, code=code).returncode == 0
    done = _run(
        ["apply", str(model), "-o", str(tmp_path / "run"), "--passes", "drop-relu-pairs"], plugin_path, tmp_path
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    [record] = report["passes"]
    assert (record["name"], record["status"], record["counts"]) == ("drop-relu-pairs", "applied", {"pair": 1})
    assert report["final"]["nodes"] == 2 and report["final"]["validation"]["passed"]
    listed = _run(["passes"], plugin_path, tmp_path)
    assert (
        listed.returncode == 2 and "'not-a-pass'" in listed.stderr and "not a graphkit Pass subclass" in listed.stderr
    )
    shown = _run(["passes", "drop-relu-pairs"], plugin_path, tmp_path)
    assert shown.returncode == 0 and "a plug-in pass" in shown.stdout and "user_passes.py" in shown.stdout
    typo = _run(["apply", str(model), "-o", str(tmp_path / "r2"), "--passes", "drop-relu-pair"], plugin_path, tmp_path)
    assert typo.returncode == 2 and "did you mean" in typo.stderr and "drop-relu-pairs" in typo.stderr, typo.stderr
    bad = _run(["apply", str(model), "-o", str(tmp_path / "r3"), "--passes", "not-a-pass"], plugin_path, tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


LIARS = """
from graphkit.pipeline.plugins import Source, SourceKind, Stage

NOT_A_STAGE = {"parse": None, "run": None}
NUMBER = 42


def parse_any(raw, where, weights=None):
    return raw


def load_none(options):
    return None


def load_bytes(options):
    return b"not a model"


def load_source_of_bytes(options):
    return Source(b"onnx bytes", "liar", "a Source whose model is bytes")


def run_boom(options, context):
    raise ZeroDivisionError("the stage's own bug")


NONE_SOURCE = SourceKind(parse_any, load_none)
BYTES_SOURCE = SourceKind(parse_any, load_bytes)
BYTES_MODEL = SourceKind(parse_any, load_source_of_bytes)
BOOM = Stage(lambda raw, where: raw, run_boom, report_key="boom")
"""


def _liar_site(tmp_path: Path, entry_points: str) -> Path:
    return _site(tmp_path / "liars", "user_liars", LIARS, entry_points)


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("graphkit: error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.parametrize(
    "entry_points, section, message",
    [
        (
            "[graphkit.stages]\nhandoff.liar = user_liars:NOT_A_STAGE\n",
            "",
            "is dict, not a graphkit.pipeline.plugins.Stage",
        ),
        ("[graphkit.stages]\nhandoff.liar = user_liars\n", "", "names a module: write 'module:attribute'"),
        ("[graphkit.sources]\nliar = user_liars:NONE_SOURCE\n", "liar", "load returned NoneType, not a Source"),
        ("[graphkit.sources]\nliar = user_liars:BYTES_SOURCE\n", "liar", "load returned bytes, not a Source"),
        ("[graphkit.sources]\nliar = user_liars:BYTES_MODEL\n", "liar", "holds bytes, not an onnx.ModelProto"),
        (
            "[graphkit.sources]\nliar = user_liars:NUMBER\n",
            "liar",
            "is int, not a graphkit.pipeline.plugins.SourceKind",
        ),
    ],
)
def test_a_plug_in_that_is_not_what_it_claims_is_one_line(tmp_path, entry_points, section, message):
    site = _liar_site(tmp_path, entry_points)
    source = "{liar: {}}" if section else "{builtin: demo}"
    (tmp_path / "p.yaml").write_text(
        f"name: liar\nsource: {source}\ngolden: {{batch_sizes: [1]}}\npasses: [dead-code]\n"
    )
    done = _run(["apply", str(tmp_path / "p.yaml"), "-o", str(tmp_path / "run")], site, tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in _one_error_line(done)
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_a_backend_that_is_not_callable_is_one_line(tmp_path):
    site = _liar_site(tmp_path, "[graphkit.backends]\nflat = user_liars:NUMBER\n")
    code = "from graphkit.runtime.backend import open_backend\nopen_backend('flat', 'unused')\n"
    done = _run([], site, tmp_path, code=code)
    assert done.returncode == 1 and "GraphkitError: backend 'flat' (user_liars:NUMBER" in done.stderr
    assert "is int, not callable (a Backend class or a factory)" in done.stderr


def test_a_stage_that_raises_is_recorded_in_the_report_and_leaves_no_model(tmp_path):
    site = _liar_site(tmp_path, "[graphkit.stages]\nhandoff.boom = user_liars:BOOM\n")
    (tmp_path / "p.yaml").write_text(
        "name: boom\nsource: {builtin: demo}\ngolden: {batch_sizes: [1]}\npasses: [dead-code]\nhandoff: {boom: {}}\n"
    )
    done = _run(["apply", str(tmp_path / "p.yaml"), "-o", str(tmp_path / "run")], site, tmp_path)
    assert done.returncode == 2
    line = _one_error_line(done)
    assert "stage 'handoff.boom' raised ZeroDivisionError: the stage's own bug" in line
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["status"] == "failed" and "handoff.boom" in report["error"]
    assert report["boom"] == {"error": "stage 'handoff.boom' raised ZeroDivisionError: the stage's own bug"}
    assert not list((tmp_path / "run").glob("*.onnx"))  # no model beside a failed report
