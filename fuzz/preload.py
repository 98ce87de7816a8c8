"""Imported once by the fork server, so that each forked attempt starts with graphkit loaded.

Only imports happen here: no session, thread pool or file is created before the fork.
"""

import contextlib
import importlib

import graphkit.cli.main

for _name in graphkit.cli.main.COMMAND_MODULES:
    # a command whose optional dependency is missing imports it at run time
    with contextlib.suppress(ImportError):
        importlib.import_module(f"graphkit.cli.{_name}")
with contextlib.suppress(ImportError):
    import torch  # noqa: F401  (export and the reference model; optional)
