"""``graphkit golden make|show``: record a golden set from a model, or describe one."""

from __future__ import annotations

import argparse
import logging

from graphkit.check.golden import load_golden, make_or_load_golden
from graphkit.check.golden_defaults import golden_defaults
from graphkit.check.golden_inputs import UserInputs, load_user_cases
from graphkit.cli.validate import add_runtime_arguments, runtime_from_args
from graphkit.ir.model_io import load_user_model
from graphkit.util.console import print_json
from graphkit.util.errors import FieldValueError, GraphkitError
from graphkit.util.tolerance import Tolerance, Tolerances

logger = logging.getLogger(__name__)

NAME = "golden"
EXAMPLES = """\
graphkit golden make model.onnx -o golden/ --batch-sizes 1,2 --dim seq=32
graphkit golden show golden/
"""
EXIT_CODES = ""  # never 1


def parse_ints(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; anything else is an argparse error (exit 2)."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def parse_dims(items: list[str]) -> dict[str, int | list[int]]:
    """['seq=32', 'H=64,48'] -> {'seq': 32, 'H': [64, 48]}: one size (the second is chosen by
    :func:`graphkit.check.golden_defaults.second_size`) or two; a malformed item is a
    GraphkitError naming it."""
    dims: dict[str, int | list[int]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            sizes = [int(v) for v in value.split(",")]
        except ValueError:
            sizes = []
        if not sep or not key.strip() or not 1 <= len(sizes) <= 2:
            raise GraphkitError(f"--dim {item}: expected NAME=SIZE or NAME=SIZE,SIZE2 with integer sizes")
        dims[key.strip()] = sizes[0] if len(sizes) == 1 else sizes
    return dims


def add_arguments(parser):
    sub = parser.add_subparsers(dest="golden_command", metavar="ACTION", required=True)
    make = sub.add_parser("make", help="run MODEL with onnxruntime on seeded inputs and record the outputs")
    make.add_argument("model", help="the source ONNX model")
    make.add_argument("-o", "--output", required=True, metavar="DIR", help="golden folder to write (or reuse)")
    make.add_argument(
        "--batch-sizes", type=parse_ints, default=[1], help="comma-separated batch sizes, each >= 1 (default 1)"
    )
    make.add_argument("--seed", type=int, default=0, help="input seed, >= 0 (default 0)")
    make.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=N[,M]",
        help="sizes (>= 1) of a symbolic input dim other than the batch: N, or N,M (default second size: "
        "about 3/4 of N, not a multiple of it; N,N keeps one size)",
    )
    make.add_argument(
        "--inputs",
        action="append",
        default=[],
        metavar="FILE.npz",
        help="cases from your data besides the seeded ones (one array per input, or keys NAME:0, NAME:1...)",
    )
    make.add_argument(
        "--atol", type=float, default=None, help="default absolute tolerance stored in the manifest (>= 0)"
    )
    make.add_argument(
        "--rtol", type=float, default=None, help="default relative tolerance stored in the manifest (>= 0)"
    )
    add_runtime_arguments(make)
    make.add_argument("--regenerate", action="store_true", help="overwrite a golden set made for something else")
    make.add_argument("--json", action="store_true", help="print the manifest as JSON")
    show = sub.add_parser("show", help="print a golden set's manifest")
    show.add_argument("directory", help="the golden folder")
    show.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args) -> int:
    if args.golden_command == "show":
        golden = load_golden(args.directory)
    else:
        dims = parse_dims(args.dim)
        default = Tolerance()
        try:
            tolerance = Tolerance(
                atol=default.atol if args.atol is None else args.atol,
                rtol=default.rtol if args.rtol is None else args.rtol,
            )
        except FieldValueError as exc:
            raise GraphkitError(f"--{exc.key}: {exc.reason}") from exc
        model = load_user_model(args.model)
        defaults = golden_defaults(model, args.batch_sizes, dims)  # sequence dims, token ids, masks
        for note in defaults.notes:
            logger.info("golden: %s", note)
        golden, reused = make_or_load_golden(
            model,
            args.output,
            batch_sizes=defaults.batch_sizes,
            seed=args.seed,
            dims=defaults.dims,
            input_ranges=defaults.input_ranges,
            tolerances=Tolerances(tolerance),
            regenerate=args.regenerate,
            runtime=runtime_from_args(args),
            user_cases=load_user_cases(model, UserInputs(files=list(args.inputs))),
        )
        if not args.json:
            print(f"{'reused' if reused else 'wrote'} golden set {golden.directory}")
    if args.json:
        print_json(golden.manifest)
    else:
        sources = {entry["label"]: entry.get("source") for entry in golden.manifest["cases"]}
        for case in golden.cases:
            shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in case.outputs.items())
            dims = ", ".join(f"{k} {v}" for k, v in case.dims.items())
            source = f"; inputs: {sources[case.label]}" if sources.get(case.label) else ""
            print(f"  case {case.label} ({dims}): outputs {shapes}{source}")
        made_by_ort = "onnxruntime" in golden.manifest["producer"]
        level = golden.manifest.get("optimization") or ("none" if made_by_ort else "n/a")
        print(
            f"  producer: {golden.manifest['producer']} (optimization {level}); model hash {golden.manifest['model_hash'][:16]}"
        )
    return 0
