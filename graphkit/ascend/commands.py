"""Exact ATC command lines for a model, as a runnable script plus a manifest JSON.

:func:`plan_commands` reads input names, dtypes and shapes from the graph and returns an
:class:`AtcPlan`: one static-batch command per batch size and optionally one dynamic-batch
command (``--dynamic_batch_size``), after checking the dynamic profile rules locally
(:func:`check_dynamic_profiles`). :func:`write_plan` writes ``atc_commands.sh`` (runs in its own
folder; ``ATC=/path/to/atc`` overrides the executable) and ``atc_manifest.json`` (inputs,
outputs and their order, profiles, expected OM names) atomically.

Command form (FACTS)::

    atc --model=M.onnx --framework=5 --output=wseg_bs4 --input_format=NCHW
        --input_shape="image:4,3,1024,1024" --soc_version=Ascend310P3 --log=error
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from graphkit import __version__
from graphkit.ascend.spec import AtcSpec, parse_input_shape
from graphkit.errors import SpecError
from graphkit.files import make_folder, write_text_atomic
from graphkit.runtime.feeds import graph_inputs, input_dims, np_dtype

SCRIPT_NAME = "atc_commands.sh"
MANIFEST_NAME = "atc_manifest.json"
MBATCH_INPUT = "ascend_mbatch_shape_data"  # extra input ATC adds to dynamic-batch OMs
MAX_PROFILES = 100
MAX_PROFILE_BATCH = 2048
EXCLUSIVE_DYNAMIC_OPTIONS = ("--dynamic_image_size", "--dynamic_dims")


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
            "script": SCRIPT_NAME,
        }


def check_dynamic_profiles(sizes: list[int], extra_args: list[str] = (), where: str = "dynamic_batch_sizes") -> None:
    """ATC's ``--dynamic_batch_size`` rules, checked before ATC runs; SpecError on a break.

    2 to 100 profiles, no duplicates, each in 1..2048, and no ``--dynamic_image_size`` /
    ``--dynamic_dims`` at the same time.
    """
    if not MAX_PROFILES >= len(sizes) >= 2:
        raise SpecError(f"{where}: ATC needs 2 to {MAX_PROFILES} batch profiles, got {len(sizes)} ({sizes})")
    if len(set(sizes)) != len(sizes):
        raise SpecError(f"{where}: batch profiles must be unique, got {sizes}")
    bad = [s for s in sizes if not 1 <= s <= MAX_PROFILE_BATCH]
    if bad:
        raise SpecError(f"{where}: batch profiles must be in 1..{MAX_PROFILE_BATCH}, got {bad}")
    clash = [a.split("=", 1)[0] for a in extra_args if a.split("=", 1)[0] in EXCLUSIVE_DYNAMIC_OPTIONS]
    if clash:
        raise SpecError(f"{where}: --dynamic_batch_size cannot be combined with {clash[0]} (extra_args)")


def plan_commands(model: onnx.ModelProto, spec: AtcSpec, model_path: str | os.PathLike) -> AtcPlan:
    """The ATC commands for ``model`` (stored at ``model_path``) under ``spec``.

    Non-batch dims come from the graph or ``spec.input_shape``; a dim that is symbolic in
    both is a SpecError naming the input and axis.
    """
    spec.validate()
    if spec.dynamic_batch_sizes is not None:
        check_dynamic_profiles(list(spec.dynamic_batch_sizes), spec.extra_args)
    planned = parse_input_shape(spec.input_shape)
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
            if not isinstance(template[axis], int) or template[axis] <= 0:
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
    plan = AtcPlan(str(Path(model_path).resolve()), spec, inputs, outputs)
    for size in spec.batch_sizes:
        plan.commands.append(
            AtcCommand("static", [size], f"{spec.output_prefix}_bs{size}", _args(plan, spec, templates, size))
        )
    if spec.dynamic_batch_sizes is not None:
        args = _args(plan, spec, templates, -1)
        args.insert(
            args.index(f"--soc_version={spec.soc_version}"), "--dynamic_batch_size=" + _csv(spec.dynamic_batch_sizes)
        )
        plan.commands.append(AtcCommand("dynamic", list(spec.dynamic_batch_sizes), f"{spec.output_prefix}_dynbs", args))
    return plan


def _csv(values) -> str:
    return ",".join(str(v) for v in values)


def _args(plan: AtcPlan, spec: AtcSpec, templates: dict[str, list[int]], batch: int) -> list[str]:
    shape = ";".join(f"{name}:{_csv([batch, *dims[1:]])}" for name, dims in templates.items())
    output = f"{spec.output_prefix}_bs{batch}" if batch > 0 else f"{spec.output_prefix}_dynbs"
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
    if spec.op_select_implmode:
        args.append(f"--op_select_implmode={spec.op_select_implmode}")
    if spec.fusion_switch_file:
        args.append(f"--fusion_switch_file={Path(spec.fusion_switch_file).resolve()}")
    if spec.out_nodes:
        args.append("--out_nodes=" + ";".join(spec.out_nodes))
    args.extend(spec.extra_args)
    return args


def check_command(plan: AtcPlan, report: str = "check_result.json") -> AtcCommand:
    """ATC's pre-check mode (``--mode=3 --check_report``) for the first OM: no OM is built."""
    first = plan.commands[0]
    args = [a for a in first.args if not a.startswith("--output=")]
    return AtcCommand("check", first.batch_sizes, first.output, [*args, "--mode=3", f"--check_report={report}"])


def render_script(plan: AtcPlan) -> str:
    """The bash script that runs every command from the script's own folder."""
    lines = [
        "#!/usr/bin/env bash",
        f"# ATC commands written by graphkit {__version__} for {plan.model_path}",
        f"# target {plan.spec.soc_version}, CANN {plan.spec.cann}; set ATC=/path/to/atc to pick the executable.",
        "# Each OM is written here as <output>.om or <output>_<os>_<arch>.om.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'ATC="${ATC:-atc}"',
        "",
        f"# pre-check only (no OM): {check_command(plan).line()}",
    ]
    for command in plan.commands:
        sizes = _csv(command.batch_sizes)
        lines.append(f"# {command.kind} batch {sizes} -> {command.output}")
        lines.append('"$ATC" ' + shlex.join(command.args))
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
