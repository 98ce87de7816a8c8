"""Named registries filled by built-in entries and by Python entry points, loaded lazily.

One mechanism for every extension point (pipeline sources and stages, inference backends): a
:class:`Registry` maps a name to an object. Entries come from

- ``register(name, obj)``: an object, or a ``"module:attr"`` string imported on first use;
- the entry points of the registry's group (``[project.entry-points."graphkit.backends"]`` in a
  package's ``pyproject.toml``): read on the first lookup, each loaded only when its name is
  asked for. graphkit's own ``ascend`` and ``wseg`` plug in this way, as a user package would.

An entry that fails to import is a :class:`~graphkit.util.errors.GraphkitError` naming the
group, the name and the reference, not a traceback. The registry imports nothing it is given
until a name is looked up, so a base module never imports its plugins.

Every import of someone else's code (entry points here, pass files and pass packages in
:mod:`graphkit.transform.registry`) goes through :func:`import_guarded`: a plug-in that calls
``sys.exit(0)`` or raises ``KeyboardInterrupt`` while it is imported cannot end the command
(with success or otherwise); it becomes one error line naming it. Only a real SIGINT/SIGTERM
(seen by :func:`graphkit.util.signals.signals_seen`) still ends the command.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator, MutableMapping
from importlib import metadata
from types import ModuleType
from typing import Any, Generic, TypeVar

from graphkit.util.errors import GraphkitError, one_line
from graphkit.util.signals import signals_seen

T = TypeVar("T")


def resolve(reference: str) -> Any:
    """Import ``"package.module:attr"`` (``attr`` may be dotted) and return the attribute."""
    module_name, _, attr = reference.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


@contextlib.contextmanager
def no_bytecode() -> Iterator[None]:
    """Within the block, imports write no ``__pycache__`` (into a user's folders, say)."""
    previous = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = previous


def _raised(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: {exc.code} (it called sys.exit while being imported)"
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt (raised by the plug-in itself, not a Ctrl-C)"
    return f"{type(exc).__name__}: {one_line(exc, 300)}"


def import_guarded(load: Callable[[], T], what: str, error: type[GraphkitError] = GraphkitError, keep: tuple = ()) -> T:
    """``load()`` (an import of a plug-in); anything it raises, ``SystemExit`` and a
    ``KeyboardInterrupt`` of its own included, becomes ``error("{what}: {exception}")``.

    Exceptions of the types in ``keep`` pass through as they are (errors that already name the
    plug-in); so does a real SIGINT/SIGTERM delivered meanwhile.
    """
    with signals_seen() as seen:
        try:
            return load()
        except keep:
            raise
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001 - a plug-in may raise anything
            if seen or (seen is None and isinstance(exc, KeyboardInterrupt)):
                raise  # a real Ctrl-C or SIGTERM
            raise error(f"{what}: {_raised(exc)}") from exc


class Registry(MutableMapping[str, T], Generic[T]):
    """Name -> object; see the module docstring. Iteration order: registered, then entry points.

    ``group`` is the entry-point group read on first lookup (None: built-in entries only).
    Assigning ``registry[name] = obj`` registers (or replaces) ``name``; ``del``/``pop`` removes it.
    """

    def __init__(self, group: str | None, what: str, accepts: Callable[[Any], bool] | None = None, expected: str = ""):
        self.group = group
        self.what = what
        self.accepts = accepts  # what a loaded entry must satisfy (e.g. be a Stage); ``expected`` says it in words
        self.expected = expected
        self._entries: dict[str, Any] = {}  # name -> object, or "module:attr" not imported yet
        self._loaded: set[str] = set()
        self._scanned = group is None

    def register(self, name: str, obj: T | str) -> None:
        """Add ``name``; a string is a ``"module:attr"`` reference resolved on first use."""
        self._entries[name] = obj
        if isinstance(obj, str):
            self._loaded.discard(name)
        else:
            self._loaded.add(name)

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for entry in metadata.entry_points(group=self.group):
            self._entries.setdefault(entry.name, entry)

    def __getitem__(self, name: str) -> T:
        self._scan()
        value = self._entries[name]
        if name not in self._loaded:
            reference = value if isinstance(value, str) else getattr(value, "value", repr(value))
            entry = value
            value = import_guarded(
                lambda: resolve(entry) if isinstance(entry, str) else entry.load(),
                f"{self.what} '{name}' ({reference}, entry point group {self.group}) does not load",
            )
            self._check(name, reference, value)
            self._entries[name] = value
            self._loaded.add(name)
        return value

    def _check(self, name: str, reference: str, value: Any) -> None:
        """A loaded entry that is not what this registry holds is one line, not a later traceback."""
        if self.accepts is None or self.accepts(value):
            return
        hint = "; the reference names a module: write 'module:attribute'" if isinstance(value, ModuleType) else ""
        raise GraphkitError(
            f"{self.what} '{name}' ({reference}, entry point group {self.group}) is {type(value).__name__}, "
            f"not {self.expected}{hint}"
        )

    def __setitem__(self, name: str, obj: T) -> None:
        self.register(name, obj)

    def __delitem__(self, name: str) -> None:
        self._scan()
        del self._entries[name]
        self._loaded.discard(name)

    def __iter__(self) -> Iterator[str]:
        self._scan()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._scan()
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        self._scan()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.group!r}, {list(self)})"
