"""YAML from users, read within limits: no alias bombs, no runaway nesting, no huge files.

PyYAML's ``safe_load`` builds shared objects for aliases, so a "billion laughs" document loads
quickly, and then explodes in whatever walks it next (typing, ``repr`` in an error message,
JSON). :func:`load_yaml` refuses, before building any object:

- a text over :data:`MAX_BYTES`;
- nesting deeper than :data:`MAX_DEPTH` (PyYAML would hit a RecursionError);
- more than :data:`MAX_ALIASES` aliases, an alias to itself (a recursive structure), or a
  document whose aliases expand to more than :data:`MAX_NODES` nodes.

Every refusal is one :class:`~graphkit.util.errors.SpecError` naming ``origin``. Messages echo values
through :func:`graphkit.util.errors.shown`, capped.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from graphkit.util.errors import SpecError, one_line

MAX_BYTES = 4 * 2**20
MAX_DEPTH = 64
MAX_ALIASES = 1000
MAX_NODES = 100_000


def load_yaml(text: str, origin: str) -> Any:
    """Parse ``text`` (one YAML document) with the limits above; SpecError names ``origin``."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"{origin}: YAML text of {len(text)} characters is too large (limit {MAX_BYTES})")
    try:
        _check_events(text, origin)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_expansion(node, origin)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{origin}: invalid YAML{where}: {problem}") from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError(f"{origin}: invalid YAML value: {one_line(exc, 120)}") from exc


def load_yaml_file(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """Read and parse a YAML file within the limits; SpecError names the file.

    Refused before reading: a missing path, a folder, anything that is not a regular file (a
    FIFO would block, a device never end) and files over :data:`MAX_BYTES`; then text that is
    not UTF-8.
    """
    path = Path(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(f"{path}: is a folder, not a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{path}: not a regular file (a device, FIFO or socket)")
        if info.st_size > MAX_BYTES:
            raise SpecError(f"{path}: {info.st_size} bytes is too large for a {what} (limit {MAX_BYTES})")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such {what}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({one_line(exc, 120)})") from exc
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the {what} ({exc.strerror or one_line(exc)})") from exc
    return load_yaml(text, str(path))


def _check_events(text: str, origin: str) -> None:
    depth = aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):  # the parser is iterative: no recursion
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise SpecError(f"{origin}: YAML nested more than {MAX_DEPTH} levels deep (line {line})")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise SpecError(f"{origin}: YAML uses more than {MAX_ALIASES} aliases (*name); refused")


def _check_expansion(root: yaml.Node, origin: str) -> None:
    """Count the nodes the document stands for once aliases are expanded (memoized, no recursion)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            open_nodes.discard(key)
            if size > MAX_NODES:
                raise SpecError(
                    f"{origin}: YAML aliases expand to more than {MAX_NODES} values (an alias bomb?); refused"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise SpecError(f"{origin}: YAML alias refers to a structure that contains it (recursive); refused")
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            _check_unique_keys(node, origin)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise SpecError(f"{origin}: YAML alias refers to a structure that contains it (recursive); refused")
            if id(child) not in sizes:
                stack.append((child, False))


def _check_unique_keys(node: yaml.MappingNode, origin: str) -> None:
    """A key given twice in one mapping is an error (YAML requires unique keys; PyYAML would keep
    the last one silently, hiding a typo or a second setting)."""
    seen: set[str] = set()
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        if key.value in seen:
            line = key.start_mark.line + 1 if key.start_mark else "?"
            raise SpecError(f"{origin}: key {key.value[:60]!r} is given twice (line {line}); keep one")
        seen.add(key.value)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []
