"""``graphkit inspect``: what a model is (opsets, I/O with symbolic dims, ops, parameters, MACs)."""

from __future__ import annotations

from graphkit.cli.dim_options import add_dim_argument, parse_dim_items

NAME = "inspect"
DESCRIPTION = """Describe an ONNX model without running it: IR version, opsets and producer; inputs and
outputs with their element types and dims (symbolic dims by name); the node count and op-type
counts; parameters (elements and bytes of the initializers) and external data files; and the
multiply-accumulates (MACs) of Conv, ConvTranspose, Gemm and MatMul at the dim sizes given with
--dim (batch 1 by default). External data files are never read."""
EXAMPLES = """\
graphkit inspect model.onnx
graphkit inspect bert.onnx --dim seq=128 --json
"""
EXIT_CODES = ""  # never 1


def add_arguments(parser) -> None:
    parser.add_argument("model", help="the ONNX model")
    add_dim_argument(parser, "size of a symbolic input dim for the MAC count, e.g. --dim seq=128 (batch: 1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")


def run(args) -> int:
    from graphkit.ir.model_io import load_user_model
    from graphkit.ir.model_summary import summarize, text_report
    from graphkit.util.console import print_json

    dims = parse_dim_items(args.dim)
    summary = summarize(load_user_model(args.model, load_external_data=False), dims)
    if args.json:
        print_json(summary.to_dict())
    else:
        print(text_report(summary, args.model))
    return 0
