"""Eval scaling: the local executor vs Ray with 1 and 2 local workers, and a projection to N nodes.

All configurations run ``run_eval`` on the same synthetic VOC set (8 views per image, as wseg's
test procedure) with the tiny wseg variant (seeded random weights), each in a fresh child
process so peak RSS and Ray start-up are measured cleanly, at two sizes (``--images`` and
``--factor`` times that), interleaved over ``--repeats`` rounds (this machine's CPUs are shared; the fastest run
of each configuration and size is kept):

- ``local``: today's executor (inference in the main process, CRF/metrics/files in a pool of
  as many processes as cores);
- ``ray_1``: one Ray worker holding all the cores (``num_cpus_per_worker`` = cores);
- ``ray_2``: two Ray workers of half the cores each.

Ray starts locally in each run (``ray.init``), so ``ray_startup_seconds`` is the full cost a
user pays: start Ray, ship the model, start the workers and open their sessions. The
steady-state rate of a configuration is the marginal one, ``(I2 - I1) / (T2 - T1)``: every
fixed cost (Ray, process pool, sessions) cancels, for the local executor too, and what is left
is what a 1449-image run pays per image. ``fixed_seconds`` = ``T1 - I1 / rate``.
``overhead_vs_local`` compares those rates (and, separately, whole runs at the larger size).
The projection uses the measured per-image worker cost ``c`` (busy seconds per image) and
driver cost ``d`` (read + write per image):

    images/s(N nodes, k workers per node) = min(N * k / c, 1 / d)
    seconds(I images) = startup + I / images/s

Usage: ``python -m benchmarks.eval_scaling [--images 6] [--factor 5] [--pad 384] [--repeats 2]`` (images up to
half the pad a side, so every view fits; about 1 s of work per image here, most of it the CRF)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL_WSEG_SECONDS_PER_IMAGE = (
    8 * 34.8 + 1.2
)  # measured: 8 views x 34.8 s per 1024 forward (2 cores, ORT level all) + 1.2 s CRF


def child(args) -> None:
    """One configuration in this process; prints its JSON line."""
    from graphkit.wseg.eval.runner import run_eval
    from graphkit.wseg.eval.spec import eval_spec_from_mapping

    cores = len(os.sched_getaffinity(0)) or 1
    mapping = {"data_root": args.root, "pad_size": [args.pad, args.pad], "resume": False, "overlays": 0}
    mapping["limit"] = args.images
    if args.config == "local":
        mapping |= {"executor": "local"}
    else:
        workers = int(args.config.split("_")[1])
        mapping |= {"executor": "ray", "ray": {"workers": workers, "num_cpus_per_worker": cores / workers}}
    started = time.perf_counter()
    summary = run_eval(eval_spec_from_mapping(mapping), args.model, args.out, progress=False)
    seconds = time.perf_counter() - started
    executor = summary["executor"]
    startup = executor.get("startup_seconds", 0.0)
    row = {
        "config": args.config,
        "images": summary["images"]["computed_this_run"],
        "seconds": round(seconds, 3),
        "images_per_second": round(summary["images"]["computed_this_run"] / seconds, 4),
        "ray_startup_seconds": startup if args.config != "local" else None,
        "images_per_second_steady": round(summary["images"]["computed_this_run"] / (seconds - startup), 4),
        "driver_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "miou_crf": summary["miou_21_with_background_crf"],
        "in_run_seconds": executor.get("run_seconds"),
    }
    if args.config == "local":
        row["pool_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
        row["workers"] = executor["workers"]
    else:
        row["workers"] = executor["workers"]
        row["per_worker"] = [
            {k: w[k] for k in ("images", "busy_seconds", "images_per_second", "peak_rss_mib")}
            for w in executor["per_worker"]
        ]
        row["worker_seconds_per_image"] = round(
            sum(w["busy_seconds"] for w in executor["per_worker"]) / max(1, row["images"]), 4
        )
        row["driver_seconds_per_image"] = executor["driver_seconds_per_image"]
    print(json.dumps(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6, help="the smaller size")
    parser.add_argument("--factor", type=int, default=5, help="the larger size is this times --images")
    parser.add_argument("--pad", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from benchmarks.eval_throughput import synthetic_voc, tiny_model

    configs = ["local", "ray_1", "ray_2"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = synthetic_voc(
            tmp / "voc", args.factor * args.images, args.pad // 2
        )  # every view fits the pad at scale 2
        model = tmp / "model.onnx"
        kind, _ = tiny_model(model, args.pad)
        sizes = (args.images, args.factor * args.images)
        runs: dict[str, list[dict]] = {c: [] for c in configs}
        for round_ in range(args.repeats):
            for size in sizes:
                for config in configs:  # interleaved, so load changes hit every configuration
                    cmd = [sys.executable, __file__, "--child", "--config", config, "--root", str(root)]
                    cmd += ["--model", str(model), "--out", str(tmp / f"out_{config}_{round_}_{size}")]
                    cmd += ["--pad", str(args.pad), "--images", str(size)]
                    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        raise SystemExit(f"{config} failed:\n{done.stderr[-2000:]}")
                    runs[config].append(json.loads(done.stdout.strip().splitlines()[-1]))
    best = {}
    for config, rows in runs.items():
        small, large = (min((r for r in rows if r["images"] == n), key=lambda r: r["seconds"]) for n in sizes)
        if large["seconds"] <= small["seconds"]:
            raise SystemExit(f"{config}: the larger run was not slower (load noise); use more --images or --pad")
        rate = (large["images"] - small["images"]) / (large["seconds"] - small["seconds"])
        best[config] = {
            "steady_images_per_second": round(rate, 4),
            "in_run_images_per_second": round(large["images"] / large["in_run_seconds"], 4),
            "fixed_seconds": round(small["seconds"] - small["images"] / rate, 3),
            "small": small,
            "large": large,
        }
    local, ray2 = best["local"], best["ray_2"]
    c = ray2["large"]["worker_seconds_per_image"]  # one worker's busy seconds per image (half the cores)
    d = ray2["large"]["driver_seconds_per_image"] or 0.0
    cores = len(os.sched_getaffinity(0)) or 1

    def projected(nodes: int, per_image: float) -> dict:
        rate = min(nodes * 2 / per_image, 1 / d if d > 0 else float("inf"))
        return {
            "nodes": nodes,
            "images_per_second": round(rate, 4),
            "hours_for_voc_val_1449": round((ray2["large"]["ray_startup_seconds"] + 1449 / rate) / 3600, 3),
        }

    full = FULL_WSEG_SECONDS_PER_IMAGE * 2  # a worker with 1 of the 2 cores of the measured node
    report = {
        "machine": {
            "cores": cores,
            "note": "CPU shared with other work while measuring; the fastest run per configuration and size is kept",
        },
        "data": {"images": list(sizes), "views_per_image": 8, "pad": args.pad, "model": kind},
        "rounds": args.repeats,
        "best": best,
        "overhead_vs_local": {
            "steady_state": round(local["steady_images_per_second"] / ray2["steady_images_per_second"] - 1, 4),
            "whole_run_at_the_larger_size": round(
                local["large"]["images_per_second"] / ray2["large"]["images_per_second"] - 1, 4
            ),
            "ray_1_steady_state": round(
                local["steady_images_per_second"] / best["ray_1"]["steady_images_per_second"] - 1, 4
            ),
            "in_run": round(local["in_run_images_per_second"] / ray2["in_run_images_per_second"] - 1, 4),
            "in_run_note": "images / the executor's own run window at the larger size: first image to last "
            "(local: after its session opened, pool start included; Ray: after the workers hold sessions)",
            "ray_startup_over_local_fixed_seconds": round(ray2["fixed_seconds"] - local["fixed_seconds"], 3),
            "target": "< 0.15 for 2 Ray workers vs the local executor, same machine, same run: in_run is the "
            "steady-state figure; steady_state (marginal between the two sizes) is noisy when the CPUs are shared",
        },
        "same_numbers_per_size": all(
            len({r["miou_crf"] for rows in runs.values() for r in rows if r["images"] == n}) == 1 for n in sizes
        ),
        "projection": {
            "formula": "images/s(N) = min(N * k / c, 1 / d); seconds(I) = startup + I / images/s(N)",
            "k_workers_per_node": 2,
            "c_worker_seconds_per_image_measured": c,
            "d_driver_seconds_per_image_measured": d,
            "startup_seconds_measured": ray2["large"]["ray_startup_seconds"],
            "tiny_model": [projected(n, c) for n in (1, 2, 4, 8, 16, 64)],
            "full_wseg_1024_c": round(full, 1),
            "full_wseg_1024": [projected(n, full) for n in (1, 2, 4, 8, 16, 64)],
            "full_wseg_note": "c measured earlier on a 2-core node, not in this run: 8 views x 34.8 s per 1024 forward on a "
            "2-core node + 1.2 s CRF, doubled for a worker holding 1 of the 2 cores; d as measured (it caps "
            "the rate only past 1/d images/s)",
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
