"""The habits of onnxsim/onnxslim/Polygraphy users: help texts, one spelling, completion, a light start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from graphkit.cli.main import COMMANDS, build_full_parser


def _command_parsers():
    parser = build_full_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return dict(sub.choices)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_help_has_an_example_and_the_exit_codes(name):
    text = _command_parsers()[name].format_help()
    assert f"graphkit {name}" in text.split("Examples:")[1], text
    assert "Exit codes: 0 ok" in text and "2 bad input" in text and "130/143" in text


def test_top_level_help_and_version_import_no_command_module():
    code = (
        "import sys, contextlib, io\n"
        "from graphkit.cli.main import main\n"
        "for argv in (['--version'], ['--help']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(argv)\n"
        "heavy = sorted(m for m in ('onnx', 'numpy', 'onnxruntime', 'torch', 'tqdm', 'graphkit.cli.apply') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_no_command_is_one_error_line(cli):
    result = cli()
    assert result.returncode == 2
    assert "graphkit: error: no command given (choose from passes, apply" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_table_lists_every_command_module():
    import pkgutil

    import graphkit.cli

    modules = {m.name for m in pkgutil.iter_modules(graphkit.cli.__path__)}
    helpers = {"main", "dim_options", "executor_options"}
    assert {name.replace("-", "_") for name in COMMANDS} == modules - helpers


def test_localize_old_dims_spelling_is_an_alias_of_dim():
    parser = _command_parsers()["localize"]
    new = parser.parse_args(["a.onnx", "b.onnx", "--dim", "batch=1", "--dim", "h=4,w=4"])
    old = parser.parse_args(["a.onnx", "b.onnx", "--dims", "batch=1", "--dims", "h=4,w=4"])
    assert new.dim == old.dim == ["batch=1", "h=4,w=4"]


def _completion(cli, shell):
    result = cli("completion", shell)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bash_completion_completes_commands_and_flags(cli, tmp_path):
    script = tmp_path / "graphkit.bash"
    script.write_text(_completion(cli, "bash"))

    def complete(*words):
        line = " ".join(words)
        program = (
            f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
            f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _shtab_graphkit graphkit '{words[-1]}' '{words[-2]}'; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        return subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True).stdout.split()

    assert "inspect" in complete("graphkit", "ins")
    assert complete("graphkit", "apply", "--pre") == ["--preset"]
    assert "--dim" in complete("graphkit", "localize", "--di")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_parse_in_their_shell(cli, tmp_path, shell):
    text = _completion(cli, shell)
    assert "inspect" in text and "--preset" in text
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here (apt-get install {shell}); the script was generated but not parsed")
    script = tmp_path / f"graphkit.{shell}"
    script.write_text(text)
    result = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, env={**os.environ})
    assert result.returncode == 0, result.stderr


def test_unknown_shell_is_exit_2(cli):
    result = cli("completion", "powershell")
    assert result.returncode == 2 and "invalid choice" in result.stderr
