"""``graphkit validate MODEL --golden DIR``: compare a model with a golden set."""

from __future__ import annotations

import logging

from graphkit.check.golden import load_golden
from graphkit.check.golden_validation import validate_against_golden
from graphkit.ir.model_io import load_user_model
from graphkit.runtime.ort import OPTIMIZATION_LEVELS, ValidationRuntime
from graphkit.util.console import print_json
from graphkit.util.errors import FieldValueError, GraphkitError
from graphkit.util.tolerance import Tolerance, Tolerances

logger = logging.getLogger(__name__)

NAME = "validate"
EXAMPLES = """\
graphkit validate model.onnx --golden golden/
graphkit validate model.onnx --golden golden/ --output-tol mask:1e-4:1e-3 --json
"""
EXIT_CODES = "1 a mismatch or a case that cannot run"
DESCRIPTION = (
    "Run MODEL on a golden set's inputs (onnxruntime, optimized by default) and compare outputs."
    "\n\nEvery golden case must run and match: a case the model cannot run (onnxruntime error,"
    "\ninputs that do not fit, a missing output) fails. NaN must meet NaN and inf the same inf."
)


def add_arguments(parser):
    parser.add_argument("model", help="the ONNX model to check")
    parser.add_argument("--golden", required=True, metavar="DIR", help="golden folder (from 'graphkit golden make')")
    parser.add_argument(
        "--atol", type=float, default=None, help="absolute tolerance, finite and >= 0 (default: the manifest's)"
    )
    parser.add_argument(
        "--rtol", type=float, default=None, help="relative tolerance, finite and >= 0 (default: the manifest's)"
    )
    parser.add_argument(
        "--output-tol",
        action="append",
        default=[],
        metavar="NAME:ATOL:RTOL",
        help="per-output tolerance override (repeatable); NAME must be an output of the golden set",
    )
    add_runtime_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")


def add_runtime_arguments(parser) -> None:
    """--optimization and --threads: how onnxruntime runs (see ValidationRuntime)."""
    parser.add_argument(
        "--optimization",
        choices=list(OPTIMIZATION_LEVELS),
        default="all",
        help="onnxruntime graph optimization level (default all; none is the strict mode for debugging a pass)",
    )
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads, >= 1 (default: ORT's)")


def runtime_from_args(args) -> ValidationRuntime:
    """The ValidationRuntime of --optimization/--threads; a bad value is a one-line error."""
    try:
        return ValidationRuntime(args.optimization, args.threads)
    except FieldValueError as exc:
        raise GraphkitError(f"--{exc.key}: {exc.reason}") from exc


def parse_output_tol(item: str) -> tuple[str, Tolerance]:
    """'mask:1e-4:1e-3' -> ('mask', Tolerance(1e-4, 1e-3))."""
    try:
        name, atol, rtol = item.rsplit(":", 2)
        values = float(atol), float(rtol)
    except ValueError as exc:
        raise GraphkitError(f"--output-tol {item}: expected NAME:ATOL:RTOL") from exc
    if not name:
        raise GraphkitError(f"--output-tol {item}: the output NAME is empty")
    try:
        return name, Tolerance(*values)
    except FieldValueError as exc:
        raise GraphkitError(f"--output-tol {item}: {exc.key} {exc.reason}") from exc


def tolerances_from_args(base: Tolerances, atol: float | None, rtol: float | None, output_tol: list[str]) -> Tolerances:
    """``base`` with the command line's --atol/--rtol/--output-tol applied (each checked)."""
    try:
        default = Tolerance(
            atol=base.default.atol if atol is None else atol,
            rtol=base.default.rtol if rtol is None else rtol,
            argmax_axis=base.default.argmax_axis,
            min_argmax_agreement=base.default.min_argmax_agreement,
        )
    except FieldValueError as exc:
        raise GraphkitError(f"--{exc.key}: {exc.reason}") from exc
    outputs = dict(base.outputs)
    for item in output_tol:
        name, tol = parse_output_tol(item)
        kept = outputs.get(name, default)  # the argmax check of the output stays
        outputs[name] = Tolerance(tol.atol, tol.rtol, kept.argmax_axis, kept.min_argmax_agreement)
    return Tolerances(default, outputs)


def run(args) -> int:
    golden = load_golden(args.golden)
    model = load_user_model(args.model)
    tolerances = tolerances_from_args(golden.tolerances, args.atol, args.rtol, args.output_tol)
    tolerances.check_outputs(golden.output_ranks(), "--output-tol")
    logger.info("validating %s on golden case(s) %s ...", args.model, ", ".join(c.label for c in golden.cases))
    result = validate_against_golden(model, golden, tolerances, runtime=runtime_from_args(args))
    if args.json:
        print_json(result.to_dict())
    else:
        for case in result.cases:
            if case.error:
                print(f"case {case.label}: FAILED ({case.error})")
                continue
            for out in case.comparison.outputs:
                print(f"case {case.label}: {out.describe()}")
        if result.note:
            print(f"note: {result.note}")
        print("PASSED" if result.passed else f"FAILED: {result.first_failure()}")
    return 0 if result.passed else 1
