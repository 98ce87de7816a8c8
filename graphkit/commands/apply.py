"""``graphkit apply PIPELINE.yaml``: run a pipeline and write its run folder."""

from __future__ import annotations

import sys

from graphkit.apply import apply_pipeline
from graphkit.console import print_json
from graphkit.pipeline import load_pipeline

NAME = "apply"
HELP = "run a pipeline: source, golden, passes validated one by one, output model, report"
DESCRIPTION = """Run a YAML pipeline. Each pass is verified (ONNX checker + shape inference) and
validated against the golden set with onnxruntime (CPU, validate.runtime's level); a pass that
fails is rolled back. The run folder gets model.onnx (only if everything passed), report.json,
summary.txt, pipeline.yaml and per-pass diffs. A rerun of the same pipeline replaces its
earlier run folder (its files are removed first, so a failed rerun leaves no stale model); a
non-empty folder holding anything else is refused unless --overwrite.

Exit codes: 0 ok, 1 a pass or the final model failed validation, 2 bad input."""


def add_arguments(parser):
    parser.add_argument("pipeline", help="the pipeline YAML file")
    parser.add_argument("--input", metavar="MODEL", help="use this ONNX file as the source instead of the pipeline's")
    parser.add_argument("--output", metavar="DIR", help="run folder (default: the pipeline's output.dir)")
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
    parser.add_argument("--json", action="store_true", help="print report.json to stdout instead of the summary")


def run(args) -> int:
    spec = load_pipeline(args.pipeline, args.set)
    result = apply_pipeline(
        spec,
        args.pipeline,
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
        print_json(result.report)
    else:
        print(result.summary)
    if not result.ok:
        print(f"graphkit: failed: {result.error}", file=sys.stderr)
        return 1
    return 0
