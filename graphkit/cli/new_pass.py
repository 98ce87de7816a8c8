"""``graphkit new-pass NAME [--dir D]``: write a rule-based pass file and its test from a template."""

from __future__ import annotations

from graphkit.transform.scaffold import write_pass_template
from graphkit.util.console import print_json

NAME = "new-pass"
EXAMPLES = """\
graphkit new-pass drop-double-relu --dir my_passes
pytest my_passes/tests
"""
EXIT_CODES = ""  # never 1
DESCRIPTION = (
    "Write a new rule-based pass file and its unit test (both pass as written).\n\nWrites D/<name>.py and D/tests/test_<name>.py. Then: 'pytest D/tests', "
    "'graphkit passes NAME --passes-dir D', and 'pass_dirs: [D]' in a pipeline."
)


def add_arguments(parser):
    parser.add_argument("name", help="the pass name, kebab-case (e.g. drop-double-relu)")
    parser.add_argument(
        "--dir", default=".", metavar="D", help="folder of pass files to write into (created if missing)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument("--json", action="store_true", help="print the written paths as JSON")


def run(args) -> int:
    pass_path, test_path = write_pass_template(args.name, args.dir, force=args.force)
    if args.json:
        print_json({"pass": str(pass_path), "test": str(test_path)})
        return 0
    print(f"wrote {pass_path}\nwrote {test_path}")
    print(f"next: pytest {test_path}; graphkit passes {args.name} --passes-dir {args.dir}")
    return 0
