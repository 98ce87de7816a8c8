"""The package's architecture rules (docs/architecture.md), checked on the source tree.

- no import cycle inside ``graphkit/`` (module-level and function-level imports, and the
  package ``__init__`` every import of a submodule runs);
- the generic core (ir, transform, check, diff, runtime, pipeline, util) imports nothing from
  the applications (``graphkit.ascend``, ``graphkit.wseg``), at any level;
- importing the pass manager stays light (no onnxruntime, diff or golden);
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
CORE = ("ir", "transform", "check", "diff", "runtime", "pipeline", "util")
APPLICATIONS = ("graphkit.ascend", "graphkit.wseg")
MAX_LINES = 500
WHY = "Longer than 500 lines because"

# Modules that other helpers split on their branches (issue 11); the lead removes each entry
# when that branch is merged.
LONG_MODULES_SPLIT_ELSEWHERE: dict[str, str] = {}  # module -> who splits it (empty: none pending)


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
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
    """Every graphkit module that ``module`` imports, at any level (module, function, class);
    with ``type_only`` false, not those under ``if TYPE_CHECKING:`` (they never run)."""
    path, is_package = MODULES[module]
    package = module if is_package else module.rpartition(".")[0]
    targets: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
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


def test_the_import_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "graphkit.runtime.backend" in graph["graphkit.runtime.ort"]
    # function-level: the pipeline imports the demo model inside load_source
    assert "graphkit.pipeline.demo_model" in graph["graphkit.pipeline.stages"]
    # type names only: seen by the layering check, not by the cycle check
    assert "graphkit.diff.records" in graph["graphkit.diff.text_view"]
    assert "graphkit.diff.records" not in import_graph(type_only=False)["graphkit.diff.text_view"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_graphkit():
    cycle = find_cycle(import_graph(type_only=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


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
