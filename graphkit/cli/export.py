"""``graphkit export -o OUT.onnx``: export the wseg model (checkpoint or seeded weights) to ONNX."""

from __future__ import annotations

import time

from graphkit.ir.model_io import content_hash, default_opset, graph_inputs, model_size
from graphkit.runtime.feeds import input_dims
from graphkit.util.console import format_table, print_json
from graphkit.util.files import check_target
from graphkit.util.typed_config import from_mapping
from graphkit.wseg.export import ExportSpec, export_from_spec

NAME = "export"
EXAMPLES = """\
graphkit export -o wseg.onnx                                  # seeded weights, 1024x1024
graphkit export --weights model_enc_e020Xs0.928.pth -o wseg.onnx
graphkit export --opset 13 -o wseg_op13.onnx                  # single Softmax(axis=1)
graphkit export --width 0.03125 --input-size 64 64 -o tiny.onnx --json
"""
EXIT_CODES = "1 the export does not match the torch model"
DESCRIPTION = """Export the 1-stage-wseg WideResNet38 test-time model to ONNX.

Without --weights the model has seeded random weights (reported as "random (seed N)").
The default form is the Ascend ModelZoo one: legacy exporter, opset 11, input 'image',
outputs 'cls' and 'mask', dynamic batch named 'batch'. The file is written atomically."""


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="where to write the ONNX model")
    parser.add_argument("--weights", metavar="PATH", help="PyTorch checkpoint (state_dict) to load (default: random)")
    parser.add_argument("--seed", type=int, help="seed of the random weights when no checkpoint is given (default 0)")
    parser.add_argument("--width", type=float, help="channel multiplier in (0, 1]; < 1 gives a tiny model (default 1)")
    parser.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"), help="input height and width (default 1024 1024)"
    )
    parser.add_argument("--exporter", choices=("legacy", "dynamo"), help="torch exporter (default legacy)")
    parser.add_argument("--opset", type=int, help="ONNX opset (default 11; dynamo needs >= 18)")
    parser.add_argument(
        "--static-batch",
        dest="dynamic_batch",
        action="store_const",
        const=False,
        help="fix the batch dim to 1 instead of the symbolic 'batch'",
    )
    parser.add_argument("--json", action="store_true", help="print what was written as JSON on stdout")


def run(args) -> int:
    given = {
        "weights": args.weights,
        "seed": args.seed,
        "width": args.width,
        "input_size": args.input_size,
        "exporter": args.exporter,
        "opset": args.opset,
        "dynamic_batch": args.dynamic_batch,
    }
    spec = from_mapping(ExportSpec, {k: v for k, v in given.items() if v is not None}, "export")
    check_target(args.output)  # before the export's minutes of work, not after
    started = time.perf_counter()
    result = export_from_spec(spec, args.output)
    seconds = time.perf_counter() - started
    image = graph_inputs(result.model)[0]
    summary = {
        "output": args.output,
        "weights": result.weights,
        "exporter": spec.exporter,
        "opset": default_opset(result.model),
        "input": {"name": image.name, "shape": input_dims(image)},
        "outputs": [o.name for o in result.model.graph.output],
        "nodes": len(result.model.graph.node),
        "size_bytes": model_size(result.model),
        "content_hash": content_hash(result.model),
        "seconds": round(seconds, 2),
    }
    if args.json:
        print_json(summary)
    else:
        shown = dict(summary)
        shown["input"] = f"{image.name} [{', '.join(map(str, summary['input']['shape']))}]"
        shown["outputs"] = ", ".join(summary["outputs"])
        rows = [(k, v) for k, v in shown.items() if k != "output"]
        print(format_table(["field", "value"], rows))
        print(f"wrote {args.output}")
    return 0
