"""One attempt: a graphkit command line, the files it reads, and what must hold afterwards.

:class:`Attempt` and the helpers the per-command builders share (models, golden folders, hostile
output paths, the values that must be rejected). The builders, and :func:`make_attempt` /
:func:`signal_attempt` that pick one, are in :mod:`fuzz.attempt_builders`. Paths in an
attempt are relative to the sandbox root (see :mod:`fuzz.sandbox`); argv is relative
to the working folder ``a/b/work``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fuzz import goldens, models
from fuzz.choices import Choices
from fuzz.sandbox import DIRECTORY, FIFO, HOME, INPUTS, OUT, ROOT_MARK, WORK, Content
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
    env: dict[str, str] = field(default_factory=dict)  # extra environment (may name @@ROOT@@)

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
            "env": self.env,
            "files": sorted(self.files),
        }


# --- shared pieces ----------------------------------------------------------------------------


def add_model(choices: Choices, attempt: Attempt, name: str = "model.onnx", case=None) -> models.ModelCase:
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


def maybe_flag(choices: Choices, attempt: Attempt, probability: float, flag: str, values: list[str]) -> list[str]:
    """``[flag, value]`` with ``probability`` (noting values that must be refused), else ``[]``."""
    if not choices.chance(probability):
        return []
    value = choices.pick(values)
    if value in MUST_REJECT.get(flag, ()):
        must_reject(attempt, f"{flag} {value!r}")
    return [flag, value]


def golden_case(choices: Choices, model) -> goldens.GoldenCase:
    """A golden set recorded from ``model`` (batch 1 and 2, or 1 for a static batch), then corrupted."""
    batches = (1,) if isinstance((dims_of(model.graph.input[0]) or (None,))[0], int) else (1, 2)
    recorded = goldens.record(model, seed=choices.integer(0, 3), batch_sizes=batches)
    return goldens.corrupt(choices, recorded)


def put_golden(attempt: Attempt, folder: str, case: goldens.GoldenCase) -> None:
    if case.as_file is not None:
        attempt.add_file(folder, case.as_file)
        return
    attempt.add_file(folder, DIRECTORY)
    for name, content in case.files.items():
        attempt.add_file(f"{folder}/{name}", content)
    attempt.labels.append(case.label)


def valid_dynamic_model(choices: Choices) -> models.ModelCase:
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


def output_dir(choices: Choices, attempt: Attempt, default: str) -> str:
    """``default``, or now and then a hostile output path; a path the user names may be written."""
    path = choices.pick(HOSTILE_OUTPUTS) if choices.chance(0.08) else default
    allowed = user_path(path)
    if allowed and path != default and not allowed.startswith(INPUTS):
        attempt.outputs.append(allowed)
    return path


def special_outputs(attempt: Attempt) -> None:
    """Create what the hostile output paths need: a pipe to write into, a file to write under."""
    if any("inputs/fifo" in a for a in attempt.argv):
        attempt.add_file(f"{INPUTS}/fifo", FIFO)
    if any("inputs/a-file" in a for a in attempt.argv):
        attempt.add_file(f"{INPUTS}/a-file", b"a plain file, not a folder")


# --- commands ---------------------------------------------------------------------------------


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
