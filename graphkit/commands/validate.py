"""``graphkit validate MODEL --golden DIR``: compare a model with a golden set."""

from __future__ import annotations

from graphkit.console import print_json
from graphkit.errors import GraphkitError
from graphkit.golden import load_golden, validate_against_golden
from graphkit.model import load_user_model
from graphkit.validate import Tolerance, Tolerances

NAME = "validate"
HELP = "run MODEL on a golden set's inputs (onnxruntime, optimizations off) and compare outputs"
DESCRIPTION = HELP + "\n\nExit codes: 0 all outputs within tolerance, 1 mismatch, 2 bad input."


def add_arguments(parser):
    parser.add_argument("model", help="the ONNX model to check")
    parser.add_argument("--golden", required=True, metavar="DIR", help="golden folder (from 'graphkit golden make')")
    parser.add_argument("--atol", type=float, default=None, help="absolute tolerance (default: the manifest's)")
    parser.add_argument("--rtol", type=float, default=None, help="relative tolerance (default: the manifest's)")
    parser.add_argument(
        "--output-tol",
        action="append",
        default=[],
        metavar="NAME:ATOL:RTOL",
        help="per-output tolerance override (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")


def parse_output_tol(item: str) -> tuple[str, Tolerance]:
    """'mask:1e-4:1e-3' -> ('mask', Tolerance(1e-4, 1e-3))."""
    try:
        name, atol, rtol = item.rsplit(":", 2)
        return name, Tolerance(float(atol), float(rtol))
    except ValueError as exc:
        raise GraphkitError(f"--output-tol {item}: expected NAME:ATOL:RTOL") from exc


def run(args) -> int:
    golden = load_golden(args.golden)
    model = load_user_model(args.model)
    tolerances = golden.tolerances
    default = Tolerance(
        atol=tolerances.default.atol if args.atol is None else args.atol,
        rtol=tolerances.default.rtol if args.rtol is None else args.rtol,
    )
    outputs = dict(tolerances.outputs)
    outputs.update(parse_output_tol(item) for item in args.output_tol)
    result = validate_against_golden(model, golden, Tolerances(default, outputs))
    if args.json:
        print_json(result.to_dict())
    else:
        for case in result.cases:
            if case.comparison is None:
                print(f"case {case.label}: skipped ({case.skipped})")
                continue
            for out in case.comparison.outputs:
                print(f"case {case.label}: {out.describe()}")
        print("PASSED" if result.passed else f"FAILED: {result.first_failure()}")
    return 0 if result.passed else 1
