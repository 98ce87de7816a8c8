"""``graphkit infer``: file-based inference that takes ais_bench's command lines as they are."""

from __future__ import annotations

import argparse
import functools
import sys

from graphkit.cli.executor_options import add_executor_arguments, ray_settings
from graphkit.ir.model_io import load_user_model
from graphkit.runtime.file_inference import infer_files
from graphkit.runtime.perf import time_key
from graphkit.util.console import print_json, progress
from graphkit.util.errors import InputError

NAME = "infer"
EXAMPLES = """\
graphkit infer --model=wseg.onnx --batchsize=4 --input prep_data --output result --output_dirname result_bs4 --outfmt BIN
graphkit infer --model=model.onnx --loop=50 --batchsize=4          # pure inference (zeros)
"""
EXIT_CODES = ""  # never 1
DESCRIPTION = """\
Run a model over .bin/.npy input files the way `python3 -m ais_bench` does, so ModelZoo command
lines run unchanged with an ONNX file in place of the OM:

  graphkit infer --model=wseg.onnx --batchsize=4 --input prep_data --output result \\
      --output_dirname result_bs4 --outfmt BIN
  graphkit infer --model resnet18.onnx --input ./prep_dataset/ --output ./result/ --output_dir r --outfmt TXT
  graphkit infer --model=model.onnx --loop=50 --batchsize=4          # pure inference (zeros)

ais_bench's spellings are the flags (--model/--om or a positional MODEL, --input, --output,
--output_dirname, --outfmt BIN|NPY|TXT, --batchsize, --device, --loop, --warmup_count, --debug,
--dymBatch, --dymHW, --dymDims, --dymShape, --outputSize, --auto_set_dymshape_mode,
--auto_set_dymdims_mode), with ais_bench's meaning: files per batch come from the tensor size /
file size, --batchsize only feeds the throughput figure (on onnxruntime it also sets a symbolic
batch dim), the short last batch is padded with its first file and those outputs dropped,
outputs are OUT/D/{name before the first dot}_{k}.{fmt}, a rerun overwrites, and the summary is
OUT/D_summary.json (--sumary-json also writes the older OUT/D/sumary.json). A flag graphkit
cannot honour on the chosen backend is one error line, exit 2.
"""

# ais_bench flags graphkit does not implement on any backend (device tooling).
UNSUPPORTED = {
    "profiler": "--profiler (msprof profiling)",
    "dump": "--dump (device tensor dumps)",
    "acl_json_path": "--acl_json_path (acl.json for profiling/dump)",
    "dymShape_range": "--dymShape_range (a search over shapes)",
}


def str2bool(text: str) -> bool:
    """ais_bench's boolean flags: true/t/yes/y/1 and false/f/no/n/0, any case."""
    value = str(text).lower()
    if value in ("yes", "true", "t", "y", "1"):
        return True
    if value in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"'{text}' is not a boolean (true, 1, false, 0)")


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser``'s own errors (bad value, bad choice) one ``graphkit: error:`` line, exit 2."""

    def error(message: str):
        print(f"graphkit: error: {parser.prog.split()[-1]}: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """MODEL as a positional argument or ais_bench's --model/--om (also --model=M)."""
    parser.add_argument("model", metavar="MODEL", nargs="?", help="the model (or give it with --model)")
    parser.add_argument("--model", "--om", dest="model_flag", metavar="MODEL", help="the model, ais_bench's spelling")


def model_from_args(args: argparse.Namespace) -> str:
    """The model path from the positional argument or --model; InputError when none or both."""
    if args.model and args.model_flag and args.model != args.model_flag:
        raise InputError(f"two models given: {args.model} and --model {args.model_flag}")
    model = args.model or args.model_flag
    if not model:
        raise InputError("no model given: pass MODEL or --model MODEL")
    return model


def check_device(device: int | None, backend: str) -> None:
    """--device N: a device id for ais_bench; on host backends only 0 (ais_bench's default) means the same."""
    if device is None:
        return
    if device < 0 or device > 255:
        raise InputError(f"--device {device}: must be in 0..255 (ais_bench's range)")
    if backend != "ais_bench" and device != 0:
        raise InputError(
            f"--device {device}: the {backend} backend runs on this host, which has no device {device}; drop --device "
            "or use --backend ais_bench on an Ascend machine"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    one_line_errors(parser)
    add_model_arguments(parser)
    parser.add_argument("--input", "-i", help="input folder(s) or file(s), comma-separated; none: pure inference")
    parser.add_argument("--output", "-o", help="output root folder (none: nothing is saved)")
    parser.add_argument(
        "--output_dirname", "--output-dirname", dest="output_dirname", help="output sub-folder (default: a timestamp)"
    )
    parser.add_argument("--outfmt", type=str.upper, choices=("BIN", "NPY", "TXT"), default="BIN", help="output format")
    parser.add_argument(
        "--batchsize", type=int, help="ais_bench: feeds the throughput figure; on ort also sets a symbolic batch dim"
    )
    parser.add_argument("--device", "--device-id", dest="device", type=int, help="Ascend device id (ais_bench)")
    parser.add_argument("--loop", "-r", type=int, default=1, help="runs per batch, each timed (default 1)")
    parser.add_argument(
        "--warmup_count", "--warmup-count", dest="warmup_count", type=int, default=1, help="warm-up runs"
    )
    parser.add_argument("--debug", type=str2bool, default=False, help="print the model's inputs and outputs")
    parser.add_argument("--dymBatch", type=int, default=0, help="batch size for a dynamic-batch model")
    parser.add_argument("--dymHW", help="'H,W' for a dynamic image size model")
    parser.add_argument("--dymDims", help="'name:d0,d1,...;name2:...' shapes for a dynamic-dims model")
    parser.add_argument("--dymShape", help="'name:d0,d1,...;name2:...' shapes for a dynamic-shape model")
    parser.add_argument("--outputSize", help="output buffer sizes (ais_bench); onnxruntime sizes outputs itself")
    parser.add_argument("--auto_set_dymshape_mode", type=str2bool, default=False, help="each .npy file is one input")
    parser.add_argument("--auto_set_dymdims_mode", type=str2bool, default=False, help="each .npy file is one input")
    parser.add_argument("--output_batchsize_axis", type=int, default=0, help="axis outputs are split along per file")
    parser.add_argument("--pure_data_type", choices=("zero", "random"), default="zero", help="pure-inference data")
    parser.add_argument(
        "--run_mode", choices=("array", "files", "tensor", "full"), help="ais_bench's loading strategy (same results)"
    )
    parser.add_argument("--display_all_summary", type=str2bool, default=False, help="also print H2D/D2H (device)")
    for name, label in UNSUPPORTED.items():
        kind = str2bool if name in ("profiler", "dump") else str
        parser.add_argument(f"--{name}", type=kind, help=f"{label}: not implemented by graphkit (exit 2 when given)")
    parser.add_argument(
        "--sumary-json", action="store_true", help="also write OUT/D/sumary.json (the older ais_infer name and place)"
    )
    parser.add_argument("--backend", default="ort", help="ort (default) or ais_bench when installed")
    parser.add_argument("--threads", type=int, help="intra-op threads (ort)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    model = model_from_args(args)
    for name, label in UNSUPPORTED.items():
        if getattr(args, name) not in (None, False):
            raise InputError(f"{label} is not implemented by graphkit; run python3 -m ais_bench for it")
    check_device(args.device, args.backend)
    if args.outputSize is not None:
        try:
            sizes = [int(v) for v in args.outputSize.split(",")]
        except ValueError as exc:
            raise InputError(f"--outputSize {args.outputSize!r}: expected sizes like 10000,10000") from exc
        if min(sizes) <= 0:
            raise InputError(f"--outputSize {args.outputSize!r}: sizes must be > 0")
        if args.backend == "ais_bench":
            raise InputError("--outputSize is not implemented by graphkit's ais_bench backend")
    if args.backend == "ais_bench" and (args.dymHW or args.dymDims or args.dymShape):
        raise InputError("--dymHW/--dymDims/--dymShape are not implemented by graphkit's ais_bench backend")
    options = {k: v for k, v in (("threads", args.threads),) if v is not None}
    if args.backend == "ais_bench":
        options["device_id"] = args.device or 0
    if args.backend == "ort":
        load_user_model(model)  # the same checks as every command; one line on a bad file
    bar = progress(desc="infer", unit="batch")

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.update(1)

    inputs = [p for p in args.input.split(",") if p] if args.input else None
    common = dict(
        output_dirname=args.output_dirname,
        outfmt=args.outfmt,
        batchsize=args.batchsize,
        backend=args.backend,
        backend_options=options,
        on_batch=advance,
    )
    ray = ray_settings(args)  # --ray-* flags without --executor ray: one-line error
    if args.executor == "ray":  # the files sharded over Ray workers, same outputs
        from graphkit.runtime.sharded_inference import infer_files_ray

        check_ray_flags(args)
        run_files = functools.partial(infer_files_ray, ray=ray)
    else:
        run_files = functools.partial(
            infer_files,
            loop=args.loop,
            warmup_count=args.warmup_count,
            dym_batch=args.dymBatch or None,
            dym_hw=args.dymHW,
            dym_dims=args.dymDims,
            dym_shape=args.dymShape,
            auto_set_dymshape_mode=args.auto_set_dymshape_mode,
            auto_set_dymdims_mode=args.auto_set_dymdims_mode,
            output_batchsize_axis=args.output_batchsize_axis,
            pure_data_type=args.pure_data_type,
            sumary_json=args.sumary_json,
            args=sys.argv,
            debug=args.debug,
        )
    try:
        summary = run_files(model, inputs, args.output, **common)
    finally:
        bar.close()
    if args.json:
        print_json(summary)
        return 0
    print_summary(summary, args.display_all_summary)
    return 0


def check_ray_flags(args: argparse.Namespace) -> None:
    """The Ray executor shards files with batches, names and BIN/NPY outputs as the local run;
    ais_bench options it does not implement yet are one error line, not silently ignored."""
    used = [
        flag
        for flag, given in (
            ("no --input (pure inference)", not args.input),
            ("no --output", not args.output),
            ("--outfmt TXT", args.outfmt == "TXT"),
            ("--loop", args.loop != 1),
            ("--dymBatch", bool(args.dymBatch)),
            ("--dymHW", bool(args.dymHW)),
            ("--dymDims", bool(args.dymDims)),
            ("--dymShape", bool(args.dymShape)),
            ("--auto_set_dymshape_mode", args.auto_set_dymshape_mode),
            ("--auto_set_dymdims_mode", args.auto_set_dymdims_mode),
            ("--output_batchsize_axis", args.output_batchsize_axis != 0),
            ("--sumary-json", args.sumary_json),
        )
        if given
    ]
    if used:
        raise InputError(f"--executor ray does not support {', '.join(used)}; use --executor local for it")


def print_summary(summary: dict, display_all: bool = False) -> None:
    """ais_bench's performance lines, saying what the time key measures."""
    key = time_key(summary)
    stats = summary[key]
    if display_all and "H2D_latency" in summary:
        print(_stats_line("H2D_latency", summary["H2D_latency"]))
    print(_stats_line(key, stats) + f"  [{summary['measures'][key]}]")
    if display_all and "D2H_latency" in summary:
        print(_stats_line("D2H_latency", summary["D2H_latency"]))
    print(
        f"throughput 1000*batchsize({summary['batchsize']})/{key}.mean({stats['mean']:.4f}): {summary['throughput']:.4f}"
    )
    model_batch = summary.get("model_batch")
    if model_batch is not None and model_batch != summary["batchsize"]:
        print(
            f"note: the model runs batches of {model_batch}; throughput uses --batchsize {summary['batchsize']} as "
            "ais_bench does"
        )
    if "output_dir" in summary:
        print(f"outputs: {summary['output_dir']}\nsummary: {summary['summary_path']}")


def _stats_line(name: str, stats: dict) -> str:
    return (
        f"{name} (ms): min = {stats['min']:.4f}, max = {stats['max']:.4f}, mean = {stats['mean']:.4f}, "
        f"median = {stats['median']:.4f}, percentile(99%) = {stats['percentile(99%)']:.4f}"
    )
