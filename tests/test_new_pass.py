"""``graphkit new-pass``: the generated pass and test pass as written; bad requests are one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from graphkit.testing import run_cli


def test_generated_pass_and_test_pass_as_written(tmp_path):
    folder = tmp_path / "my passes"
    made = run_cli("new-pass", "drop-double-relu", "--dir", folder, "--json")
    assert made.returncode == 0, made.stderr
    paths = json.loads(made.stdout)
    assert paths == {
        "pass": str(folder / "drop_double_relu.py"),
        "test": str(folder / "tests" / "test_drop_double_relu.py"),
    }
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", paths["test"]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout
    shown = run_cli("passes", "drop-double-relu", "--passes-dir", folder, "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["exact"] is True and info["file"] == paths["pass"]
    assert info["summary"] == "Drop double relu: replace Relu(Relu(x)) by Relu(x) (exact)."
    text = (folder / "drop_double_relu.py").read_text()
    assert "passes:\n      - drop-double-relu\n" in text  # the pipeline example names this pass
    assert 'name="drop-double-relu"' in text and "def drop_double_relu():" in text


def test_refusals_are_one_line_errors_and_write_nothing(tmp_path):
    folder = tmp_path / "p"
    assert run_cli("new-pass", "drop-double-relu", "--dir", folder).returncode == 0
    before = (folder / "drop_double_relu.py").read_text()
    (folder / "drop_double_relu.py").write_text(before + "# edited\n")
    again = run_cli("new-pass", "drop-double-relu", "--dir", folder)
    assert again.returncode == 2 and again.stderr.startswith("graphkit: error: ") and "already exists" in again.stderr
    assert (folder / "drop_double_relu.py").read_text().endswith("# edited\n")  # not overwritten
    forced = run_cli("new-pass", "drop-double-relu", "--dir", folder, "--force")
    assert forced.returncode == 0 and (folder / "drop_double_relu.py").read_text() == before
    for name, message in [
        ("../evil", "not kebab-case"),
        ("Bad_Name", "not kebab-case"),
        ("eliminate-noops", "already registered"),
        ("abc\n", "not kebab-case"),  # '$' in a regex matches before a trailing newline
        ("boom\r", "not kebab-case"),
        ("class", "Python keyword"),  # would write 'def class():'
        ("not-a-keyword-but-" + "x" * 300, "longer than 64 characters"),
    ]:
        result = run_cli("new-pass", name, "--dir", tmp_path / "q")
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "q").exists()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = run_cli("new-pass", "ok-name", "--dir", a_file)
    assert result.returncode == 2 and "not a directory" in result.stderr


def test_a_pass_registered_with_a_trailing_newline_is_refused_at_load(tmp_path):
    """'boom\\n' passed a '$'-anchored check: the failure line broke and the reproducer folder was 'repro-01-boom\\n'."""
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "boom.py").write_text(
        "from graphkit.transform.pass_base import Pass, PassResult\n"
        "from graphkit.transform.registry import register\n"
        "@register('boom\\n')\n"
        "class Boom(Pass):\n"
        "    exact = True\n"
        "    def run(self, model):\n"
        "        return PassResult(model, changed=False)\n"
    )
    result = run_cli("passes", "--passes-dir", folder)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("graphkit: error: ") and len(result.stderr.splitlines()) == 1
    assert "'boom\\n' is not kebab-case" in result.stderr
