"""``python -m benchmarks.corpus``: export the corpus and run graphkit, onnxsim and onnxslim on each model (see docs/corpus.md)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from benchmarks.corpus.steps import PEERS
from benchmarks.corpus.table import write_tables
from benchmarks.models import ARCHS

ROOT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT = 900


def run_step(*args: str) -> dict:
    """Run one step in its own Python process; a non-zero exit or no JSON is recorded as a crash."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.corpus.steps", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=STEP_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return {"status": "crash", "reason": f"timed out after {STEP_TIMEOUT} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "crash", "reason": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def run_one(arch: str, opset: int, batch: str, work: Path) -> dict:
    """Export one model, then graphkit, onnxsim, onnxslim, the comparison and (static sources) the dynamic-batch probe."""
    record: dict = {"arch": arch, "family": ARCHS[arch].family, "opset": opset, "batch": batch}
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source.onnx"
    record["export"] = run_step("export", arch, str(opset), batch, str(source))
    if not record["export"].get("ok"):
        return record
    record["graphkit"] = run_step("graphkit", str(source), batch, str(work / "graphkit"))
    for peer in PEERS:
        record[peer] = run_step(peer, str(source), str(work / f"{peer}.onnx"))
    candidates = [r["model_path"] for r in (record["graphkit"], *(record[p] for p in PEERS)) if r.get("model_path")]
    if candidates:
        record["max_abs_vs_source"] = run_step("compare", str(source), batch, *candidates)
    if batch == "static":
        record["dynamic_batch_probe"] = run_step("probe", str(source), str(work))
    for side in ("graphkit", *PEERS):
        record[side].pop("model_path", None)
    return record


def _previous(path: Path) -> list[dict]:
    """The rows of an existing results file (none when it is missing or unreadable)."""
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [r for r in rows if isinstance(r, dict) and {"arch", "opset", "batch"} <= set(r)]


def _order(record: dict) -> tuple:
    names = list(ARCHS)
    arch = names.index(record["arch"]) if record["arch"] in names else len(names)
    return (arch, record["batch"] != "static", record["opset"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corpus", description=__doc__)
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated architectures (default: all)")
    parser.add_argument("--opsets", default="11,13,17", help="comma-separated opsets (default: 11,13,17)")
    parser.add_argument("--batch", default="static,dynamic", help="static, dynamic or both (default: both)")
    parser.add_argument("--out", default="docs/corpus-results.json", help="results JSON (default: %(default)s)")
    parser.add_argument("--table", default="docs/corpus.md", help="Markdown page whose table is rewritten ('' to skip)")
    parser.add_argument("--readme", default="README.md", help="README whose summary table is rewritten ('' to skip)")
    parser.add_argument("--fresh", action="store_true", help="start a new results file instead of updating its rows")
    parser.add_argument("--work", default=None, help="folder for the exported models (default: a temp folder)")
    args = parser.parse_args(argv)
    archs = [a for a in args.archs.split(",") if a]
    unknown = [a for a in archs if a not in ARCHS]
    if unknown or not archs:
        parser.error(f"unknown architecture(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(ARCHS)}")
    opsets = [o.strip() for o in args.opsets.split(",") if o.strip()]
    if not opsets or not all(o.isdigit() and 7 <= int(o) <= 21 for o in opsets):
        parser.error(f"--opsets: expected comma-separated opsets between 7 and 21, got {args.opsets!r}")
    batches = [b for b in args.batch.split(",") if b]
    if not batches or any(b not in ("static", "dynamic") for b in batches):
        parser.error(f"--batch: expected static, dynamic or both, got {args.batch!r}")
    jobs = [(a, int(o), b) for a in archs for o in opsets for b in batches]
    # a partial run updates its rows of an existing results file instead of replacing the file
    records = [] if args.fresh else _previous(Path(args.out))
    with tempfile.TemporaryDirectory(prefix="graphkit-corpus-") as tmp:
        work = Path(args.work or tmp)
        for arch, opset, batch in tqdm(jobs, desc="corpus", unit="model"):
            tqdm.write(f"{arch} opset {opset} {batch} ...", file=sys.stderr)
            records = [r for r in records if (r["arch"], r["opset"], r["batch"]) != (arch, opset, batch)]
            records.append(run_one(arch, opset, batch, work / f"{arch}-{opset}-{batch}"))
            records.sort(key=_order)
            write_tables(
                records,
                Path(args.out),
                Path(args.table) if args.table else None,
                Path(args.readme) if args.readme else None,
            )
    ran = [r for r in records if (r["arch"], r["opset"], r["batch"]) in set(jobs)]
    crashes = [r for r in ran if any(isinstance(v, dict) and v.get("status") == "crash" for v in r.values())]
    print(f"{len(ran)} models, {len(crashes)} crashes; results in {args.out} ({len(records)} rows)")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
