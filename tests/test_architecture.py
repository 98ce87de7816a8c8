"""The package's architecture rules (docs/architecture.md), checked on the source tree.

- every layer imports only the layers ``LAYERS`` allows it (type-only imports included);
- no import cycle inside ``graphkit/`` and the built-in passes (module-level, function-level and
  type-only imports, and the package ``__init__`` every import of a submodule runs);
- the generic core (ir, transform, check, diff, runtime, pipeline, util) imports nothing from
  the applications (``graphkit.ascend``, ``graphkit.wseg``), at any level;
- importing the pass manager stays light (no onnxruntime, diff or golden);
- a built-in pass imports no other pass; check/ and pipeline/ open no onnxruntime session of
  their own (validation runs through the Backend registry);
- no module over 500 lines unless its docstring says why;
- the plug-ins that graphkit's own applications declare are found through their entry points.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "graphkit"
# Each top-level package whose imports are checked -> its source folder: the product, the built-in
# passes and the fuzz harness (a dev tool beside the product, not in the wheel).
PACKAGES = {"graphkit": PACKAGE, "graphkit_passes": ROOT / "passes", "fuzz": ROOT / "fuzz"}
ROOT_PACKAGE = "graphkit"  # its ``__init__`` runs on every import of graphkit: any layer may "import" it

_BELOW_CHECK = {"util", "ir", "transform", "runtime", "diff"}
_CORE = _BELOW_CHECK | {"check", "pipeline"}
# The layer map (docs/architecture.md): layer -> the layers its modules may import. A layer is
# a subpackage of graphkit (``graphkit.check.golden`` -> "check"), a top-level module of graphkit
# (``graphkit.testing`` -> "testing"), the built-in passes ("passes": package ``graphkit_passes``)
# or the fuzz harness ("fuzz"). A module may import its own layer; a layer missing here fails.
LAYERS: dict[str, set[str]] = {
    "util": set(),
    "ir": {"util"},
    "transform": {"util", "ir"},
    "runtime": {"util", "ir"},
    "diff": {"util", "ir"},
    "check": _BELOW_CHECK,
    "pipeline": _BELOW_CHECK | {"check"},
    "ascend": _CORE,  # applications: the core, never each other
    "wseg": _CORE,
    "passes": {"util", "ir", "transform", "runtime"},  # runtime: evaluate a node (constant folding)
    "testing": {"util", "ir", "transform", "runtime", "check"},  # the pass-author harness
    "api": _CORE | {"testing"},  # the public API: the core's entry points and the pass author's names
    "cli": _CORE | {"ascend", "wseg", "testing", "passes", "api"},
    "__main__": {"cli"},
    "fuzz": _CORE | {"ascend", "wseg", "testing", "passes", "cli", "api"},  # test tooling, on top of everything
}
CORE = ("ir", "transform", "check", "diff", "runtime", "pipeline", "util")
APPLICATIONS = ("graphkit.ascend", "graphkit.wseg")
MAX_LINES = 500
WHY = "Longer than 500 lines because"

# Modules that other helpers split on their branches (issue 11); the lead removes each entry
# when that branch is merged.
LONG_MODULES_SPLIT_ELSEWHERE: dict[str, str] = {}  # module -> who splits it (empty: none pending)


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``), for every package in PACKAGES."""
    found = {}
    for name, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [name, *path.relative_to(folder).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _known(name: str) -> str | None:
    """The longest prefix of ``name`` that is a graphkit module (None outside graphkit)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> [a.b.c, a.b, a]: importing a submodule runs every parent package first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in MODULES]


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (imports for type names only)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for statement in node.body for child in ast.walk(statement))
    return inside


def imported_modules(module: str, type_only: bool = True) -> set[str]:
    """Every checked module that ``module`` imports, at any level (module, function, class);
    with ``type_only`` false, not those under ``if TYPE_CHECKING:`` (they never run)."""
    path, is_package = MODULES[module]
    return imports_in_source(module, path.read_text(encoding="utf-8"), is_package, type_only, str(path))


def imports_in_source(
    module: str, source: str, is_package: bool = False, type_only: bool = True, filename: str = "<planted>"
) -> set[str]:
    """:func:`imported_modules` of ``source`` read as the text of ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    targets: set[str] = set()
    tree = ast.parse(source, filename)
    skipped = set() if type_only else _type_checking_blocks(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            names = [
                f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin for alias in node.names
            ]
        for name in names:
            known = _known(name)
            if known:
                targets.update(_with_parents(known))
    targets.discard(module)
    for parent in _with_parents(module)[1:]:  # a module's own packages are running already
        targets.discard(parent)
    return targets


def import_graph(type_only: bool = True) -> dict[str, set[str]]:
    return {module: imported_modules(module, type_only) for module in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(target) == 1:
                return path[path.index(target) :] + [target]
            elif not state.get(target):
                state[target] = 1
                path.append(target)
                stack.append(iter(sorted(graph[target])))
    return None


def layer_of(module: str) -> str:
    """The layer of a checked module (see LAYERS)."""
    top, _, rest = module.partition(".")
    if top == "graphkit_passes":
        return "passes"
    if top == ROOT_PACKAGE:
        return rest.partition(".")[0] or ROOT_PACKAGE
    return top


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """'importer -> imported (layer -> layer)' for every import LAYERS does not allow, and
    'module (layer): not in LAYERS' for a module of an unlisted layer."""
    found = []
    for module, targets in sorted(graph.items()):
        layer = layer_of(module)
        if module == ROOT_PACKAGE:
            continue  # the root __init__: nothing below may depend on what it imports
        if layer not in LAYERS:
            found.append(f"{module} ({layer}): not in LAYERS")
            continue
        for target in sorted(targets):
            other = layer_of(target)
            if target != ROOT_PACKAGE and other != layer and other not in LAYERS[layer]:
                found.append(f"{module} -> {target} ({layer} -> {other})")
    return found


def test_the_import_graph_sees_function_level_relative_and_type_only_imports():
    graph = import_graph()
    assert "graphkit.runtime.backend" in graph["graphkit.runtime.ort"]
    # function-level: the pipeline imports the demo model inside load_source
    assert "graphkit.pipeline.demo_model" in graph["graphkit.pipeline.stages"]
    # the built-in passes are checked too
    assert "graphkit.transform.registry" in graph["graphkit_passes.cse"]
    # relative, and type names only (seen by both checks unless type_only is false)
    planted = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .records import ModelDiff\n"
    assert imports_in_source("graphkit.diff.formatting", planted) == {"graphkit.diff.records"}
    assert imports_in_source("graphkit.diff.formatting", planted, type_only=False) == set()
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_type_only_imports_included():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_planted_type_only_import_back_is_a_cycle():
    graph = import_graph()
    # the records import the formatters; a formatter naming the records for its types closes a circle
    assert "graphkit.diff.formatting" in graph["graphkit.diff.records"]
    planted = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from graphkit.diff.records import ModelDiff\n"
    graph["graphkit.diff.formatting"] = imports_in_source("graphkit.diff.formatting", planted)
    cycle = find_cycle(graph)
    assert cycle is not None and {"graphkit.diff.formatting", "graphkit.diff.records"} <= set(cycle)


def test_every_layer_imports_only_what_layers_allows():
    violations = layer_violations(import_graph())
    assert not violations, "imports against the layer map (LAYERS, docs/architecture.md):\n" + "\n".join(violations)


def test_every_listed_layer_exists_and_names_only_listed_layers():
    present = {layer_of(module) for module in MODULES} - {ROOT_PACKAGE}
    assert present <= set(LAYERS), f"modules in layers LAYERS does not list: {sorted(present - set(LAYERS))}"
    named = set().union(*LAYERS.values())
    assert named <= set(LAYERS), f"LAYERS allows unknown layers: {sorted(named - set(LAYERS))}"


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        # the upward imports this map was written to stop (issue 21)
        ("graphkit.transform.pass_base", "from graphkit.check.compare import compare_outputs\n", "transform -> check"),
        (
            "graphkit.transform.planted",
            "def f():\n    from graphkit.runtime.ort import run_ort\n",
            "transform -> runtime",
        ),
        ("graphkit.diff.model_diff", "from ..transform import manager\n", "diff -> transform"),
        ("graphkit_passes.planted", "from graphkit.check.golden import load_golden\n", "passes -> check"),
        (
            "graphkit.ir.planted",
            "import graphkit.util.errors, graphkit.ir.shapes, graphkit.runtime.feeds\n",
            "ir -> runtime",
        ),
        ("graphkit.ascend.planted", "from graphkit.wseg import plugin\n", "ascend -> wseg"),
        (
            "graphkit.check.planted",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from graphkit.pipeline.report import RunReport\n",
            "check -> pipeline",
        ),
    ],
)
def test_a_planted_upward_import_fails_the_layer_check(module, source, expected):
    graph = import_graph()
    assert not layer_violations(graph)
    graph[module] = imports_in_source(module, source)
    violations = layer_violations(graph)
    assert violations and all(v.startswith(f"{module} -> ") for v in violations), violations
    assert any(v.endswith(f"({expected})") for v in violations), violations


def test_a_module_of_an_unlisted_layer_fails_the_layer_check():
    graph = import_graph()
    graph["graphkit.newlayer.thing"] = imports_in_source("graphkit.newlayer.thing", "import graphkit.util.errors\n")
    assert layer_violations(graph) == ["graphkit.newlayer.thing (newlayer): not in LAYERS"]


@pytest.mark.parametrize("package", CORE)
def test_the_core_imports_no_application(package):
    offending = {
        module: sorted(t for t in targets if t.startswith(APPLICATIONS))
        for module, targets in import_graph().items()
        if module.startswith(f"graphkit.{package}.") or module == f"graphkit.{package}"
    }
    offending = {module: targets for module, targets in offending.items() if targets}
    assert not offending, f"core modules import an application: {offending}"


def _fresh_import(module: str) -> list[str]:
    code = (
        f"import json, sys; import {module}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'onnxruntime' "
        "or m.startswith(('graphkit.diff', 'graphkit.check.golden')))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_base_modules_import_light():
    # the pass contract, the registry and the backend interface import no runtime, diff or golden
    for module in ("graphkit.transform.pass_base", "graphkit.transform.registry", "graphkit.runtime.backend"):
        assert _fresh_import(module) == [], module


def test_importing_the_pass_manager_imports_no_runtime_diff_or_golden():
    assert _fresh_import("graphkit.transform.manager") == []


def _long_modules_without_why() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if WHY not in " ".join(docstring.split()):
            found.append(str(path.relative_to(ROOT)))
    return found


def test_no_module_over_500_lines_without_a_reason():
    long = [p for p in _long_modules_without_why() if p not in LONG_MODULES_SPLIT_ELSEWHERE]
    assert not long, f"over {MAX_LINES} lines with no '{WHY} ...' in the docstring: {long}"


def test_the_allow_list_holds_only_modules_still_too_long():
    stale = sorted(set(LONG_MODULES_SPLIT_ELSEWHERE) - set(_long_modules_without_why()))
    assert not stale, f"no longer too long, remove from LONG_MODULES_SPLIT_ELSEWHERE: {stale}"


def test_the_applications_plug_in_through_entry_points():
    from graphkit.pipeline.plugins import SOURCES, STAGES, ordered_stages

    # entry points exist only once the package metadata is current: after a change to
    # pyproject.toml, run `pip install -e .` (make does it when pyproject.toml is newer)
    assert "export" in SOURCES, "no graphkit.sources entry points: reinstall graphkit (pip install -e .)"
    assert SOURCES["export"].takes_weights
    assert [(name, stage.report_key) for name, stage in ordered_stages()][:3] == [
        ("precision", "precision"),  # before handoff.atc: its keep-list goes into the ATC commands
        ("handoff.atc", "handoff"),
        ("eval", "eval"),
    ]
    assert STAGES["eval"].order > STAGES["handoff.atc"].order


def test_a_pass_imports_no_other_pass():
    graph = import_graph()
    crossing = {
        module: sorted(t for t in targets if t.startswith("graphkit_passes.") and t != module)
        for module, targets in graph.items()
        if module.startswith("graphkit_passes.")
    }
    crossing = {module: targets for module, targets in crossing.items() if targets}
    assert not crossing, f"passes import other passes (one file per pass): {crossing}"


SESSION_OPENERS = {"InferenceSession", "create_session", "run_session", "run_ort"}


def test_validation_opens_no_onnxruntime_session_of_its_own():
    # check/ and pipeline/ run models through the Backend registry (runtime.backend.open_validation_backend)
    found = []
    for module, (path, _) in MODULES.items():
        if layer_of(module) not in ("check", "pipeline"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
            if isinstance(node, ast.alias):
                name = node.name.rpartition(".")[2]
            if name in SESSION_OPENERS:
                found.append(f"{module}: {name}")
    assert not found, f"open a session through open_validation_backend instead: {sorted(set(found))}"


def test_built_in_passes_read_initializers_through_tensor_array():
    """A weight of 1 MiB or more is a memory-mapped stub during apply; numpy_helper.to_array
    fails on it (the pass would be rolled back and its rewrite silently lost), tensor_array reads it."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "passes").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "to_array(" in line and "tensor_array(" not in line
    ]
    assert offenders == []
