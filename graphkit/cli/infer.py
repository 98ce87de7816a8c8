"""``graphkit infer``: file-based inference that takes ais_bench's command lines as they are."""

from __future__ import annotations

import argparse
import functools
import sys
import time

from graphkit.cli.executor_options import add_executor_arguments, ray_settings
from graphkit.ir.model_io import load_user_model
from graphkit.runtime.ais_bench import check_acl_json
from graphkit.runtime.file_inference import infer_files
from graphkit.runtime.infer_paths import device_dirname, input_texts, split_for_devices
from graphkit.runtime.perf import time_key
from graphkit.runtime.tensor_files import input_file_lists
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

On --backend ais_bench (an Ascend machine) the dynamic options reach the device session as
ais_bench sets them, --dump/--acl_json_path configure dumps, and --device 0,1 runs once per
device into OUT/D/device{id}_{index}. msit's spellings (--om-model, --batch-size, --dym-shape,
--output-size, ...) are the same flags.
"""

# ais_bench flags graphkit does not implement on any backend (device tooling).
UNSUPPORTED = {
    "profiler": "--profiler (msprof profiling)",
    "dymShape_range": "--dymShape_range (a search over shapes)",
}
# ais_bench options that only mean something on a device (the ais_bench backend).
DEVICE_ONLY = {"dump": "--dump (device tensor dumps)", "acl_json_path": "--acl_json_path (acl.json for dump/profiling)"}


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
    parser.add_argument(
        "--model",
        "--om",
        "--om-model",
        dest="model_flag",
        metavar="MODEL",
        help="the model (ais_bench's/msit's spelling)",
    )


def model_from_args(args: argparse.Namespace) -> str:
    """The model path from the positional argument or --model; InputError when none or both."""
    if args.model and args.model_flag and args.model != args.model_flag:
        raise InputError(f"two models given: {args.model} and --model {args.model_flag}")
    model = args.model or args.model_flag
    if not model:
        raise InputError("no model given: pass MODEL or --model MODEL")
    return model


def device_ids(text: str) -> int | list[int]:
    """ais_bench's ``--device``: one id, or ids separated by commas (one run per device)."""
    try:
        ids = [int(v) for v in str(text).split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a device id or a list like 0,1") from exc
    return ids[0] if "," not in str(text) else ids


def check_device(device: int | list[int] | None, backend: str) -> None:
    """--device N or N,M: device ids for ais_bench; on host backends only 0 (ais_bench's default) means the same."""
    if device is None:
        return
    ids = device if isinstance(device, list) else [device]
    for one in ids:
        if one < 0 or one > 255:
            raise InputError(f"--device {one}: must be in 0..255 (ais_bench's range)")
    if len(set(ids)) != len(ids):
        raise InputError(f"--device {','.join(map(str, ids))}: a device is listed twice")
    if backend != "ais_bench" and ids != [0]:
        shown = ",".join(map(str, ids))
        raise InputError(
            f"--device {shown}: the {backend} backend runs on this host, which has no device {shown}; drop --device "
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
        "--batchsize",
        "--batch-size",
        dest="batchsize",
        type=int,
        help="ais_bench: feeds the throughput figure; on ort also sets a symbolic batch dim",
    )
    parser.add_argument(
        "--device", "--device-id", dest="device", type=device_ids, help="Ascend device id(s): 0, or 0,1 (ais_bench)"
    )
    parser.add_argument("--loop", "-r", type=int, default=1, help="runs per batch, each timed (default 1)")
    parser.add_argument(
        "--warmup_count", "--warmup-count", dest="warmup_count", type=int, default=1, help="warm-up runs"
    )
    parser.add_argument("--debug", type=str2bool, default=False, help="print the model's inputs and outputs")
    parser.add_argument(
        "--dymBatch", "--dym-batch", dest="dymBatch", type=int, default=0, help="batch size for a dynamic-batch model"
    )
    parser.add_argument("--dymHW", "--dym-hw", dest="dymHW", help="'H,W' for a dynamic image size model")
    parser.add_argument(
        "--dymDims", "--dym-dims", dest="dymDims", help="'name:d0,d1,...;name2:...' shapes for a dynamic-dims model"
    )
    parser.add_argument(
        "--dymShape", "--dym-shape", dest="dymShape", help="'name:d0,d1,...;name2:...' shapes for a dynamic-shape model"
    )
    parser.add_argument(
        "--outputSize",
        "--output-size",
        dest="outputSize",
        help="output buffer sizes (device); ort sizes outputs itself",
    )
    parser.add_argument(
        "--auto_set_dymshape_mode",
        "--auto-set-dymshape-mode",
        dest="auto_set_dymshape_mode",
        type=str2bool,
        default=False,
        help="each .npy file is one input",
    )
    parser.add_argument(
        "--auto_set_dymdims_mode",
        "--auto-set-dymdims-mode",
        dest="auto_set_dymdims_mode",
        type=str2bool,
        default=False,
        help="each .npy file is one input",
    )
    parser.add_argument(
        "--output_batchsize_axis",
        "--output-batchsize-axis",
        dest="output_batchsize_axis",
        type=int,
        default=0,
        help="axis outputs are split along per file",
    )
    parser.add_argument(
        "--pure_data_type",
        "--pure-data-type",
        dest="pure_data_type",
        choices=("zero", "random"),
        default="zero",
        help="pure-inference data",
    )
    parser.add_argument(
        "--run_mode",
        "--run-mode",
        dest="run_mode",
        choices=("array", "files", "tensor", "full"),
        help="ais_bench's loading strategy (same results)",
    )
    parser.add_argument(
        "--display_all_summary",
        "--display-all-summary",
        dest="display_all_summary",
        type=str2bool,
        default=False,
        help="also print H2D/D2H (device)",
    )
    parser.add_argument("--profiler", type=str2bool, help="msprof profiling: not implemented by graphkit (exit 2)")
    parser.add_argument(
        "--dymShape_range", "--dym-shape-range", dest="dymShape_range", help="not implemented by graphkit (exit 2)"
    )
    parser.add_argument("--dump", type=str2bool, help="device: dump every tensor (writes OUT/acl.json, OUT/dump)")
    parser.add_argument(
        "--acl_json_path", "--acl-json-path", dest="acl_json_path", help="device: acl.json for dump/profiling"
    )
    parser.add_argument(
        "--sumary-json", action="store_true", help="also write OUT/D/sumary.json (the older ais_infer name and place)"
    )
    parser.add_argument("--backend", default="ort", help="ort (default) or ais_bench when installed")
    parser.add_argument("--threads", type=int, help="intra-op threads (ort)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_executor_arguments(parser)


def output_sizes(text: str | None) -> list[int] | None:
    """ais_bench's ``--outputSize 10000,10000``: one buffer size per output; InputError when malformed."""
    if text is None:
        return None
    try:
        sizes = [int(v) for v in text.split(",")]
    except ValueError as exc:
        raise InputError(f"--outputSize {text!r}: expected sizes like 10000,10000") from exc
    if min(sizes) <= 0:
        raise InputError(f"--outputSize {text!r}: sizes must be > 0")
    return sizes


def device_options(args: argparse.Namespace) -> dict:
    """The ais_bench backend's options from the command line (its ``set_session_options``)."""
    acl_json = args.acl_json_path
    dump_output = None
    if acl_json is not None:
        acl_json = check_acl_json(acl_json)  # ais_bench: a given acl.json wins over --dump
    elif args.dump:
        if not args.output:
            raise InputError("--dump needs --output (ais_bench writes OUT/acl.json and dumps into OUT/dump)")
        dump_output = args.output  # the backend writes OUT/acl.json once ais_bench imports
    auto = "dymshape" if args.auto_set_dymshape_mode else "dymdims" if args.auto_set_dymdims_mode else None
    options = {
        "dym_batch": args.dymBatch or None,
        "dym_hw": args.dymHW,
        "dym_dims": args.dymDims,
        "dym_shape": args.dymShape,
        "output_size": output_sizes(args.outputSize),
        "auto_mode": auto,
        "acl_json_path": acl_json,
        "dump_output": dump_output,
    }
    return {k: v for k, v in options.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    model = model_from_args(args)
    for name, label in UNSUPPORTED.items():
        if getattr(args, name) not in (None, False):
            raise InputError(f"{label} is not implemented by graphkit; run python3 -m ais_bench for it")
    check_device(args.device, args.backend)
    output_sizes(args.outputSize)  # checked alike on every backend; onnxruntime sizes outputs itself
    options = {k: v for k, v in (("threads", args.threads),) if v is not None}
    if args.backend == "ais_bench":
        options.update(device_options(args))
    else:
        for name, label in DEVICE_ONLY.items():
            if getattr(args, name) not in (None, False):
                raise InputError(f"{label} needs a device: use --backend ais_bench on an Ascend machine")
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
        if isinstance(args.device, list):
            if args.executor == "ray":
                raise InputError("--executor ray does not support several --device ids; use --executor local")
            summary = infer_on_devices(run_files, model, inputs, args.output, args.device, common)
        else:
            summary = run_files(model, inputs, args.output, **common)
    finally:
        bar.close()
    if args.json:
        print_json(summary)
        return 0
    for one in summary.get("devices", [summary]):
        print_summary(one, args.display_all_summary)
    if "devices" in summary:
        print(f"summary throughput (sum over devices {summary['device_ids']}): {summary['throughput']:.4f}")
    return 0


def infer_on_devices(run_files, model, inputs, output, devices: list[int], common: dict) -> dict:
    """ais_bench's multi-device run: the input files split over the devices, one run each (here
    one after the other), outputs in OUT/D/device{id}_{index}; the throughputs are summed."""
    dirname = common["output_dirname"] or time.strftime("%Y_%m_%d-%H_%M_%S")
    shares: list[list[str] | None] = [None] * len(devices)
    if inputs:
        from graphkit.runtime.backend import open_backend

        with open_backend(common["backend"], model, **{**common["backend_options"], "device_id": devices[0]}) as s:
            count = len(s.inputs)
        file_lists = input_file_lists(inputs, count)
        texts = input_texts(inputs, file_lists)
        shares = [[texts[f] for f in share] for share in split_for_devices(file_lists, len(devices))]
        if any(not share for share in shares):
            raise InputError(f"--device {','.join(map(str, devices))}: fewer input files than devices")
    results = []
    for index, (device, share) in enumerate(zip(devices, shares)):
        options = {**common["backend_options"], "device_id": device}
        where = device_dirname(dirname, device, index) if output is not None else None
        results.append(
            run_files(model, share, output, **{**common, "output_dirname": where, "backend_options": options})
        )
    return {"devices": results, "device_ids": devices, "throughput": sum(r["throughput"] for r in results)}


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
