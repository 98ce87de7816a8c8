"""Saving mapped weights: through the page cache (the old way) against direct I/O (graphkit's save).

Copies the weights of an external-data model to a fresh data file, in alternating rounds:

- ``page-cache``: the kernel copies file to file (``os.copy_file_range``), as graphkit's save did
  before ``graphkit.ir.weight_file`` (the baseline);
- ``direct``: :class:`graphkit.ir.weight_file.WeightFileWriter` with direct I/O, as ``save_model``
  now does for 256 MiB or more of mapped weights.

Each copy is timed in this process (wall, user and system CPU from ``getrusage``); the output is
deleted after each round. Prints one JSON object with per-round figures and the medians' ratios::

    python -m benchmarks.save_paths --model m25.onnx [--rounds 3] [--dir DIR]

(``python -m benchmarks.large_models --keep`` builds the issue 24 model.) The output folder must
be on the file system being measured; by default it is beside the model.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from graphkit.ir import weight_file
from graphkit.ir.external_data import is_mapped, mapped_source
from graphkit.ir.model_io import load_model
from graphkit.ir.weight_file import WeightFileWriter


def _usage() -> tuple[float, float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), usage.ru_utime, usage.ru_stime


def _page_cache(weights, out: Path) -> None:
    with open(out, "wb") as target:
        for tensor in weights:
            path, offset, length = mapped_source(tensor)
            with open(path, "rb") as source:
                while length:
                    copied = os.copy_file_range(source.fileno(), target.fileno(), length, offset)
                    offset, length = offset + copied, length - copied


def _direct(weights, out: Path) -> None:
    with WeightFileWriter(out, mapped_bytes=weight_file.DIRECT_MIN_BYTES) as writer:
        for tensor in weights:
            writer.append(tensor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the copies go (default: beside the model)")
    args = parser.parse_args()
    model = load_model(args.model, mapped=True)
    weights = [t for t in model.graph.initializer if is_mapped(t)]
    folder = Path(tempfile.mkdtemp(prefix="save_paths.", dir=args.dir or args.model.parent))
    ways = {"page-cache": _page_cache, "direct": _direct}
    runs: dict[str, list[dict]] = {name: [] for name in ways}
    try:
        for round_index in range(args.rounds):
            order = list(ways) if round_index % 2 == 0 else list(reversed(ways))
            for name in order:
                out = folder / "copy.data"
                start = _usage()
                ways[name](weights, out)
                end = _usage()
                size = out.stat().st_size
                out.unlink()
                runs[name].append(
                    {
                        "wall_s": round(end[0] - start[0], 3),
                        "user_s": round(end[1] - start[1], 3),
                        "system_s": round(end[2] - start[2], 3),
                        "bytes": size,
                    }
                )
    finally:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
    medians = {
        name: {key: statistics.median(r[key] for r in rows) for key in ("wall_s", "system_s")}
        for name, rows in runs.items()
    }
    base = medians["page-cache"]
    print(
        json.dumps(
            {
                "date": str(date.today()),
                "load": os.getloadavg(),
                "model": str(args.model),
                "weights_bytes": sum(mapped_source(t)[2] for t in weights),
                "runs": runs,
                "medians": medians,
                "direct_over_page_cache": {
                    key: round(medians["direct"][key] / base[key], 3) if base[key] else None for key in base
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
