"""Registry rules, the pass contract around run(), and the PassManager's rollback."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from graphkit.ir.model_io import content_hash
from graphkit.pipeline.demo_model import demo_model
from graphkit.transform.instruments import Instrument
from graphkit.transform.manager import PassManager
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.registry import get_pass, load_pass_dir, register
from graphkit.util.errors import GraphkitError, PassError, PassLoadError, SpecError


def test_register_rejects_bad_and_duplicate_names(tmp_path):
    with pytest.raises(PassLoadError, match="not kebab-case"):
        register("BadName")(type("P", (Pass,), {}))
    (tmp_path / "a.py").write_text(
        "from graphkit.transform.pass_base import Pass\nfrom graphkit.transform.registry import register\n"
        "@register('twin-pass')\nclass A(Pass):\n    '''A.'''\n"
    )
    (tmp_path / "b.py").write_text(
        "from graphkit.transform.pass_base import Pass\nfrom graphkit.transform.registry import register\n"
        "@register('twin-pass')\nclass B(Pass):\n    '''B.'''\n"
    )
    with pytest.raises(PassLoadError, match="'twin-pass' is registered twice"):
        load_pass_dir(tmp_path)


def test_broken_pass_file_names_the_file(tmp_path):
    (tmp_path / "broken.py").write_text("import nothing_here_at_all\n")
    with pytest.raises(PassLoadError, match="broken.py: cannot import pass file"):
        load_pass_dir(tmp_path)


def test_options_are_typed(user_pass_dir):
    load_pass_dir(user_pass_dir)
    cls = get_pass("break-relu")
    assert cls(factor=4).options.factor == 4.0
    with pytest.raises(SpecError, match="factor: expected float"):
        cls(factor="x")


def test_pass_that_raises_becomes_pass_error_naming_it():
    class Crashes(Pass):
        name = "crashes"

        def run(self, model):
            raise ZeroDivisionError("boom")

    with pytest.raises(PassError, match="pass 'crashes' raised ZeroDivisionError: boom"):
        Crashes()(demo_model())


def test_pass_outside_opset_range_declines():
    class NewOnly(Pass):
        name = "new-only"
        opset_range = (13, 21)

        def run(self, model):  # pragma: no cover - must not be reached
            raise AssertionError

    result = NewOnly()(demo_model())
    assert not result.modified and "opset 11 is outside the supported range 13..21" in result.declined[0].reason


def test_undeclared_io_change_is_a_contract_error():
    class ChangesInputs(Pass):
        name = "changes-inputs"

        def run(self, model):
            copy = onnx.ModelProto()
            copy.CopyFrom(model)
            copy.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
            return PassResult(copy, True)

    with pytest.raises(PassError, match="changed the graph inputs without declaring changes_io"):
        ChangesInputs()(demo_model())


def test_manager_rolls_back_on_instrument_rejection_and_names_previous_passes(user_pass_dir):
    load_pass_dir(user_pass_dir)

    class RejectMax(Instrument):
        def after_pass(self, index, pass_, before, result):
            if any(n.op_type == "Max" for n in result.model.graph.node):
                raise GraphkitError("Max is not allowed here")

    model = demo_model()
    passes = [get_pass("drop-identity")(), get_pass("relu-as-max")()]
    run = PassManager(passes, [RejectMax()]).run(model)
    assert not run.ok and run.failed.name == "relu-as-max"
    assert "passes applied before it: drop-identity" in str(run.error)
    assert all(n.op_type != "Max" for n in run.model.graph.node)  # rolled back
    assert all(n.op_type != "Identity" for n in run.model.graph.node)  # first pass kept
    assert content_hash(model) == content_hash(demo_model())  # input untouched


def test_cli_passes_list_and_show(user_pass_dir, cli):
    listing = cli("passes", "--passes-dir", user_pass_dir, "--json")
    assert listing.returncode == 0, listing.stderr
    names = [p["name"] for p in json.loads(listing.stdout)]
    assert "break-relu" in names and names == sorted(names)
    shown = cli("passes", "break-relu", "--passes-dir", user_pass_dir)
    assert shown.returncode == 0
    assert "factor" in shown.stdout and "wrong on purpose" in shown.stdout and "exact: True" in shown.stdout
    unknown = cli("passes", "brake-relu", "--passes-dir", user_pass_dir)
    assert unknown.returncode == 2 and "did you mean: break-relu" in unknown.stderr


@pytest.mark.parametrize("breakage", ["dangling input", "short weights"])
def test_verify_rejects_invalid_models_and_rolls_back(breakage):
    from graphkit.ir.model_io import clone
    from graphkit.transform.instruments import Honesty, Verify

    class Breaks(Pass):
        name = "breaks"

        def run(self, model):
            broken = clone(model)
            if breakage == "dangling input":
                broken.graph.node[1].input[0] = "no_such_tensor"
            else:
                weight = broken.graph.initializer[0]
                weight.raw_data = weight.raw_data[:-4]
            return PassResult(broken, True)

    model = demo_model()
    run = PassManager([Breaks()], [Honesty(), Verify()]).run(model)
    assert not run.ok and run.model is model
    expected = "no_such_tensor" if breakage == "dangling input" else "'conv.weight' holds 860 bytes"
    assert expected in str(run.error) and "output of pass 'breaks'" in str(run.error)


def test_pass_file_that_exits_or_is_not_a_file_is_a_load_error(tmp_path):
    import os

    from graphkit.transform.registry import load_pass_dir
    from graphkit.util.errors import PassLoadError

    exits = tmp_path / "exits"
    exits.mkdir()
    (exits / "bye.py").write_text("import sys\nsys.exit(0)\n")
    with pytest.raises(PassLoadError, match=r"bye.py: cannot import pass file: SystemExit: 0"):
        load_pass_dir(exits)
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "pipe.py")
    with pytest.raises(PassLoadError, match=r"pipe.py: not a regular file"):
        load_pass_dir(fifo_dir)


# --- instruments observe, the manager records ----------------------------------------------------


def test_importing_the_pass_manager_leaves_onnxruntime_the_diff_and_golden_sets_out():
    import subprocess
    import sys

    code = (
        "import sys, graphkit.transform.manager\n"
        "heavy = ('onnxruntime', 'graphkit.diff', 'graphkit.check.golden', 'graphkit.check.instruments', 'torch')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'onnxruntime' or m.startswith(heavy[1:])))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_manager_builds_the_record_from_what_instruments_return():
    from graphkit.transform.record import Observation, PassStatus

    class Figures(Instrument):
        def __init__(self, key):
            self.key = key

        def before_pass(self, index, pass_, model):
            return Observation(times={"shared": 1.0})

        def after_pass(self, index, pass_, before, result):
            return Observation(times={"shared": 2.0, self.key: 0.5}, notes=[f"{self.key} saw {pass_.name}"])

    class Reject(Instrument):
        def after_pass(self, index, pass_, before, result):
            figures = {"passed": False, "checked": pass_.name}
            return Observation(validation=figures, max_abs={"y": 3.0}, rejection=GraphkitError("too far"))

    class Changes(Pass):
        name = "changes"

        def run(self, model):
            from graphkit.ir.model_io import clone

            changed = clone(model)
            changed.doc_string = "changed"
            return PassResult(changed, True, notes=["the pass's own note"])

    model = demo_model()
    run = PassManager([Changes()], [Figures("a"), Figures("b")]).run(model)
    record = run.records[0]
    assert run.ok and record.status is PassStatus.APPLIED and record.status == "applied"
    assert record.times == {"shared": 6.0, "a": 0.5, "b": 0.5}  # summed over hooks and instruments
    assert record.notes == ["a saw changes", "b saw changes", "the pass's own note"]
    # a rejection keeps the rejecting check's figures on the record; later instruments do not run
    run = PassManager([Changes()], [Figures("a"), Reject(), Figures("b")]).run(model)
    record = run.records[0]
    assert not run.ok and record.status == "failed" and "too far" in record.error
    assert record.validation == {"passed": False, "checked": "changes"} and record.max_abs == {"y": 3.0}
    assert record.notes == ["a saw changes"] and "b" not in record.times
    assert record.traceback == ""  # a check rejected it: the pass itself did not raise
    assert run.model is model


def test_a_region_check_that_falls_back_leaves_the_pass_result_alone(tmp_path):
    from graphkit.check.golden import make_or_load_golden
    from graphkit.check.instruments import RegionCheck
    from graphkit.util.tolerance import Tolerances

    golden, _ = make_or_load_golden(demo_model(), tmp_path / "g", batch_sizes=[1])
    before = demo_model()
    result = get_pass("eliminate-noops")()(before)
    notes = list(result.notes)
    observation = RegionCheck(golden, Tolerances(), max_fraction=0.0).after_pass(
        0, get_pass("eliminate-noops")(), before, result
    )
    assert observation.validation["mode"] == "full" and "region too large" in observation.validation["fallback_reason"]
    assert observation.notes and observation.notes[0].startswith("region validation not applicable")
    assert result.notes == notes  # the fallback note goes on the record through the observation only


def test_a_pass_that_raises_keeps_its_traceback_and_names_its_file_and_line():
    import inspect

    class Crashes(Pass):
        name = "crashes"

        def run(self, model):
            return {}["missing"]

    line = inspect.getsourcelines(Crashes.run)[1] + 1
    run = PassManager([Crashes()]).run(demo_model())
    record = run.records[0]
    assert not run.ok and record.status == "failed"
    assert f"pass 'crashes' raised KeyError: 'missing' at {__file__}:{line} (in run)" in record.error
    assert record.traceback.startswith("Traceback (most recent call last):")
    assert f'File "{__file__}", line {line}, in run' in record.traceback
    assert record.traceback.rstrip().endswith("KeyError: 'missing'")
    assert record.to_dict()["traceback"] == record.traceback and record.to_dict()["status"] == "failed"


PACKAGE_INIT = '''"""A user pass written as a package: the pass here, its matching logic in a helper module."""
from graphkit.ir.model_io import clone
from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.registry import register

from .matching import identity_nodes


@register("drop-identities-pkg")
class DropIdentities(Pass):
    """Remove Identity nodes whose output is not a graph output."""

    def run(self, model):
        found = identity_nodes(model)
        if not found:
            return PassResult(model, False)
        out = clone(model)
        rename = {out.graph.node[i].output[0]: out.graph.node[i].input[0] for i in found}
        kept = [n for i, n in enumerate(out.graph.node) if i not in found]
        for node in kept:
            node.input[:] = [rename.get(t, t) for t in node.input]
        del out.graph.node[:]
        out.graph.node.extend(kept)
        return PassResult(out, True, counts={"identity": len(found)})
'''

PACKAGE_HELPER = """def identity_nodes(model):
    outputs = {o.name for o in model.graph.output}
    return {i for i, n in enumerate(model.graph.node) if n.op_type == "Identity" and n.output[0] not in outputs}
"""


def identity_chain_model() -> onnx.ModelProto:
    from graphkit.testing import make_model, value

    nodes = [
        onnx.helper.make_node("Identity", ["x"], ["a"]),
        onnx.helper.make_node("Relu", ["a"], ["b"]),
        onnx.helper.make_node("Identity", ["b"], ["c"]),
        onnx.helper.make_node("Neg", ["c"], ["y"]),
    ]
    return make_model(nodes, [value("x", [2, 3])], [value("y", [2, 3])])


# both relative forms a package may use for its helper module
HELPER_IMPORTS = {
    "from-module": "from .matching import identity_nodes",
    "from-package": "from . import matching\nidentity_nodes = matching.identity_nodes",
}


@pytest.mark.parametrize("form", sorted(HELPER_IMPORTS))
def test_a_user_pass_may_be_a_package_with_helper_modules(tmp_path, cli, form):
    from graphkit.ir.model_io import save_model
    from graphkit.runtime.ort import run_ort
    from graphkit.testing import assert_op_types, load_user_pass, run_pass

    package = tmp_path / "passes" / f"identity_pkg_{form.replace('-', '_')}"
    package.mkdir(parents=True)
    init = PACKAGE_INIT.replace("from .matching import identity_nodes", HELPER_IMPORTS[form])
    (package / "__init__.py").write_text(init.replace("drop-identities-pkg", f"drop-identities-{form}"))
    (package / "matching.py").write_text(PACKAGE_HELPER)
    (tmp_path / "passes" / "notes").mkdir()  # a folder without __init__.py is not a pass
    (tmp_path / "passes" / "notes" / "broken.py").write_text("raise RuntimeError('never imported')\n")
    pass_ = load_user_pass(tmp_path / "passes", f"drop-identities-{form}")
    model = identity_chain_model()
    result = run_pass(pass_, model)
    assert result.modified and result.counts == {"identity": 2}
    assert_op_types(result.model, ["Relu", "Neg"])
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(run_ort(result.model, {"x": x})["y"], -np.maximum(x, 0))

    save_model(model, tmp_path / "m.onnx")
    applied = cli(
        "apply", tmp_path / "m.onnx", "-o", tmp_path / "run", "--passes", f"drop-identities-{form}",
        "--passes-dir", tmp_path / "passes",
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    assert_op_types(onnx.load(tmp_path / "run" / "model.onnx"), ["Relu", "Neg"])


def test_a_broken_pass_package_names_the_package(tmp_path):
    package = tmp_path / "bad_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .missing_helper import thing\n")
    with pytest.raises(PassLoadError, match="bad_pkg: cannot import pass package: ModuleNotFoundError"):
        load_pass_dir(tmp_path)
    assert not [m for m in __import__("sys").modules if "bad_pkg" in m]


def test_built_in_passes_do_not_import_each_other():
    """Shared logic of built-in passes lives in graphkit/ir helpers, not in another pass module."""
    import ast
    from pathlib import Path

    import graphkit_passes

    folder = Path(graphkit_passes.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}
    offenders = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else ["graphkit_passes." + (node.module or "")]
                names += [f"{names[0]}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "graphkit_passes" and len(parts) > 1 and parts[1] in modules - {"__init__"}:
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert modules - {"__init__"}, "no built-in pass modules found"
    assert not offenders, offenders


def test_a_pass_file_symlinked_to_a_file_without_py_loads(tmp_path):
    """spec_from_file_location picks a loader by suffix: a 'x.py' link to 'x.txt' had none (a traceback)."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "linked_pass.txt").write_text(
        "from graphkit.transform.pass_base import Pass, PassResult\nfrom graphkit.transform.registry import register\n"
        "@register('linked-pass-by-symlink')\nclass Linked(Pass):\n    '''Linked.'''\n"
        "    def run(self, model):\n        return PassResult(model, modified=False)\n"
    )
    folder = tmp_path / "passes"
    folder.mkdir()
    (folder / "linked_pass.py").symlink_to(store / "linked_pass.txt")
    assert load_pass_dir(folder) == ["linked-pass-by-symlink"]
    assert get_pass("linked-pass-by-symlink").__doc__ == "Linked."
