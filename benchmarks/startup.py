"""Start-up time of the CLI: ``graphkit --version``, ``--help`` and ``COMMAND --help``, against
``python -c pass`` (the interpreter alone) and ``polygraphy --version`` when installed, measured in
the same run (issue 25: --version and --help under 0.5 s).

Each command runs ``--rounds`` times in a fresh process (min and median wall time reported), in
alternating order. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    graphkit = str(BIN / "graphkit")
    commands = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "graphkit --version": [graphkit, "--version"],
        "graphkit --help": [graphkit, "--help"],
        "graphkit diff --help": [graphkit, "diff", "--help"],
        "graphkit apply --help": [graphkit, "apply", "--help"],
    }
    polygraphy = shutil.which("polygraphy") or (str(BIN / "polygraphy") if (BIN / "polygraphy").exists() else None)
    if polygraphy:
        commands["polygraphy --version"] = [polygraphy, "--version"]
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(args.rounds):
        order = list(commands) if round_ % 2 == 0 else list(reversed(commands))
        for name in order:
            times[name].append(timed(commands[name]))
    base = min(times["python -c pass (baseline)"])
    print(
        json.dumps(
            {
                "rounds": args.rounds,
                "seconds": {
                    name: {"min": round(min(t), 3), "median": round(statistics.median(t), 3)}
                    for name, t in times.items()
                },
                "ratio_to_baseline_min": {name: round(min(t) / base, 2) for name, t in times.items()},
                "target": "graphkit --version and --help under 0.5 s",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
