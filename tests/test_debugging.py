"""Failures you can debug: a crashing pass's traceback and location, log levels on every command,
and reproducer folders that reproduce a failure on their own from any directory."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap

import pytest

from graphkit.ir.model_io import save_model
from graphkit.pipeline.demo_model import demo_model

CRASHING_PASS = textwrap.dedent(
    '''
    """A user pass that crashes in a helper of its own."""
    from graphkit.transform.pass_base import Pass, PassResult
    from graphkit.transform.registry import register


    def lookup(table):
        return table["missing"]  # line 8


    @register("crashes")
    class Crashes(Pass):
        """Raises KeyError: 'missing'."""

        def run(self, model):
            lookup({})
            return PassResult(model, False)
    '''
)


@pytest.fixture
def crash_pipeline(tmp_path, user_pass_dir):
    passes = tmp_path / "my passes"
    passes.mkdir()
    (passes / "crash.py").write_text(CRASHING_PASS)
    path = tmp_path / "crash.yaml"
    path.write_text(
        f"name: crash\nsource: {{builtin: demo}}\npass_dirs: ['{passes}', '{user_pass_dir}']\n"
        f"golden: {{dir: '{tmp_path / 'golden'}', batch_sizes: [1, 2]}}\noutput: {{dir: '{tmp_path / 'run'}'}}\n"
        "passes: [drop-identity, crashes, relu-as-max]\n"
    )
    return path


def test_a_crashing_pass_is_one_line_with_file_and_line_and_its_traceback_is_kept(tmp_path, crash_pipeline, cli):
    crash_file = tmp_path / "my passes" / "crash.py"
    result = cli("apply", crash_pipeline)
    assert result.returncode == 1
    expected = f"pass 'crashes' raised KeyError: 'missing' at {crash_file}:8 (in lookup)"
    failed = [line for line in result.stderr.splitlines() if line.startswith("graphkit: failed:")]
    assert len(failed) == 1 and expected in failed[0]
    assert "Traceback" not in result.stderr  # by default: one line
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    record = report["passes"][1]
    assert record["status"] == "failed" and expected in record["error"]
    assert record["traceback"].startswith("Traceback (most recent call last):")
    assert f'File "{crash_file}", line 8, in lookup' in record["traceback"]
    assert f'File "{crash_file}", line 16, in run' in record["traceback"]
    assert record["traceback"].rstrip().endswith("KeyError: 'missing'")

    verbose = cli("apply", crash_pipeline, "-v")
    assert verbose.returncode == 1
    assert "traceback of pass 'crashes':" in verbose.stderr
    assert f'File "{crash_file}", line 8, in lookup' in verbose.stderr
    assert "KeyError: 'missing'" in verbose.stderr


def _error(report_path) -> str:
    return json.loads(report_path.read_text())["error"]


def test_the_reproducer_of_a_crash_reproduces_it_from_another_directory(tmp_path, crash_pipeline, cli):
    assert cli("apply", crash_pipeline).returncode == 1
    repro = tmp_path / "run" / "repro-02-crashes"
    assert sorted(p.name for p in repro.iterdir()) == [
        "README.txt",
        "input.onnx",
        "passes",
        "pipeline.yaml",
        "reproduce.sh",
    ]
    # the pass folders travel with it: the original ones may be gone
    assert (repro / "passes" / "1" / "crash.py").read_text() == CRASHING_PASS
    (tmp_path / "my passes" / "crash.py").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = subprocess.run(
        ["sh", str(repro / "reproduce.sh")], cwd=elsewhere, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 1, again.stderr
    copied = repro / "passes" / "1" / "crash.py"
    assert f"pass 'crashes' raised KeyError: 'missing' at {copied}:8 (in lookup)" in again.stderr
    first = re.sub(r" at .*/crash\.py:", " at crash.py:", _error(tmp_path / "run" / "report.json"))
    second = re.sub(r" at .*/crash\.py:", " at crash.py:", _error(repro / "run" / "report.json"))
    assert first.split(" (pass #")[0] == second.split(" (pass #")[0]
    assert list(elsewhere.iterdir()) == []  # it ran in its own folder


def test_the_reproducer_of_a_failed_validation_fails_the_same_way_from_anywhere(tmp_path, user_pass_dir, cli):
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: t\nsource: {{builtin: demo}}\npass_dirs: ['{user_pass_dir}']\n"
        f"golden: {{dir: '{tmp_path / 'golden'}', batch_sizes: [1, 2]}}\noutput: {{dir: '{tmp_path / 'run'}'}}\n"
        "passes: [drop-identity, {break-relu: {factor: 3.0}}]\nvalidate: {each_batch_sizes: [2]}\n"
    )
    assert cli("apply", path).returncode == 1
    repro = tmp_path / "run" / "repro-02-break-relu"
    spec = (repro / "pipeline.yaml").read_text()
    assert "factor: 3.0" in spec and "each_batch_sizes:\n  - 2" in spec  # options and settings kept
    again = subprocess.run(["sh", str(repro / "reproduce.sh")], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 1
    assert "pass 'break-relu' failed validation: case b2, prob: MISMATCH" in again.stderr
    report = json.loads((repro / "run" / "report.json").read_text())
    assert [(p["name"], p["status"]) for p in report["passes"]] == [("break-relu", "failed")]
    assert report["golden"]["cases"] == ["b1", "b2"]  # the run's golden request, recorded from input.onnx


def test_the_reproducer_of_the_first_pass_uses_the_runs_own_golden_set(tmp_path, user_pass_dir, cli):
    path = tmp_path / "p.yaml"
    golden = tmp_path / "golden"
    path.write_text(
        f"name: t\nsource: {{builtin: demo}}\npass_dirs: ['{user_pass_dir}']\n"
        f"golden: {{dir: '{golden}', batch_sizes: [1]}}\noutput: {{dir: '{tmp_path / 'run'}'}}\n"
        "passes: [break-relu]\n"
    )
    assert cli("apply", path).returncode == 1
    repro = tmp_path / "run" / "repro-01-break-relu"
    again = subprocess.run([str(repro / "reproduce.sh")], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 1 and "failed validation" in again.stderr
    report = json.loads((repro / "run" / "report.json").read_text())
    assert report["golden"] == {**report["golden"], "dir": "golden", "reused": True}  # the copy in the folder
    assert sorted(p.name for p in (repro / "golden").iterdir()) == sorted(p.name for p in golden.iterdir())


def test_a_copied_reproducer_after_cache_clear_writes_only_inside_itself(tmp_path, user_pass_dir):
    """The reproducer named the cache's golden set by absolute path: after 'cache clear' a copy of
    it recorded the set back at the old path, outside its folder and the current cache."""
    import os
    import shutil
    import sys

    cache = tmp_path / "cache"
    env = {**os.environ, "GRAPHKIT_CACHE": str(cache)}
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: t\nsource: {{builtin: demo}}\npass_dirs: ['{user_pass_dir}']\ngolden: {{batch_sizes: [1]}}\n"
        f"output: {{dir: '{tmp_path / 'run'}'}}\npasses: [break-relu]\n"
    )
    first = subprocess.run([sys.executable, "-m", "graphkit", "apply", str(path)], env=env, capture_output=True)
    assert first.returncode == 1 and any(cache.iterdir())  # the run's golden set is in the cache
    assert "golden:\n  dir: golden\n" in (tmp_path / "run" / "repro-01-break-relu" / "pipeline.yaml").read_text()
    shutil.rmtree(cache)  # as 'graphkit cache clear' does
    moved = tmp_path / "-moved"  # a folder name that reads like an option
    shutil.copytree(tmp_path / "run" / "repro-01-break-relu", moved / "repro")
    shutil.rmtree(tmp_path / "run")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "reproduce.sh").symlink_to(moved / "repro" / "reproduce.sh")
    (tmp_path / "links" / "pipeline.yaml").write_text("not: a pipeline graphkit should run\n")
    for argv in (["sh", "--", "-moved/repro/reproduce.sh"], ["sh", "links/reproduce.sh"]):
        again = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 1 and "failed validation" in again.stderr, again.stderr
        report = json.loads((moved / "repro" / "run" / "report.json").read_text())
        assert report["golden"]["dir"] == "golden" and report["golden"]["reused"] is True
        assert (moved / "repro" / "golden" / "manifest.json").is_file()
    assert not cache.exists()  # nothing written back into the cleared cache
    assert sorted(p.name for p in tmp_path.iterdir()) == ["-moved", "links", "p.yaml"]


# --- log levels on every command -----------------------------------------------------------------


def test_apply_logs_progress_by_default_nothing_with_q_and_debug_with_v(tmp_path, user_pass_dir, cli):
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: t\nsource: {{builtin: demo}}\npass_dirs: ['{user_pass_dir}']\n"
        f"golden: {{dir: '{tmp_path / 'golden'}', batch_sizes: [1]}}\noutput: {{dir: '{tmp_path / 'run'}'}}\n"
        "passes: [drop-identity]\n"
    )
    default = cli("apply", path, "--no-cache")
    assert default.returncode == 0, default.stderr
    assert "golden: recording case b1 with onnxruntime ..." in default.stderr
    assert "[1/1] drop-identity ..." in default.stderr and "debug:" not in default.stderr
    quiet = cli("-q", "apply", path, "--no-cache")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.startswith("graphkit apply: t - OK")  # the summary is output, not a log message
    verbose = cli("apply", path, "--no-cache", "--json", "--verbose")
    assert verbose.returncode == 0
    assert "[1/1] drop-identity ..." in verbose.stderr
    assert "debug: graphkit.runtime.ort: onnxruntime forward (case b1): batch 1" in verbose.stderr
    assert json.loads(verbose.stdout) == json.loads((tmp_path / "run" / "report.json").read_text())


def test_golden_make_and_validate_log_at_the_level_asked(tmp_path, cli):
    model = save_model(demo_model(), tmp_path / "m.onnx")
    made = cli("golden", "make", model, "-o", tmp_path / "g", "--batch-sizes", "1")
    assert made.returncode == 0, made.stderr
    assert "golden: recording case b1 with onnxruntime ..." in made.stderr and "debug:" not in made.stderr
    quiet = cli("golden", "make", model, "-o", tmp_path / "g2", "--batch-sizes", "1", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
    verbose = cli("-v", "golden", "make", model, "-o", tmp_path / "g3", "--batch-sizes", "1")
    assert "debug: graphkit.runtime.ort: onnxruntime forward" in verbose.stderr

    checked = cli("validate", model, "--golden", tmp_path / "g")
    assert checked.returncode == 0 and f"validating {model} on golden case(s) b1 ..." in checked.stderr
    quiet = cli("validate", model, "--golden", tmp_path / "g", "-q")
    assert quiet.returncode == 0 and quiet.stderr == "" and "PASSED" in quiet.stdout
    verbose = cli("validate", model, "--golden", tmp_path / "g", "-v", "--json")
    assert "debug: graphkit.runtime.ort: onnxruntime forward" in verbose.stderr
    assert json.loads(verbose.stdout)["passed"] is True  # stdout stays JSON


def test_verbose_and_quiet_together_is_one_line_and_every_help_documents_them(cli):
    both = cli("-v", "passes", "-q")
    assert both.returncode == 2
    assert both.stderr.strip() == "graphkit: error: -v/--verbose and -q/--quiet: give one of them, not both"
    for command in (["--help"], ["apply", "--help"], ["golden", "make", "--help"], ["diff", "--help"]):
        shown = cli(*command)
        assert shown.returncode == 0 and "-v, --verbose" in shown.stdout and "-q, --quiet" in shown.stdout


def test_the_reproducer_script_runs_any_interpreter_path_without_shell_expansion(tmp_path, monkeypatch):
    """The interpreter path is quoted for sh: spaces and ``$(...)`` in it are never expanded."""
    import os
    import shlex
    import subprocess
    import sys

    from graphkit.pipeline import reproducer

    odd = tmp_path / "a b $(touch pwned) `touch pwned2`"
    odd.mkdir()
    (odd / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')  # the venv's python
    (odd / "python").chmod(0o755)
    monkeypatch.setattr(reproducer.sys, "executable", str(odd / "python"))
    folder = tmp_path / "repro"
    folder.mkdir()
    (folder / "reproduce.sh").write_text(reproducer._script("drop-identity", 0))
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    result = subprocess.run(
        ["sh", str(folder / "reproduce.sh"), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: graphkit apply" in result.stdout
    assert not list(tmp_path.rglob("pwned*"))


def test_a_pass_package_with_a_link_loop_and_a_link_to_root_is_copied_as_links(tmp_path, crash_pipeline, cli):
    """The reproducer copies a user pass package with its links as links: never the file system."""
    package = tmp_path / "my passes" / "helpers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "loop").symlink_to(package, target_is_directory=True)
    (package / "root").symlink_to("/", target_is_directory=True)
    assert cli("apply", crash_pipeline).returncode == 1
    copied = next((tmp_path / "run").glob("repro-*-crashes")) / "passes" / "1" / "helpers"
    assert (copied / "__init__.py").is_file()
    assert (copied / "loop").is_symlink() and (copied / "root").is_symlink()
    assert str((copied / "root").readlink()) == "/"
