"""Oracles for the surfaces of :mod:`fuzz.surfaces` (called from :func:`fuzz.invariants.check_oracles`).

- ``new_pass_broken``: ``new-pass`` exit 0, yet the file it wrote is not named after the pass,
  or does not load and register exactly that name (``graphkit passes NAME --passes-dir D``);
- ``foreign_deleted``: after ``cache ls``/``clear``, a file graphkit never wrote is gone or changed;
- ``reproducer_escapes``: a reproducer folder an ``apply`` wrote, copied to a folder whose name
  starts with '-' and run through a link placed beside a decoy ``pipeline.yaml`` with an empty
  cache, writes outside its copy, into the cache, ran the decoy, or crashed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fuzz.attempts import Attempt
from fuzz.runner import Outcome
from fuzz.sandbox import WORK

REPRO_TIMEOUT = 120.0


def check_surfaces(attempt: Attempt, outcome: Outcome, root: Path, violation) -> list:
    """Violations of the surface oracles that apply to ``attempt`` (``violation(kind, detail)`` builds one)."""
    found = []
    if attempt.checks.get("new_pass") and outcome.returncode == 0 and not outcome.timed_out:
        problem = new_pass_problem(attempt.checks["new_pass"], root)
        if problem:
            found.append(violation("new_pass_broken", problem))
    for path, text in (attempt.checks.get("foreign") or {}).items():
        file = root / path
        if not file.is_file() or file.read_text(errors="replace") != text:
            found.append(violation("foreign_deleted", f"{path} (graphkit did not write it) is gone or changed"))
            break
    run_dir = attempt.checks.get("apply_out")
    if run_dir and outcome.returncode == 1 and not outcome.timed_out:
        scripts = sorted((root / run_dir).glob("repro-*/reproduce.sh"))
        if scripts:
            problem = reproducer_problem(scripts[0].parent)
            if problem:
                found.append(violation("reproducer_escapes", problem))
    return found


def new_pass_problem(request: dict, root: Path) -> str:
    """Why what ``new-pass NAME --dir D`` wrote is not a loadable pass NAME ('' when it is)."""
    name, folder = request["name"], root / WORK / request["dir"]
    expected = folder / (name.replace("-", "_") + ".py")
    if not expected.is_file():
        return f"exit 0 but no {expected.name} in {request['dir']!r}"
    env = {**os.environ, "GRAPHKIT_CACHE": str(root / "loader-cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    shown = subprocess.run(
        [sys.executable, "-m", "graphkit", "passes", name, "--passes-dir", str(folder), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=REPRO_TIMEOUT,
    )
    if shown.returncode != 0:
        return f"the written pass {name!r} does not load: {shown.stderr.strip()[-200:]}"
    return ""


def reproducer_problem(folder: Path) -> str:
    """Run a copy of the reproducer ``folder`` the hostile way; why it misbehaved ('' when fine)."""
    with tempfile.TemporaryDirectory(prefix="graphkit-fuzz-repro-") as tmp:
        base = Path(tmp)
        copy = base / "-copied" / "repro"
        shutil.copytree(folder, copy, symlinks=True, ignore=shutil.ignore_patterns("run"))
        links = base / "-links"
        links.mkdir()
        (links / "reproduce.sh").symlink_to(copy / "reproduce.sh")
        decoy = "name: decoy\nsource: {builtin: demo}\npasses: []\noutput: {dir: decoy-ran}\n"
        (links / "pipeline.yaml").write_text(decoy)
        before = _listing(base, skip=copy)
        cache = base / "cache-cleared"
        env = {**os.environ, "GRAPHKIT_CACHE": str(cache), "HOME": str(base / "-copied"), "GRAPHKIT_NO_PROGRESS": "1"}
        env.pop("PYTHON", None)
        try:
            done = subprocess.run(
                ["sh", "--", "-links/reproduce.sh"],
                cwd=base,
                env=env,
                capture_output=True,
                text=True,
                timeout=REPRO_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return f"the copied reproducer ran past {REPRO_TIMEOUT:.0f} s"
        after = _listing(base, skip=copy)
        if cache.exists():
            return "the copied reproducer wrote into the (cleared) cache"
        if after != before:
            return f"the copied reproducer wrote outside its folder: {sorted(after ^ before)[:3]}"
        if "Traceback (most recent call last)" in done.stdout + done.stderr or done.returncode not in (0, 1, 2):
            return f"the copied reproducer exited {done.returncode}: {done.stderr.strip()[-200:]}"
        if not (copy / "run" / "report.json").is_file():
            return f"the copied reproducer did not run its own pipeline (exit {done.returncode})"
    return ""


def _listing(base: Path, skip: Path) -> set[str]:
    """Every path under ``base`` except under ``skip`` and onnxruntime's own telemetry folder
    in HOME (third party, as in :data:`fuzz.sandbox.THIRD_PARTY`), with file sizes."""
    found = set()
    telemetry = base / "-copied" / ".cache"
    for path in base.rglob("*"):
        if path in (skip, telemetry) or skip in path.parents or telemetry / "Microsoft" in [path, *path.parents]:
            continue
        found.add(f"{path.relative_to(base)}:{path.stat().st_size if path.is_file() else 'd'}")
    return found
