"""What must hold after every run. Each check returns :class:`Violation`\\ s with a class name.

Generic (every command):

- ``exit_code``: the exit code is 0, 1 or 2 (130/143 only after SIGINT/SIGTERM was sent);
  ``killed``: the process died from a signal the harness did not send (or did not handle one);
- ``timeout``: it ran past the attempt's time limit; ``memory``: MemoryError or bad_alloc;
- ``traceback``: a Python traceback printed on stdout or stderr (at the start of a line: a failed
  pass's traceback inside a JSON report is data);
- ``error_line``: exit 2 without exactly one ``graphkit: error: ...`` line, last on stderr,
  short, without ANSI colour codes;
- ``outside_write`` / ``input_modified`` / ``home_write``: a path changed outside the output
  folder(s), in the inputs, or in HOME;
- ``leftover_temp``: a file left in TMPDIR or a new hidden (``.name``) file or folder anywhere.

Oracles (where the attempt knows the right answer):

- ``model_on_failure``: ``apply`` reported failure (exit 1 or report status failed) and a model
  file is in the run folder; ``missing_report``: ``apply`` exit 0/1 without ``report.json``;
- ``wrong_model``: a model ``apply`` wrote differs from its source on fresh inputs at batch 1
  and 2 (onnxruntime, NaN-aware, the pipeline's tolerance x10 or the default x10);
- ``invalid_accepted``: exit 0 on a graph issue 10 lists as invalid (apply, golden make,
  validate, perf, atc precheck);
- ``bad_golden_accepted``: ``validate`` exit 0 against a golden set its model cannot match;
- ``bad_value_accepted``: exit 0 with a value issue 10 names as an error (NaN/negative
  tolerances, batch sizes <= 0, negative seeds and threads, ``--dim batch``, unknown output
  names, paths that leave their folder, a missing fusion switch file, ``--weights`` without an
  export source...);
- ``contract_breach_accepted``: a user pass that mutated its input, exited or raised is
  reported applied/unchanged;
- ``script_injection``: a generated shell script, run with a fake ``atc``, runs injected code;
- ``new_pass_broken``, ``foreign_deleted``, ``reproducer_escapes``: see :mod:`fuzz.surface_checks`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fuzz.attempts import Attempt
from fuzz.models import PWNED
from fuzz.runner import Outcome
from fuzz.sandbox import CACHE, HOME, INPUTS, MPL, THIRD_PARTY, TMP, Changes, inside
from fuzz.surface_checks import check_surfaces
from graphkit.ir.shapes import dims_of

EXPECTED_CODES = {0, 1, 2}
SIGNAL_CODES = {"SIGINT": 130, "SIGTERM": 143}
MODEL_READERS = {"apply", "golden make", "validate", "perf", "atc precheck"}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ERROR_LINE = re.compile(r"^graphkit( [\w-]+)*: error: ")  # ours, or argparse's "graphkit perf: error:"
MAX_ERROR_CHARS = 1000
# Hidden files graphkit keeps on purpose: the validation cache's 0600 HMAC key (not a temporary).
KNOWN_HIDDEN = {f"{CACHE}/validation/.graphkit-key"}


@dataclass
class Violation:
    """One broken invariant: its class and the evidence."""

    kind: str
    detail: str


def check(attempt: Attempt, outcome: Outcome, root: Path, changes: Changes) -> list[Violation]:
    """Every invariant that applies to ``attempt``."""
    found = check_process(attempt, outcome)
    found += check_files(attempt, root, changes)
    found += check_oracles(attempt, outcome, root)
    return found


# --- process ----------------------------------------------------------------------------------


# A traceback as Python prints it starts a line; one inside a JSON string (a failed pass's
# ``traceback`` in a report printed with --json) is data, not a crash.
_TRACEBACK = re.compile(r"^Traceback \(most recent call last\)", re.MULTILINE)


def traceback_signature(text: str) -> str:
    """'ExceptionType at file.py:function' from the last traceback in ``text`` ('' if none)."""
    starts = [match.start() for match in _TRACEBACK.finditer(text)]
    if not starts:
        return ""
    block = text[starts[-1] :]
    frames = re.findall(r'File "([^"]+)", line \d+, in (\S+)', block)
    own = [(f, fn) for f, fn in frames if "/graphkit/" in f or "graphkit_passes" in f or "/passes/" in f]
    where = own[-1] if own else (frames[-1] if frames else ("?", "?"))
    lines = [line for line in block.splitlines() if line and not line.startswith((" ", "Traceback"))]
    error = lines[0].split(":")[0] if lines else "?"
    return f"{error} at {Path(where[0]).name}:{where[1]}"


def check_process(attempt: Attempt, outcome: Outcome) -> list[Violation]:
    found = []
    both = outcome.stdout + "\n" + outcome.stderr
    if outcome.timed_out:
        found.append(Violation("timeout", f"still running after {attempt.timeout:.0f} s"))
    code = outcome.returncode
    allowed = set(EXPECTED_CODES)
    if outcome.signal_sent and attempt.signal:
        allowed.add(SIGNAL_CODES[attempt.signal])
        if not outcome.stdout.strip() and not outcome.stderr.strip():
            # Killed by the signal before any graphkit code ran (the interpreter's own start-up,
            # seconds under load): nothing was written, and a shell sees 128 + N as after a
            # handled signal. Once graphkit has started (it prints on stderr) this is not allowed.
            allowed.add(128 - SIGNAL_CODES[attempt.signal])  # the negative return code of death by it
    if not outcome.timed_out and code not in allowed:
        if code < 0:
            found.append(Violation("killed", f"died from signal {-code}"))
        else:
            found.append(Violation("exit_code", f"exit code {code}"))
    crash = traceback_signature(both)
    if crash:
        found.append(Violation("traceback", crash))
    if "MemoryError at" in crash or "bad_alloc" in both:  # not a message that names a MemoryError
        found.append(Violation("memory", crash or "std::bad_alloc"))
    if code == 2:
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if ERROR_LINE.match(line)]
        if len(errors) != 1:
            found.append(Violation("error_line", f"{len(errors)} 'graphkit: error:' lines on stderr"))
        elif lines[-1] != errors[0]:
            found.append(Violation("error_line", "the error line is not the last line of stderr"))
        elif ANSI.search(errors[0]):
            found.append(Violation("error_line", "ANSI escape codes in the error line"))
        elif len(errors[0]) > MAX_ERROR_CHARS:
            found.append(Violation("error_line", f"error line of {len(errors[0])} characters"))
    return found


# --- files ------------------------------------------------------------------------------------


def check_files(attempt: Attempt, root: Path, changes: Changes) -> list[Violation]:
    found = []
    allowed = list(attempt.outputs) + [MPL, TMP] + THIRD_PARTY
    # a folder created on the way to an allowed output (``~/x`` makes ``~``) is part of it
    parents = {p for p in changes.created if any(a.startswith(p + "/") for a in allowed)}
    outside = [p for p in changes.all() if not inside(p, allowed) and p not in parents and p != f"{HOME}/.cache"]
    groups = {
        "input_modified": [p for p in outside if inside(p, [INPUTS])],
        "home_write": [p for p in outside if inside(p, [HOME])],
    }
    groups["outside_write"] = [p for p in outside if p not in groups["input_modified"] + groups["home_write"]]
    for kind, paths in groups.items():
        if paths:
            found.append(Violation(kind, ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")))
    left = (
        sorted(n for n in os.listdir(root / TMP) if not inside(f"{TMP}/{n}", THIRD_PARTY))
        if (root / TMP).is_dir()
        else []
    )
    hidden = [p for p in changes.created if Path(p).name.startswith(".") and not inside(p, [MPL, TMP, *THIRD_PARTY])]
    hidden = [p for p in hidden if p != f"{HOME}/.cache" and p not in KNOWN_HIDDEN]
    if left or hidden:
        found.append(Violation("leftover_temp", ", ".join(([f"{TMP}/{n}" for n in left] + hidden)[:5])))
    return found


# --- oracles ----------------------------------------------------------------------------------


def check_oracles(attempt: Attempt, outcome: Outcome, root: Path) -> list[Violation]:
    found = []
    code = outcome.returncode
    if attempt.checks.get("invalid_model") and attempt.command in MODEL_READERS and code == 0:
        found.append(Violation("invalid_accepted", f"exit 0 on an invalid graph ({', '.join(attempt.labels)})"))
    if attempt.checks.get("must_reject") and code == 0 and not outcome.timed_out:
        found.append(Violation("bad_value_accepted", "; ".join(attempt.checks["must_reject"])))
    if attempt.checks.get("must_fail") and code == 0:
        found.append(Violation("bad_golden_accepted", f"exit 0 against {', '.join(attempt.labels)}"))
    if attempt.checks.get("injection"):
        found += _check_scripts(root / attempt.outputs[0] if attempt.outputs else root, root)
    run_dir = attempt.checks.get("apply_out")
    crashed = bool(_TRACEBACK.search(outcome.stdout + "\n" + outcome.stderr))
    applied = attempt.command in ("apply", "apply plug-in") and code in (0, 1) and not outcome.timed_out
    if applied and run_dir and not crashed:
        found += _check_run_folder(attempt, root / run_dir, code, root)
    found += check_surfaces(attempt, outcome, root, Violation)
    return found


def _check_run_folder(attempt: Attempt, run_dir: Path, code: int, root: Path) -> list[Violation]:
    report_path = run_dir / "report.json"
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return [Violation("missing_report", f"exit {code} without a readable {report_path.name}")]
    found = []
    failed = code == 1 or report.get("status") != "ok"
    models = sorted(p.name for p in run_dir.glob("*.onnx"))
    if failed and models:
        found.append(Violation("model_on_failure", f"exit {code}, status {report.get('status')!r}, yet {models}"))
    breaker = attempt.checks.get("contract_breaker")
    for record in report.get("passes") or []:
        if (
            isinstance(record, dict)
            and record.get("name") == breaker
            and record.get("status") in ("applied", "unchanged")
        ):
            found.append(Violation("contract_breach_accepted", f"{breaker} reported {record.get('status')}"))
    source = attempt.checks.get("oracle_source")
    reported = report.get("source") if isinstance(report.get("source"), dict) else {}
    if source and reported.get("kind") == "builtin":  # the pipeline's own source won (e.g. a repeated key)
        source = "builtin:demo"
    if code == 0 and not failed and source and models:
        for name in models:
            problem = compare_with_source(source, run_dir / name, root, _oracle_tolerance(run_dir))
            if problem:
                found.append(Violation("wrong_model", f"{name}: {problem}"))
    return found


def _oracle_tolerance(run_dir: Path) -> tuple[float, float]:
    """The pipeline's largest finite tolerance (x10), at least the default x10."""
    atol, rtol = 1e-4, 1e-3
    try:
        import yaml

        spec = yaml.safe_load((run_dir / "pipeline.yaml").read_text())
        golden = spec.get("golden") or {}
        entries = [golden.get("tolerance") or {}] + list((golden.get("outputs") or {}).values())
        for entry in entries:
            for key, value in (entry or {}).items():
                if key in ("atol", "rtol") and isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
                    if key == "atol":
                        atol = max(atol, 10 * value)
                    else:
                        rtol = max(rtol, 10 * value)
    except Exception:  # the resolved pipeline is graphkit's output; any doubt keeps the default
        pass
    return atol, rtol


def _feeds(model, batch: int, seed: int) -> dict[str, np.ndarray]:
    import onnx

    rng = np.random.default_rng(seed)
    feeds = {}
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = [d if isinstance(d, int) else batch for d in dims_of(value) or ()]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        feeds[value.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def compare_with_source(source: str, candidate: Path, root: Path, tolerance: tuple[float, float]) -> str:
    """'' when ``candidate`` computes what ``source`` computes at batch 1 and 2, else the problem."""
    import onnx
    import onnxruntime as ort

    if source == "builtin:demo":
        from graphkit.pipeline.demo_model import demo_model

        reference = demo_model()
    else:
        reference = onnx.load(str(root / source))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    try:
        expected_session = ort.InferenceSession(
            reference.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception:  # the source itself does not run: nothing to compare with
        return ""
    try:
        actual_session = ort.InferenceSession(str(candidate), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        return f"onnxruntime cannot load the written model ({type(exc).__name__})"
    static = isinstance((dims_of(reference.graph.input[0]) or (None,))[0], int)
    atol, rtol = tolerance
    for batch in (1,) if static else (1, 2):
        feeds = _feeds(reference, batch, seed=1234 + batch)
        expected = dict(zip([o.name for o in expected_session.get_outputs()], expected_session.run(None, feeds)))
        try:
            names = [o.name for o in actual_session.get_outputs()]
            actual = dict(zip(names, actual_session.run(None, feeds)))
        except Exception as exc:
            return f"fails at batch {batch} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        for name, want in expected.items():
            if name not in actual:
                return f"output {name!r} missing"
            got = actual[name]
            if got.shape != want.shape:
                return f"output {name!r} at batch {batch}: shape {got.shape} != {want.shape}"
            if not _close(got, want, atol, rtol):
                return f"output {name!r} at batch {batch}: max abs {float(np.nanmax(np.abs(got - want))):.3g}"
    return ""


def _close(got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> bool:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    nan_match = np.array_equal(np.isnan(got), np.isnan(want))
    inf_match = np.array_equal(np.isposinf(got), np.isposinf(want)) and np.array_equal(
        np.isneginf(got), np.isneginf(want)
    )
    finite = np.isfinite(want) & np.isfinite(got)
    return (
        nan_match
        and inf_match
        and bool(np.all(np.abs(got[finite] - want[finite]) <= atol + rtol * np.abs(want[finite])))
    )


def _check_scripts(out: Path, root: Path) -> list[Violation]:
    """Run every generated .sh with a fake ``atc``; injected code would create the PWNED file."""
    scripts = sorted(out.rglob("*.sh")) if out.is_dir() else []
    if not scripts:
        return []
    with tempfile.TemporaryDirectory(prefix="graphkit-fuzz-bin-") as fake:
        atc = Path(fake) / "atc"
        atc.write_text("#!/bin/sh\nexit 0\n")
        atc.chmod(0o755)
        scratch = Path(fake) / "run"
        for script in scripts:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(script.parent, scratch)
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(
                    ["bash", "--noprofile", "--norc", script.name],
                    cwd=scratch,
                    env={"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(scratch)},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=20,
                )
            if list(scratch.rglob(PWNED)) or list(root.rglob(PWNED)):
                return [Violation("script_injection", f"running {script.name} executed injected code")]
    return []
