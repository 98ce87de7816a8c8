"""Reproducer folders: a failed pass, packed so that one command reproduces its failure anywhere.

When a pass fails (raises, breaks its contract, or fails a check) the run writes
``repro-NN-<pass>/`` beside its report::

    input.onnx      the model the failing pass got (the source after the passes before it)
    rejected.onnx   the model the pass returned, when it returned one
    passes/1, ...   copies of the run's user pass folders (``*.py`` files and packages)
    pipeline.yaml   a one-pass pipeline: that pass with its options, the run's golden request
                    (seed, batch sizes, dims, input ranges, tolerances) and validation settings,
                    on_failure: stop; its paths are relative to the folder
    reproduce.sh    the one command: ``cd`` to the folder and ``graphkit apply pipeline.yaml``
    README.txt      what failed and how to rerun it

The golden set is always ``golden/`` inside the folder, so a reproducer copied anywhere (or run
after ``graphkit cache clear``) reads and writes nothing outside itself: when the failing pass
got the source model itself and the run's golden set was made by onnxruntime, that set's files
are put there (hard links when the file system allows, else copies). Otherwise a set is recorded
from ``input.onnx`` with onnxruntime on the first run: the input passed the run's checks, so its
outputs match the run's golden outputs within the tolerances.

``reproduce.sh`` changes to the real folder of its own file (symbolic links resolved, a path
starting with '-' taken as a path), so a link to it or ``sh -- -dir/reproduce.sh`` runs this
folder's pipeline and nobody else's.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from pathlib import Path

import onnx
import yaml

from graphkit.check.golden import GoldenSet
from graphkit.ir.model_io import content_hash, save_model
from graphkit.pipeline.spec import PipelineSpec
from graphkit.transform.instruments import Instrument
from graphkit.transform.record import Observation
from graphkit.util.errors import GraphkitError, one_line
from graphkit.util.files import make_folder, write_text_atomic
from graphkit.util.typed_config import to_mapping

logger = logging.getLogger(__name__)


class ReproducerWriter(Instrument):
    """On a pass's failure, writes its reproducer folder (see the module) under ``run_dir``."""

    def __init__(self, run_dir: Path, spec: PipelineSpec, golden: GoldenSet, pass_dirs: list[str]):
        self.run_dir = Path(run_dir)
        self.spec = spec
        self.golden = golden
        self.pass_dirs = [Path(d) for d in pass_dirs]

    def pass_failed(self, index, pass_, before, error, rejected=None):
        folder = self.run_dir / f"repro-{index + 1:02d}-{pass_.name}"
        try:
            return self._write(folder, index, pass_, before, error, rejected)
        except (GraphkitError, OSError, shutil.Error) as exc:  # the pass's failure is the news, not this
            note = f"reproducer not written to {folder}: {one_line(exc)}"
            logger.warning("%s", note)
            return Observation(notes=[note])

    def _write(self, folder, index, pass_, before, error, rejected) -> Observation:
        artifacts = {}
        artifacts["input_model"] = str(save_model(before, folder / "input.onnx"))
        if rejected is not None:
            artifacts["rejected_model"] = str(save_model(rejected, folder / "rejected.onnx"))
        copied = self._copy_pass_dirs(folder / "passes")
        golden = self._golden_request(before)
        if golden.pop("reuse_run_set"):
            _link_or_copy_files(Path(self.golden.directory), folder / "golden")
        spec = {
            "name": f"repro-{pass_.name}",
            "source": {"onnx": "input.onnx"},
            "pass_dirs": copied,
            "passes": [{pass_.name: pass_.options_dict()}],
            "golden": golden,
            "validate": to_mapping(self.spec.validate),
            "on_failure": "stop",
            "output": {"dir": "run"},
        }
        write_text_atomic(folder / "pipeline.yaml", yaml.safe_dump(spec, sort_keys=False))
        script = folder / "reproduce.sh"
        write_text_atomic(script, _script(pass_.name, index))
        script.chmod(0o755)
        write_text_atomic(folder / "README.txt", _readme(pass_.name, index, self.spec.name, error, spec["golden"]))
        artifacts["reproducer"] = str(script)
        logger.info("reproducer of pass '%s': %s", pass_.name, script)
        return Observation(artifacts=artifacts)

    def _golden_request(self, model: onnx.ModelProto) -> dict:
        manifest = self.golden.manifest
        request = {
            "dir": "golden",
            "batch_sizes": list(dict.fromkeys(int(case.dims["batch"]) for case in self.golden.cases)),
            "seed": int(manifest.get("seed", 0)),
            "dims": dict(manifest.get("dims") or {}),
            "input_ranges": dict(manifest.get("input_ranges") or {}),
            "producer": "onnxruntime",
            "inputs": _absolute_inputs(to_mapping(self.spec.golden.inputs)),
            "distributions": to_mapping(self.spec.golden.distributions),
            "tolerance": to_mapping(self.spec.golden.tolerance),
            "outputs": to_mapping(self.spec.golden.outputs),
        }
        fits = manifest.get("producer") == "onnxruntime" and manifest.get("model_hash") == content_hash(model)
        request["reuse_run_set"] = fits  # the run's own set is put in golden/ (popped before writing)
        return request

    def _copy_pass_dirs(self, target: Path) -> list[str]:
        """Copy each user pass folder's ``*.py`` files and packages to ``target/N``."""
        copied = []
        for number, directory in enumerate(self.pass_dirs, start=1):
            destination = target / str(number)
            make_folder(destination)
            for path in sorted(directory.iterdir()):
                if path.is_file() and path.suffix == ".py":
                    shutil.copyfile(path, destination / path.name)
                elif path.is_dir() and (path / "__init__.py").is_file() and not _inside(self.run_dir, path):
                    shutil.copytree(  # links stay links: a link to / or a loop is never followed
                        path, destination / path.name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
                    )
            copied.append(f"passes/{number}")
        return copied


def _inside(folder: Path, parent: Path) -> bool:
    """Whether ``folder`` is ``parent`` or lies under it (a package holding the run folder is
    not copied into itself)."""
    return folder.resolve().is_relative_to(parent.resolve())


def _link_or_copy_files(source: Path, target: Path) -> None:
    """The regular files directly in ``source`` (a golden set), hard-linked or copied into ``target``."""
    make_folder(target)
    for path in sorted(source.iterdir()):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copyfile(path, target / path.name)


# The script's own real folder: follow links one by one (readlink without -f is on every system),
# keep a trailing newline of a name ($(...) strips it: hence the 'x' guard), and a '-' first in
# $0 is a path, not an option (./ before a relative path, -- before operands).
_FIND_SELF = """self=$0
case $self in /*) ;; *) self=./$self ;; esac
hops=0
while [ -L "$self" ]; do
    hops=$((hops + 1)) && [ "$hops" -le 40 ] || exit 2
    link=$(readlink -- "$self" && echo x) || exit 2
    link=${link%?x}
    case $link in /*) self=$link ;; *) dir=$(dirname -- "$self" && echo x) || exit 2; self=${dir%?x}/$link ;; esac
done
dir=$(dirname -- "$self" && echo x) || exit 2
cd -P -- "${dir%?x}" || exit 2
"""


def _script(name: str, index: int) -> str:
    python = shlex.quote(sys.executable)
    return (
        "#!/bin/sh\n"
        f"# Reproduces the failure of pass '{one_line(name)}' (pass #{index + 1} of its run): runs it alone on\n"
        "# the model it got, with the run's golden request and validation settings. Works from any\n"
        "# directory and through links; extra arguments go to 'graphkit apply' (e.g. -v for the traceback).\n"
        + _FIND_SELF
        + f'[ -n "${{PYTHON:-}}" ] || PYTHON={python}\n'  # quoted outside "${{...}}": any interpreter path
        + 'exec "$PYTHON" -m graphkit apply pipeline.yaml "$@"\n'
    )


def _readme(name: str, index: int, pipeline: str, error: Exception, golden: dict) -> str:
    where = "golden/ (the run's own golden set, or one recorded there from input.onnx on the first run)"
    return (
        f"Reproducer of pass '{name}' (pass #{index + 1} of pipeline '{pipeline}').\n\n"
        f"It failed with: {one_line(error, 2000)}\n\n"
        "Run:  ./reproduce.sh        (from anywhere: sh /path/to/this/folder/reproduce.sh; add -v for\n"
        "                             the pass's traceback)\n\n"
        "input.onnx is the model the pass got; pipeline.yaml runs that pass alone on it, validated\n"
        f"against {where}; passes/ holds copies of the run's user pass folders.\n"
    )


def _absolute_inputs(inputs: dict) -> dict:
    """``golden.inputs`` with its paths made absolute (the reproducer runs from its own folder)."""
    inputs["files"] = [str(Path(f).resolve()) for f in inputs["files"]]
    for tokens in inputs["tokens"]:
        tokens["file"] = str(Path(tokens["file"]).resolve())
    if inputs["images"]:
        inputs["images"]["dir"] = str(Path(inputs["images"]["dir"]).resolve())
    return inputs
