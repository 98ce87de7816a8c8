"""``graphkit eval MODEL --data-root VOC --out DIR``: VOC mIoU with dense CRF, streaming and resumable."""

from __future__ import annotations

from pathlib import Path

from graphkit.cli.executor_options import add_executor_arguments, executor_mapping
from graphkit.ir.model_io import load_user_model
from graphkit.util.console import print_json
from graphkit.util.errors import SpecError
from graphkit.util.safe_yaml import load_yaml_file
from graphkit.wseg.eval.outputs import metrics_table
from graphkit.wseg.eval.runner import run_eval
from graphkit.wseg.eval.spec import eval_spec_from_mapping

NAME = "eval"
EXAMPLES = """\
graphkit eval model.onnx --data-root /data/VOCdevkit --out runs/eval --limit 20
graphkit eval model.onnx --data-root /data/VOCdevkit --out runs/eval --executor ray
"""
EXIT_CODES = ""  # never 1
DESCRIPTION = """Evaluate a segmentation model on PASCAL VOC the way 1-stage-wseg's test scripts do:
8 views per image (scales 1, 0.5, 1.5, 2 and their flips), centre pad, merge, background power,
dense CRF, confusion matrix, per-class IoU/precision/recall and two mIoU figures (21 classes
with background = the standard VOC figure; 20 without).

The output folder gets masks/, masks_crf/, overlays/, metrics.json, metrics.txt, scores.jsonl
and iou_per_class.png. Rerunning on the same folder resumes (finished images are not redone).

--executor ray spreads the images over Ray worker actors (each holds one session and does all
of an image's work); without --ray-address Ray starts locally. Same numbers as the local run."""


def add_arguments(parser):
    parser.add_argument("model", help="the ONNX model (input image [N,3,H,W], outputs cls [N,20] and mask [N,21,H,W])")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (resumed when it holds a partial run)"
    )
    parser.add_argument(
        "--spec", metavar="YAML", help="read settings from a YAML mapping (or its 'eval:' section); flags override it"
    )
    parser.add_argument("--data-root", metavar="DIR", help="VOC2012 folder or a folder above it (eval.data_root)")
    parser.add_argument(
        "--list",
        dest="image_list",
        metavar="FILE",
        help="image list: names, or 'image mask' path pairs (eval.image_list)",
    )
    parser.add_argument("--split", help="VOC split read when --list is not given (eval.split; default val)")
    parser.add_argument("--mask-dir", help="GT folder inside VOC2012 for name lists (eval.mask_dir)")
    parser.add_argument("--backend", help="inference backend (eval.backend; default ort)")
    parser.add_argument("--threads", type=int, help="backend intra-op threads (eval.threads)")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="views per inference call (eval.batch_size; default: the model's fixed batch, else 1)",
    )
    parser.add_argument(
        "--pad-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="pad every view to H x W (eval.pad_size; default 1024 1024)",
    )
    parser.add_argument("--scales", type=float, nargs="+", help="view scales (eval.scales; default 1 0.5 1.5 2)")
    parser.add_argument(
        "--no-flip", dest="flip", action="store_const", const=False, help="no flipped views (eval.flip)"
    )
    parser.add_argument("--fp-cut-score", type=float, help="class score threshold (eval.fp_cut_score; default 0.1)")
    parser.add_argument("--bg-pow", type=float, help="background power (eval.bg_pow; default 3)")
    parser.add_argument("--no-crf", dest="crf", action="store_const", const=False, help="skip the dense CRF (eval.crf)")
    parser.add_argument(
        "--crf-iterations", type=int, help="CRF mean-field iterations (eval.crf_iterations; default 10)"
    )
    parser.add_argument(
        "--workers", type=int, help="postprocess/CRF processes (eval.workers; default: CPU cores; 0: none)"
    )
    parser.add_argument(
        "--limit", type=int, metavar="N", help="evaluate only the first N images of the list (eval.limit)"
    )
    parser.add_argument(
        "--no-resume",
        dest="resume",
        action="store_const",
        const=False,
        help="start over even if the folder holds a partial run (eval.resume)",
    )
    parser.add_argument(
        "--skip-missing",
        action="store_const",
        const=True,
        help="skip and count images whose JPEG or GT is missing (eval.skip_missing)",
    )
    parser.add_argument(
        "--no-masks",
        dest="save_masks",
        action="store_const",
        const=False,
        help="do not write mask PNGs (eval.save_masks)",
    )
    parser.add_argument(
        "--overlays", type=int, metavar="N", help="overlay pictures for the first N images (eval.overlays; default 10)"
    )
    parser.add_argument(
        "--dump-bins",
        nargs=2,
        metavar=("DIR", "N"),
        help="also write ais_bench .bin inputs of the first N images to DIR",
    )
    parser.add_argument(
        "--weights-description",
        metavar="TEXT",
        help="where the weights come from; 'random...' marks the mIoU meaningless",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "fp16"],
        help="fp16: evaluate MODEL's fp16 emulation (ATC force_fp16, docs/precision.md), written to OUT/model_fp16.onnx",
    )
    parser.add_argument(
        "--keep-dtype", metavar="FILE", help="with --precision fp16: ATC --keep_dtype file of nodes kept fp32"
    )
    parser.add_argument("--json", action="store_true", help="print the summary (metrics.json) on stdout")
    add_executor_arguments(parser, "eval.")


_FLAG_KEYS = [
    "data_root",
    "image_list",
    "split",
    "mask_dir",
    "backend",
    "threads",
    "batch_size",
    "pad_size",
    "scales",
    "flip",
    "fp_cut_score",
    "bg_pow",
    "crf",
    "crf_iterations",
    "workers",
    "limit",
    "resume",
    "skip_missing",
    "save_masks",
    "overlays",
    "weights_description",
]


def _spec_mapping(args) -> dict:
    data: dict = {}
    if args.spec:
        path = Path(args.spec)
        loaded = load_yaml_file(path, "eval spec")  # regular file, within limits: no alias bombs
        if isinstance(loaded, dict) and "eval" in loaded and isinstance(loaded["eval"], dict):
            loaded = loaded["eval"]
        if not isinstance(loaded, dict):
            raise SpecError(f"{path}: expected a mapping of eval settings")
        data.update(loaded)
    for key in _FLAG_KEYS:
        value = getattr(args, key)
        if value is not None:
            data[key] = list(value) if isinstance(value, (list, tuple)) else value
    if args.dump_bins:
        folder, count = args.dump_bins
        try:
            data["dump_bins_count"] = int(count)
        except ValueError as exc:
            raise SpecError(f"--dump-bins: N must be an integer, got {count!r}") from exc
        data["dump_bins_dir"] = folder
    if args.executor is not None:
        data["executor"] = args.executor
    base = data.get("ray") if isinstance(data.get("ray"), dict) else None
    ray = executor_mapping(args, base, executor=data.get("executor") if isinstance(data.get("executor"), str) else None)
    if ray:
        data["ray"] = ray
    if "data_root" not in data:
        raise SpecError("eval.data_root: required (pass --data-root or set it in --spec)")
    return data


def run(args) -> int:
    spec = eval_spec_from_mapping(_spec_mapping(args), where=f"{args.spec}: eval" if args.spec else "eval")
    model_path = args.model
    if args.keep_dtype and args.precision != "fp16":
        raise SpecError("--keep-dtype: only with --precision fp16")
    if args.precision == "fp16":
        from graphkit.ascend.precision_preview import write_emulated_model

        model_path = write_emulated_model(args.model, Path(args.out) / "model_fp16.onnx", keep_dtype=args.keep_dtype)
    elif spec.backend == "ort":
        load_user_model(args.model)  # the same checks as every command; one line on a bad file
    summary = run_eval(spec, model_path, args.out)
    if args.precision == "fp16":
        summary["precision"] = {"emulated": "fp16 (ATC force_fp16)", "source_model": str(args.model)}
    if args.json:
        print_json(summary)
    else:
        print(metrics_table(summary), end="")
        print(f"outputs: {summary['output_dir']}")
    return 0
