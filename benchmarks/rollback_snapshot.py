"""What exact rollback costs the pass manager per pass on a large model.

Builds a stand-in model of about 520 MB in memory (a MatMul chain with 4 MiB weights) and times,
in the same process, min of ``--repeat``:

- baseline: calling a pass that changes nothing directly (no manager);
- manager, large-model path (the default above 64 MiB of weights; forced here): the pass gets the model
  itself, the skeleton is kept aside, the content hash is checked after the pass;
- manager, copy path (``copy_limit_bytes`` above the model's size): the pass gets a full copy.

Prints JSON: seconds per pass for each, and the overhead of each manager path over the baseline.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import onnx
from core_overhead import build_stand_in  # beside this script (python benchmarks/rollback_snapshot.py)

from graphkit.transform.manager import PassManager
from graphkit.transform.pass_base import Pass


class Declines(Pass):
    name = "declines"

    def run(self, model):
        return self.decline_all(model, "benchmark: changes nothing")


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=130, help="MatMul layers (4 MiB each at width 1024)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_stand_in(Path(tmp) / "big.onnx", args.layers, args.width)
        model = onnx.load(str(Path(tmp) / "big.onnx"))
    size_mb = sum(t.ByteSize() for t in model.graph.initializer) / 2**20
    baseline = best_of(args.repeat, lambda: Declines()(model))
    large = best_of(args.repeat, lambda: PassManager([Declines()], copy_limit_bytes=0).run(model))
    copied = best_of(args.repeat, lambda: PassManager([Declines()], copy_limit_bytes=2**62).run(model))
    print(
        json.dumps(
            {
                "benchmark": "rollback_snapshot",
                "weights_mb": round(size_mb, 1),
                "baseline_pass_call_s": round(baseline, 3),
                "manager_large_model_path_s": round(large, 3),
                "manager_copy_path_s": round(copied, 3),
                "overhead_large_model_path_s": round(large - baseline, 3),
                "overhead_copy_path_s": round(copied - baseline, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
