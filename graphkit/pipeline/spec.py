"""Pipeline specs: YAML text -> typed objects, with errors that cite the file and the key.

A pipeline names its source (an ONNX file, an export, or the built-in demo model), the golden
set, the ordered passes with options, the output, and optional ``handoff``/``eval``/``perf``
sections. Unknown keys are errors. ``--set key.path=value`` overrides any field before typing
(values are parsed as YAML: ``--set golden.batch_sizes=[1,4]``). Relative paths are relative to
the current working directory. YAML is read within limits (no alias bombs, no runaway nesting:
:mod:`graphkit.util.safe_yaml`); ``name`` and ``output.model`` must be plain names, so that the run
folder, the model file and the golden cache folder stay where they belong. :func:`spec_to_yaml` writes a spec back as YAML.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from graphkit.check.golden_inputs import Distribution, UserInputs
from graphkit.pipeline.run_folder import ARTIFACTS as RUN_FILES
from graphkit.runtime.ort import ValidationRuntime
from graphkit.transform.group import GROUP_KEY, GroupOptions, PassGroup
from graphkit.transform.pass_base import Pass
from graphkit.transform.registry import get_pass, load_pass_dir
from graphkit.util.errors import PipelineSpecError, SpecError, one_line, shown
from graphkit.util.files import check_plain_name
from graphkit.util.safe_yaml import MAX_DEPTH, load_yaml, load_yaml_file
from graphkit.util.tolerance import Tolerance, Tolerances
from graphkit.util.typed_config import from_mapping, to_mapping


@dataclass
class SourceSpec:
    """Where the model comes from: exactly one of ``onnx``, ``export``, ``builtin``, or a kind a
    plug-in registers (:data:`graphkit.pipeline.plugins.SOURCES`; ``export`` is wseg's). The
    options of a plug-in kind other than ``export`` are kept in ``plugin`` ({kind: options}) and
    written back under ``source`` by :func:`spec_to_yaml`."""

    onnx: str | None = None
    export: dict[str, Any] | None = None
    builtin: Literal["demo"] | None = None
    plugin: dict[str, dict[str, Any] | None] = field(default_factory=dict, init=False)


@dataclass
class GoldenSpec:
    """The golden set: where it lives, its cases (one per batch size) and the tolerances.

    ``producer: reference`` records outputs from the reference model (torch, for exports);
    ``onnxruntime`` from the source ONNX model. ``dir: null`` uses a cache folder keyed by the
    source model's hash (under :func:`graphkit.util.user_cache.cache_root`). ``batch_sizes: null`` takes
    them from the model (a static batch: that one; a dynamic batch: 1 and 2); symbolic dims not
    in ``dims`` and integer inputs not in ``input_ranges`` (``[low, high]``, both included) get
    defaults from the model too (:func:`graphkit.check.golden_defaults.golden_defaults`). A dim in
    ``dims`` is one size (``seq: 32``: a second size is chosen, not a multiple of it) or two
    (``seq: [32, 45]``); the golden cases alternate them (docs/validation.md). ``inputs`` adds
    cases from the user's data (npz files, an image folder, token files) and ``distributions``
    says how named inputs of the seeded cases are drawn (:mod:`graphkit.check.golden_inputs`).
    """

    dir: str | None = None
    batch_sizes: list[int] | None = None
    seed: int = 0
    dims: dict[str, int | list[int]] = field(default_factory=dict)
    input_ranges: dict[str, list[int]] = field(default_factory=dict)
    producer: Literal["onnxruntime", "reference"] = "onnxruntime"
    inputs: UserInputs = field(default_factory=UserInputs)
    distributions: dict[str, Distribution] = field(default_factory=dict)
    tolerance: Tolerance = field(default_factory=Tolerance)
    outputs: dict[str, Tolerance] = field(default_factory=dict)

    def tolerances(self) -> Tolerances:
        return Tolerances(self.tolerance, dict(self.outputs))


@dataclass
class ValidateSpec:
    """What is checked around each pass.

    ``each_batch_sizes`` limits the golden cases checked after each pass (None: all; the final
    model is always checked on all). When the source has a reference model (an export) and the
    golden set comes from onnxruntime, the export is first checked against the reference on
    ``reference_batch_sizes``. ``mode: region`` validates each pass on the region it rewrote
    (random boundary data, see graphkit.check.region; end to end when the region cannot decide) and
    the final model end to end on every golden case; ``full`` validates each pass end to end,
    except, on a model with at least ``shape_edit_region_mb`` MB of weights (null: never), a pass
    that edited only shape arithmetic and data movement, which is checked on its region
    (graphkit.check.region_scope; the final end-to-end check is the backstop). ``runtime`` is how every check runs onnxruntime (optimization level, threads; see
    graphkit.runtime.ort.ValidationRuntime): golden recording, per-pass, region and final checks.
    """

    verify_each: bool = True
    validate_each: bool = True
    mode: Literal["full", "region"] = "full"
    shape_edit_region_mb: float | None = 100.0
    each_batch_sizes: list[int] | None = None
    reference_batch_sizes: list[int] = field(default_factory=lambda: [1])
    localize: bool = False
    runtime: ValidationRuntime = field(default_factory=ValidationRuntime)

    def __post_init__(self):
        mb = self.shape_edit_region_mb
        if mb is not None and not (0 <= mb < float("inf")):
            raise SpecError(f"validate.shape_edit_region_mb: must be a size in MB >= 0 or null, got {mb}")


@dataclass
class OutputSpec:
    """Where the run folder goes and what the model file is called.

    ``provenance: false`` writes the model without the ``graphkit.pass``/``graphkit.step`` node
    metadata that names the pass that made each node (:mod:`graphkit.ir.provenance`).
    """

    dir: str = "runs/{name}"
    model: str = "model.onnx"
    external_data: bool | None = None
    provenance: bool = True


@dataclass
class PassSpec:
    """One pass in the pipeline: a registered name and its options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineSpec:
    """A whole pipeline file. ``name`` defaults to the file's stem; ``source`` may be left out
    when the model is given with ``--input`` (see :func:`parse_pipeline`)."""

    name: str
    source: SourceSpec
    passes: list[PassSpec] = field(default_factory=list)
    golden: GoldenSpec = field(default_factory=GoldenSpec)
    validate: ValidateSpec = field(default_factory=ValidateSpec)
    output: OutputSpec = field(default_factory=OutputSpec)
    on_failure: Literal["stop", "skip"] = "stop"
    pass_dirs: list[str] = field(default_factory=list)
    handoff: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None
    perf: dict[str, Any] | None = None
    precision: dict[str, Any] | None = None

    def run_dir(self) -> Path:
        """``output.dir`` with ``{name}`` replaced by the pipeline's name (no other fields)."""
        return Path(self.output.dir.replace("{name}", self.name))


@dataclass
class CommandLine:
    """What the command line sets on top of a pipeline file (None/empty: keep the file's)."""

    input_path: str | None = None
    passes: list[str | dict] | None = None
    dims: dict[str, int | list[int]] = field(default_factory=dict)
    input_ranges: dict[str, list[int]] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)  # --inputs FILE.npz: added to golden.inputs.files


def load_pipeline(
    path: str | os.PathLike, overrides: list[str] | None = None, command_line: CommandLine | None = None
) -> PipelineSpec:
    """Read, override and type a pipeline file; PipelineSpecError names the file and key."""
    try:
        data = load_yaml_file(path, "pipeline file")
    except SpecError as exc:
        raise PipelineSpecError(str(exc)) from exc
    return parse_pipeline(data, str(path), overrides, command_line)


def model_pipeline(model_path: str, passes: list[str | dict], command_line: CommandLine | None = None, overrides=None):
    """The pipeline of the one-command form ``graphkit apply MODEL.onnx``: the model as the source,
    ``passes``, golden defaults from the model, failed passes rolled back (``on_failure: skip``)."""
    data = {"name": default_name(model_path), "source": {"onnx": str(model_path)}, "passes": passes}
    data["on_failure"] = "skip"
    return parse_pipeline(data, f"graphkit apply {model_path}", overrides, command_line)


MODEL_MAGIC = b"\x08"  # an ONNX file starts with field 1 (ir_version, a varint): tag byte 0x08


def file_kind(path: str | os.PathLike) -> str:
    """``"onnx"`` or ``"yaml"``: what the file given to ``graphkit apply`` is, by its content.

    Text (UTF-8, no control characters but tab and newlines) is a pipeline; anything else a
    model. An empty or unreadable file goes by its extension (``.onnx``: a model), so that
    the model loader or the YAML reader names the problem. A ``.onnx`` file that holds text, or
    a ``.yaml``/``.yml`` file that holds binary data, is a PipelineSpecError naming the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    head = b""
    if path.is_file():  # never open a FIFO or device here: the loaders refuse them in one line
        try:
            with open(path, "rb") as handle:
                head = handle.read(4096)
        except OSError:
            pass
    if not head:
        return "onnx" if suffix == ".onnx" else "yaml"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head[: exc.start].decode("utf-8") if exc.start > len(head) - 4 else None
    is_text = text is not None and not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    if suffix == ".onnx" and is_text:
        raise PipelineSpecError(
            f"{path}: holds text (a YAML pipeline?), not an ONNX model; rename it to .yaml to run it as a pipeline"
        )
    if suffix in (".yaml", ".yml") and not is_text:
        raise PipelineSpecError(
            f"{path}: holds binary data (an ONNX model?), not a YAML pipeline; rename it to .onnx to run it as a model"
        )
    return "yaml" if is_text else "onnx"


def default_name(origin: str) -> str:
    """A pipeline's name when the file gives none: the file's stem, as a plain name."""
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(origin).stem).lstrip(".")[:128]
    return stem or "pipeline"


def parse_pipeline(
    data: Any, origin: str = "<pipeline>", overrides: list[str] | None = None, command_line: CommandLine | None = None
) -> PipelineSpec:
    """Type a pipeline mapping (already parsed from YAML).

    A missing ``name`` is the file's stem; a missing ``source`` is ``{onnx: --input}`` when the
    model is given with ``--input``, else an error that says so. ``command_line`` passes replace
    the file's; its dims and input ranges are added to ``golden``.
    """
    command_line = command_line or CommandLine()
    input_path = command_line.input_path
    if data is None:
        data = {}  # an empty file: everything from the defaults and --input
    if not isinstance(data, dict):
        raise PipelineSpecError(f"{origin}: a pipeline must be a mapping of keys, not {type(data).__name__}")
    data = copy.deepcopy(data)
    _normalize_passes(data, origin)  # first, so that --set passes.1.options.x=... finds the item
    for override in overrides or []:
        apply_override(data, override)
    if command_line.passes is not None:
        data["passes"] = list(command_line.passes)
    if command_line.dims or command_line.input_ranges or command_line.inputs:
        golden = data.get("golden")
        if golden is None:
            golden = data["golden"] = {}
        if isinstance(golden, dict) and command_line.inputs:
            inputs = golden.get("inputs")
            if inputs is None:
                inputs = golden["inputs"] = {}
            if isinstance(inputs, dict) and isinstance(inputs.get("files"), (list, type(None))):
                inputs["files"] = [*(inputs.get("files") or []), *command_line.inputs]
        if isinstance(golden, dict):
            for key, extra in (("dims", command_line.dims), ("input_ranges", command_line.input_ranges)):
                if extra:
                    golden[key] = (
                        {**(golden.get(key) or {}), **extra}
                        if isinstance(golden.get(key), (dict, type(None)))
                        else golden[key]
                    )
    _normalize_passes(data, origin)  # again, for a whole list given with --set passes=[...]
    if "name" not in data:
        data["name"] = default_name(origin)
    plugin_sources = _pop_plugin_sources(data, origin)
    if data.get("source") is None and not plugin_sources:
        if not input_path:
            raise PipelineSpecError(
                f"{origin}: source: required key is missing; give it in the file "
                "(source: {onnx: MODEL.onnx}) or name the model with --input MODEL.onnx"
            )
        data["source"] = {"onnx": str(input_path)}
    try:
        spec = from_mapping(PipelineSpec, data, "")
    except SpecError as exc:
        raise PipelineSpecError(f"{origin}: {exc}") from exc
    spec.source.plugin = plugin_sources
    try:
        check_plain_name(spec.name, "name")
        check_plain_name(spec.output.model, "output.model")
        if spec.output.model in RUN_FILES:
            raise SpecError(f"output.model: '{spec.output.model}' is a file or folder of the run itself")
        if not spec.output.dir.strip():
            raise SpecError("output.dir: must not be empty (give a folder, e.g. runs/{name})")
        paths = {"source.onnx": spec.source.onnx, "golden.dir": spec.golden.dir, "output.dir": spec.output.dir}
        user = spec.golden.inputs
        paths.update({f"golden.inputs.files[{i}]": f for i, f in enumerate(user.files)})
        paths.update({f"golden.inputs.tokens[{i}].file": t.file for i, t in enumerate(user.tokens)})
        paths["golden.inputs.images.dir"] = user.images.dir if user.images else None
        paths.update({f"pass_dirs[{i}]": d for i, d in enumerate(spec.pass_dirs)})
        for where, path in paths.items():
            if path is not None and "\x00" in path:  # YAML's "\0": the OS refuses it in any path
                raise SpecError(f"{where}: holds a NUL character")
    except SpecError as exc:
        raise PipelineSpecError(f"{origin}: {exc}") from exc
    sources = [k for k in ("onnx", "export", "builtin") if getattr(spec.source, k) is not None]
    sources += list(spec.source.plugin)
    if len(sources) != 1:
        raise PipelineSpecError(
            f"{origin}: source: give exactly one of onnx, export, builtin (got {sources or 'none'})"
        )
    return spec


def _pop_plugin_sources(data: dict, origin: str) -> dict[str, dict | None]:
    """Take the ``source`` keys that name a plug-in source kind out of ``data`` (typed later by
    the plug-in itself); unknown keys stay, for from_mapping to refuse with "did you mean"."""
    source = data.get("source")
    if not isinstance(source, dict):
        return {}
    known = {f.name for f in dataclasses.fields(SourceSpec) if f.init}
    extra = [key for key in source if isinstance(key, str) and key not in known]
    if not extra:
        return {}
    from graphkit.pipeline.plugins import SOURCES

    found = {}
    for key in extra:
        if key in SOURCES:
            options = source.pop(key)
            if options is not None and not isinstance(options, dict):
                raise PipelineSpecError(f"{origin}: source.{key}: expected a mapping of options, got {shown(options)}")
            found[key] = options
    if not source:
        data["source"] = None if found else source
    return found


def _normalize_passes(data: dict, origin: str) -> None:
    if isinstance(data.get("passes"), list):
        data["passes"] = [_normalize_pass_item(item, i, origin) for i, item in enumerate(data["passes"])]


def _normalize_pass_item(item: Any, index: int, origin: str, path: str = "passes") -> dict:
    where = f"{origin}: {path}[{index}]"
    if isinstance(item, str):
        return {"name": item, "options": {}}
    if isinstance(item, dict) and "name" in item:
        return item
    if isinstance(item, dict) and len(item) == 1:
        (name, options), *_ = item.items()
        return {"name": name, "options": {} if options is None else options}
    raise PipelineSpecError(f"{where}: expected a pass name, or a mapping {{name: options}}, got {shown(item)}")


def apply_override(data: dict, override: str) -> None:
    """Apply ``key.path=value`` to ``data`` in place (value parsed as YAML, within limits)."""
    if "=" not in override:
        raise PipelineSpecError(f"--set {shown(override)}: expected key.path=value")
    key, raw = override.split("=", 1)
    parts = key.split(".")
    if not all(part.isprintable() and part.strip() for part in parts) or len(parts) > MAX_DEPTH:
        raise PipelineSpecError(f"--set {shown(key)}: expected a dotted key path like golden.seed")
    try:
        value = load_yaml(raw, f"--set {key}") if raw else None
    except SpecError as exc:
        raise PipelineSpecError(str(exc)) from exc
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: depth + 1]), create=True)
    last = parts[-1]
    if isinstance(node, list):
        index = _index(last, node, key)
        node[index] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise PipelineSpecError(f"--set {key}: '{'.'.join(parts[:-1])}' is not a mapping or list")


def _child(node: Any, part: str, path: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(part, node, path)]
    if isinstance(node, dict):
        if node.get(part) is None and create:
            node[part] = {}
        return node[part]
    raise PipelineSpecError(f"--set {path}: parent is not a mapping or list")


def _index(part: str, node: list, path: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise PipelineSpecError(f"--set {path}: '{part}' is not an index of a list of {len(node)} items")
    return int(part)


def build_passes(
    spec: PipelineSpec, origin: str = "<pipeline>", extra_pass_dirs: list[str] | None = None
) -> list[Pass | PassGroup]:
    """Load user pass folders, then instantiate every pass with typed options (groups nested)."""
    for directory in [*spec.pass_dirs, *(extra_pass_dirs or [])]:
        load_pass_dir(directory)
    return _build_items(spec.passes, origin, "passes")


def build_pass_items(items: list[str | dict], origin: str = "passes") -> list[Pass | PassGroup]:
    """Passes and groups from pipeline-style items (``name``, ``{name: options}``, ``{group: {...}}``)
    without a pipeline around them; PipelineSpecError names ``origin`` and the item."""
    if not isinstance(items, list):
        raise PipelineSpecError(f"{origin}: expected a list of passes, got {shown(items)}")
    normalized = [_normalize_pass_item(item, k, origin) for k, item in enumerate(items)]
    return _build_items(
        [from_mapping(PassSpec, item, f"{origin}: passes[{k}]") for k, item in enumerate(normalized)], origin, "passes"
    )


def _build_items(items: list[PassSpec], origin: str, path: str) -> list[Pass | PassGroup]:
    passes: list[Pass | PassGroup] = []
    for index, item in enumerate(items):
        if item.name == GROUP_KEY:
            passes.append(_build_group(item.options, origin, f"{path}[{index}].group"))
            continue
        where = f"{origin}: {path}[{index}] ({item.name})"
        try:
            cls = get_pass(item.name, where=f"{origin}: {path}[{index}]")
            passes.append(cls.from_spec(item.options, f"{where}.options"))
        except (SpecError, ValueError) as exc:  # ValueError: an Options check that did not use SpecError
            message = one_line(exc, 500)
            raise PipelineSpecError(message if message.startswith(origin) else f"{where}.options: {message}") from exc
    return passes


def _build_group(options: dict, origin: str, path: str) -> PassGroup:
    """A ``group:`` item: its options typed, its passes normalized and built (errors name the path)."""
    try:
        typed = from_mapping(GroupOptions, options, f"{origin}: {path}")
    except (SpecError, ValueError) as exc:
        message = one_line(exc, 500)
        raise PipelineSpecError(message if message.startswith(origin) else f"{origin}: {path}: {message}") from exc
    inner = [_normalize_pass_item(item, k, origin, f"{path}.passes") for k, item in enumerate(typed.passes)]
    specs = [from_mapping(PassSpec, item, f"{origin}: {path}.passes[{k}]") for k, item in enumerate(inner)]
    return PassGroup(_build_items(specs, origin, f"{path}.passes"), typed.until_fixed_point, typed.max_iterations)


def spec_to_yaml(spec: PipelineSpec) -> str:
    """The spec as YAML text that :func:`parse_pipeline` reads back to an equal spec."""
    data = to_mapping(spec)
    data["source"].update(data["source"].pop("plugin"))
    data["passes"] = [{p["name"]: p["options"]} for p in data["passes"]]
    return yaml.safe_dump(data, sort_keys=False)
