"""Rollback restores what was there: a pass that edits its input and then fails leaves no trace.

Every failure path (an exception, a wrong return type, SystemExit and KeyboardInterrupt raised by
the pass, a failed check, an in-place edit returned as the result) in both forms of ``graphkit
apply`` (a pipeline YAML and ``apply M.onnx --passes ... --passes-dir``): the written model is
byte-identical to the one written without that pass, and the report names the pass that edited
its input in place. A real signal during the pass ends the run with no model written.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from graphkit.ir.model_io import save_model
from graphkit.pipeline.demo_model import demo_model
from graphkit.transform.manager import PassManager
from graphkit.transform.pass_base import Pass, PassResult

EDITING_PASSES = textwrap.dedent(
    '''
    """Passes that bake the batch dim of their input in place (the edit) and then fail."""
    import os
    import signal
    import sys

    import onnx
    from onnx import numpy_helper

    from graphkit.transform.pass_base import Pass, PassResult
    from graphkit.transform.registry import register


    def bake_batch(model):
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # clears dim_param too
        model.graph.node[0].name = "edited-in-place"


    def endings():
        def raises(model):
            raise RuntimeError("broken on purpose")

        def wrong_type(model):
            return model  # a ModelProto, not a PassResult

        def exits(model):
            sys.exit(0)

        def interrupts(model):
            raise KeyboardInterrupt

        def returns_edited(model):
            return PassResult(model, True)

        def signal_(model):
            os.kill(os.getpid(), signal.SIGINT)
            return PassResult(model, True)

        return {"raise": raises, "wrong-type": wrong_type, "exit": exits, "interrupt": interrupts,
                "return-edited": returns_edited, "signal": signal_}


    for how, ending in endings().items():
        def run(self, model, ending=ending):
            bake_batch(model)
            return ending(model)

        register(f"edit-then-{how}")(type(f"EditThen{how}", (Pass,), {"run": run, "__doc__": f"Edit, then {how}."}))


    @register("wrong-copy")
    class WrongCopy(Pass):
        """Leaves its input alone; returns a copy with a wrong weight (fails the golden check)."""

        def run(self, model):
            out = onnx.ModelProto()
            out.CopyFrom(model)
            weight = out.graph.initializer[0]
            weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 0, weight.name))
            return PassResult(out, True)
    '''
)
FAILING = ["raise", "wrong-type", "exit", "interrupt", "return-edited"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rollback")
    (folder / "passes").mkdir()
    (folder / "passes" / "editing.py").write_text(EDITING_PASSES)
    save_model(demo_model(), folder / "m.onnx")
    return folder


def _pipeline(folder, name: str, passes: list[str]):
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nsource: {{onnx: {folder / 'm.onnx'}}}\npass_dirs: [{folder / 'passes'}]\n"
        f"golden: {{dir: {folder / 'golden'}, batch_sizes: [1, 2]}}\non_failure: skip\n"
        f"output: {{dir: {folder / name}, provenance: false}}\npasses: [{', '.join(passes)}]\n"
    )
    return path


def _run(cli, folder, form: str, name: str, passes: list[str]):
    if form == "pipeline":
        result = cli("apply", _pipeline(folder, name, passes))
    else:
        result = cli(
            "apply", folder / "m.onnx", "-o", folder / name, "--passes", ",".join(passes),
            "--passes-dir", folder / "passes", "--set", "on_failure=skip", "--set", f"golden.dir={folder / 'golden'}",
            "--strip-provenance",
        )  # fmt: skip
    return result, folder / name


@pytest.fixture(scope="module")
def without(setup):
    from graphkit.testing import run_cli

    written = {}
    for form in ("pipeline", "model"):
        result, run = _run(run_cli, setup, form, f"without-{form}", ["eliminate-noops"])
        assert result.returncode == 0, result.stderr
        written[form] = (run / "model.onnx").read_bytes()
    return written


@pytest.mark.parametrize("form", ["pipeline", "model"])
@pytest.mark.parametrize("how", [*FAILING, "wrong-copy"])
def test_a_failed_pass_leaves_the_written_model_as_without_it(setup, without, cli, form, how):
    name = how if how == "wrong-copy" else f"edit-then-{how}"
    result, run = _run(cli, setup, form, f"{form}-{how}", [name, "eliminate-noops"])
    assert result.returncode == 0, result.stderr
    assert (run / "model.onnx").read_bytes() == without[form]
    report = json.loads((run / "report.json").read_text())
    first = report["passes"][0]
    assert first["name"] == name and first["status"] == "rolled-back"
    assert first["input_mutated"] is (how != "wrong-copy")  # named whether or not it also failed otherwise
    assert report["passes"][1]["status"] in ("applied", "unchanged")


@pytest.mark.parametrize("form", ["pipeline", "model"])
def test_a_signal_during_an_editing_pass_ends_the_run_with_no_model(setup, cli, form):
    result, run = _run(cli, setup, form, f"{form}-signal", ["edit-then-signal", "eliminate-noops"])
    assert result.returncode == 130 and "Traceback" not in result.stderr
    assert not (run / "model.onnx").exists()


class EditsThenRaises(Pass):
    name = "edits-then-raises"

    def run(self, model):
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
        raise ValueError("after the edit")


class Succeeds(Pass):
    name = "succeeds"

    def run(self, model):
        return PassResult(model, False)


def test_manager_never_edits_the_callers_model_and_names_the_editor():
    model = demo_model()
    before = model.SerializeToString()
    run = PassManager([EditsThenRaises(), Succeeds()], on_failure="skip").run(model)
    assert run.ok and model.SerializeToString() == before and run.model.SerializeToString() == before
    assert [(r.status, r.input_mutated) for r in run.records] == [("rolled-back", True), ("unchanged", False)]
    stop = PassManager([EditsThenRaises()], on_failure="stop").run(model)
    assert not stop.ok and stop.model.SerializeToString() == before and stop.records[0].input_mutated


class EditsWeightsThenRaises(Pass):
    name = "edits-weights-then-raises"

    def run(self, model):
        model.graph.initializer[0].name = "renamed"  # the weights' part of the model
        raise ValueError("after the edit")


def test_large_model_path_restores_the_skeleton_and_stops_on_edited_weights():
    """Above the copy limit a pass gets the model itself: an edited skeleton is put back byte
    for byte; edited weights cannot be, and the run stops (no model for the caller to write)."""
    model = demo_model()
    before = model.SerializeToString()
    run = PassManager([EditsThenRaises(), Succeeds()], on_failure="skip", copy_limit_bytes=0).run(model)
    assert run.ok and model.SerializeToString() == before and run.model.SerializeToString() == before
    assert [(r.status, r.input_mutated) for r in run.records] == [("rolled-back", True), ("unchanged", False)]
    stopped = PassManager([EditsWeightsThenRaises(), Succeeds()], on_failure="skip", copy_limit_bytes=0).run(model)
    assert not stopped.ok and [r.status for r in stopped.records] == ["failed"]
    assert "edited the weights of its input model in place" in str(stopped.error)
