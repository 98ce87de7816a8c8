"""Validation at onnxruntime optimization levels none vs all on the wseg export, and a run's forwards.

1. Exports the wseg model (seeded weights) at 512x512 by default (``--size 1024`` for the
   full size of ``make run``; each forward then takes about 35-45 s on 2 cores), records a
   batch-1 golden case, and times ``validate_against_golden`` of the export at each level
   (min of ``--repeat`` runs, session creation included). The baseline is ``none`` (the old
   strict default), measured in the same run, interleaved. Reports the time ratio none/all and
   the max abs difference between the outputs of the two levels.
2. With ``--report runs/wseg_310p/report.json`` (a ``make run`` report), adds that run's stage
   times, forward count, batch-1 equivalents, cache hits and peak RSS.

Prints JSON. Figures in the README come from this script (date and machine there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="input height and width (default 512; 1024 = make run)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per level, min taken (default 2)")
    parser.add_argument("--report", metavar="REPORT_JSON", help="a make-run report.json to summarize as well")
    args = parser.parse_args()

    import torch

    from graphkit.check.golden import make_or_load_golden
    from graphkit.check.golden_validation import validate_against_golden
    from graphkit.runtime.ort import ValidationRuntime, create_session, run_session
    from graphkit.testing import export_legacy
    from graphkit.wseg.network import WsegModel

    torch.manual_seed(0)
    model = export_legacy(
        WsegModel().eval(), (torch.randn(1, 3, args.size, args.size),), ["image"], ["cls", "mask"], batch_dim="batch"
    )
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": os.getloadavg(),
        "size": args.size,
    }
    with tempfile.TemporaryDirectory() as tmp:
        golden, _ = make_or_load_golden(
            model, Path(tmp) / "g", batch_sizes=[1], runtime=ValidationRuntime("none"), regenerate=True
        )
        times: dict[str, list[float]] = {"none": [], "all": []}
        for _ in range(args.repeat):
            for level in ("none", "all"):  # interleaved, so load changes hit both
                start = time.perf_counter()
                check = validate_against_golden(model, golden, runtime=ValidationRuntime(level))
                times[level].append(time.perf_counter() - start)
                assert check.passed, check.first_failure()
        feeds = golden.cases[0].inputs
        outputs = {level: run_session(create_session(model, optimization=level), feeds) for level in ("none", "all")}
    result["validation_seconds"] = {level: round(min(v), 2) for level, v in times.items()}
    result["time_ratio_none_over_all"] = round(min(times["none"]) / min(times["all"]), 3)
    result["max_abs_all_vs_none"] = {
        name: float(np.max(np.abs(outputs["all"][name] - outputs["none"][name]))) for name in outputs["none"]
    }
    if args.report:
        report = json.loads(Path(args.report).read_text())
        forwards = report.get("forwards", [])
        result["make_run"] = {
            "stages": report.get("stages"),
            "forwards": len([f for f in forwards if f.get("backend") == "onnxruntime"]),
            "b1_equivalents": sum(f["batch"] for f in forwards if f.get("backend") == "onnxruntime"),
            "torch_forwards": len([f for f in forwards if f.get("backend") == "torch"]),
            "forward_list": [(f["purpose"], f["case"], f["seconds"]) for f in forwards],
            "cache_hits": len((report.get("cache") or {}).get("hits", [])),
            "peak_rss_gib": round(report.get("peak_rss_mb", 0) / 1024, 2),
        }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
