"""``graphkit localize A.onnx B.onnx``: the first tensor where B diverges from A."""

from __future__ import annotations

from graphkit.check.localize import localize
from graphkit.check.localize_feeds import feeds_for, golden_feeds, load_npz_feeds
from graphkit.cli.dim_options import add_dim_argument, parse_dim_items
from graphkit.ir.model_io import load_user_model
from graphkit.util.console import print_json
from graphkit.util.errors import InputError

NAME = "localize"
EXAMPLES = """\
graphkit localize export.onnx fixed.onnx --dim batch=1
graphkit localize A.onnx B.onnx --inputs inputs.npz --atol 1e-4 --json
graphkit localize A.onnx B.onnx --html path.html --model-explorer overlays/
"""
EXIT_CODES = "1 a divergence was found"
DESCRIPTION = """Run A and B on the same inputs in lockstep, segment by segment (each node runs once per
model; only the tensors live at a segment boundary are held), and report the first tensor of B
(in topological order) whose values differ from A's beyond tolerance, the node that produced
it, and the error figures (max abs, max rel, mismatch).

Inputs: --inputs F.npz (arrays keyed by input name), --golden DIR (its first inputs*.npz or *.inputs.npz), or
seeded random inputs (--seed, --dim NAME=N for symbolic dims; the batch defaults to 1 as in apply)."""


def add_arguments(parser) -> None:
    parser.add_argument("model_a", metavar="A.onnx", help="the reference model")
    parser.add_argument("model_b", metavar="B.onnx", help="the model to check against A")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--inputs", metavar="F.npz", help="input arrays keyed by graph input name")
    source.add_argument("--golden", metavar="DIR", help="golden set folder; uses its first inputs*.npz or *.inputs.npz")
    parser.add_argument("--seed", type=int, help="seed for random inputs (library default 0)")
    add_dim_argument(
        parser,
        "size of a symbolic input dim for random inputs, e.g. --dim batch=1 (default batch: 1; repeatable; "
        "--dims is the old spelling, kept for one release)",
        aliases=("--dims",),
    )
    parser.add_argument("--atol", type=float, help="absolute tolerance (library default 1e-5)")
    parser.add_argument("--rtol", type=float, help="relative tolerance (library default 1e-4)")
    parser.add_argument("--chunk-size", type=int, help="compared tensors per segment (library default 32)")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: onnxruntime's)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument(
        "--html", metavar="FILE", help="also write a page drawing the path to the first divergent node (atomic write)"
    )
    parser.add_argument(
        "--model-explorer", metavar="DIR", help="write a Model Explorer overlay of the error per tensor to DIR"
    )


def run(args) -> int:
    from graphkit.util.errors import FieldValueError
    from graphkit.util.tolerance import check_tolerance_value

    for flag, value in (("--atol", args.atol), ("--rtol", args.rtol)):
        try:
            if value is not None:
                check_tolerance_value(flag, value)
        except FieldValueError as exc:
            raise InputError(str(exc)) from exc
    dims = {"batch": 1, **parse_dim_items(args.dim)}
    a = load_user_model(args.model_a, mapped=True)  # weights stay in their files: read only where compared
    b = load_user_model(args.model_b, mapped=True)
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
    notes = []
    if args.html:
        from graphkit.diff.localize_page import write_localize_html

        write_localize_html(result, b, args.html, title=f"graphkit localize: {args.model_a} -> {args.model_b}")
        notes.append(f"wrote {args.html}")
    if args.model_explorer:
        from graphkit.diff.model_explorer import localize_overlay, open_command, write_overlays

        paths = write_overlays(args.model_explorer, localize_overlay(result, b))
        notes += [
            f"wrote a Model Explorer overlay to {args.model_explorer}; open it with",
            f"  {open_command(args.model_b, paths)}",
        ]
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.to_text())
        for note in notes:
            print(note)
    return 1 if result.diverged else 0
