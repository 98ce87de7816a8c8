"""``graphkit apply PIPELINE.yaml`` or ``graphkit apply MODEL.onnx -o OUT``: run a pipeline (or a
preset / a list of passes on a model) and write its run folder."""

from __future__ import annotations

import sys

from graphkit.cli.golden import parse_dims
from graphkit.pipeline.run import apply_pipeline
from graphkit.pipeline.spec import CommandLine, file_kind, load_pipeline, model_pipeline
from graphkit.transform.presets import DEFAULT_PRESET, PRESETS, preset_passes
from graphkit.util.console import print_json
from graphkit.util.errors import GraphkitError, SpecError, one_line

NAME = "apply"
HELP = "run a pipeline: source, golden, passes validated one by one, output model, report"
DESCRIPTION = """Run a YAML pipeline, or run passes on a model in one command:

  graphkit apply MODEL.onnx -o OUT [--preset generic | --passes a,b,c] [--dim seq=32]

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

Exit codes: 0 ok, 1 a pass or the final model failed validation, 2 bad input."""


def add_arguments(parser):
    parser.add_argument("pipeline", metavar="PIPELINE_OR_MODEL", help="a pipeline YAML file, or an ONNX model")
    parser.add_argument(
        "--input", metavar="MODEL", help="use this ONNX file as the source (a pipeline file may then omit source:)"
    )
    parser.add_argument(
        "-o", "--output", metavar="DIR", help="run folder (default: the pipeline's output.dir; for a model runs/STEM)"
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
        metavar="NAME=N",
        help="size (>= 1) of a symbolic input dim other than the batch, e.g. --dim seq=32 (golden.dims; repeatable)",
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
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a pipeline field, e.g. --set golden.batch_sizes=[1,4] (value parsed as YAML; repeatable)",
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
    sets = [*args.set, "output.provenance=false"] if args.strip_provenance else args.set
    command_line = CommandLine(args.input, passes, parse_dims(args.dim), parse_ranges(args.input_range))
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
        output_dir=args.output,
        weights=args.weights,
        localize=args.localize,
        extra_pass_dirs=args.passes_dir,
        regenerate_golden=args.regenerate_golden,
        use_cache=not args.no_cache,
        overwrite=args.overwrite,
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
    return 0
