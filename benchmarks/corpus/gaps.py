"""``python -m benchmarks.corpus.gaps [RESULTS.json]``: per corpus run, the op types graphkit leaves more of than each peer.

Reads a results file of ``python -m benchmarks.corpus`` (its ``ops`` counts per tool) and prints
one JSON line per run where graphkit leaves more nodes or Shape ops than onnxslim or onnxsim, with
the op types it leaves more of (``more``) and fewer of (``fewer``) than that peer: the rewrites
a peer made that graphkit did not are among ``more``. Exit 1 when any run misses the target.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from benchmarks.corpus.steps import PEERS


def gaps(records: list[dict]) -> list[dict]:
    """The runs where graphkit leaves more nodes or Shape ops than a peer, with the op-type differences."""
    found = []
    for record in records:
        ours = record.get("graphkit") or {}
        if "nodes" not in ours:
            continue
        for peer in PEERS:
            theirs = record.get(peer) or {}
            if "nodes" not in theirs:
                continue
            if ours["nodes"] <= theirs["nodes"] and ours["shape_ops"] <= theirs["shape_ops"]:
                continue
            mine, other = Counter(ours.get("ops", {})), Counter(theirs.get("ops", {}))
            found.append(
                {
                    "run": f"{record['arch']}@{record['opset']} {record['batch']}",
                    "peer": peer,
                    "nodes": [ours["nodes"], theirs["nodes"]],
                    "shape_ops": [ours["shape_ops"], theirs["shape_ops"]],
                    "more": dict(mine - other),
                    "fewer": dict(other - mine),
                }
            )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corpus.gaps", description=__doc__)
    parser.add_argument(
        "results", nargs="?", default="docs/corpus-results.json", help="results JSON (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        records = json.loads(Path(args.results).read_text())
    except (OSError, ValueError) as exc:
        print(f"gaps: error: {args.results}: {exc}", file=sys.stderr)
        return 2
    found = gaps(records)
    for item in found:
        print(json.dumps(item))
    print(f"{len(found)} gaps in {len(records)} runs", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
