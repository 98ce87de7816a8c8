"""``graphkit atc precheck|commands|build``: the ATC hand-off from the command line."""

from __future__ import annotations

import argparse
import json
import logging

from graphkit.ascend.build import build_plan
from graphkit.ascend.command_lines import check_input_names, plan_commands, write_plan
from graphkit.ascend.precheck import precheck
from graphkit.ascend.spec import IMPL_MODES, ONNX_INPUT_FORMATS, PRECISION_MODES, PRECISION_MODES_V2, AtcSpec
from graphkit.cli.infer import one_line_errors
from graphkit.ir.model_io import load_user_model
from graphkit.util.console import format_table, print_json
from graphkit.util.typed_config import from_mapping

logger = logging.getLogger(__name__)

NAME = "atc"
EXAMPLES = """\
graphkit atc precheck model.onnx --cann 6.0
graphkit atc commands model.onnx --output atc/ --batch-sizes 1,4,8,16
"""
EXIT_CODES = "1 precheck found errors or ATC failed"
DESCRIPTION = """\
Hand an ONNX model to Huawei's ATC compiler.

  graphkit atc precheck MODEL [--cann 6.0]          static lint (exit 1 when errors are found)
  graphkit atc commands MODEL --output DIR ...       write atc_commands.sh + atc_manifest.json
  graphkit atc build MODEL --output DIR ...          the same, then run ATC (exit 2 when atc is absent)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="atc_command", metavar="ACTION", required=True)
    check = sub.add_parser("precheck", help="static lint of the model for ATC")
    commands = sub.add_parser("commands", help="write the ATC command script and manifest")
    build = sub.add_parser("build", help="write the commands, then run ATC when it is on PATH")
    for action in (check, commands, build):
        one_line_errors(action)
        action.add_argument("model", metavar="MODEL", help="the ONNX model")
        action.add_argument("--soc", dest="soc_version", help="--soc_version (library default: Ascend310P3)")
        action.add_argument("--cann", help="CANN version, sets the accepted opset range (library default: 6.0)")
        action.add_argument(
            "--input-shape", help="ATC --input_shape for symbolic dims, e.g. 'image:1,3,512,512' (dim 0 = batch)"
        )
        action.add_argument("--batch-sizes", type=_int_list, help="static-batch OMs, e.g. 1,4,8,16 (default: 1)")
        action.add_argument("--dynamic-batch-sizes", type=_int_list, help="one dynamic-batch OM with these profiles")
        action.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    for action in (check, commands, build):
        action.add_argument(
            "--precision-mode", choices=PRECISION_MODES, help="ATC --precision_mode (ATC's default: force_fp16)"
        )
        action.add_argument(
            "--precision-mode-v2",
            choices=PRECISION_MODES_V2,
            help="ATC --precision_mode_v2 (not with --precision-mode)",
        )
        action.add_argument("--fusion-switch-file", help="ATC --fusion_switch_file (must exist; made absolute)")
    for action in (commands, build):
        action.add_argument("--output", "-o", required=True, help="folder for the script, manifest, logs and OMs")
        action.add_argument("--output-prefix", help="OM name prefix (library default: wseg)")
        action.add_argument(
            "--dynamic-dims",
            type=_profiles,
            help="one dynamic-dims OM: ATC --dynamic_dims profiles 'a,b;c,d' (one value per -1 in --input-shape)",
        )
        action.add_argument("--op-select-implmode", choices=IMPL_MODES, help="ATC --op_select_implmode")
        action.add_argument(
            "--optypelist-for-implmode", type=_str_list, help="ATC --optypelist_for_implmode op types, comma-separated"
        )
        action.add_argument(
            "--insert-op-conf", help="ATC --insert_op_conf AIPP config file (must exist; made absolute)"
        )
        action.add_argument(
            "--enable-small-channel", type=_bool01, help="ATC --enable_small_channel 0|1 (small-channel conv input)"
        )
        action.add_argument(
            "--out-nodes", type=_str_list, help="ATC --out_nodes: 'node:index' entries or output names, comma-separated"
        )
        action.add_argument(
            "--output-type", help="ATC --output_type: FP32|FP16|UINT8|INT8 (CANN 8.0+) or 'node:index:TYPE;...'"
        )
        action.add_argument(
            "--op-precision-mode",
            help="ATC --op_precision_mode OpType=mode .ini file (made absolute; overrides --op-select-implmode)",
        )
        action.add_argument(
            "--modify-mixlist", help="ATC --modify_mixlist JSON file (made absolute; needs a mixed precision mode)"
        )
        action.add_argument(
            "--dynamic-image-size",
            type=_profiles,
            help="one dynamic-image-size OM: ATC --dynamic_image_size profiles 'H,W;H,W' (NCHW inputs)",
        )
        action.add_argument(
            "--input-shape-range", help="one dynamic-shape OM: ATC --input_shape_range 'image:[1~8,3,200~300,-1]'"
        )
        action.add_argument(
            "--input-fp16-nodes", type=_str_list, help="ATC --input_fp16_nodes graph inputs, comma-separated"
        )
        action.add_argument("--keep-dtype", help="ATC --keep_dtype config file (must exist; made absolute)")
        action.add_argument("--customize-dtypes", help="ATC --customize_dtypes config file (must exist; made absolute)")
        action.add_argument("--log", help="ATC --log level (library default: error)")
        action.add_argument(
            "--input-format", choices=ONNX_INPUT_FORMATS, help="ATC --input_format for ONNX (library default: NCHW)"
        )
    build.add_argument("--atc", dest="atc_path", help="the atc executable (default: atc on PATH)")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from exc
    if not values:
        raise argparse.ArgumentTypeError(f"'{text}' holds no batch size")
    return values


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _profiles(text: str) -> list[list[int]]:
    try:
        return [[int(v) for v in part.split(",")] for part in text.split(";") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not profiles like '1,224;2,448'") from exc


def _bool01(text: str) -> bool:
    if text not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"'{text}' is not 0 or 1")
    return text == "1"


FIELDS = (
    "soc_version",
    "cann",
    "input_shape",
    "batch_sizes",
    "dynamic_batch_sizes",
    "output_prefix",
    "dynamic_dims",
    "precision_mode",
    "precision_mode_v2",
    "op_select_implmode",
    "optypelist_for_implmode",
    "fusion_switch_file",
    "insert_op_conf",
    "enable_small_channel",
    "out_nodes",
    "output_type",
    "input_fp16_nodes",
    "keep_dtype",
    "customize_dtypes",
    "op_precision_mode",
    "modify_mixlist",
    "dynamic_image_size",
    "input_shape_range",
    "log",
    "input_format",
    "atc_path",
)


def spec_from_args(args: argparse.Namespace) -> AtcSpec:
    """An AtcSpec from the flags that were given (the library owns the defaults)."""
    given = {name: getattr(args, name) for name in FIELDS if getattr(args, name, None) is not None}
    dynamic_only = ("dynamic_dims", "dynamic_image_size", "input_shape_range")
    if "batch_sizes" not in given and any(name in given for name in dynamic_only):
        given["batch_sizes"] = []  # only the dynamic OM asked for, not the library's default static bs1 too
    return from_mapping(AtcSpec, given, "atc options")


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    spec.validate("atc options")
    model = load_user_model(args.model, load_external_data=False)
    check_input_names(model, spec, args.model)
    if args.atc_command == "precheck":
        return _precheck(model, spec, args)
    plan = write_plan(plan_commands(model, spec, args.model), args.output)
    for warning in plan.warnings:
        logger.warning("%s", warning)
    if args.atc_command == "commands":
        if args.json:
            print_json(
                {"script": plan.script, "manifest": plan.manifest, "commands": [c.line() for c in plan.commands]}
            )
        else:
            for command in plan.commands:
                print(command.line())
            logger.info("script: %s", plan.script)
            logger.info("manifest: %s", plan.manifest)
        return 0
    echo = None if args.json else logger.info
    results = build_plan(plan, on_line=echo)
    if args.json:
        print_json([r.to_dict() for r in results])
    else:
        rows = [(r.output, "ok" if r.success else "FAILED", r.om or r.reason, f"{r.seconds:.1f}") for r in results]
        print(format_table(["output", "status", "om / reason", "seconds"], rows))
        for r in results:
            for error in r.errors:
                print(f"{r.output}: {error.code} {error.meaning}: {error.hint or error.line}")
    return 0 if all(r.success for r in results) else 1


def _precheck(model, spec: AtcSpec, args) -> int:
    report = precheck(
        model,
        cann=spec.cann,
        soc_version=spec.soc_version,
        input_shape=spec.input_shape,
        batch_sizes=spec.batch_sizes if args.batch_sizes is not None else None,
        dynamic_batch_sizes=spec.dynamic_batch_sizes,
        name=args.model,
        precision_mode=spec.precision_mode,
        precision_mode_v2=spec.precision_mode_v2,
        fusion_switch_file=spec.fusion_switch_file,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        if report.findings:
            rows = [(f.level, f.rule, f.node, f.op, f.message, f.hint) for f in report.findings]
            print(format_table(["level", "rule", "node", "op", "message", "hint"], rows))
        for note in report.notes:
            print(f"note: {note}")
        counts = report.counts
        print(
            f"{args.model}: opset {report.opset}, CANN {report.cann}: {counts['error']} error(s), "
            f"{counts['warning']} warning(s), {counts['perf']} perf finding(s)"
        )
    return 1 if report.has_errors else 0
