"""``graphkit infer``: file-based inference with ais_bench's conventions."""

from __future__ import annotations

import argparse
import functools
import sys

from graphkit.commands.executor_options import add_executor_arguments, ray_settings
from graphkit.console import print_json, progress
from graphkit.infer_files import infer_files

NAME = "infer"
HELP = "file-based inference compatible with ais_bench (--input DIR[,DIR] --output OUT ...)"
DESCRIPTION = """\
Run a model over .bin/.npy input files the way ais_bench does, so scripts written for
`python3 -m ais_bench` can switch to graphkit and back:

  graphkit infer model.onnx --input bins/ --output out --output-dirname run1 --outfmt BIN --batchsize 4

Files are naturally sorted and concatenated along dim 0 to fill each batch; the last batch is
padded and its padding outputs dropped. Outputs: OUT/D/{input_stem}_{k}.{bin|npy} (k = output
index); summary: OUT/D_summary.json (ais_bench's keys).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="ONNX file (ort) or OM file (ais_bench)")
    parser.add_argument(
        "--input", required=True, help="input folder(s) or file(s), comma-separated, one per model input"
    )
    parser.add_argument("--output", required=True, help="output root folder")
    parser.add_argument("--output-dirname", help="output sub-folder name (library default: a timestamp)")
    parser.add_argument("--outfmt", type=str.upper, choices=("BIN", "NPY"), help="output format (library default: BIN)")
    parser.add_argument("--batchsize", type=int, help="batch size (library default: the model's static batch, else 1)")
    parser.add_argument("--backend", help="ort (default) or ais_bench when installed")
    parser.add_argument("--threads", type=int, help="intra-op threads (ort)")
    parser.add_argument("--device-id", type=int, help="Ascend device id (ais_bench)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    options = {k: v for k, v in (("threads", args.threads), ("device_id", args.device_id)) if v is not None}
    kwargs = {
        k: v
        for k, v in (
            ("output_dirname", args.output_dirname),
            ("outfmt", args.outfmt),
            ("batchsize", args.batchsize),
            ("backend", args.backend),
        )
        if v is not None
    }
    bar = progress(desc="infer", unit="batch")

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.update(1)

    run_files, ray = infer_files, ray_settings(args)  # --ray-* flags without --executor ray: one-line error
    if args.executor == "ray":  # the files sharded over Ray workers, same outputs
        from graphkit.infer_shards import infer_files_ray

        run_files = functools.partial(infer_files_ray, ray=ray)
    try:
        summary = run_files(
            args.model,
            [p for p in args.input.split(",") if p],
            args.output,
            backend_options=options,
            on_batch=advance,
            **kwargs,
        )
    finally:
        bar.close()
    if args.json:
        print_json(summary)
    else:
        compute = summary["NPU_compute_time"]
        print(
            f"{summary['input_files']} input file(s) in {summary['batches']} batch(es) of {summary['batchsize']}: "
            f"mean {compute['mean']:.3f} ms per batch, throughput {summary['throughput']:.2f}/s\n"
            f"outputs: {summary['output_dir']}\nsummary: {summary['summary_path']}",
            file=sys.stdout,
        )
    return 0
