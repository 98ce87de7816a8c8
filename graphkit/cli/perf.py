"""``graphkit perf``: throughput and latency per batch size (ais_bench summary schema)."""

from __future__ import annotations

import argparse
import logging

from graphkit.cli.dim_options import add_dim_argument, parse_dim_items
from graphkit.cli.infer import add_model_arguments, check_device, device_ids, model_from_args, one_line_errors
from graphkit.ir.model_io import load_user_model
from graphkit.runtime.perf import (
    TABLE_HEADERS,
    default_output_dir,
    measure_perf,
    table_rows,
    time_key,
    write_perf_report,
)
from graphkit.util.console import format_table, print_json
from graphkit.util.errors import InputError

logger = logging.getLogger(__name__)

NAME = "perf"
EXAMPLES = """\
graphkit perf model.onnx --batch-sizes 1,4,8,16 --loop 20
graphkit perf --model=model.onnx --loop=50 --batchsize=4   # ais_bench's pure-inference line
"""
EXIT_CODES = ""  # never 1
DESCRIPTION = """\
Measure pure-inference throughput (FPS = 1000 * batch / mean ms) and latency (min, max, mean,
median, p99) per batch size. Warm-up calls are excluded; session creation is reported apart.
Writes perf_summary.json and perf.png into --output (default: runs/perf/<model name>).

  graphkit perf model.onnx --batch-sizes 1,4,8,16 --loop 20 --warmup 2 --threads 2
  graphkit perf model.onnx --dim H=256 --dim W=256     # symbolic dims by name
  graphkit perf model.om --backend ais_bench           # on an Ascend machine with ais_bench
  graphkit perf --model=model.onnx --loop=50 --batchsize=4   # ais_bench's pure-inference line

ais_bench's spellings work too: --model/--om, --batchsize (a symbolic batch runs at it; a
static batch runs as it is and --batchsize only feeds the throughput figure, as in ais_bench),
--warmup_count, --device (0 only on host backends). On host backends the time is host_run_time
(wall-clock of one run on the host), not NPU_compute_time.
"""


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    one_line_errors(parser)
    add_model_arguments(parser)
    parser.add_argument(
        "--batch-sizes", type=_int_list, help="comma-separated batch sizes (default: the model's static batch, else 1)"
    )
    parser.add_argument("--loop", type=int, help="timed runs per batch size (library default: 10)")
    parser.add_argument(
        "--warmup", "--warmup_count", dest="warmup", type=int, help="untimed runs before timing (library default: 1)"
    )
    parser.add_argument(
        "--batchsize", "--batch-size", dest="batchsize", type=int, help="ais_bench's --batchsize (above)"
    )
    parser.add_argument("--backend", help="ort (default), torch, or ais_bench when installed")
    parser.add_argument("--threads", type=int, help="intra-op threads (ort, torch)")
    parser.add_argument("--device", "--device-id", dest="device", type=device_ids, help="Ascend device id (ais_bench)")
    parser.add_argument("--io-binding", action="store_true", default=None, help="use onnxruntime io-binding (ort)")
    add_dim_argument(parser, "size of a symbolic input dim by name, e.g. --dim seq=128 (repeatable)")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs="+",
        metavar="N",
        help="positional form: H W, or one value per input dim (dim 0 is the batch); prefer --dim NAME=N",
    )
    parser.add_argument("--output", "-o", help="folder for perf_summary.json and perf.png")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    model = model_from_args(args)
    if args.batchsize is not None and args.batch_sizes is not None:
        raise InputError("give --batch-sizes (graphkit) or --batchsize (ais_bench), not both")
    backend = args.backend or "ort"
    check_device(args.device, backend)
    if isinstance(args.device, list):
        raise InputError("graphkit perf times one device; for --device 0,1 use graphkit infer (one run per device)")
    options = {
        key: value for key, value in (("threads", args.threads), ("io_binding", args.io_binding)) if value is not None
    }
    if backend == "ais_bench":
        options["device_id"] = args.device or 0
    kwargs = {
        key: value
        for key, value in (
            ("batch_sizes", args.batch_sizes),
            ("loop", args.loop),
            ("warmup", args.warmup),
            ("backend", args.backend),
            ("input_size", args.input_size),
            ("dims", parse_dim_items(args.dim) or None),
            ("ais_batchsize", args.batchsize),
        )
        if value is not None
    }
    echo = None if args.json else (lambda r: logger.info("batch %s: %.2f FPS", r["batchsize"], r["throughput"]))
    if (args.backend or "ort") == "ort":
        load_user_model(model)  # the same checks as every command; one line on a bad file
    report = measure_perf(model, backend_options=options, on_batch=echo, **kwargs)
    paths = write_perf_report(report, args.output or default_output_dir(model))
    report["files"] = {k: str(v) for k, v in paths.items()}
    if args.json:
        print_json(report)
        return 0
    print(format_table(TABLE_HEADERS, table_rows(report)))
    for result in report["results"]:
        key = time_key(result)
        print(f"batch {result['batchsize']}: times are {key}: {result['measures'][key]}")
        if result["model_batch"] != result["batchsize"]:
            print(
                f"note: the model runs batches of {result['model_batch']}; throughput uses --batchsize "
                f"{result['batchsize']} as ais_bench does"
            )
    worst = max(r["overhead"]["percent"] for r in report["results"])
    print(
        f"session creation {report['session_creation_s']:.3f} s; measurement overhead at most {worst:.4f} % "
        f"of inference time\nwrote {' and '.join(str(path) for path in paths.values() if path)}"
    )
    return 0
