"""Exact ATC command lines for a model, as a runnable script plus a manifest JSON.

:func:`plan_commands` reads input names, dtypes and shapes from the graph and returns an
:class:`AtcPlan`: one static-batch command per batch size and optionally one dynamic-batch
command (``--dynamic_batch_size``), after checking the dynamic profile rules locally
(:func:`check_dynamic_profiles`). :func:`write_plan` writes ``atc_commands.sh`` (runs in its own
folder; ``ATC=/path/to/atc`` overrides the executable) and ``atc_manifest.json`` (inputs,
outputs and their order, profiles, expected OM names) atomically.

Command form (the Ascend ModelZoo READMEs; see docs/ascend.md)::

    atc --model=M.onnx --framework=5 --output=wseg_bs4 --input_format=NCHW
        --input_shape="image:4,3,1024,1024" --soc_version=Ascend310P3 --log=error
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from graphkit import __version__
from graphkit.ascend.option_values import parse_shape_range
from graphkit.ascend.spec import (
    ATC_DEFAULT_PRECISION_MODE,
    AtcSpec,
    check_plain_text,
    parse_input_shape,
)
from graphkit.ir.model_io import graph_inputs
from graphkit.runtime.feeds import input_dims, np_dtype
from graphkit.util.errors import SpecError
from graphkit.util.files import make_folder, write_text_atomic

SCRIPT_NAME = "atc_commands.sh"
MANIFEST_NAME = "atc_manifest.json"
MBATCH_INPUT = "ascend_mbatch_shape_data"  # extra input ATC adds to dynamic-batch OMs
# --dynamic_batch_size: 2 to 100 profiles (E10035 below the minimum, E10036 above the maximum),
# unique (E10039), each > 0 (E10038); 1..2048 is ATC's *recommendation* per profile, not a limit.
# Sources: hiascend.com ATC reference "--dynamic_batch_size" (canncommercial/700 atlasatc_16_0052);
# hicann/ge base/common/error_registry/error_registry.cc (E10035..E10039).
MIN_PROFILES = 2
MAX_PROFILES = 100
RECOMMENDED_MAX_BATCH = 2048
# Source: the same "--dynamic_batch_size" page: not with --dynamic_image_size, --dynamic_dims,
# --input_shape_range.
EXCLUSIVE_DYNAMIC_OPTIONS = ("--dynamic_image_size", "--dynamic_dims", "--input_shape_range")


@dataclass
class AtcCommand:
    """One ATC invocation producing one OM."""

    kind: str  # "static" or "dynamic"
    batch_sizes: list[int]
    output: str  # the --output prefix, relative to the plan folder
    args: list[str]  # everything after the executable

    def argv(self, atc: str = "atc") -> list[str]:
        """The full argument vector with ``atc`` as the executable."""
        return [atc, *self.args]

    def line(self, atc: str = "atc") -> str:
        """The shell-quoted command line."""
        return shlex.join(self.argv(atc))

    def om_names(self) -> list[str]:
        """The OM file names ATC may write (the OS/arch suffix depends on the ATC build)."""
        return [f"{self.output}.om", f"{self.output}_<os>_<arch>.om"]


@dataclass
class AtcPlan:
    """All ATC commands for one model, with what the manifest records."""

    model_path: str
    spec: AtcSpec
    inputs: list[dict]
    outputs: list[dict]
    commands: list[AtcCommand] = field(default_factory=list)
    script: Path | None = None
    manifest: Path | None = None
    warnings: list[str] = field(default_factory=list)
    ais_bench_dym_dims: list[str] = field(default_factory=list)
    ais_bench_dym_hw: list[str] = field(default_factory=list)

    def manifest_dict(self) -> dict:
        """The manifest content (JSON-able)."""
        return {
            "generator": f"graphkit {__version__}",
            "model": self.model_path,
            "soc_version": self.spec.soc_version,
            "cann": self.spec.cann,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "output_order": [o["name"] for o in self.outputs],
            "oms": [
                {
                    "kind": c.kind,
                    "batch_sizes": c.batch_sizes,
                    "output": c.output,
                    "om_glob": f"{c.output}*.om",
                    "om_names": c.om_names(),
                    "extra_inputs": [MBATCH_INPUT] if c.kind == "dynamic" else [],
                    "command": c.line(),
                }
                for c in self.commands
            ],
            "dynamic_batch_sizes": self.spec.dynamic_batch_sizes,
            "dynamic_dims": self.spec.dynamic_dims,
            "ais_bench_dymDims": self.ais_bench_dym_dims,
            "dynamic_image_size": self.spec.dynamic_image_size,
            "ais_bench_dymHW": self.ais_bench_dym_hw,
            "input_shape_range": self.spec.input_shape_range,
            "precision_mode": self.spec.precision_mode_v2
            and f"precision_mode_v2={self.spec.precision_mode_v2}"
            or self.spec.precision_mode
            or f"{ATC_DEFAULT_PRECISION_MODE} (ATC's default; not given)",
            "warnings": self.warnings,
            "script": SCRIPT_NAME,
        }


def check_dynamic_profiles(
    sizes: list[int], extra_args: list[str] = (), where: str = "dynamic_batch_sizes"
) -> list[str]:
    """ATC's ``--dynamic_batch_size`` rules, checked before ATC runs; returns warnings.

    SpecError for what ATC refuses: fewer than 2 or more than 100 profiles, duplicates, a
    profile <= 0, ``--dynamic_image_size``/``--dynamic_dims``/``--input_shape_range`` at the same
    time. Profiles over 2048 are only outside ATC's recommended range: a warning.
    """
    if len(sizes) < MIN_PROFILES:
        raise SpecError(
            f"{where}: ATC needs {MIN_PROFILES} to {MAX_PROFILES} batch profiles, got {len(sizes)} ({sizes}) (ATC: E10035)"
        )
    if len(sizes) > MAX_PROFILES:
        raise SpecError(
            f"{where}: ATC needs {MIN_PROFILES} to {MAX_PROFILES} batch profiles, got {len(sizes)} (ATC: E10036)"
        )
    if len(set(sizes)) != len(sizes):
        raise SpecError(f"{where}: batch profiles must be unique, got {sizes} (ATC: E10039)")
    bad = [s for s in sizes if s <= 0]
    if bad:
        raise SpecError(f"{where}: batch profiles must be > 0, got {bad} (ATC: E10038)")
    clash = [a.split("=", 1)[0] for a in extra_args if a.split("=", 1)[0] in EXCLUSIVE_DYNAMIC_OPTIONS]
    if clash:
        raise SpecError(f"{where}: --dynamic_batch_size cannot be combined with {clash[0]} (extra_args)")
    large = [s for s in sizes if s > RECOMMENDED_MAX_BATCH]
    if large:
        return [f"{where}: profiles {large} are above {RECOMMENDED_MAX_BATCH}, ATC's recommended maximum per profile"]
    return []


def check_input_names(model: onnx.ModelProto, spec: AtcSpec, model_path: str | os.PathLike) -> dict[str, list[int]]:
    """``spec.input_shape`` parsed; SpecError when it, ``input_shape_range`` or ``input_fp16_nodes``
    names a non-input, or a bare ``out_nodes`` entry is not a graph output."""
    planned = parse_input_shape(
        spec.input_shape, allow_dynamic=spec.dynamic_dims is not None or spec.dynamic_image_size is not None
    )
    graph_names = [v.name for v in graph_inputs(model)]
    ranged = list(parse_shape_range(spec.input_shape_range)) if spec.input_shape_range else []
    outputs = [o.name for o in model.graph.output]
    bare = [e for e in spec.out_nodes or [] if not re.fullmatch(r".+:[0-9]+", e)]
    unknown = [e for e in bare if e not in outputs]
    if unknown:
        raise SpecError(
            f"out_nodes: '{unknown[0]}' is not an output of {model_path} (outputs: {', '.join(outputs)}); "
            "an entry without ':index' names a graph output (ATC, ONNX only)"
        )
    named = (
        ("input_shape", list(planned)),
        ("input_shape_range", ranged),
        ("input_fp16_nodes", spec.input_fp16_nodes or []),
    )
    for label, names in named:
        unknown = [n for n in names if n not in graph_names]
        if unknown:
            raise SpecError(
                f"{label}: '{unknown[0]}' is not a graph input of {model_path} (inputs: {', '.join(graph_names)})"
            )
    return planned


def plan_commands(model: onnx.ModelProto, spec: AtcSpec, model_path: str | os.PathLike) -> AtcPlan:
    """The ATC commands for ``model`` (stored at ``model_path``) under ``spec``.

    Non-batch dims come from the graph or ``spec.input_shape``; a dim that is symbolic in
    both is a SpecError naming the input and axis. Names in ``input_shape`` or
    ``input_fp16_nodes`` that are not graph inputs are SpecErrors, and so is a model path with
    a control character (it would reach the generated script).
    """
    spec.validate()
    resolved = str(Path(model_path).resolve())
    check_plain_text(resolved, "model path")
    warnings: list[str] = []
    if spec.dynamic_batch_sizes is not None:
        warnings += check_dynamic_profiles(list(spec.dynamic_batch_sizes), spec.extra_args)
    planned = check_input_names(model, spec, model_path)
    graph_names = [v.name for v in graph_inputs(model)]
    if spec.insert_op_conf and spec.input_fp16_nodes and len(graph_names) == 1:
        # GE registry E10034: "Nodes (for example, %s) connected to AIPP must not be of type fp16."
        raise SpecError(
            f"input_fp16_nodes: '{graph_names[0]}' is the model's only input, which AIPP (insert_op_conf) feeds; "
            "ATC refuses fp16 there (ATC: E10034)"
        )
    if spec.dynamic_dims is not None:
        missing = [n for n in graph_names if n not in planned]
        if missing:
            raise SpecError(
                f"input_shape: dynamic_dims needs every input's shape in input_shape; '{missing[0]}' is missing"
            )
    static_needed = bool(spec.batch_sizes) or spec.dynamic_batch_sizes is not None
    range_only = spec.input_shape_range is not None and not static_needed  # dims come from the ranges
    inputs = []
    templates: dict[str, list[int]] = {}
    for value in graph_inputs(model):
        dims = input_dims(value)
        template = list(planned.get(value.name, dims))
        if len(template) != len(dims):
            raise SpecError(f"input_shape: '{value.name}' has {len(dims)} dims in the graph, {len(template)} given")
        if not template:
            raise SpecError(f"input '{value.name}' is a scalar; ATC batch planning needs a batch dim")
        for axis in range(1, len(template)):
            if range_only:
                break
            hw_axis = spec.dynamic_image_size is not None and len(template) == 4 and axis >= 2
            if hw_axis and not static_needed and not (isinstance(template[axis], int) and template[axis] > 0):
                template[axis] = -1  # dynamic_image_size: H and W are the profiles' (no static OM needs them)
                continue
            if template[axis] == -1 and static_needed:
                raise SpecError(
                    f"input_shape: '{value.name}' axis {axis} is -1 (dynamic_dims); static or dynamic-batch OMs need "
                    "every other dim: set batch_sizes: [] and no dynamic_batch_sizes"
                )
            if template[axis] != -1 and (not isinstance(template[axis], int) or template[axis] <= 0):
                raise SpecError(
                    f"input '{value.name}' axis {axis} is symbolic ({dims[axis]}); give it in input_shape "
                    f"(e.g. {value.name}:1,...) or fix it with the 'fix-input-shape' pass"
                )
        templates[value.name] = template
        inputs.append(
            {
                "name": value.name,
                "dtype": str(np_dtype(value)),
                "graph_shape": dims,
                "atc_shape": ["batch", *template[1:]],
            }
        )
    outputs = [
        {"index": k, "name": v.name, "dtype": str(np_dtype(v)), "shape": input_dims(v)}
        for k, v in enumerate(model.graph.output)
    ]
    plan = AtcPlan(resolved, spec, inputs, outputs, warnings=warnings)
    for size in spec.batch_sizes:
        shape = _shape_arg(templates, size)
        plan.commands.append(
            AtcCommand(
                "static",
                [size],
                f"{spec.output_prefix}_bs{size}",
                _args(plan, spec, shape, f"{spec.output_prefix}_bs{size}"),
            )
        )
    if spec.dynamic_batch_sizes is not None:
        output = f"{spec.output_prefix}_dynbs"
        args = _args(plan, spec, _shape_arg(templates, -1), output)
        args.insert(
            args.index(f"--soc_version={spec.soc_version}"), "--dynamic_batch_size=" + _csv(spec.dynamic_batch_sizes)
        )
        plan.commands.append(AtcCommand("dynamic", list(spec.dynamic_batch_sizes), output, args))
    if spec.dynamic_dims is not None:
        output = f"{spec.output_prefix}_dyndims"
        shape = ";".join(f"{name}:{_csv(dims)}" for name, dims in templates.items())
        args = _args(plan, spec, shape, output)
        profiles = ";".join(_csv(p) for p in spec.dynamic_dims)
        args.insert(args.index(f"--soc_version={spec.soc_version}"), f"--dynamic_dims={profiles}")
        plan.commands.append(AtcCommand("dynamic_dims", [], output, args))
        plan.ais_bench_dym_dims = spec.ais_bench_dym_dims(templates)
    if spec.dynamic_image_size is not None:
        output = f"{spec.output_prefix}_dynhw"
        given = [dims[0] for dims in planned.values() if dims and dims[0] > 0]
        batch = given[0] if given else spec.batch_sizes[0] if spec.batch_sizes else 1
        shape = ";".join(
            f"{name}:{_csv([batch, *dims[1:2], -1, -1] if len(dims) == 4 else [batch, *dims[1:]])}"
            for name, dims in templates.items()
        )
        if "-1,-1" not in shape:
            raise SpecError("dynamic_image_size: the model has no 4-D (NCHW) input whose H and W could be dynamic")
        args = _args(plan, spec, shape, output)
        profiles = ";".join(_csv(p) for p in spec.dynamic_image_size)
        args.insert(args.index(f"--soc_version={spec.soc_version}"), f"--dynamic_image_size={profiles}")
        plan.commands.append(AtcCommand("dynamic_image_size", [batch], output, args))
        plan.ais_bench_dym_hw = spec.ais_bench_dym_hw()
    if spec.input_shape_range is not None:
        output = f"{spec.output_prefix}_dynshape"
        args = _args(plan, spec, "", output)
        args[args.index("--input_shape=")] = f"--input_shape_range={spec.input_shape_range}"
        plan.commands.append(AtcCommand("input_shape_range", [], output, args))
        if int(str(spec.cann).split(".", 1)[0]) >= 8:
            plan.warnings.append(
                "input_shape_range: deprecated from CANN 8.0; ATC asks for the ranges in --input_shape instead"
            )
    if spec.implmode_overridden():
        plan.warnings.append(
            "op_precision_mode is given: ATC ignores op_select_implmode/optypelist_for_implmode then (only "
            "--op_precision_mode takes effect), so they are left out of the commands"
        )
    return plan


def _csv(values) -> str:
    return ",".join(str(v) for v in values)


def _shape_arg(templates: dict[str, list[int]], batch: int) -> str:
    return ";".join(f"{name}:{_csv([batch, *dims[1:]])}" for name, dims in templates.items())


def _args(plan: AtcPlan, spec: AtcSpec, shape: str, output: str) -> list[str]:
    args = [
        f"--model={plan.model_path}",
        "--framework=5",
        f"--output={output}",
        f"--input_format={spec.input_format}",
        f"--input_shape={shape}",
        f"--soc_version={spec.soc_version}",
        f"--log={spec.log}",
    ]
    if spec.precision_mode:
        args.append(f"--precision_mode={spec.precision_mode}")
    if spec.precision_mode_v2:
        args.append(f"--precision_mode_v2={spec.precision_mode_v2}")
    if spec.op_precision_mode:
        args.append(f"--op_precision_mode={spec.op_precision_mode}")
    elif spec.op_select_implmode:  # --op_precision_mode overrides both (AtcSpec.implmode_overridden)
        args.append(f"--op_select_implmode={spec.op_select_implmode}")
        if spec.optypelist_for_implmode:
            args.append("--optypelist_for_implmode=" + ",".join(spec.optypelist_for_implmode))
    if spec.modify_mixlist:
        args.append(f"--modify_mixlist={spec.modify_mixlist}")
    if spec.fusion_switch_file:
        args.append(f"--fusion_switch_file={spec.fusion_switch_file}")
    if spec.insert_op_conf:
        args.append(f"--insert_op_conf={spec.insert_op_conf}")
    if spec.enable_small_channel is not None:
        args.append(f"--enable_small_channel={int(spec.enable_small_channel)}")
    if spec.out_nodes:
        args.append("--out_nodes=" + ";".join(spec.out_nodes))
    if spec.output_type:
        args.append(f"--output_type={spec.output_type}")
    if spec.input_fp16_nodes:
        args.append("--input_fp16_nodes=" + ";".join(spec.input_fp16_nodes))
    if spec.keep_dtype:
        args.append(f"--keep_dtype={spec.keep_dtype}")
    if spec.customize_dtypes:
        args.append(f"--customize_dtypes={spec.customize_dtypes}")
    args.extend(spec.extra_args)
    return args


def check_command(plan: AtcPlan, report: str = "check_result.json") -> AtcCommand:
    """ATC's pre-check mode (``--mode=3 --check_report``) for the first OM: no OM is built."""
    first = plan.commands[0]
    args = [a for a in first.args if not a.startswith("--output=")]
    return AtcCommand("check", first.batch_sizes, first.output, [*args, "--mode=3", f"--check_report={report}"])


def _comment(text: str) -> str:
    """A shell comment line; a control character in ``text`` would end it, so it is refused."""
    return "# " + check_plain_text(text, "script comment")


def render_script(plan: AtcPlan) -> str:
    """The bash script that runs every command from the script's own folder.

    Every argument is shell-quoted (``shlex``); comment lines refuse control characters.
    """
    lines = [
        "#!/usr/bin/env bash",
        _comment(f"ATC commands written by graphkit {__version__} for {plan.model_path}"),
        _comment(
            f"target {plan.spec.soc_version}, CANN {plan.spec.cann}; set ATC=/path/to/atc to pick the executable."
        ),
        "# Each OM is written here as <output>.om or <output>_<os>_<arch>.om.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'ATC="${ATC:-atc}"',
        "",
        _comment(f"pre-check only (no OM): {check_command(plan).line()}"),
    ]
    for command in plan.commands:
        sizes = _csv(command.batch_sizes)
        lines.append(_comment(f"{command.kind} {sizes or 'dims'} -> {command.output}"))
        lines.append('"$ATC" ' + " ".join(shlex.quote(check_plain_text(a, "ATC argument")) for a in command.args))
    return "\n".join(lines) + "\n"


def write_plan(plan: AtcPlan, out_dir: str | os.PathLike) -> AtcPlan:
    """Write the script and the manifest into ``out_dir`` (atomically); returns the plan."""
    out = Path(out_dir)
    make_folder(out)
    plan.script = _write_atomic(out / SCRIPT_NAME, render_script(plan), executable=True)
    plan.manifest = _write_atomic(out / MANIFEST_NAME, json.dumps(plan.manifest_dict(), indent=2) + "\n")
    return plan


def _write_atomic(path: Path, text: str, executable: bool = False) -> Path:
    return write_text_atomic(path, text, mode=0o755 if executable else 0o644)
