"""``graphkit localize A.onnx B.onnx``: the first tensor where B diverges from A."""

from __future__ import annotations

from graphkit.check.localize import localize
from graphkit.check.localize_feeds import feeds_for, golden_feeds, load_npz_feeds
from graphkit.ir.model_io import load_user_model
from graphkit.util.console import print_json
from graphkit.util.errors import InputError

NAME = "localize"
HELP = "find the first tensor (in topological order) where model B diverges from model A"
DESCRIPTION = """Run A and B on the same inputs in lockstep, segment by segment (each node runs once per
model; only the tensors live at a segment boundary are held), and report the first tensor of B
(in topological order) whose values differ from A's beyond tolerance, the node that produced
it, and the error figures (max abs, max rel, mismatch).

Inputs: --inputs F.npz (arrays keyed by input name), --golden DIR (its first inputs*.npz or *.inputs.npz), or
seeded random inputs (--seed, --dims for symbolic dims). Exit code 1 when a divergence is found,
0 when none, 2 on bad input.

examples:
  graphkit localize export.onnx fixed.onnx --dims batch=1
  graphkit localize A.onnx B.onnx --inputs inputs.npz --atol 1e-4 --json
"""


def add_arguments(parser) -> None:
    parser.add_argument("model_a", metavar="A.onnx", help="the reference model")
    parser.add_argument("model_b", metavar="B.onnx", help="the model to check against A")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--inputs", metavar="F.npz", help="input arrays keyed by graph input name")
    source.add_argument("--golden", metavar="DIR", help="golden set folder; uses its first inputs*.npz or *.inputs.npz")
    parser.add_argument("--seed", type=int, help="seed for random inputs (library default 0)")
    parser.add_argument(
        "--dims",
        action="append",
        metavar="NAME=SIZE",
        help="sizes of symbolic input dims for random inputs, e.g. batch=1 (repeat or comma-separate)",
    )
    parser.add_argument("--atol", type=float, help="absolute tolerance (library default 1e-5)")
    parser.add_argument("--rtol", type=float, help="relative tolerance (library default 1e-4)")
    parser.add_argument("--chunk-size", type=int, help="compared tensors per segment (library default 32)")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: onnxruntime's)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def parse_dims(items: list[str] | None) -> dict[str, int]:
    """``["batch=1", "h=64,w=64"]`` -> ``{"batch": 1, "h": 64, "w": 64}``; bad items raise InputError."""
    dims = {}
    for item in items or ():
        for part in filter(None, item.split(",")):
            name, sep, size = part.partition("=")
            if not sep or not name.strip() or not size.strip().isdigit() or int(size) < 1:
                raise InputError(f"--dims: expected NAME=SIZE with a positive integer size, got '{part}'")
            dims[name.strip()] = int(size)
    return dims


def run(args) -> int:
    from graphkit.util.errors import FieldValueError
    from graphkit.util.tolerance import check_tolerance_value

    for flag, value in (("--atol", args.atol), ("--rtol", args.rtol)):
        try:
            if value is not None:
                check_tolerance_value(flag, value)
        except FieldValueError as exc:
            raise InputError(str(exc)) from exc
    dims = parse_dims(args.dims)
    a = load_user_model(args.model_a)
    b = load_user_model(args.model_b)
    if args.inputs:
        feeds = load_npz_feeds(args.inputs)
    elif args.golden:
        feeds, _ = golden_feeds(args.golden)
    else:
        feeds = feeds_for(a, b, seed=args.seed, dims=dims)
    result = localize(
        a,
        b,
        feeds,
        atol=args.atol,
        rtol=args.rtol,
        chunk_size=args.chunk_size,
        threads=args.threads,
        labels=(f"model A ({args.model_a})", f"model B ({args.model_b})"),
    )
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.to_text())
    return 1 if result.diverged else 0
