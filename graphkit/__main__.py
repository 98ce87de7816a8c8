"""``python -m graphkit`` runs the CLI."""

import sys

from graphkit.cli.main import console_main

sys.exit(console_main())
