"""Explicit registration of passes by kebab-case name.

Built-in passes live in the repo's ``passes/`` folder, installed as the ``graphkit_passes``
package; user passes are ``.py`` files or packages (folders with ``__init__.py``) in any folder
given with ``--passes-dir`` or a pipeline's ``pass_dirs:``, imported by path, or installed
packages that name a Pass subclass under the ``graphkit.passes`` entry-point group (the entry
name is the pass name; its module is imported only when that name is asked for, or when every
pass is listed). Duplicate names fail at import; unknown names fail
with the closest registered names.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import keyword
import pkgutil
import re
import sys
import types
from pathlib import Path

from graphkit.transform.group import GROUP_KEY
from graphkit.transform.pass_base import Pass
from graphkit.util.errors import GraphkitError, PassLoadError, UnknownPassError, printable
from graphkit.util.plugin_registry import Registry, import_guarded, no_bytecode
from graphkit.util.typed_config import close_names

KEBAB = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")  # used with fullmatch: '$' would let "name\n" through
MAX_NAME = 64  # a pass name becomes a file name, a function name and a reproducer folder name


def pass_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a pass (None when it can): kebab-case, at most MAX_NAME characters,
    and its snake_case form (the module and function name) not a Python keyword."""
    if not isinstance(name, str):
        return f"pass name must be a string, not {type(name).__name__}"
    shown = repr(name) if len(name) <= MAX_NAME else f"{name[:MAX_NAME]!r}... ({len(name)} characters)"
    if len(name) > MAX_NAME:
        return f"pass name {shown} is longer than {MAX_NAME} characters"
    if not KEBAB.fullmatch(name):
        return f"pass name {shown} is not kebab-case (like 'fold-shapes')"
    if keyword.iskeyword(name.replace("-", "_")):
        return f"pass name {shown} is a Python keyword (it becomes a function name)"
    return None


_passes: dict[str, type[Pass]] = {}
_origins: dict[str, str] = {}
_loaded_files: set[Path] = set()
_builtins_loaded = False
PLUGIN_PASSES: Registry[type[Pass]] = Registry("graphkit.passes", "pass")  # installed plug-in passes


def register(name: str):
    """Class decorator: register a Pass subclass under ``name`` (kebab-case, unique)."""

    def decorate(cls: type[Pass]) -> type[Pass]:
        origin = getattr(sys.modules.get(cls.__module__), "__file__", None) or cls.__module__
        problem = pass_name_problem(name)
        if problem:
            raise PassLoadError(f"{origin}: {problem}")
        if name == GROUP_KEY:
            raise PassLoadError(f"{origin}: pass name '{name}' is reserved for groups of passes in a pipeline")
        if not (isinstance(cls, type) and issubclass(cls, Pass)):
            raise PassLoadError(f"{origin}: '{name}' is not a graphkit.transform.pass_base.Pass subclass")
        if name in _passes and _origins[name] != origin:
            raise PassLoadError(f"pass name '{name}' is registered twice: by {_origins[name]} and by {origin}")
        if not cls.exact and cls.tolerance is None:
            raise PassLoadError(f"{origin}: approximate pass '{name}' must declare a tolerance")
        cls.name = name
        _passes[name] = cls
        _origins[name] = origin
        return cls

    return decorate


def load_builtin_passes() -> None:
    """Import every module of the built-in ``graphkit_passes`` package (once)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    package = importlib.import_module("graphkit_passes")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"graphkit_passes.{info.name}")
    _builtins_loaded = True


def load_pass_dir(directory: str | Path) -> list[str]:
    """Import every pass module of ``directory``; returns the names of the passes it registered.

    A pass module is a ``*.py`` file or a package (a folder with ``__init__.py``, whose own
    modules it may import relatively: ``from .helpers import x``); names starting with '_' or
    '.' are skipped, and so are folders without ``__init__.py``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PassLoadError(f"{directory}: pass directory does not exist")
    before = set(_passes)
    entries = [p for p in directory.iterdir() if not p.name.startswith(("_", "."))]
    for path in sorted(entries, key=lambda p: p.name):
        if path.suffix == ".py":
            if not path.is_file():  # a FIFO would block the import forever
                raise PassLoadError(f"{path}: not a regular file")
            _load_pass_module(path, path.resolve())
        elif path.is_dir() and (path / "__init__.py").exists():
            if not (path / "__init__.py").is_file():
                raise PassLoadError(f"{path / '__init__.py'}: not a regular file")
            _load_pass_module(path, path.resolve())
    return sorted(set(_passes) - before)


def _user_passes_parent() -> None:
    """Make ``graphkit_user_passes`` an importable (empty) parent package.

    A pass package's ``from . import helpers`` resolves its own name's parents first; without
    this parent in ``sys.modules`` it fails with "No module named 'graphkit_user_passes'".
    """
    if "graphkit_user_passes" not in sys.modules:
        parent = types.ModuleType("graphkit_user_passes", "user pass files and packages (pass folders)")
        parent.__path__ = []  # a package with no folder of its own: nothing else is found under it
        sys.modules["graphkit_user_passes"] = parent


def _load_pass_module(path: Path, resolved: Path) -> None:
    """Import one user pass file or package (once per resolved path)."""
    if resolved in _loaded_files:
        return
    stem = resolved if resolved.is_dir() else resolved.with_suffix("")
    module_name = "graphkit_user_passes." + re.sub(r"\W", "_", str(stem))
    if resolved.is_dir():
        spec = importlib.util.spec_from_file_location(
            module_name, resolved / "__init__.py", submodule_search_locations=[str(resolved)]
        )
    else:  # an explicit loader: a 'x.py' symlink to a file without '.py' has no loader by suffix
        loader = importlib.machinery.SourceFileLoader(module_name, str(resolved))
        spec = importlib.util.spec_from_file_location(module_name, resolved, loader=loader)
    module = importlib.util.module_from_spec(spec)
    _user_passes_parent()
    sys.modules[module_name] = module
    kind = "pass package" if resolved.is_dir() else "pass file"
    try:
        with no_bytecode():  # nothing is written into the user's pass folder
            load = spec.loader.exec_module
            import_guarded(lambda: load(module), f"{path}: cannot import {kind}", PassLoadError, keep=(PassLoadError,))
    except BaseException:
        for name in [m for m in sys.modules if m == module_name or m.startswith(module_name + ".")]:
            del sys.modules[name]
        raise
    _loaded_files.add(resolved)


def get_pass(name: str, where: str = "pass") -> type[Pass]:
    """The pass class registered as ``name`` (a built-in, a loaded pass folder, or an installed
    plug-in); UnknownPassError lists close names."""
    load_builtin_passes()
    if name not in _passes and name in PLUGIN_PASSES:
        _load_plugin_pass(name)
    if name not in _passes:
        known = {*_passes, *PLUGIN_PASSES}
        raise UnknownPassError(f"{where}: unknown pass '{name}'{close_names(name, known)}; see 'graphkit passes'")
    return _passes[name]


def all_passes() -> dict[str, type[Pass]]:
    """All registered passes by name: built-ins, loaded pass folders and every installed plug-in."""
    load_builtin_passes()
    for name in PLUGIN_PASSES:
        _load_plugin_pass(name)
    return dict(sorted(_passes.items()))


def _load_plugin_pass(name: str) -> None:
    """Import the plug-in pass ``name`` and register it under its entry name (once);
    PassLoadError when it does not load, is not a Pass subclass, or clashes with another pass."""
    try:
        cls = PLUGIN_PASSES[name]
    except GraphkitError as exc:
        raise PassLoadError(str(exc)) from exc
    entry = f"pass '{name}' (entry point group {PLUGIN_PASSES.group})"
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise PassLoadError(f"{entry}: names {printable(repr(cls))[:200]}, not a graphkit Pass subclass")
    if _passes.get(name) is cls:
        return
    if name in _passes:
        raise PassLoadError(f"{entry}: the name is already taken by {_origins[name]}")
    if cls.name and _passes.get(cls.name) is cls and cls.name != name:
        raise PassLoadError(f"{entry}: the class is registered as '{cls.name}'; the entry name must be the same")
    register(name)(cls)


def origin_of(name: str) -> str:
    """The file that registered pass ``name``."""
    return _origins[name]
