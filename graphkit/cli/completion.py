"""``graphkit completion SHELL``: a completion script for bash, zsh or fish, generated from the parser."""

from __future__ import annotations

import argparse

NAME = "completion"
DESCRIPTION = """Print a shell completion script generated from graphkit's own argument parser (shtab),
so every command, flag and choice completes. Install it once:

  bash:  graphkit completion bash > ~/.local/share/bash-completion/completions/graphkit
  zsh:   graphkit completion zsh > "${fpath[1]}/_graphkit"
  fish:  graphkit completion fish > ~/.config/fish/completions/graphkit.fish

Open a new shell afterwards. Model and file arguments complete file names."""
EXAMPLES = """\
graphkit completion bash > ~/.local/share/bash-completion/completions/graphkit
"""
EXIT_CODES = ""  # never 1

SHELLS = ("bash", "zsh", "fish")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def run(args: argparse.Namespace) -> int:
    print(completion_script(args.shell), end="")
    return 0


def completion_script(shell: str) -> str:
    """The completion script for ``shell`` ("bash", "zsh" or "fish"), covering every command's flags."""
    from graphkit.cli.main import build_full_parser

    if shell == "fish":
        return _fish_script(build_full_parser())
    import shtab

    return shtab.complete(build_full_parser(), shell=shell)


def _fish_script(parser: argparse.ArgumentParser) -> str:
    """fish completions (shtab writes bash, zsh and tcsh): commands, then each command's long flags."""
    commands = _subcommands(parser)
    lines = ["# graphkit completion for fish (graphkit completion fish)", "complete -c graphkit -f"]
    names = " ".join(commands)
    for name, sub in commands.items():
        lines.append(
            f"complete -c graphkit -n 'not __fish_seen_subcommand_from {names}' -a {name} -d {_quote(sub.description or '')}"
        )
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--"):
                    lines.append(
                        f"complete -c graphkit -n '__fish_seen_subcommand_from {name}' -l {option[2:]}"
                        f" -d {_quote(action.help or '')}"
                    )
    return "\n".join(lines) + "\n"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _quote(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return "'" + first[:80].replace("\\", "\\\\").replace("'", "\\'") + "'"
