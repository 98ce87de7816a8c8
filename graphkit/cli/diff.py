"""``graphkit diff A.onnx B.onnx``: what changed between two models."""

from __future__ import annotations

import sys
from pathlib import Path

from graphkit.diff.html_view import write_html
from graphkit.diff.model_diff import diff_models
from graphkit.diff.text_view import render_text, use_color
from graphkit.ir.model_io import load_user_model
from graphkit.util.console import print_json

NAME = "diff"
EXAMPLES = """\
graphkit diff export.onnx runs/wseg/model.onnx
graphkit diff A.onnx B.onnx --json > diff.json
graphkit diff A.onnx B.onnx --html diff.html
graphkit diff A.onnx B.onnx --model-explorer overlays/
"""
EXIT_CODES = "1 with --exit-code when the models differ"
DESCRIPTION = """Show what changed from model A to model B.

Nodes are matched by name where names are stable, else by structure (op type and producers).
Text output is colored on a terminal (set NO_COLOR to disable); --json prints the versioned
JSON schema; --html writes one self-contained page with the changed regions drawn side by side;
--model-explorer writes node-data overlays for Model Explorer and prints the command that opens them."""


def add_arguments(parser) -> None:
    parser.add_argument("model_a", metavar="A.onnx", help="the model before (reference)")
    parser.add_argument("model_b", metavar="B.onnx", help="the model after")
    parser.add_argument("--json", action="store_true", help="print the diff as JSON (schema_version field) on stdout")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page to FILE (atomic write)")
    parser.add_argument(
        "--model-explorer",
        metavar="DIR",
        help="write Model Explorer node-data overlays (node status, pass that made it) to DIR",
    )
    parser.add_argument(
        "--exit-code", action="store_true", help="exit with 1 when the models differ, 0 when they do not"
    )


def run(args) -> int:
    # weights stay in their files: a stub's bytes are hashed from the file in pieces
    a = load_user_model(args.model_a, load_external_data=False)
    b = load_user_model(args.model_b, load_external_data=False)
    diff = diff_models(a, b, folders=(Path(args.model_a).parent, Path(args.model_b).parent))
    if args.html:
        write_html(diff, a, b, args.html, title=f"graphkit diff: {args.model_a} -> {args.model_b}")
    opened = []
    if args.model_explorer:
        from graphkit.diff.model_explorer import diff_overlays, open_command, write_overlays

        paths = write_overlays(args.model_explorer, diff_overlays(diff, a, b))
        opened = [
            open_command(args.model_a, [p for p in paths if p.name.startswith("a-")]),
            open_command(args.model_b, [p for p in paths if p.name.startswith("b-")]),
        ]
    if args.json:
        print_json(diff.to_dict())
    else:
        print(render_text(diff, color=use_color(sys.stdout)))
        if args.html:
            print(f"wrote {args.html}")
        if opened:
            print(f"wrote Model Explorer overlays to {args.model_explorer}; open them with")
            print("\n".join(f"  {command}" for command in opened))
    return 1 if args.exit_code and not diff.is_empty() else 0
