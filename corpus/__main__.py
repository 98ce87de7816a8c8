"""``python -m corpus``: export the corpus and run graphkit and onnxsim on each model (see docs/corpus.md)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from corpus.models import ARCHS
from corpus.table import write_tables

ROOT = Path(__file__).resolve().parent.parent
STEP_TIMEOUT = 900


def run_step(*args: str) -> dict:
    """Run one step in its own Python process; a non-zero exit or no JSON is recorded as a crash."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "corpus.steps", *args],
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
    """Export one model, then graphkit, onnxsim, the comparison and (static sources) the dynamic-batch probe."""
    record: dict = {"arch": arch, "family": ARCHS[arch].family, "opset": opset, "batch": batch}
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source.onnx"
    record["export"] = run_step("export", arch, str(opset), batch, str(source))
    if not record["export"].get("ok"):
        return record
    record["graphkit"] = run_step("graphkit", str(source), batch, str(work / "graphkit"))
    record["onnxsim"] = run_step("onnxsim", str(source), str(work / "onnxsim.onnx"))
    candidates = [r["model_path"] for r in (record["graphkit"], record["onnxsim"]) if r.get("model_path")]
    if candidates:
        record["max_abs_vs_source"] = run_step("compare", str(source), batch, *candidates)
    if batch == "static":
        record["dynamic_batch_probe"] = run_step("probe", str(source), str(work))
    for side in ("graphkit", "onnxsim"):
        record[side].pop("model_path", None)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corpus", description=__doc__)
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated architectures (default: all)")
    parser.add_argument("--opsets", default="11,13,17", help="comma-separated opsets (default: 11,13,17)")
    parser.add_argument("--batch", default="static,dynamic", help="static, dynamic or both (default: both)")
    parser.add_argument("--out", default="docs/corpus-results.json", help="results JSON (default: %(default)s)")
    parser.add_argument("--table", default="docs/corpus.md", help="Markdown page whose table is rewritten ('' to skip)")
    parser.add_argument("--readme", default="README.md", help="README whose summary table is rewritten ('' to skip)")
    parser.add_argument("--work", default=None, help="folder for the exported models (default: a temp folder)")
    args = parser.parse_args(argv)
    archs = [a for a in args.archs.split(",") if a]
    unknown = [a for a in archs if a not in ARCHS]
    if unknown:
        parser.error(f"unknown architecture(s) {', '.join(unknown)}; known: {', '.join(ARCHS)}")
    jobs = [(a, int(o), b) for a in archs for o in args.opsets.split(",") for b in args.batch.split(",")]
    records = []
    with tempfile.TemporaryDirectory(prefix="graphkit-corpus-") as tmp:
        work = Path(args.work or tmp)
        for arch, opset, batch in tqdm(jobs, desc="corpus", unit="model"):
            tqdm.write(f"{arch} opset {opset} {batch} ...", file=sys.stderr)
            records.append(run_one(arch, opset, batch, work / f"{arch}-{opset}-{batch}"))
            write_tables(
                records,
                Path(args.out),
                Path(args.table) if args.table else None,
                Path(args.readme) if args.readme else None,
            )
    crashes = [r for r in records if any(isinstance(v, dict) and v.get("status") == "crash" for v in r.values())]
    print(f"{len(records)} models, {len(crashes)} crashes; results in {args.out}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
