"""One attempt: a graphkit command line, the files it reads, and what must hold afterwards.

:func:`make_attempt` builds attempt ``index`` of campaign ``seed`` deterministically for any
command in :data:`COMMANDS`; :func:`signal_attempt` builds one for signal mode (a valid
``apply``, ``golden make`` or ``export`` run as a subprocess and interrupted). Paths in an
attempt are relative to the sandbox root (see :mod:`graphkit.fuzz.sandbox`); argv is relative
to the working folder ``a/b/work``.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphkit.fuzz import datasets, goldens, models, pipelines, userpasses
from graphkit.fuzz.choices import Choices
from graphkit.fuzz.sandbox import CACHE, DIRECTORY, FIFO, HOME, INPUTS, OUT, ROOT_MARK, WORK, Content
from graphkit.ir.shapes import dims_of

HOSTILE_OUTPUTS = ["inputs/a-file/under-it", "/proc/graphkit-fuzz/out", "inputs/fifo", "@@ROOT@@/absolute-out"]
BAD_INTS = ["0", "-1", ",", "abc", "1,,2", "99999999999", "1.5", ""]
BAD_FLOATS = ["nan", "inf", "-inf", "-1", "abc", "1e309"]


@dataclass
class Attempt:
    """A command line with its inputs, its allowed outputs and the oracle flags."""

    seed: int
    index: int
    command: str
    argv: list[str]
    files: dict[str, Content] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=lambda: [OUT])
    labels: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    signal: str | None = None  # SIGINT / SIGTERM, sent after signal_delay seconds
    signal_delay: float = 0.0
    subprocess: bool = False
    timeout: float = 60.0

    @property
    def key(self) -> str:
        return f"{self.seed}:{self.index}"

    def add_file(self, relative: str, content: Content) -> None:
        self.files[os.path.normpath(relative)] = content

    def describe(self) -> dict:
        """A JSON-friendly description (file contents left out)."""
        return {
            "seed": self.seed,
            "index": self.index,
            "command": self.command,
            "argv": self.argv,
            "labels": self.labels,
            "checks": self.checks,
            "signal": self.signal,
            "signal_delay": round(self.signal_delay, 3),
            "subprocess": self.subprocess,
            "files": sorted(self.files),
        }


# --- shared pieces ----------------------------------------------------------------------------


def _model(choices: Choices, attempt: Attempt, name: str = "model.onnx", case=None) -> models.ModelCase:
    """Put a model file at ``inputs/<name>`` (sometimes a missing path, a folder or a pipe)."""
    case = case or models.model_case(choices)
    special = choices.pick([None] * 12 + ["missing", DIRECTORY, FIFO])
    if special == "missing":
        attempt.labels.append(f"{name}:missing")
        return models.ModelCase(b"", "missing")
    attempt.add_file(f"{INPUTS}/{name}", special or case.data)
    attempt.labels.append(f"{name}:{'special-' + special if special else case.label}")
    if case.invalid and not special:
        attempt.checks["invalid_model"] = True
    return case if not special else models.ModelCase(b"", "special")


# Flag values issue 10 names as bad input: the command must not accept them (exit 0).
MUST_REJECT = {
    "--batch-sizes": {"0", "-1", ",", "", "99999999999"},
    # over ATC's recommended 1..2048 is a warning, not an error (issue 14); duplicates are refused
    "--dynamic-batch-sizes": {"0,1", "-1,2", "1,4,4"},
    "--seed": {"-1"},
    "--atol": {"nan", "inf", "-inf", "-1", "1e309"},
    "--rtol": {"nan", "inf", "-inf", "-1", "1e309"},
    "--output-tol": {"prob:nan:0", "prob:-1:0"},
    "--threads": {"-1"},
    "--fp-cut-score": {"nan"},
    "--input-shape": {"nope:1,3,16,16"},
    "--fusion-switch-file": {"inputs/missing.cfg"},
    "--dim": {"batch", "batch=abc", "batch=0", "batch=-2"},
    "--dims": {"batch", "batch=abc", "batch=0"},
    "--batchsize": {"0", "-1"},
}


def must_reject(attempt: Attempt, why: str) -> None:
    """Record that ``attempt`` holds a value the command must refuse."""
    attempt.checks.setdefault("must_reject", []).append(why)


def _maybe(choices: Choices, attempt: Attempt, probability: float, flag: str, values: list[str]) -> list[str]:
    """``[flag, value]`` with ``probability`` (noting values that must be refused), else ``[]``."""
    if not choices.chance(probability):
        return []
    value = choices.pick(values)
    if value in MUST_REJECT.get(flag, ()):
        must_reject(attempt, f"{flag} {value!r}")
    return [flag, value]


def _golden_files(choices: Choices, model) -> goldens.GoldenCase:
    """A golden set recorded from ``model`` (batch 1 and 2, or 1 for a static batch), then corrupted."""
    batches = (1,) if isinstance((dims_of(model.graph.input[0]) or (None,))[0], int) else (1, 2)
    recorded = goldens.record(model, seed=choices.integer(0, 3), batch_sizes=batches)
    return goldens.corrupt(choices, recorded)


def _put_golden(attempt: Attempt, folder: str, case: goldens.GoldenCase) -> None:
    if case.as_file is not None:
        attempt.add_file(folder, case.as_file)
        return
    attempt.add_file(folder, DIRECTORY)
    for name, content in case.files.items():
        attempt.add_file(f"{folder}/{name}", content)
    attempt.labels.append(case.label)


def _valid_dynamic_model(choices: Choices) -> models.ModelCase:
    model = models.demo_variant(choices)
    return models.ModelCase(model.SerializeToString(), "valid-demo", valid=True, proto=model)


def user_path(path: str) -> str | None:
    """A path the user named (argv or YAML) as a sandbox-relative path, or None outside the sandbox."""
    if path.startswith(ROOT_MARK):
        return os.path.normpath(path[len(ROOT_MARK) :].lstrip("/")) or None
    if path.startswith("~/"):  # expanded or not, both are the user's choice
        return os.path.normpath(f"{HOME}/{path[2:]}")
    if path.startswith("/") or "\x00" in path:
        return None
    return os.path.normpath(f"{WORK}/{path}")


def _output_dir(choices: Choices, attempt: Attempt, default: str) -> str:
    """``default``, or now and then a hostile output path; a path the user names may be written."""
    path = choices.pick(HOSTILE_OUTPUTS) if choices.chance(0.08) else default
    allowed = user_path(path)
    if allowed and path != default and not allowed.startswith(INPUTS):
        attempt.outputs.append(allowed)
    return path


def _special_outputs(attempt: Attempt) -> None:
    """Create what the hostile output paths need: a pipe to write into, a file to write under."""
    if any("inputs/fifo" in a for a in attempt.argv):
        attempt.add_file(f"{INPUTS}/fifo", FIFO)
    if any("inputs/a-file" in a for a in attempt.argv):
        attempt.add_file(f"{INPUTS}/a-file", b"a plain file, not a folder")


# --- commands ---------------------------------------------------------------------------------


def build_apply(choices: Choices, attempt: Attempt) -> None:
    passes: list[Any] = choices.sample(pipelines.BUILTIN_PASSES, choices.integer(0, 3))
    if choices.chance(0.5):
        source = {"builtin": "demo"}
        attempt.checks["oracle_source"] = "builtin:demo"
        proto = None
    else:
        case = _model(choices, attempt)
        source = {"onnx": "inputs/model.onnx"}
        proto = case.proto if case.valid else None
        if case.valid:
            attempt.checks["oracle_source"] = f"{INPUTS}/model.onnx"
    golden_dir = None
    if choices.chance(0.3):
        golden_dir = "golden"
        attempt.outputs.append(f"{WORK}/golden")
        if proto is not None and choices.chance(0.7):
            _put_golden(attempt, f"{WORK}/golden", _golden_files(choices, proto))
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
        attempt.add_file(f"{INPUTS}/model.onnx", _valid_dynamic_model(choices).data)  # the file it names
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
        argv += ["--output", _output_dir(choices, attempt, "out")]
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
        attempt.add_file(f"{OUT}/model.onnx", _valid_dynamic_model(choices).data)
        attempt.add_file(f"{OUT}/report.json", json.dumps({"status": "ok"}).encode())
        attempt.labels.append("stale-run-folder")
    attempt.outputs.append(CACHE)
    attempt.checks["apply_out"] = OUT if "--output" in argv and argv[argv.index("--output") + 1] == "out" else None
    attempt.argv = argv


def build_golden_make(choices: Choices, attempt: Attempt) -> None:
    _model(choices, attempt)
    out = _output_dir(choices, attempt, "out/golden")
    argv = ["golden", "make", "inputs/model.onnx", "-o", out]
    argv += _maybe(choices, attempt, 0.4, "--batch-sizes", ["1", "1,2", "2"] + BAD_INTS)
    argv += _maybe(choices, attempt, 0.2, "--seed", ["0", "-1", "7", "abc", str(2**64)])
    argv += _maybe(
        choices,
        attempt,
        0.3,
        "--dim",
        ["batch=1", "batch", "batch=abc", "batch=0", "batch=-2", "batch=100000000", "x=2"],
    )
    argv += _maybe(choices, attempt, 0.15, "--atol", ["1e-5", *BAD_FLOATS])
    argv += _maybe(choices, attempt, 0.15, "--rtol", ["1e-4", *BAD_FLOATS])
    argv += ["--regenerate"] if choices.chance(0.1) else []
    argv += ["--json"] if choices.chance(0.2) else []
    if out == "out/golden" and choices.chance(0.15):  # a corrupt set already there
        _put_golden(attempt, f"{OUT}/golden", _golden_files(choices, models.demo_variant(choices)))
    attempt.argv = argv


def build_golden_show(choices: Choices, attempt: Attempt) -> None:
    _put_golden(attempt, f"{INPUTS}/golden", _golden_files(choices, models.demo_variant(choices)))
    attempt.argv = ["golden", "show", "inputs/golden"] + (["--json"] if choices.chance(0.5) else [])
    attempt.outputs = []


def build_validate(choices: Choices, attempt: Attempt) -> None:
    source = _valid_dynamic_model(choices)
    golden = _golden_files(choices, source.proto)
    _put_golden(attempt, f"{INPUTS}/golden", golden)
    same = choices.chance(0.7)
    _model(choices, attempt, case=source if same else None)
    argv = ["validate", "inputs/model.onnx", "--golden", "inputs/golden"]
    argv += _maybe(choices, attempt, 0.15, "--atol", ["0", "1e-5", *BAD_FLOATS])
    argv += _maybe(choices, attempt, 0.15, "--rtol", ["0", "1e-5", *BAD_FLOATS])
    argv += _maybe(
        choices, attempt, 0.1, "--output-tol", ["prob:nan:0", "prob:-1:0", "nope:1:1", "prob", "prob:1e-5:1e-4"]
    )
    argv += ["--json"] if choices.chance(0.3) else []
    if same and golden.must_fail and attempt.files.get(f"{INPUTS}/model.onnx") == source.data:
        attempt.checks["must_fail"] = True
    attempt.argv = argv
    attempt.outputs = []


def build_diff(choices: Choices, attempt: Attempt) -> None:
    _model(choices, attempt, "a.onnx")
    _model(choices, attempt, "b.onnx")
    argv = ["diff", "inputs/a.onnx", "inputs/b.onnx"]
    argv += ["--json"] if choices.chance(0.4) else []
    if choices.chance(0.4):
        argv += ["--html", choices.pick(["inputs/fifo", _output_dir(choices, attempt, "out/diff.html")])]
    argv += ["--exit-code"] if choices.chance(0.2) else []
    attempt.argv = argv


def _npz(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def build_localize(choices: Choices, attempt: Attempt) -> None:
    a = _model(choices, attempt, "a.onnx")
    _model(choices, attempt, "b.onnx", case=a if choices.chance(0.3) and a.proto is not None else None)
    argv = ["localize", "inputs/a.onnx", "inputs/b.onnx"]
    how = choices.pick(["dims", "inputs", "golden", "none"])
    if "graph-no-nodes" in a.label:
        must_reject(attempt, "localize against a model with no nodes")
    if how == "dims":
        argv += _maybe(choices, attempt, 1.0, "--dims", ["batch=1", "batch=2", "batch", "batch=abc", "batch=0"])
    elif how == "inputs":
        arrays = {"x": np.zeros((1, 3, 4, 4), np.float32)}
        data = _npz(arrays)
        if choices.chance(0.5):
            data, kind = models.corrupt_bytes(choices, data)
            attempt.labels.append(f"inputs-npz-{kind}")
        attempt.add_file(f"{INPUTS}/inputs.npz", data)
        argv += ["--inputs", "inputs/inputs.npz"]
    elif how == "golden":
        _put_golden(attempt, f"{INPUTS}/golden", _golden_files(choices, models.demo_variant(choices)))
        argv += ["--golden", "inputs/golden"]
    argv += _maybe(choices, attempt, 0.15, "--atol", ["1e-5", *BAD_FLOATS])
    argv += _maybe(choices, attempt, 0.15, "--chunk-size", ["1", "0", "-1", "abc"])
    argv += _maybe(choices, attempt, 0.1, "--threads", ["1", "0", "-1"])
    argv += _maybe(choices, attempt, 0.1, "--seed", ["0", "-1"])
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
    argv += _maybe(choices, attempt, 0.2, "--cann", ["6.0", "7.0", "6.0\n", "abc", "99", ""])
    argv += _maybe(
        choices, attempt, 0.2, "--input-shape", ["x:1,3,16,16", "nope:1,3,16,16", "x:-1,3,16,16", "x", "x:a,b"]
    )
    return argv


def build_atc_precheck(choices: Choices, attempt: Attempt) -> None:
    _model(choices, attempt)
    argv = ["atc", "precheck", "inputs/model.onnx", *_atc_flags(choices, attempt)]
    argv += ["--json"] if choices.chance(0.3) else []
    attempt.argv = argv
    attempt.outputs = []


def build_atc_commands(choices: Choices, attempt: Attempt) -> None:
    _model(choices, attempt)
    argv = [
        "atc",
        "commands",
        "inputs/model.onnx",
        "-o",
        _output_dir(choices, attempt, "out/atc"),
        *_atc_flags(choices, attempt),
    ]
    argv += _maybe(choices, attempt, 0.5, "--batch-sizes", ["1", "1,4", *BAD_INTS])
    argv += _maybe(choices, attempt, 0.2, "--dynamic-batch-sizes", ["1,4", "1", "0,1", "1,4,4", "-1,2", "1,3000"])
    if choices.chance(0.2):
        value = choices.pick(["wseg", "../x", "a b", f"x\ntouch {models.PWNED}", "$(touch graphkit_fuzz_pwned)"])
        argv += ["--output-prefix", value]
        attempt.checks["injection"] = attempt.checks.get("injection") or models.PWNED in value
    argv += _maybe(choices, attempt, 0.1, "--fusion-switch-file", ["inputs/missing.cfg", "inputs/model.onnx"])
    argv += _maybe(choices, attempt, 0.1, "--out-nodes", ["conv:0", "nope:0", "x"])
    argv += ["--json"] if choices.chance(0.2) else []
    attempt.argv = argv


def build_atc_build(choices: Choices, attempt: Attempt) -> None:
    build_atc_commands(choices, attempt)
    attempt.argv[1] = "build"
    attempt.command = "atc build"


def build_perf(choices: Choices, attempt: Attempt) -> None:
    _model(choices, attempt)
    argv = ["perf", "inputs/model.onnx", "--loop", choices.pick(["1", "1", "2", "0", "-1"])]
    argv += ["--warmup", choices.pick(["0", "0", "1", "-1"])]
    argv += _maybe(choices, attempt, 0.4, "--batch-sizes", ["1", "1,2", *BAD_INTS])
    argv += _maybe(choices, attempt, 0.15, "--threads", ["1", "0", "-1"])
    argv += _maybe(choices, attempt, 0.1, "--backend", ["ort", "nope", "ais_bench"])
    if choices.chance(0.85):
        argv += ["-o", _output_dir(choices, attempt, "out/perf")]
    else:
        attempt.outputs.append(f"{WORK}/runs")  # the documented default folder
    argv += ["--json"] if choices.chance(0.3) else []
    attempt.argv = argv


def build_infer(choices: Choices, attempt: Attempt) -> None:
    case = _model(choices, attempt)
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
    argv += ["--output", _output_dir(choices, attempt, "out")]
    argv += _maybe(choices, attempt, 0.6, "--output-dirname", ["run1", "run1", "../escaped", "a/b", "", "..", "x\ny"])
    argv += _maybe(choices, attempt, 0.3, "--outfmt", ["BIN", "NPY", "TXT"])
    argv += _maybe(choices, attempt, 0.3, "--batchsize", ["1", "2", "0", "-1"])
    argv += _maybe(choices, attempt, 0.1, "--threads", ["1", "-1"])
    argv += ["--json"] if choices.chance(0.3) else []
    attempt.argv = argv


def build_eval(choices: Choices, attempt: Attempt) -> None:
    pad = choices.pick([8, 16])
    if choices.chance(0.6):
        model = models.segmentation_model(size=pad, static_batch=choices.chance(0.2))
        _model(choices, attempt, case=models.ModelCase(model.SerializeToString(), "valid-segmentation", valid=True))
    else:
        _model(choices, attempt)
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
        _output_dir(choices, attempt, "out/eval"),
    ]
    argv += ["--pad-size", *choices.pick([[str(pad)] * 2] * 6 + [["0", "0"], ["-8", "8"], ["100000", "100000"]])]
    argv += ["--scales", *choices.pick([["1"]] * 6 + [["0"], ["-1"], ["nan"], ["1", "0.5"]])]
    argv += ["--no-flip"] if choices.chance(0.7) else []
    argv += ["--no-crf"] if choices.chance(0.8) else ["--crf-iterations", choices.pick(["1", "0", "-1"])]
    argv += ["--workers", choices.pick(["0", "0", "0", "1", "-1"]), "--overlays", choices.pick(["0", "0", "1", "-1"])]
    argv += _maybe(choices, attempt, 0.3, "--limit", ["1", "2", "0", "-1"])
    argv += _maybe(choices, attempt, 0.15, "--fp-cut-score", ["0.1", *BAD_FLOATS])
    argv += _maybe(choices, attempt, 0.1, "--bg-pow", ["3", *BAD_FLOATS])
    argv += _maybe(choices, attempt, 0.1, "--batch-size", ["1", "2", "0", "-1"])
    argv += _maybe(choices, attempt, 0.1, "--threads", ["1", "0", "-1"])
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
    argv = ["export", "-o", _output_dir(choices, attempt, "out/model.onnx")]
    argv += ["--width", choices.pick(["0.03125"] * 6 + ["0", "-1", "nan", "2", "abc"])]
    argv += ["--input-size", *choices.pick([["32", "32"]] * 6 + [["0", "0"], ["-32", "32"], ["1", "1"], ["8", "8"]])]
    argv += _maybe(choices, attempt, 0.2, "--opset", ["11", "13", "99", "0", "-1"])
    argv += _maybe(choices, attempt, 0.1, "--seed", ["0", "-1", str(2**70)])
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
    _special_outputs(attempt)
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
        attempt.add_file(f"{INPUTS}/model.onnx", _valid_dynamic_model(choices).data)
        attempt.argv = ["golden", "make", "inputs/model.onnx", "-o", "out/golden", "--batch-sizes", "1,2,4"]
    else:
        attempt.argv = ["export", "-o", "out/model.onnx", "--width", "0.03125", "--input-size", "32", "32"]
    attempt.signal = choices.pick(["SIGINT", "SIGTERM"])
    attempt.signal_delay = 0.3 + choices.unit() * 2.2  # from start-up imports to the final writes
    attempt.labels.append(f"{attempt.signal}@{attempt.signal_delay:.2f}s")
    return attempt
