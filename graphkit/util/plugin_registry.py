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
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from importlib import metadata
from types import ModuleType
from typing import Any, Generic, TypeVar

from graphkit.util.errors import GraphkitError, one_line

T = TypeVar("T")


def resolve(reference: str) -> Any:
    """Import ``"package.module:attr"`` (``attr`` may be dotted) and return the attribute."""
    module_name, _, attr = reference.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


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
            try:
                value = resolve(value) if isinstance(value, str) else value.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin is one line, never a traceback
                raise GraphkitError(
                    f"{self.what} '{name}' ({reference}, entry point group {self.group}) "
                    f"does not load: {type(exc).__name__}: {one_line(exc, 300)}"
                ) from exc
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
