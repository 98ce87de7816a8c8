"""``python -m graphkit`` runs the CLI."""

import sys

from graphkit.cli import main

sys.exit(main())
