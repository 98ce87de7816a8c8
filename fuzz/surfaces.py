"""Builders for the surfaces issue 28 attacked: ``new-pass``, the user cache, plug-ins and Ray.

- ``new-pass``: hostile pass names (a trailing newline, a keyword, 300 characters, ``..``,
  upper case, unicode) and folders; the oracle ``new_pass_broken`` loads what an exit 0 wrote.
- ``cache``: ``cache ls`` / ``cache clear`` on a cache holding a set graphkit recorded plus files
  graphkit never wrote (planted where its entries live); the oracle ``foreign_deleted`` says
  when one of those is gone or changed.
- plug-ins: ``apply`` with a distribution on ``PYTHONPATH`` whose entry points lie (a stage that
  is not a Stage, a module without ``:attr``, a source whose load returns None or bytes, a
  stage that raises, ``sys.exit(0)`` or ``KeyboardInterrupt`` at import); run as a subprocess
  (entry points are read from the interpreter's start-up ``sys.path``).
- Ray: ``infer --executor ray`` with valid and invalid Ray settings (a subprocess: it starts a
  private Ray instance; slow, so drawn rarely).

Reproducers are reached through ``apply``: a run that fails writes one, and the oracle in
:mod:`fuzz.surface_checks` runs it copied, through a link, with the cache gone.
"""

from __future__ import annotations

import textwrap

import yaml

from fuzz import datasets, goldens
from fuzz.attempts import Attempt, must_reject, put_golden, valid_dynamic_model
from fuzz.choices import Choices
from fuzz.sandbox import CACHE, DIRECTORY, INPUTS, OUT
from graphkit.ir.shapes import dims_of

GOOD_NAMES = ["drop-double-relu", "a", "fold-x2", "my-pass-" + "x" * 40]
BAD_NAMES = [
    "boom\n",
    "boom\r",
    "class",
    "import",
    "x" * 300,
    "../evil",
    "Bad-Name",
    "drop_double",
    "-lead",
    "trail-",
    "naïve",
    "",
    "a--b",
    "eliminate-noops",  # a built-in's name
]


def build_new_pass(choices: Choices, attempt: Attempt) -> None:
    name = choices.pick(GOOD_NAMES + BAD_NAMES)
    folder = choices.pick(["out/passes", "out/passes", "out/p q", "inputs/a-file", "out/passes/../passes"])
    if folder == "inputs/a-file":
        attempt.add_file(f"{INPUTS}/a-file", b"not a folder")
    attempt.argv = ["new-pass", name, "--dir", folder] + (["--json"] if choices.chance(0.3) else [])
    if name in BAD_NAMES:
        must_reject(attempt, f"pass name {name[:40]!r}")
    attempt.labels.append(f"new-pass:{name[:20]!r}")
    attempt.checks["new_pass"] = {"name": name, "dir": folder}


FOREIGN = {
    f"{CACHE}/notes/readme.md": b"a user's notes: graphkit did not write this\n",
    f"{CACHE}/golden/mine/keep.txt": b"a folder of the user's among graphkit's entries\n",
    f"{CACHE}/src/main.py": b"print('a project, not a cache')\n",
    f"{CACHE}/top-level.txt": b"a file in the cache root\n",
}


def build_cache(choices: Choices, attempt: Attempt) -> None:
    if choices.chance(0.7):  # an entry graphkit itself recorded
        recorded = goldens.record(valid_dynamic_model(choices).proto, seed=0, batch_sizes=(1,))
        put_golden(attempt, f"{CACHE}/golden/demo-{choices.integer(0, 9)}", goldens.GoldenCase(recorded, "valid"))
    foreign = choices.sample(sorted(FOREIGN), choices.integer(0, len(FOREIGN)))
    for path in foreign:
        attempt.add_file(path, FOREIGN[path])
    action = choices.pick(["ls", "clear", "clear", "ls"])
    argv = ["cache", action]
    if action == "clear" and choices.chance(0.3):
        argv.append(choices.pick(["cache/src", "cache/golden", "inputs", "/", "cache/../inputs", "cache/notes"]))
    if choices.chance(0.3):
        argv.append("--json")
    attempt.argv = argv
    attempt.outputs.append(CACHE)
    attempt.labels.append(f"cache-{action}:{len(foreign)} foreign")
    attempt.checks["foreign"] = {path: FOREIGN[path].decode() for path in foreign}


LIAR_MODULE = textwrap.dedent(
    """
    import sys
    from graphkit.pipeline.plugins import Source, SourceKind, Stage

    NOT_A_STAGE = {"parse": None}
    NUMBER = 42


    def parse(raw, where, weights=None):
        return raw


    def boom(options, context):
        raise ZeroDivisionError("the plug-in's own bug")


    NONE_SOURCE = SourceKind(parse, lambda options: None)
    BYTES_SOURCE = SourceKind(parse, lambda options: b"onnx?")
    BYTES_MODEL = SourceKind(parse, lambda options: Source(b"onnx?", "liar", "bytes"))
    RAISES = Stage(lambda raw, where: raw, boom, report_key="liar")
    """
)
AT_IMPORT = {
    "exit0": "import sys\nsys.exit(0)\n",
    "interrupt": "raise KeyboardInterrupt\n",
    "exit3": "raise SystemExit(3)\n",
}
LIARS = {  # entry point line -> which pipeline section uses it
    "handoff.liar = user_liars:NOT_A_STAGE": "stage",
    "handoff.liar = user_liars": "stage",
    "handoff.liar = user_liars:RAISES": "stage",
    "handoff.liar = user_liars_at_import:X": "stage",
    "liar = user_liars:NONE_SOURCE": "source",
    "liar = user_liars:BYTES_SOURCE": "source",
    "liar = user_liars:BYTES_MODEL": "source",
    "liar = user_liars:NUMBER": "source",
    "liar = user_liars_at_import:X": "source",
}


def build_plugin_apply(choices: Choices, attempt: Attempt) -> None:
    line = choices.pick(sorted(LIARS))
    section = LIARS[line]
    site = f"{INPUTS}/site"
    group = "graphkit.stages" if section == "stage" else "graphkit.sources"
    attempt.add_file(f"{site}/user_liars.py", LIAR_MODULE)
    at_import = choices.pick(sorted(AT_IMPORT))
    attempt.add_file(f"{site}/user_liars_at_import.py", AT_IMPORT[at_import])
    info = f"{site}/user_liars-0.1.dist-info"
    attempt.add_file(f"{info}/METADATA", "Metadata-Version: 2.1\nName: user-liars\nVersion: 0.1\n")
    attempt.add_file(f"{info}/entry_points.txt", f"[{group}]\n{line}\n")
    source = {"liar": {}} if section == "source" else {"builtin": "demo"}
    spec = {"name": "liar", "source": source, "golden": {"batch_sizes": [1]}, "passes": ["dead-code"]}
    if section == "stage":
        spec["handoff"] = {"liar": {}}
    attempt.add_file(f"{INPUTS}/pipeline.yaml", yaml.safe_dump(spec))
    attempt.argv = ["apply", "inputs/pipeline.yaml", "--output", "out"]
    attempt.env["PYTHONPATH"] = f"@@ROOT@@/{site}"
    attempt.subprocess = True  # entry points come from sys.path at start-up
    attempt.timeout = 120.0
    # An installed package's folder gets __pycache__ like any site-packages (pip precompiles
    # it): not a user's input folder; pass folders are (their __pycache__ is a finding).
    attempt.outputs += [CACHE, f"{site}/__pycache__"]
    attempt.checks["apply_out"] = OUT
    attempt.labels.append(f"plugin:{line}" + (f":{at_import}" if "at_import" in line else ""))


def build_ray_infer(choices: Choices, attempt: Attempt) -> None:
    model = valid_dynamic_model(choices)
    attempt.add_file(f"{INPUTS}/model.onnx", model.data)
    shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in dims_of(model.proto.graph.input[0]) or ()) or (1,)
    data = datasets.infer_inputs(choices, shape)
    attempt.add_file(f"{INPUTS}/bins", DIRECTORY)
    for name, content in data.files.items():
        attempt.add_file(f"{INPUTS}/bins/{name}", content)
    argv = ["infer", "inputs/model.onnx", "--input", "inputs/bins", "--output", "out", "--executor", "ray"]
    settings = choices.pick([[], ["--ray-workers", "1"], ["--ray-workers", "0"], ["--ray-num-cpus-per-worker", "nan"]])
    if settings in (["--ray-workers", "0"], ["--ray-num-cpus-per-worker", "nan"]):
        must_reject(attempt, " ".join(settings))
    attempt.argv = argv + settings
    attempt.subprocess = True
    attempt.timeout = 240.0
    attempt.labels += [data.label, "ray:" + (" ".join(settings) or "default")]


SURFACES = {
    "new-pass": build_new_pass,
    "cache": build_cache,
    "apply plug-in": build_plugin_apply,
    "infer ray": build_ray_infer,
}
SURFACE_WEIGHTS = {"new-pass": 2, "cache": 2, "apply plug-in": 1, "infer ray": 1}
