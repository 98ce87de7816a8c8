"""Run ATC for a plan: stream its log, decide success, find the OM, explain known error codes.

Success means exit code 0 *and* ``ATC run success`` in the log (ATC has exited 0 after
failures). The OM is ``<output>.om`` or ``<output>_<os>_<arch>.om`` (newer ATC builds add the
suffix), written during this run. Known error codes (sources in docs/ascend.md) are recognized in the log and get
a hint each; others are listed without one.

When ``atc`` is not on PATH, :func:`build_plan` raises :class:`~graphkit.util.errors.ToolNotFoundError`
(one line naming the script to run on a CANN machine; the CLI exits 2).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from graphkit.ascend.command_lines import AtcCommand, AtcPlan
from graphkit.util.errors import ToolNotFoundError
from graphkit.util.files import check_target

SUCCESS_MARKER = "ATC run success"

# code -> (what it means, what to do). Each meaning names its public source:
# - GE registry: hicann/ge base/common/error_registry/error_registry.cc (ErrCode -> ErrMessage);
# - op registry: the "Public Operator Errors" JSON registry of CANN's operator package (EZ codes),
#   read through code search (repository not pinned);
# - msit: Ascend msit's model_evaluation ATC error parser (AtcErr E19010/EZ9010/EZ0501/EZ3002/
#   EZ3003 and their log patterns), read through code search (repository path not pinned).
_PARSER_HINT = (
    "an op type or domain this CANN cannot parse: run 'graphkit atc precheck', check the opset "
    "('convert-opset') and replace custom-domain ops"
)
KNOWN_ERRORS: dict[str, tuple[str, str]] = {
    # msit AtcErr.E19010 / EZ9010: the op has no parser (meaning from msit's parser; unverified
    # against a registry entry).
    "E19010": ("no ONNX parser for an op (per msit's ATC error parser)", _PARSER_HINT),
    "EZ9010": ("no ONNX parser for an op (per msit's ATC error parser)", _PARSER_HINT),
    # GE registry E16002: "No ONNX parser is registered for optype %s."
    "E16002": ("no ONNX parser is registered for the op type", _PARSER_HINT),
    # op registry EZ0501 and GE registry E10501: "IR for Op [%s, optype [%s]], is not registered."
    "EZ0501": (
        "the op type has no registered IR (operator prototype)",
        "this CANN does not know the op type: replace it with supported ops, or check that ASCEND_OPP_PATH points "
        "at the installed operator package; run 'graphkit atc precheck'",
    ),
    # msit pattern: "Optype [%s] of Ops kernel [%s] is unsupported."
    "EZ3002": (
        "op type not supported by the selected ops kernel",
        "the op's dtype/format/attributes are unsupported on this SoC; try precision_mode or rewrite the op "
        "(see the node named in the log)",
    ),
    # msit pattern: "No supported Ops kernel and engine are found for [%s], optype [%s]."
    "EZ3003": (
        "no ops kernel or engine supports the op",
        "the op has no implementation on this SoC/CANN; rewrite it into supported ops (see the node named in the log)",
    ),
    # GE registry E10035: "... has %s profiles, which is less than the minimum %s."
    "E10035": (
        "fewer dynamic profiles than the minimum",
        "--dynamic_batch_size/--dynamic_image_size/--dynamic_dims need at least 2 profiles",
    ),
    # GE registry E10036: "... has %s profiles, which is greater than the maximum %s."
    "E10036": ("more dynamic profiles than the maximum", "give at most 100 profiles"),
    # GE registry E10039: "... have duplicate profiles."
    "E10039": ("duplicate dynamic profiles", "make every profile unique"),
}
ERROR_CODE = re.compile(r"\b(E[0-9A-Z]\d{4})\b")


@dataclass
class AtcError:
    """An error code seen in the ATC log, with the line and a hint when it is known."""

    code: str
    line: str
    meaning: str = ""
    hint: str = ""


@dataclass
class BuildResult:
    """The outcome of one ATC command."""

    output: str
    kind: str
    batch_sizes: list[int]
    command: str
    returncode: int | None = None
    success: bool = False
    om: str | None = None
    log: str | None = None
    seconds: float = 0.0
    errors: list[AtcError] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {
            "output": self.output,
            "kind": self.kind,
            "batch_sizes": self.batch_sizes,
            "command": self.command,
            "returncode": self.returncode,
            "success": self.success,
            "om": self.om,
            "log": self.log,
            "seconds": round(self.seconds, 3),
            "errors": [vars(e) for e in self.errors],
            "reason": self.reason,
        }


def find_atc(atc: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The ATC executable: ``atc`` (a path or a name) looked up on ``env``'s PATH, or None."""
    path = (env or os.environ).get("PATH", os.defpath)
    return shutil.which(atc or "atc", path=path)


def scan_errors(text: str) -> list[AtcError]:
    """Error codes in ``text`` (first occurrence of each), with hints for the known ones."""
    seen: dict[str, AtcError] = {}
    for line in text.splitlines():
        for code in ERROR_CODE.findall(line):
            if code not in seen:
                meaning, hint = KNOWN_ERRORS.get(code, ("", ""))
                seen[code] = AtcError(code, line.strip()[:300], meaning, hint)
    return list(seen.values())


def find_om(folder: Path, output: str, since: float = 0.0) -> Path | None:
    """``<output>.om`` or ``<output>_<os>_<arch>.om`` in ``folder`` modified at or after ``since``."""
    pattern = re.compile(re.escape(output) + r"(?:_[A-Za-z]+_[A-Za-z0-9_]+)?\.om")
    candidates = [
        p for p in folder.glob(f"{output}*.om") if pattern.fullmatch(p.name) and p.stat().st_mtime >= since - 1
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def run_command(
    command: AtcCommand,
    folder: Path,
    atc: str,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> BuildResult:
    """Run one ATC command in ``folder``, streaming its output to ``<output>.log`` and ``on_line``."""
    result = BuildResult(command.output, command.kind, command.batch_sizes, command.line(atc))
    log_path = folder / f"{command.output}.log"
    result.log = str(log_path)
    start = time.time()
    lines = []
    check_target(log_path)  # a log streams as ATC runs (not atomic), but never into a device or FIFO
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command.argv(atc),
            cwd=folder,
            env=dict(env) if env is not None else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            log.flush()
            lines.append(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))
        result.returncode = process.wait()
    result.seconds = time.time() - start
    text = "".join(lines)
    result.errors = scan_errors(text)
    om = find_om(folder, command.output, since=start)
    marker = SUCCESS_MARKER in text
    if result.returncode != 0:
        result.reason = f"atc exited with code {result.returncode}"
    elif not marker:
        result.reason = f"atc exited 0 but did not print '{SUCCESS_MARKER}'"
    elif om is None:
        result.reason = (
            f"atc reported success but no {command.output}.om or {command.output}_<os>_<arch>.om was written"
        )
    result.success = not result.reason
    result.om = str(om) if om is not None and result.success else None
    return result


def build_plan(
    plan: AtcPlan,
    atc: str | None = None,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> list[BuildResult]:
    """Run every command of a written plan in its folder; all run even when one fails.

    ``atc`` overrides ``plan.spec.atc_path``; ``env`` is the environment for the lookup and
    the subprocesses (default: this process's).
    """
    assert plan.script is not None, "write the plan (write_plan) before building it"
    executable = find_atc(atc or plan.spec.atc_path, env)
    if executable is None:
        raise ToolNotFoundError(
            f"atc not found on PATH (CANN not installed here); run {plan.script} on a machine with CANN"
        )
    folder = plan.script.parent
    return [run_command(command, folder, executable, env, on_line) for command in plan.commands]
