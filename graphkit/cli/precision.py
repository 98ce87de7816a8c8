"""``graphkit precision MODEL``: what ATC's fp16 does to the outputs, the responsible nodes, the fp32 keep-list."""

from __future__ import annotations

from graphkit.cli.dim_options import add_dim_argument, parse_dim_items
from graphkit.util.errors import GraphkitError, InputError

NAME = "precision"
EXAMPLES = """\
graphkit precision model.onnx --dim batch=1 -o precision/
graphkit precision model.onnx --golden golden/ --keep-dtype mine.cfg --json
"""
EXIT_CODES = "1 fp16 takes an output out of tolerance (the keep-list, if found, is written)"
DESCRIPTION = """Emulate the model as ATC's --precision_mode would run it (fp16 storage at every node output of
the nodes the mode runs in fp16, arithmetic inside an op in fp32; docs/precision.md says what that
can and cannot predict), compare every output with its fp32 values (max abs, max rel, share out of
tolerance, argmax agreement where the golden set declares an argmax axis, top-1 agreement for
[N, C] outputs), name the first node whose output turns NaN/inf and rank the nodes that add most
error (one lockstep walk, not one run per node). When an output fails, search the smallest set of
nodes to keep in fp32 (bisection over the ranking, then reduction; the forwards are counted),
verify it with one more emulated forward, and write it with -o DIR as DIR/keep_dtype.cfg (ATC's
--keep_dtype format: one node name a line) and, for the mixed modes, DIR/modify_mixlist.json.

Inputs: --golden DIR (every case; fp32 outputs and argmax axes from the set), --inputs F.npz (fp32
outputs from onnxruntime on MODEL), or seeded random inputs (--seed, --dim NAME=N; batch 1 by default)."""


def add_arguments(parser) -> None:
    parser.add_argument("model", help="the ONNX model (fp32)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--golden", metavar="DIR", help="golden set folder: its inputs and fp32 outputs (every case)")
    source.add_argument("--inputs", metavar="F.npz", help="input arrays keyed by graph input name")
    parser.add_argument("--seed", type=int, help="seed for random inputs (library default 0)")
    add_dim_argument(
        parser, "size of a symbolic input dim for random inputs, e.g. --dim seq=32 (batch: 1)", aliases=("--dims",)
    )
    parser.add_argument(
        "-o", "--output", metavar="DIR", help="write keep_dtype.cfg, modify_mixlist.json, precision.json here"
    )
    parser.add_argument(
        "--precision-mode", help="ATC --precision_mode to emulate (library default force_fp16, ATC's default)"
    )
    parser.add_argument("--keep-dtype", metavar="FILE", help="an ATC --keep_dtype file: these nodes/op types stay fp32")
    parser.add_argument(
        "--modify-mixlist",
        metavar="FILE",
        help="an ATC --modify_mixlist JSON: its black-list to-add op types stay fp32",
    )
    parser.add_argument("--atol", type=float, help="absolute tolerance for fp16 (library default 1e-2)")
    parser.add_argument("--rtol", type=float, help="relative tolerance for fp16 (library default 1e-2)")
    parser.add_argument(
        "--argmax",
        action="append",
        metavar="NAME:AXIS[:MIN]",
        help="also require output NAME's argmax over AXIS to agree on a share >= MIN of positions (default 1)",
    )
    parser.add_argument("--no-search", action="store_true", help="only report; do not search a keep-list")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: onnxruntime's)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def run(args) -> int:
    from pathlib import Path

    from graphkit.ascend.precision_modes import DEFAULT_MODE, check_mode, parse_mixlist, read_keep_dtype
    from graphkit.ascend.precision_preview import atc_precision_preview
    from graphkit.check.golden import load_golden
    from graphkit.check.localize_feeds import feeds_for, load_npz_feeds
    from graphkit.check.precision import DEFAULT_FP16_ATOL, DEFAULT_FP16_RTOL, PrecisionCase, reference_cases
    from graphkit.check.precision_analysis import fp16_tolerances
    from graphkit.ir.model_io import load_user_model
    from graphkit.util.console import print_json
    from graphkit.util.errors import FieldValueError
    from graphkit.util.tolerance import check_tolerance_value

    try:
        atol = DEFAULT_FP16_ATOL if args.atol is None else check_tolerance_value("--atol", args.atol)
        rtol = DEFAULT_FP16_RTOL if args.rtol is None else check_tolerance_value("--rtol", args.rtol)
    except FieldValueError as exc:
        raise InputError(str(exc)) from exc
    dims = {"batch": 1, **parse_dim_items(args.dim)}  # checked whatever the input source; batch 1 as in apply
    mode = args.precision_mode or DEFAULT_MODE
    check_mode(mode)
    keep = read_keep_dtype(args.keep_dtype) if args.keep_dtype else None
    black = []
    if args.modify_mixlist:
        try:
            text = Path(args.modify_mixlist).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{args.modify_mixlist}: cannot read the mixlist file ({exc.__class__.__name__})") from exc
        black = parse_mixlist(text, args.modify_mixlist)
    model = load_user_model(args.model)
    base = None
    if args.golden:
        golden = load_golden(args.golden)
        cases = [PrecisionCase(c.label, c.inputs, c.outputs) for c in golden.cases]
        base = golden.tolerances
    elif args.inputs:
        cases = reference_cases(model, [load_npz_feeds(args.inputs)], args.threads)
    else:
        cases = reference_cases(model, [feeds_for(model, model, seed=args.seed, dims=dims)], args.threads)
    base = _with_argmax(base, args.argmax, cases)
    result = atc_precision_preview(
        model,
        cases,
        fp16_tolerances(base, atol, rtol),
        mode,
        keep=keep,
        black_types=black,
        out_dir=args.output,
        search=not args.no_search,
        threads=args.threads,
        where=args.keep_dtype or "--keep-dtype",
    )
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"precision mode {mode}: {result.preview.to_text()}")
        for kind, path in result.files.items():
            print(f"wrote {kind}: {path}")
    return 0 if result.preview.passed else 1


def _with_argmax(base, items, cases):
    """``base`` tolerances with the --argmax checks added; bad items and unknown outputs raise one line."""
    import numpy as np

    from graphkit.util.errors import FieldValueError
    from graphkit.util.tolerance import Tolerance, Tolerances

    if not items:
        return base
    base = base or Tolerances()
    for item in items:
        parts = item.split(":")
        try:
            name, axis = parts[0], int(parts[1])
            agreement = float(parts[2]) if len(parts) == 3 else 1.0
            if len(parts) > 3 or not name:
                raise ValueError
            base.outputs[name] = Tolerance(argmax_axis=axis, min_argmax_agreement=agreement)
        except (ValueError, IndexError, FieldValueError) as exc:
            raise InputError(f"--argmax: expected NAME:AXIS[:MIN] (MIN in [0, 1]), got '{item}'") from exc
    try:
        base.check_outputs({name: np.ndim(value) for name, value in cases[0].outputs.items()}, "--argmax")
    except GraphkitError as exc:
        raise InputError(str(exc)) from exc
    return base
