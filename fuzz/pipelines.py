"""Pipeline YAML to feed ``apply``: a valid demo-like pipeline, then hostile edits.

Edits: unknown keys, wrong types, hostile paths (``..``, absolute, newlines, separators in a
plain name), NaN/inf/negative tolerances, bad batch sizes and dims, alias bombs ("billion
laughs") in any section, deep nesting, YAML that does not parse or is not UTF-8, and shell
code in the ATC hand-off fields. ``--set`` overrides are drawn from the same pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from fuzz.choices import Choices
from fuzz.models import PWNED

BUILTIN_PASSES = ["eliminate-noops", "softmax-transpose", "fold-shapes", "dynamic-batch", "fold-batchnorm"]

HOSTILE_PATHS = [
    "../../escaped.onnx",
    "../../../escaped",
    "@@ROOT@@/absolute.onnx",
    "sub/dir/model.onnx",
    "model\nname.onnx",
    "model\x00.onnx",
    "",
    ".",
    "..",
    "/proc/graphkit-fuzz/model.onnx",
    "inputs/model.onnx",
    "~/home.onnx",
]
HOSTILE_NAMES = ["../../escaped", "a/b", "@@ROOT@@/abs", "name\nwith newline", "", "..", "x" * 300, "ok-name"]
BAD_NUMBERS = [math.nan, math.inf, -math.inf, -1, -1.0e-5, 0, 2**63, "1e-5", None, [], {}, True]
INJECTION = f"Ascend310P3\ntouch {PWNED} #"


@dataclass
class PipelineCase:
    """A generated pipeline file and the ``--set`` overrides that go with it."""

    text: bytes
    label: str
    overrides: list[str] = field(default_factory=list)
    injection: bool = False  # shell code was put into a field that reaches a script
    must_reject: list[str] = field(default_factory=list)  # values issue 10 says are errors
    golden_dir: str | None = None  # golden.dir when an edit changed it (a folder the run may write)


def base_pipeline(choices: Choices, source: dict, golden_dir: str | None, passes: list) -> dict:
    """A valid pipeline mapping around ``source`` (``{'builtin': 'demo'}`` or ``{'onnx': path}``)."""
    data: dict[str, Any] = {
        "name": "fuzz",
        "source": source,
        "golden": {"batch_sizes": [1, 2], "tolerance": {"atol": 1.0e-5, "rtol": 1.0e-4}},
        "passes": passes,
        "output": {"dir": "out"},
    }
    if golden_dir:
        data["golden"]["dir"] = golden_dir
    if choices.chance(0.3):
        data["validate"] = {"mode": choices.pick(["full", "region"])}
    if choices.chance(0.2):
        data["on_failure"] = "skip"
    return data


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into ``node`` (mappings and lists)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, prefix + (i,))
    return found


def _set(data: dict, path: tuple, value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _wrong_value(choices: Choices) -> Any:
    return choices.pick(BAD_NUMBERS + ["text", [1, 2], {"k": "v"}, "a\nb", 10**30])


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """YAML text of a value that expands to ``width ** levels`` strings through aliases."""
    lines = [f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines)


def _edit(choices: Choices, data: dict) -> tuple[str, str]:
    """Apply one edit to ``data``; returns (label, extra YAML text appended after the dump)."""
    kind = choices.pick(
        [
            "unknown-key",
            "wrong-type",
            "wrong-type",
            "hostile-model-path",
            "hostile-name",
            "hostile-golden-dir",
            "hostile-source",
            "hostile-pass-dir",
            "tolerance",
            "output-tolerance",
            "batch-sizes",
            "dims",
            "alias-bomb",
            "deep-nesting",
            "atc-injection",
            "sections",
        ]
    )
    if kind == "unknown-key":
        mappings = [p for p in _paths(data) if isinstance(_get(data, p), dict)] + [()]
        where = choices.pick(mappings)
        (_get(data, where) if where else data)[choices.pick(["colour", "passes_", "extra", "outputs2"])] = 1
        return kind, ""
    if kind == "wrong-type":
        path = choices.pick(_paths(data))
        _set(data, path, _wrong_value(choices))
        return f"wrong-type-{'.'.join(map(str, path))}", ""
    if kind == "hostile-model-path":
        data["output"]["model"] = choices.pick(HOSTILE_PATHS)
        return kind, ""
    if kind == "hostile-name":
        data["name"] = choices.pick(HOSTILE_NAMES)
        data["golden"].pop("dir", None)  # the name reaches the golden cache path
        return kind, ""
    if kind == "hostile-golden-dir":
        data["golden"]["dir"] = choices.pick(HOSTILE_PATHS + ["inputs/model.onnx"])
        return kind, ""
    if kind == "hostile-source":
        data["source"] = choices.pick(
            [
                {"onnx": choices.pick(HOSTILE_PATHS)},
                {"onnx": "inputs/model.onnx", "builtin": "demo"},
                {},
                {"builtin": "nope"},
                {"export": {"model": "wseg", "width": 0.03125, "input_size": [32, 32], "opset": 99}},
                {"export": {"model": "nope"}},
            ]
        )
        return kind, ""
    if kind == "hostile-pass-dir":
        data["pass_dirs"] = [choices.pick(HOSTILE_PATHS + ["inputs/model.onnx", "/proc"])]
        return kind, ""
    if kind == "tolerance":
        data["golden"]["tolerance"][choices.pick(["atol", "rtol"])] = choices.pick(BAD_NUMBERS)
        return kind, ""
    if kind == "output-tolerance":
        name = choices.pick(["prob", "flat", "mask", "no_such_output"])
        entry = {
            choices.pick(["atol", "rtol", "argmax_axis", "min_argmax_agreement"]): choices.pick(BAD_NUMBERS + [99])
        }
        data["golden"]["outputs"] = {name: entry}
        return kind, ""
    if kind == "batch-sizes":
        data["golden"]["batch_sizes"] = choices.pick([[0], [], [-1], [2**40], [1, 1], ["1"], [1.5], None, 3])
        return kind, ""
    if kind == "dims":
        data["golden"]["dims"] = {choices.pick(["batch", "nope", "x"]): choices.pick([0, -1, 2**40, "abc", 10**6])}
        return kind, ""
    if kind == "alias-bomb":
        section = choices.pick(["perf", "eval", "handoff", "golden", "unknown", "passes"])
        data.pop(section, None)
        return f"alias-bomb-{section}", f"{section}:\n{alias_bomb()}\n"
    if kind == "deep-nesting":
        depth = choices.pick([50, 1000, 20_000])
        section = choices.pick(["perf", "handoff", "name", "passes"])
        data.pop(section, None)
        return f"deep-nesting-{section}", f"{section}: {'[' * depth}{']' * depth}\n"
    if kind == "atc-injection":
        field_name = choices.pick(["soc_version", "cann_version", "output_prefix", "precision_mode"])
        data["handoff"] = {"atc": {field_name: INJECTION, "batch_sizes": [1]}}
        return f"atc-injection-{field_name}", ""
    section = choices.pick(["perf", "eval", "handoff"])
    data[section] = choices.pick([{"nope": 1}, [], "text", {"batch_sizes": [0]}, {"atc": {"batch_sizes": "x"}}])
    return f"section-{section}", ""


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


SET_OVERRIDES = [
    "golden.batch_sizes=[0]",
    "golden.batch_sizes=[]",
    "golden.tolerance.atol=.nan",
    "golden.tolerance.rtol=-1",
    "golden.tolerance.atol=.inf",
    "golden.seed=-1",
    "output.model=../../escaped.onnx",
    "name=../../escaped",
    "passes.9.options.x=1",
    "passes.0.options.nope=1",
    "validate.mode=bogus",
    "=x",
    "a..b=1",
    "golden=[1",
    "passes=[{nope: 1}]",
    "golden.dims.batch=abc",
    "handoff.atc.soc_version=" + INJECTION,
    "perf=&a [*a]",
    "noequals",
]


def pipeline_case(choices: Choices, source: dict, golden_dir: str | None, passes: list) -> PipelineCase:
    """A pipeline file: valid (about 25 %), or with one to three hostile edits, or unparseable."""
    data = base_pipeline(choices, source, golden_dir, passes)
    roll = choices.unit()
    if roll < 0.25:
        return PipelineCase(yaml.safe_dump(data, sort_keys=False).encode(), "pipeline-valid")
    if roll < 0.33:
        text, label = choices.pick(
            [
                (b"name: [unclosed\n", "pipeline-syntax"),
                (b"\xff\xfe name: x\n", "pipeline-not-utf8"),
                (b"", "pipeline-empty"),
                (b"--- {name: a}\n--- {name: b}\n", "pipeline-two-documents"),
                (b"name: !!python/object/apply:os.system ['true']\n", "pipeline-python-tag"),
                (b"name: x\nname: y\nsource: {builtin: demo}\n", "pipeline-duplicate-key"),
                (b"\tname: x\n", "pipeline-tab"),
                (b"- just\n- a list\n", "pipeline-list"),
            ]
        )
        return PipelineCase(text, label)
    labels, extra = [], ""
    for _ in range(choices.pick([1, 1, 2, 3])):
        try:
            label, text = _edit(choices, data)
        except (KeyError, TypeError, IndexError, AttributeError):
            continue  # an earlier edit removed or retyped what this one edits
        labels.append(label)
        extra += text
        if text:
            break  # appended sections go last
    overrides = [choices.pick(SET_OVERRIDES)] if choices.chance(0.2) else []
    rejected = _must_reject(data, overrides)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + extra
    injection = any("injection" in label for label in labels) or any(PWNED in o for o in overrides)
    golden = data.get("golden") if isinstance(data.get("golden"), dict) else {}
    chosen = golden.get("dir") if isinstance(golden.get("dir"), str) and golden.get("dir") != golden_dir else None
    return PipelineCase(text.encode(), "pipeline-" + "+".join(labels), overrides, injection, rejected, chosen)


def _bad_tolerance(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isnan(value) or math.isinf(value) or value < 0


REJECTED_OVERRIDES = set(SET_OVERRIDES[:8])  # the first ones must be refused


def _must_reject(data: dict, overrides: list[str]) -> list[str]:
    """The values in a generated pipeline that issue 10 says must be errors."""
    found = []
    golden = data.get("golden") if isinstance(data.get("golden"), dict) else {}
    tolerance = golden.get("tolerance") if isinstance(golden.get("tolerance"), dict) else {}
    for key in ("atol", "rtol"):
        if _bad_tolerance(tolerance.get(key)):
            found.append(f"golden.tolerance.{key}: {tolerance[key]!r}")
    outputs = golden.get("outputs") if isinstance(golden.get("outputs"), dict) else {}
    for name, entry in outputs.items():
        if name == "no_such_output":
            found.append("golden.outputs: unknown output name")
        for key, value in entry.items() if isinstance(entry, dict) else ():
            if key in ("atol", "rtol") and _bad_tolerance(value):
                found.append(f"golden.outputs.{name}.{key}: {value!r}")
            if key == "argmax_axis" and value == 99:
                found.append("golden.outputs: argmax_axis out of range")
    if golden.get("batch_sizes") in ([0], [], [-1]):
        found.append(f"golden.batch_sizes: {golden['batch_sizes']}")
    if golden.get("dir") == "inputs/model.onnx":
        found.append("golden.dir is a file")
    output = data.get("output") if isinstance(data.get("output"), dict) else {}
    if output.get("model") in ("../../escaped.onnx", "@@ROOT@@/absolute.onnx", "sub/dir/model.onnx"):
        found.append(f"output.model {output['model']!r} is not a plain name in the run folder")
    if data.get("name") in ("../../escaped", "a/b", "@@ROOT@@/abs", "name\nwith newline"):
        found.append(f"name {data['name']!r} is not a plain name")
    found += [f"--set {o}" for o in overrides if o in REJECTED_OVERRIDES]
    return found
