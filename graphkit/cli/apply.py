"""``graphkit apply PIPELINE.yaml`` or ``graphkit apply MODEL.onnx -o OUT``: run a pipeline (or a
preset / a list of passes on a model) and write its run folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from graphkit.cli.golden import parse_dims
from graphkit.pipeline.run import apply_pipeline
from graphkit.pipeline.spec import CommandLine, file_kind, load_pipeline, model_pipeline
from graphkit.transform.presets import DEFAULT_PRESET, PRESETS, preset_passes
from graphkit.util.console import print_json
from graphkit.util.errors import GraphkitError, SpecError, one_line
from graphkit.util.files import check_plain_name, check_target, place_files

NAME = "apply"
EXAMPLES = """\
graphkit apply model.onnx model.opt.onnx                      # onnxsim/onnxslim form, generic preset
graphkit apply bert.onnx -o out/ --passes fold-shapes,cse --dim seq=32
graphkit apply pipelines/wseg_310p.yaml --set golden.batch_sizes=[1]
"""
EXIT_CODES = "1 a pass or the final model failed validation, or with --strict a pass was rolled back (no model written); 0 with passes rolled back in the model form names them in the headline"
DESCRIPTION = """Run a YAML pipeline, or run passes on a model in one command:

  graphkit apply MODEL.onnx OUT.onnx [--preset generic | --passes a,b,c] [--dim seq=32]
  graphkit apply MODEL.onnx -o RUN_DIR [...]

With OUT.onnx (or -o OUT.onnx) the validated model is written at OUT.onnx, as onnxsim and onnxslim
do, and the run folder (report.json, summary.txt, diffs) beside it as OUT.graphkit/; a failed run
writes no model there.

The model form runs the preset (default: generic) or the passes given, rolls back a pass that
fails validation and goes on with the next, and takes the golden batch sizes, symbolic dims and
integer input ranges from the model (override with --dim / --input-range / --set). A pipeline
file needs only a passes: list when --input names the model (name: the file's stem).

Which form is meant is read from the file's content (ONNX is binary, a pipeline is text); a
.onnx file holding text or a .yaml file holding binary data is refused with one line.

Each pass is verified (ONNX checker + shape inference) and
validated against the golden set with onnxruntime (CPU, validate.runtime's level, optimized by default); a pass that
fails is rolled back. The run folder gets model.onnx (only if everything passed), report.json,
summary.txt, pipeline.yaml and per-pass diffs. A rerun of the same pipeline replaces its
earlier run folder (its files are removed first, so a failed rerun leaves no stale model); a
non-empty folder holding anything else is refused unless --overwrite.

The summary's "shown:" line says what the final check measured: equal within atol/rtol to the
source on N cases (each case's batch and dim sizes), where the inputs came from, and the symbolic
dims seen at one size only. Every symbolic dim is checked at two sizes (--dim NAME=N[,M])."""


def add_arguments(parser):
    parser.add_argument("pipeline", metavar="PIPELINE_OR_MODEL", help="a pipeline YAML file, or an ONNX model")
    parser.add_argument(
        "target",
        nargs="?",
        metavar="OUT.onnx",
        help="write the validated model here (the onnxsim/onnxslim form); the run folder (report, summary, "
        "diffs) goes beside it as OUT.graphkit/ unless -o names a folder",
    )
    parser.add_argument(
        "--input", metavar="MODEL", help="use this ONNX file as the source (a pipeline file may then omit source:)"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR|FILE.onnx",
        help="run folder (default: the pipeline's output.dir; for a model runs/STEM); a name ending in .onnx "
        "that is not a folder means the model file, as OUT.onnx does",
    )
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument(
        "--passes",
        metavar="A,B,C",
        help="comma-separated passes to run (replaces a pipeline's passes; default for a model: --preset generic)",
    )
    chosen.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help=f"a built-in list of passes (see 'graphkit passes --presets'; default for a model: {DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=N[,M]",
        help="sizes of a symbolic input dim other than the batch, e.g. --dim seq=32 (a second size is chosen, "
        "not a multiple of 32) or --dim seq=32,45 (golden.dims; repeatable)",
    )
    parser.add_argument(
        "--input-range",
        action="append",
        default=[],
        metavar="NAME=LO:HI",
        help="integer input NAME gets golden values in LO..HI, both included, e.g. token ids "
        "--input-range input_ids=0:30521 (golden.input_ranges; repeatable)",
    )
    parser.add_argument(
        "--inputs",
        action="append",
        default=[],
        metavar="FILE.npz",
        help="golden cases from your data besides the seeded ones: one array per graph input (one case), or "
        "keys NAME:0, NAME:1... (one case per index); golden.inputs.files; repeatable",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a pipeline field, e.g. --set golden.batch_sizes=[1,4] (value parsed as YAML; repeatable)",
    )
    for name in ("atol", "rtol"):  # Polygraphy's spelling of golden.tolerance
        parser.add_argument(
            f"--{name}",
            type=float,
            metavar="X",
            help=f"default {name} of every output's comparison (golden.tolerance.{name}; per output: --set "
            f"golden.outputs.NAME.{name}=X)",
        )
    parser.add_argument("--weights", metavar="PATH", help="checkpoint for an export source (source.export.weights)")
    parser.add_argument(
        "--passes-dir", action="append", default=[], metavar="DIR", help="also load passes from DIR (repeatable)"
    )
    parser.add_argument(
        "--localize",
        action="store_true",
        default=None,
        help="when a pass fails validation, find the first divergent tensor (validate.localize)",
    )
    parser.add_argument(
        "--regenerate-golden", action="store_true", help="re-record the golden set even if one exists for another model"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="use a non-empty run folder that is not an earlier run of this pipeline: graphkit's files there "
        "are removed first, other files are kept (a rerun of the same pipeline needs no flag)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="run every check even if it passed before (the validation cache is neither read nor written)",
    )
    parser.add_argument(
        "--strip-provenance",
        action="store_true",
        help="write the model without the node metadata naming the pass that made each node "
        "(output.provenance=false; kept by default)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 and write no model when any pass was rolled back (the model form goes on after a "
        "failed pass by default)",
    )
    parser.add_argument("--json", action="store_true", help="print report.json to stdout instead of the summary")


def parse_ranges(items: list[str]) -> dict[str, list[int]]:
    """['ids=0:999'] -> {'ids': [0, 999]}; a malformed item is a GraphkitError naming it."""
    ranges = {}
    for item in items:
        name, sep, bounds = item.partition("=")
        low, colon, high = bounds.partition(":")
        try:
            values = [int(low), int(high)]
        except ValueError:
            values = None
        if not sep or not colon or not name.strip() or values is None:
            raise GraphkitError(f"--input-range {item}: expected NAME=LO:HI with integers LO <= HI")
        if values[0] > values[1]:
            raise GraphkitError(f"--input-range {item}: LO must be <= HI")
        ranges[name.strip()] = values
    return ranges


def run(args) -> int:
    passes = None
    if args.preset:
        passes = preset_passes(args.preset)
    elif args.passes is not None:
        passes = [name.strip() for name in args.passes.split(",") if name.strip()]
        if not passes:
            raise GraphkitError("--passes: give at least one pass name (see 'graphkit passes')")
    sets = [*args.set, "output.provenance=false"] if args.strip_provenance else list(args.set)
    sets += [
        f"golden.tolerance.{name}={getattr(args, name)!r}"
        for name in ("atol", "rtol")
        if getattr(args, name) is not None
    ]
    command_line = CommandLine(
        args.input, passes, parse_dims(args.dim), parse_ranges(args.input_range), list(args.inputs)
    )
    target, output_dir = model_target(args.target, args.output)
    if target is not None:
        sets = [*sets, f"output.model={target.name}"]
    if file_kind(args.pipeline) == "onnx":
        if args.input:
            raise GraphkitError(
                f"--input: {args.pipeline} is already the model; give --input only with a pipeline file"
            )
        command_line.input_path = None
        default = preset_passes(DEFAULT_PRESET) if passes is None else passes
        spec = model_pipeline(args.pipeline, default, command_line, sets)
        origin = spec.source.onnx
    else:
        spec = load_pipeline(args.pipeline, sets, command_line)
        origin = args.pipeline
    result = apply_pipeline(
        spec,
        origin,
        input_path=args.input,
        output_dir=output_dir,
        weights=args.weights,
        localize=args.localize,
        extra_pass_dirs=args.passes_dir,
        regenerate_golden=args.regenerate_golden,
        use_cache=not args.no_cache,
        overwrite=args.overwrite,
        strict=args.strict,
    )
    if args.json:
        print_json(result.report.to_dict())
    else:
        print(result.summary)
    if isinstance(result.error, SpecError):  # a pass's options contradict the model: bad input
        print(f"graphkit: error: {one_line(result.error, 2000)}", file=sys.stderr)
        return result.error.exit_code
    if not result.ok:
        print(f"graphkit: failed: {result.error}", file=sys.stderr)
        return 1
    if target is not None:
        moved = place_model(result.model_path, target)
        where = f"moved out of the run folder {result.run_dir}" if moved else f"run folder {result.run_dir}"
        print(f"wrote {target}{f' and {target.name}.data' if moved else ''} ({where})")
    return 0


def model_target(target: str | None, output: str | None) -> tuple[Path | None, str | None]:
    """(model file, run folder) from ``OUT.onnx`` and ``-o``: a target model file puts the run
    folder beside it as ``<stem>.graphkit/`` unless ``-o`` names the folder; ``-o X.onnx`` that is
    not an existing folder is the target itself."""
    if target is None and output is not None and output.endswith(".onnx") and not Path(output).is_dir():
        target, output = output, None
    if target is None:
        return None, output
    path = Path(target)
    if target.endswith(("/", os.sep)) or path.is_dir():
        raise GraphkitError(f"{target}: is a folder; give the model file to write (OUT.onnx), or -o for a run folder")
    check_plain_name(path.name, f"{target} (the output model's file name)")
    check_target(path)
    return path, output if output is not None else str(path.with_name(f"{path.stem}.graphkit"))


def place_model(model_path: Path, target: Path) -> bool:
    """Link (or copy) the run folder's model to ``target``; a model with an external data file is
    moved there with it instead: onnx (1.23) refuses to load a data file that has a second hard
    link ("a potential hardlink attack"), and a copy would write the weights twice. Returns
    whether the files were moved."""
    pairs = [(model_path, target)]
    data = model_path.with_name(model_path.name + ".data")
    if data.exists():
        pairs.append((data, target.with_name(target.name + ".data")))
    place_files(pairs, move=len(pairs) > 1)
    return len(pairs) > 1
