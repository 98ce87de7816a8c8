"""``graphkit golden make|show``: record a golden set from a model, or describe one."""

from __future__ import annotations

from graphkit.console import print_json
from graphkit.golden import load_golden, make_or_load_golden
from graphkit.model import load_user_model
from graphkit.validate import Tolerance, Tolerances

NAME = "golden"
HELP = "record golden inputs/outputs for a model (make) or describe a golden set (show)"


def parse_ints(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]."""
    return [int(x) for x in text.split(",") if x.strip()]


def parse_dims(items: list[str]) -> dict[str, int]:
    """['batch=2', 'H=64'] -> {'batch': 2, 'H': 64}."""
    dims = {}
    for item in items:
        key, _, value = item.partition("=")
        dims[key] = int(value)
    return dims


def add_arguments(parser):
    sub = parser.add_subparsers(dest="golden_command", metavar="ACTION", required=True)
    make = sub.add_parser("make", help="run MODEL with onnxruntime on seeded inputs and record the outputs")
    make.add_argument("model", help="the source ONNX model")
    make.add_argument("-o", "--output", required=True, metavar="DIR", help="golden folder to write (or reuse)")
    make.add_argument("--batch-sizes", type=parse_ints, default=[1], help="comma-separated batch sizes (default 1)")
    make.add_argument("--seed", type=int, default=0, help="input seed (default 0)")
    make.add_argument("--dim", action="append", default=[], metavar="NAME=N", help="size of a symbolic dim")
    make.add_argument("--atol", type=float, default=None, help="default absolute tolerance stored in the manifest")
    make.add_argument("--rtol", type=float, default=None, help="default relative tolerance stored in the manifest")
    make.add_argument("--regenerate", action="store_true", help="overwrite a golden set made for something else")
    make.add_argument("--json", action="store_true", help="print the manifest as JSON")
    show = sub.add_parser("show", help="print a golden set's manifest")
    show.add_argument("directory", help="the golden folder")
    show.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args) -> int:
    if args.golden_command == "show":
        golden = load_golden(args.directory)
    else:
        model = load_user_model(args.model)
        default = Tolerance()
        tolerance = Tolerance(
            atol=default.atol if args.atol is None else args.atol, rtol=default.rtol if args.rtol is None else args.rtol
        )
        golden, reused = make_or_load_golden(
            model,
            args.output,
            batch_sizes=args.batch_sizes,
            seed=args.seed,
            dims=parse_dims(args.dim),
            tolerances=Tolerances(tolerance),
            regenerate=args.regenerate,
        )
        if not args.json:
            print(f"{'reused' if reused else 'wrote'} golden set {golden.directory}")
    if args.json:
        print_json(golden.manifest)
    else:
        for case in golden.cases:
            shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in case.outputs.items())
            print(f"  case {case.label}: outputs {shapes}")
        print(f"  producer: {golden.manifest['producer']}; model hash {golden.manifest['model_hash'][:16]}")
    return 0
