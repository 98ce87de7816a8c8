"""One builder per graphkit command: an :class:`~fuzz.attempts.Attempt` drawn from choices.

:func:`make_attempt` builds attempt ``index`` of campaign ``seed`` deterministically for any
command in :data:`COMMANDS` (drawn with :data:`WEIGHTS`); :func:`signal_attempt` builds one for
signal mode (a valid ``apply``, ``golden make`` or ``export`` run as a subprocess and
interrupted).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from fuzz import datasets, models, pipelines, userpasses
from fuzz.attempts import (
    BAD_FLOATS,
    BAD_INTS,
    Attempt,
    add_model,
    golden_case,
    maybe_flag,
    must_reject,
    npz_bytes,
    output_dir,
    put_golden,
    special_outputs,
    user_path,
    valid_dynamic_model,
)
from fuzz.choices import Choices
from fuzz.sandbox import CACHE, DIRECTORY, FIFO, INPUTS, OUT, WORK
from fuzz.surfaces import SURFACE_WEIGHTS, SURFACES
from graphkit.ir.shapes import dims_of


def build_apply(choices: Choices, attempt: Attempt) -> None:
    passes: list[Any] = choices.sample(pipelines.BUILTIN_PASSES, choices.integer(0, 3))
    if choices.chance(0.5):
        source = {"builtin": "demo"}
        attempt.checks["oracle_source"] = "builtin:demo"
        proto = None
    else:
        case = add_model(choices, attempt)
        source = {"onnx": "inputs/model.onnx"}
        proto = case.proto if case.valid else None
        if case.valid:
            attempt.checks["oracle_source"] = f"{INPUTS}/model.onnx"
    golden_dir = None
    if choices.chance(0.3):
        golden_dir = "golden"
        attempt.outputs.append(f"{WORK}/golden")
        if proto is not None and choices.chance(0.7):
            put_golden(attempt, f"{WORK}/golden", golden_case(choices, proto))
    if choices.chance(0.35):
        user = userpasses.user_pass(choices)
        attempt.add_file(f"{INPUTS}/passes/{user.filename}", user.text)
        attempt.labels.append(user.label)
        if user.name:
            passes.insert(choices.integer(0, len(passes)), user.name)
            if user.breaks_contract:
                attempt.checks["contract_breaker"] = user.name
        pass_dirs_flag = choices.chance(0.5)
    else:
        pass_dirs_flag = None
    case = pipelines.pipeline_case(choices, source, golden_dir, passes)
    if pass_dirs_flag is False:
        text = case.text.decode(errors="surrogateescape")
        if text.startswith("name:"):
            case.text = ("pass_dirs: [inputs/passes]\n" + text).encode(errors="surrogateescape")
    attempt.add_file(f"{INPUTS}/pipeline.yaml", case.text)
    attempt.labels.append(case.label)
    if f"{INPUTS}/model.onnx" not in attempt.files and b"inputs/model.onnx" in case.text:
        attempt.add_file(f"{INPUTS}/model.onnx", valid_dynamic_model(choices).data)  # the file it names
    chosen = user_path(case.golden_dir) if case.golden_dir else None
    if chosen and not chosen.startswith(INPUTS):  # the user's choice of golden folder
        attempt.outputs.append(chosen)
        if case.golden_dir.startswith("~/"):  # the same path taken literally
            attempt.outputs.append(os.path.normpath(f"{WORK}/{case.golden_dir}"))
    for why in case.must_reject:
        must_reject(attempt, why)
    if case.injection:
        attempt.checks["injection"] = True
    argv = ["apply", "inputs/pipeline.yaml"]
    if choices.chance(0.85):
        argv += ["--output", output_dir(choices, attempt, "out")]
    for override in case.overrides:
        argv += ["--set", override]
    if pass_dirs_flag:
        argv += ["--passes-dir", "inputs/passes"]
    if choices.chance(0.1):
        argv += ["--localize"]
    if choices.chance(0.2):
        argv += ["--json"]
    if choices.chance(0.05):
        argv += ["--input", "inputs/model.onnx"]
    if choices.chance(0.05):
        argv += ["--weights", choices.pick(["inputs/model.onnx", "inputs/missing.pth"])]
        if "export" not in source:
            must_reject(attempt, "--weights with a non-export source")
    if choices.chance(0.1):  # an earlier run's model in the run folder
        attempt.add_file(f"{OUT}/model.onnx", valid_dynamic_model(choices).data)
        attempt.add_file(f"{OUT}/report.json", json.dumps({"status": "ok"}).encode())
        attempt.labels.append("stale-run-folder")
    attempt.outputs.append(CACHE)
    attempt.checks["apply_out"] = OUT if "--output" in argv and argv[argv.index("--output") + 1] == "out" else None
    attempt.argv = argv


def build_golden_make(choices: Choices, attempt: Attempt) -> None:
    add_model(choices, attempt)
    out = output_dir(choices, attempt, "out/golden")
    argv = ["golden", "make", "inputs/model.onnx", "-o", out]
    argv += maybe_flag(choices, attempt, 0.4, "--batch-sizes", ["1", "1,2", "2"] + BAD_INTS)
    argv += maybe_flag(choices, attempt, 0.2, "--seed", ["0", "-1", "7", "abc", str(2**64)])
    argv += maybe_flag(
        choices,
        attempt,
        0.3,
        "--dim",
        ["batch=1", "batch", "batch=abc", "batch=0", "batch=-2", "batch=100000000", "x=2"],
    )
    argv += maybe_flag(choices, attempt, 0.15, "--atol", ["1e-5", *BAD_FLOATS])
    argv += maybe_flag(choices, attempt, 0.15, "--rtol", ["1e-4", *BAD_FLOATS])
    argv += ["--regenerate"] if choices.chance(0.1) else []
    argv += ["--json"] if choices.chance(0.2) else []
    if out == "out/golden" and choices.chance(0.15):  # a corrupt set already there
        put_golden(attempt, f"{OUT}/golden", golden_case(choices, models.demo_variant(choices)))
    attempt.argv = argv


def build_golden_show(choices: Choices, attempt: Attempt) -> None:
    put_golden(attempt, f"{INPUTS}/golden", golden_case(choices, models.demo_variant(choices)))
    attempt.argv = ["golden", "show", "inputs/golden"] + (["--json"] if choices.chance(0.5) else [])
    attempt.outputs = []


def build_validate(choices: Choices, attempt: Attempt) -> None:
    source = valid_dynamic_model(choices)
    golden = golden_case(choices, source.proto)
    put_golden(attempt, f"{INPUTS}/golden", golden)
    same = choices.chance(0.7)
    add_model(choices, attempt, case=source if same else None)
    argv = ["validate", "inputs/model.onnx", "--golden", "inputs/golden"]
    argv += maybe_flag(choices, attempt, 0.15, "--atol", ["0", "1e-5", *BAD_FLOATS])
    argv += maybe_flag(choices, attempt, 0.15, "--rtol", ["0", "1e-5", *BAD_FLOATS])
    argv += maybe_flag(
        choices, attempt, 0.1, "--output-tol", ["prob:nan:0", "prob:-1:0", "nope:1:1", "prob", "prob:1e-5:1e-4"]
    )
    argv += ["--json"] if choices.chance(0.3) else []
    if same and golden.must_fail and attempt.files.get(f"{INPUTS}/model.onnx") == source.data:
        attempt.checks["must_fail"] = True
    attempt.argv = argv
    attempt.outputs = []


def build_diff(choices: Choices, attempt: Attempt) -> None:
    add_model(choices, attempt, "a.onnx")
    add_model(choices, attempt, "b.onnx")
    argv = ["diff", "inputs/a.onnx", "inputs/b.onnx"]
    argv += ["--json"] if choices.chance(0.4) else []
    if choices.chance(0.4):
        argv += ["--html", choices.pick(["inputs/fifo", output_dir(choices, attempt, "out/diff.html")])]
    argv += ["--exit-code"] if choices.chance(0.2) else []
    attempt.argv = argv


def build_localize(choices: Choices, attempt: Attempt) -> None:
    a = add_model(choices, attempt, "a.onnx")
    add_model(choices, attempt, "b.onnx", case=a if choices.chance(0.3) and a.proto is not None else None)
    argv = ["localize", "inputs/a.onnx", "inputs/b.onnx"]
    how = choices.pick(["dims", "inputs", "golden", "none"])
    if "graph-no-nodes" in a.label:
        must_reject(attempt, "localize against a model with no nodes")
    if how == "dims":
        argv += maybe_flag(choices, attempt, 1.0, "--dims", ["batch=1", "batch=2", "batch", "batch=abc", "batch=0"])
    elif how == "inputs":
        arrays = {"x": np.zeros((1, 3, 4, 4), np.float32)}
        data = npz_bytes(arrays)
        if choices.chance(0.5):
            data, kind = models.corrupt_bytes(choices, data)
            attempt.labels.append(f"inputs-npz-{kind}")
        attempt.add_file(f"{INPUTS}/inputs.npz", data)
        argv += ["--inputs", "inputs/inputs.npz"]
    elif how == "golden":
        put_golden(attempt, f"{INPUTS}/golden", golden_case(choices, models.demo_variant(choices)))
        argv += ["--golden", "inputs/golden"]
    argv += maybe_flag(choices, attempt, 0.15, "--atol", ["1e-5", *BAD_FLOATS])
    argv += maybe_flag(choices, attempt, 0.15, "--chunk-size", ["1", "0", "-1", "abc"])
    argv += maybe_flag(choices, attempt, 0.1, "--threads", ["1", "0", "-1"])
    argv += maybe_flag(choices, attempt, 0.1, "--seed", ["0", "-1"])
    argv += ["--json"] if choices.chance(0.3) else []
    attempt.argv = argv
    attempt.outputs = []


def build_passes(choices: Choices, attempt: Attempt) -> None:
    argv = ["passes"]
    if choices.chance(0.6):
        argv.append(
            choices.pick(pipelines.BUILTIN_PASSES + ["softmax", "nope", "", "../x", "a\nb", "fuzz-honest-noop"])
        )
    if choices.chance(0.3):
        user = userpasses.user_pass(choices)
        attempt.add_file(f"{INPUTS}/passes/{user.filename}", user.text)
        attempt.labels.append(user.label)
        argv += ["--passes-dir", choices.pick(["inputs/passes", "inputs/passes", "inputs/missing", "/proc"])]
    argv += ["--json"] if choices.chance(0.3) else []
    attempt.argv = argv
    attempt.outputs = []


def _atc_flags(choices: Choices, attempt: Attempt) -> list[str]:
    argv = []
    injected = f"Ascend310P3\ntouch {models.PWNED} #"
    if choices.chance(0.3):
        value = choices.pick(["Ascend310P3", "Ascend910", "", "Ascend310P3;touch x", injected])
        argv += ["--soc", value]
        attempt.checks["injection"] = attempt.checks.get("injection") or value == injected
    argv += maybe_flag(choices, attempt, 0.2, "--cann", ["6.0", "7.0", "6.0\n", "abc", "99", ""])
    argv += maybe_flag(
        choices, attempt, 0.2, "--input-shape", ["x:1,3,16,16", "nope:1,3,16,16", "x:-1,3,16,16", "x", "x:a,b"]
    )
    return argv


def build_atc_precheck(choices: Choices, attempt: Attempt) -> None:
    add_model(choices, attempt)
    argv = ["atc", "precheck", "inputs/model.onnx", *_atc_flags(choices, attempt)]
    argv += ["--json"] if choices.chance(0.3) else []
    attempt.argv = argv
    attempt.outputs = []


def build_atc_commands(choices: Choices, attempt: Attempt) -> None:
    add_model(choices, attempt)
    argv = [
        "atc",
        "commands",
        "inputs/model.onnx",
        "-o",
        output_dir(choices, attempt, "out/atc"),
        *_atc_flags(choices, attempt),
    ]
    argv += maybe_flag(choices, attempt, 0.5, "--batch-sizes", ["1", "1,4", *BAD_INTS])
    argv += maybe_flag(choices, attempt, 0.2, "--dynamic-batch-sizes", ["1,4", "1", "0,1", "1,4,4", "-1,2", "1,3000"])
    if choices.chance(0.2):
        value = choices.pick(["wseg", "../x", "a b", f"x\ntouch {models.PWNED}", "$(touch graphkit_fuzz_pwned)"])
        argv += ["--output-prefix", value]
        attempt.checks["injection"] = attempt.checks.get("injection") or models.PWNED in value
    argv += maybe_flag(choices, attempt, 0.1, "--fusion-switch-file", ["inputs/missing.cfg", "inputs/model.onnx"])
    argv += maybe_flag(choices, attempt, 0.1, "--out-nodes", ["conv:0", "nope:0", "x"])
    argv += ["--json"] if choices.chance(0.2) else []
    attempt.argv = argv


def build_atc_build(choices: Choices, attempt: Attempt) -> None:
    build_atc_commands(choices, attempt)
    attempt.argv[1] = "build"
    attempt.command = "atc build"


def build_perf(choices: Choices, attempt: Attempt) -> None:
    add_model(choices, attempt)
    argv = ["perf", "inputs/model.onnx", "--loop", choices.pick(["1", "1", "2", "0", "-1"])]
    argv += ["--warmup", choices.pick(["0", "0", "1", "-1"])]
    argv += maybe_flag(choices, attempt, 0.4, "--batch-sizes", ["1", "1,2", *BAD_INTS])
    argv += maybe_flag(choices, attempt, 0.15, "--threads", ["1", "0", "-1"])
    argv += maybe_flag(choices, attempt, 0.1, "--backend", ["ort", "nope", "ais_bench"])
    if choices.chance(0.85):
        argv += ["-o", output_dir(choices, attempt, "out/perf")]
    else:
        attempt.outputs.append(f"{WORK}/runs")  # the documented default folder
    argv += ["--json"] if choices.chance(0.3) else []
    attempt.argv = argv


def build_infer(choices: Choices, attempt: Attempt) -> None:
    case = add_model(choices, attempt)
    shape = (1, 3, 16, 16)
    if case.proto is not None and case.proto.graph.input:
        dims = dims_of(case.proto.graph.input[0]) or ()
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in dims) or (1,)
        if math.prod(shape) > 10**6:
            shape = (1, 3, 4, 4)
    data = datasets.infer_inputs(choices, shape)
    attempt.add_file(f"{INPUTS}/bins", DIRECTORY)
    for name, content in data.files.items():
        attempt.add_file(f"{INPUTS}/bins/{name}", content)
    attempt.labels.append(data.label)
    argv = ["infer", "inputs/model.onnx", "--input", choices.pick(["inputs/bins"] * 5 + ["inputs/missing", ""])]
    argv += ["--output", output_dir(choices, attempt, "out")]
    argv += maybe_flag(
        choices, attempt, 0.6, "--output-dirname", ["run1", "run1", "../escaped", "a/b", "", "..", "x\ny"]
    )
    argv += maybe_flag(choices, attempt, 0.3, "--outfmt", ["BIN", "NPY", "TXT"])
    argv += maybe_flag(choices, attempt, 0.3, "--batchsize", ["1", "2", "0", "-1"])
    argv += maybe_flag(choices, attempt, 0.1, "--threads", ["1", "-1"])
    argv += ["--json"] if choices.chance(0.3) else []
    attempt.argv = argv


def build_eval(choices: Choices, attempt: Attempt) -> None:
    pad = choices.pick([8, 16])
    if choices.chance(0.6):
        model = models.segmentation_model(size=pad, static_batch=choices.chance(0.2))
        add_model(choices, attempt, case=models.ModelCase(model.SerializeToString(), "valid-segmentation", valid=True))
    else:
        add_model(choices, attempt)
    voc = datasets.voc_tree(choices)
    for name, content in voc.files.items():
        attempt.add_file(f"{INPUTS}/voc/{name}", content)
    for name, content in voc.resume_state.items():
        attempt.add_file(f"{OUT}/eval/{name}", content)
    attempt.labels.append(voc.label)
    argv = [
        "eval",
        "inputs/model.onnx",
        "--data-root",
        "inputs/voc",
        "--out",
        output_dir(choices, attempt, "out/eval"),
    ]
    argv += ["--pad-size", *choices.pick([[str(pad)] * 2] * 6 + [["0", "0"], ["-8", "8"], ["100000", "100000"]])]
    argv += ["--scales", *choices.pick([["1"]] * 6 + [["0"], ["-1"], ["nan"], ["1", "0.5"]])]
    argv += ["--no-flip"] if choices.chance(0.7) else []
    argv += ["--no-crf"] if choices.chance(0.8) else ["--crf-iterations", choices.pick(["1", "0", "-1"])]
    argv += ["--workers", choices.pick(["0", "0", "0", "1", "-1"]), "--overlays", choices.pick(["0", "0", "1", "-1"])]
    argv += maybe_flag(choices, attempt, 0.3, "--limit", ["1", "2", "0", "-1"])
    argv += maybe_flag(choices, attempt, 0.15, "--fp-cut-score", ["0.1", *BAD_FLOATS])
    argv += maybe_flag(choices, attempt, 0.1, "--bg-pow", ["3", *BAD_FLOATS])
    argv += maybe_flag(choices, attempt, 0.1, "--batch-size", ["1", "2", "0", "-1"])
    argv += maybe_flag(choices, attempt, 0.1, "--threads", ["1", "0", "-1"])
    argv += ["--skip-missing"] if choices.chance(0.2) else []
    if choices.chance(0.1):
        argv += ["--dump-bins", "out/bins", choices.pick(["1", "0", "-1", "x"])]
    if choices.chance(0.15):
        spec = choices.pick(
            [f"eval:\n{pipelines.alias_bomb()}\n", "eval: [1, 2]\n", "data_root: [[[[]]]]\n", "scales: .nan\n"]
        )
        attempt.add_file(f"{INPUTS}/eval.yaml", spec)
        argv += ["--spec", "inputs/eval.yaml"]
        attempt.labels.append("eval-spec")
    argv += ["--json"] if choices.chance(0.2) else []
    attempt.argv = argv


def build_export(choices: Choices, attempt: Attempt) -> None:
    argv = ["export", "-o", output_dir(choices, attempt, "out/model.onnx")]
    argv += ["--width", choices.pick(["0.03125"] * 6 + ["0", "-1", "nan", "2", "abc"])]
    argv += ["--input-size", *choices.pick([["32", "32"]] * 6 + [["0", "0"], ["-32", "32"], ["1", "1"], ["8", "8"]])]
    argv += maybe_flag(choices, attempt, 0.2, "--opset", ["11", "13", "99", "0", "-1"])
    argv += maybe_flag(choices, attempt, 0.1, "--seed", ["0", "-1", str(2**70)])
    if choices.chance(0.15):
        content = choices.pick([b"", b"not a checkpoint", b"PK\x03\x04\x14\x00truncated", DIRECTORY, FIFO])
        attempt.add_file(f"{INPUTS}/weights.pth", content)
        argv += ["--weights", "inputs/weights.pth"]
    argv += ["--static-batch"] if choices.chance(0.2) else []
    argv += ["--json"] if choices.chance(0.2) else []
    attempt.argv = argv
    attempt.timeout = 150.0  # torch export


COMMANDS: dict[str, Callable[[Choices, Attempt], None]] = {
    "apply": build_apply,
    "golden make": build_golden_make,
    "golden show": build_golden_show,
    "validate": build_validate,
    "diff": build_diff,
    "localize": build_localize,
    "passes": build_passes,
    "atc precheck": build_atc_precheck,
    "atc commands": build_atc_commands,
    "atc build": build_atc_build,
    "perf": build_perf,
    "infer": build_infer,
    "eval": build_eval,
    "export": build_export,
    **SURFACES,
}
# How often each command is drawn: the input-heavy commands more, the slow export less.
WEIGHTS = {
    "apply": 6,
    "golden make": 3,
    "golden show": 2,
    "validate": 4,
    "diff": 3,
    "localize": 2,
    "passes": 1,
    "atc precheck": 2,
    "atc commands": 2,
    "atc build": 1,
    "perf": 2,
    "infer": 2,
    "eval": 2,
    "export": 1,
    **SURFACE_WEIGHTS,
}


def make_attempt(seed: int, index: int, commands: list[str] | None = None) -> Attempt:
    """Attempt ``index`` of campaign ``seed`` (the same pair always gives the same attempt)."""
    return build_attempt(Choices(seed, index), seed, index, commands)


def build_attempt(choices: Choices, seed: int, index: int, commands: list[str] | None = None) -> Attempt:
    """An attempt whose decisions come from ``choices`` (seeded or atheris-driven)."""
    names = commands or list(COMMANDS)
    pool = [name for name in names for _ in range(WEIGHTS.get(name, 1))]
    command = choices.pick(pool)
    attempt = Attempt(seed, index, command, [])
    COMMANDS[command](choices, attempt)
    special_outputs(attempt)
    if attempt.command == "atc build":
        attempt.checks.pop("injection", None)  # build writes the same script; checked on commands
    return attempt


SIGNAL_COMMANDS = ("apply", "golden make", "export")


def signal_attempt(seed: int, index: int) -> Attempt:
    """A valid, slow-enough command run as a subprocess and sent SIGINT or SIGTERM at a random time."""
    choices = Choices(seed, index)
    command = choices.pick(SIGNAL_COMMANDS)
    attempt = Attempt(seed, index, command, [], subprocess=True, timeout=150.0)
    if command == "apply":
        text = pipelines.base_pipeline(choices, {"builtin": "demo"}, None, list(pipelines.BUILTIN_PASSES[:3]))
        import yaml

        attempt.add_file(f"{INPUTS}/pipeline.yaml", yaml.safe_dump(text).encode())
        attempt.argv = ["apply", "inputs/pipeline.yaml", "--output", "out"]
        attempt.outputs.append(CACHE)
    elif command == "golden make":
        attempt.add_file(f"{INPUTS}/model.onnx", valid_dynamic_model(choices).data)
        attempt.argv = ["golden", "make", "inputs/model.onnx", "-o", "out/golden", "--batch-sizes", "1,2,4"]
    else:
        attempt.argv = ["export", "-o", "out/model.onnx", "--width", "0.03125", "--input-size", "32", "32"]
    attempt.signal = choices.pick(["SIGINT", "SIGTERM"])
    attempt.signal_delay = 0.3 + choices.unit() * 2.2  # from start-up imports to the final writes
    attempt.labels.append(f"{attempt.signal}@{attempt.signal_delay:.2f}s")
    return attempt
