"""The run folder of ``graphkit apply``: a report always describes the files beside it.

Rules, checked before any heavy work and applied before the first file is written:

- an absent or empty folder is used as it is;
- a folder that holds only an earlier run of the *same* pipeline (graphkit's own files) is a
  rerun: those files are removed first, so a failed rerun never leaves the earlier model,
  diffs or reproducers next to its failed report;
- any other non-empty folder (another pipeline's run, files graphkit did not write) is refused
  with one line, unless ``overwrite``: then graphkit's files of the earlier run are removed
  and the other files are left alone (graphkit never deletes what it did not write).

The pipeline's own inputs (source model, golden folder, pass folders) may live in the run
folder; a run that would remove one of them is refused.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from graphkit.util.errors import OutputError, SpecError
from graphkit.util.safe_yaml import load_yaml

ARTIFACTS = ("report.json", "summary.txt", "pipeline.yaml", "diffs", "atc", "eval")
TEMPORARIES = ".*.tmp"  # left by a run killed with SIGKILL (graphkit.util.files cleans up after any other end)
ARTIFACT_PATTERNS = ("repro-*", TEMPORARIES)
RECORD = "pipeline.yaml"  # written first by every run: names the pipeline and its model file
MAX_RECORD_BYTES = 1 << 20


@dataclass
class RunFolder:
    """A checked run folder: ``stale`` lists the earlier run's files that :meth:`clear` removes."""

    path: Path
    stale: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)

    def clear(self) -> None:
        """Remove the earlier run's files."""
        for entry in self.stale:
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink(missing_ok=True)
            except OSError as exc:
                raise OutputError(f"{entry}: cannot remove the earlier run's file ({exc.strerror or exc})") from exc


def check_run_folder(
    path: str | os.PathLike,
    pipeline: str,
    model_name: str,
    overwrite: bool = False,
    inputs: tuple[str | os.PathLike, ...] = (),
) -> RunFolder:
    """Check ``path`` as the run folder of pipeline ``pipeline``; OutputError says why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: the run folder is a file, not a folder")
    _check_writable(path)
    if not path.exists():
        return RunFolder(path)
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        raise OutputError(f"{path}: cannot read the run folder ({exc.strerror or exc})") from exc
    earlier = _earlier_run(path)
    models = {model_name, earlier.get("model", model_name)}
    names = set(ARTIFACTS) | models | {f"{m}.data" for m in models}
    input_paths = [_real(p) for p in inputs]
    stale, kept = [], []
    for entry in entries:
        graphkit_file = entry.name in names or any(fnmatch.fnmatch(entry.name, p) for p in ARTIFACT_PATTERNS)
        holds_input = [p for p in input_paths if _within(p, entry)]
        if graphkit_file and holds_input:
            raise OutputError(
                f"{path}: this run would replace {entry.name}, which holds the pipeline's input {holds_input[0]}; "
                "choose another run folder with --output"
            )
        (stale if graphkit_file else kept).append(entry)
    foreign = [e for e in kept if not any(_within(p, e) for p in input_paths)]
    earlier_files = [e for e in stale if not fnmatch.fnmatch(e.name, TEMPORARIES)]
    if not overwrite:
        if foreign:
            shown = ", ".join(e.name for e in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise OutputError(
                f"{path}: the run folder holds files graphkit did not write ({shown}); "
                "choose an empty or new folder with --output, or pass --overwrite to replace graphkit's files there"
            )
        if earlier_files and earlier.get("name") != pipeline:
            what = f"a run of pipeline '{earlier['name']}'" if earlier.get("name") else "files of an unknown run"
            raise OutputError(
                f"{path}: the run folder holds {what}, not of '{pipeline}'; "
                "pass --overwrite to replace it, or choose another folder with --output"
            )
    return RunFolder(path, stale, kept)


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))  # never raises, symlink loops included


def _within(path: Path, entry: Path) -> bool:
    """Whether ``path`` (resolved) is ``entry`` or lies under it."""
    real = _real(entry)
    return path == real or real in path.parents


def _check_writable(path: Path) -> None:
    """Fail early (before minutes of export and golden work) when the folder cannot be made or written."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{path}: cannot create the run folder: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):  # also false for root on a read-only mount or an immutable folder
        raise OutputError(f"{path}: cannot write the run folder: {existing} is not writable")


def _earlier_run(path: Path) -> dict:
    """Name and model file name of the run recorded in ``path`` (empty when there is none)."""
    record = path / RECORD
    try:
        if not record.is_file() or record.stat().st_size > MAX_RECORD_BYTES:
            return {}
        data = load_yaml(record.read_text(encoding="utf-8"), str(record))
    except (OSError, UnicodeDecodeError, SpecError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return {}
    output = data.get("output") if isinstance(data.get("output"), dict) else {}
    model = output.get("model")
    earlier = {"name": data["name"]}
    if isinstance(model, str) and model and "/" not in model and model not in (".", ".."):
        earlier["model"] = model
    return earlier
