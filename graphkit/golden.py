"""Golden sets: seeded inputs and recorded outputs, with a manifest that says what they are.

Layout of a golden directory::

    manifest.json        model hash, producer, seed, input spec, cases, tolerances
    b1.inputs.npz        inputs of the case with batch 1 (one array per graph input)
    b1.outputs.npz       expected outputs of that case
    b2.inputs.npz ...

A golden set is reused only when its manifest matches the request (model hash, producer,
seed, input spec, batch sizes); a mismatch is an error, never a silent regeneration.
Dynamic batch is covered by one case per batch size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from graphkit.errors import GoldenError, GraphkitError
from graphkit.files import atomic_path, make_folder, write_text_atomic
from graphkit.model import content_hash
from graphkit.runtime.feeds import graph_inputs, np_dtype, resolve_shape
from graphkit.runtime.ort import create_session, run_session
from graphkit.typed import from_mapping, to_mapping
from graphkit.validate import Comparison, Tolerances, compare_outputs

FORMAT = "graphkit-golden/1"
Producer = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


@dataclass
class InputSpec:
    """How one graph input is generated: declared dims (symbolic names kept) and distribution."""

    shape: list[int | str]
    dtype: str
    distribution: str = "normal"


@dataclass
class GoldenCase:
    """One set of inputs and expected outputs (one batch size)."""

    label: str
    dims: dict[str, int]
    inputs: dict[str, np.ndarray] = field(repr=False)
    outputs: dict[str, np.ndarray] = field(repr=False)


@dataclass
class GoldenSet:
    """A loaded golden set."""

    directory: Path
    manifest: dict
    cases: list[GoldenCase]

    @property
    def tolerances(self) -> Tolerances:
        return from_mapping(
            Tolerances, self.manifest.get("tolerances", {}), f"{self.directory}/manifest.json tolerances"
        )


def input_specs(model: onnx.ModelProto) -> dict[str, InputSpec]:
    """The declared input spec of a model (dims as ints or symbolic names)."""
    specs = {}
    for value in graph_inputs(model):
        dims = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or f"{value.name}:{axis}")
            for axis, d in enumerate(value.type.tensor_type.shape.dim)
        ]
        specs[value.name] = InputSpec(shape=dims, dtype=np_dtype(value).name)
    return specs


def make_inputs(model: onnx.ModelProto, dims: Mapping[str, int], seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs for one case; floats ~ N(0, 1), integers in [0, 4)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in graph_inputs(model):
        shape = resolve_shape(value, dims)
        dtype = np_dtype(value)
        if dtype.kind == "f":
            feeds[value.name] = rng.standard_normal(shape, dtype=np.float32).astype(dtype)
        elif dtype.kind in "iub":
            feeds[value.name] = rng.integers(0, 4, size=shape).astype(dtype)
        else:
            raise GoldenError(f"input '{value.name}': cannot generate golden data of type {dtype}")
    return feeds


def onnxruntime_producer(model: onnx.ModelProto, threads: int | None = None) -> Producer:
    """A producer that runs ``model`` with onnxruntime (CPU, optimizations off)."""
    session = create_session(model, threads=threads)
    return lambda feeds: run_session(session, feeds)


def make_or_load_golden(
    model: onnx.ModelProto,
    directory: str | os.PathLike,
    *,
    batch_sizes: list[int],
    seed: int = 0,
    dims: Mapping[str, int] | None = None,
    producer: Producer | None = None,
    producer_name: str = "onnxruntime",
    tolerances: Tolerances | None = None,
    regenerate: bool = False,
    model_hash: str | None = None,
    on_case: Callable[[str], None] | None = None,
) -> tuple[GoldenSet, bool]:
    """Load the golden set in ``directory`` if its manifest matches, else make it.

    Returns ``(golden, reused)``. Raises GoldenError when a different golden set is already
    there and ``regenerate`` is false. ``producer`` defaults to onnxruntime on ``model``.
    """
    directory = Path(directory)
    model_hash = model_hash or content_hash(model)
    request = {
        "format": FORMAT,
        "model_hash": model_hash,
        "producer": producer_name,
        "seed": seed,
        "inputs": to_mapping(input_specs(model)),
        "batch_sizes": list(batch_sizes),
        "dims": dict(dims or {}),
    }
    manifest_path = directory / "manifest.json"
    if manifest_path.exists() and not regenerate:
        existing = load_golden(directory)
        mismatched = [k for k in request if existing.manifest.get(k) != request[k]]
        if not mismatched:
            return existing, True
        raise GoldenError(
            f"{directory}: golden set was made for a different request ({', '.join(mismatched)} differ); "
            "use another golden dir or regenerate it explicitly"
        )
    if producer is None:
        producer = onnxruntime_producer(model)
    cases = []
    for batch in batch_sizes:
        label = f"b{batch}"
        if on_case:
            on_case(label)
        case_dims = {**(dims or {}), "batch": batch}
        feeds = make_inputs(model, case_dims, seed + batch)
        _check_batch_fits(model, feeds, batch)
        outputs = {k: np.asarray(v) for k, v in producer(feeds).items()}
        cases.append(GoldenCase(label, case_dims, feeds, outputs))
    manifest = {
        **request,
        "output_names": list(cases[0].outputs) if cases else [],
        "tolerances": to_mapping(tolerances or Tolerances()),
        "cases": [{"label": c.label, "dims": c.dims} for c in cases],
    }
    _write_golden(directory, manifest, cases)
    return GoldenSet(directory, manifest, cases), False


def _check_batch_fits(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], batch: int) -> None:
    for value in graph_inputs(model):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value != batch:
            raise GoldenError(
                f"input '{value.name}' has static batch {dims[0].dim_value}; cannot make a golden case with batch {batch}"
            )


def _write_golden(directory: Path, manifest: dict, cases: list[GoldenCase]) -> None:
    make_folder(directory)
    for case in cases:
        for kind in ("inputs", "outputs"):
            _atomic_npz(directory / f"{case.label}.{kind}.npz", getattr(case, kind))
    # The manifest goes last: a set without one is incomplete and never reused.
    write_text_atomic(directory / "manifest.json", json.dumps(manifest, indent=2))


def _atomic_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_golden(directory: str | os.PathLike) -> GoldenSet:
    """Read a golden set; GoldenError names the file when it is missing or corrupt."""
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        raise GoldenError(f"{directory}: not a golden set (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GoldenError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise GoldenError(f"{manifest_path}: unknown golden format {manifest.get('format')!r} (expected {FORMAT})")
    cases = []
    for entry in manifest.get("cases", []):
        arrays = {}
        for kind in ("inputs", "outputs"):
            path = directory / f"{entry['label']}.{kind}.npz"
            try:
                with np.load(path) as data:
                    arrays[kind] = {k: data[k] for k in data.files}
            except (OSError, ValueError, EOFError) as exc:
                raise GoldenError(f"{path}: missing or corrupt golden data ({exc.__class__.__name__})") from exc
        cases.append(GoldenCase(entry["label"], entry["dims"], arrays["inputs"], arrays["outputs"]))
    return GoldenSet(directory, manifest, cases)


@dataclass
class CaseResult:
    """Validation of one golden case: compared, or skipped with a reason."""

    label: str
    comparison: Comparison | None = None
    skipped: str = ""


@dataclass
class GoldenValidation:
    """The result of validating a model against a golden set."""

    cases: list[CaseResult]

    @property
    def passed(self) -> bool:
        compared = [c for c in self.cases if c.comparison is not None]
        return bool(compared) and all(c.comparison.passed for c in compared)

    def max_abs(self) -> dict[str, float]:
        """Worst max abs error per output over all compared cases."""
        worst: dict[str, float] = {}
        for case in self.cases:
            for out in case.comparison.outputs if case.comparison else []:
                worst[out.name] = max(worst.get(out.name, 0.0), out.max_abs)
        return worst

    def first_failure(self) -> str:
        """'case b2, output mask: MISMATCH max_abs=...' for the first failing output, or ''."""
        for case in self.cases:
            for out in case.comparison.failures() if case.comparison else []:
                return f"case {case.label}, {out.describe()}"
        if not any(c.comparison for c in self.cases):
            return "no golden case fits the model: " + "; ".join(c.skipped for c in self.cases)
        return ""

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "cases": [
                {
                    "label": c.label,
                    "skipped": c.skipped or None,
                    "outputs": to_mapping(c.comparison.outputs) if c.comparison else None,
                }
                for c in self.cases
            ],
        }


def validate_against_golden(
    model: onnx.ModelProto | str | os.PathLike,
    golden: GoldenSet,
    tolerances: Tolerances | None = None,
    labels: list[str] | None = None,
    threads: int | None = None,
) -> GoldenValidation:
    """Run ``model`` on each golden case (ORT, optimizations off) and compare outputs.

    Cases whose inputs cannot fit the model's static dims are skipped with a reason;
    ``labels`` restricts the cases. Input-name mismatches are errors.
    """
    tolerances = tolerances or golden.tolerances
    session = create_session(model, threads=threads)
    model_inputs = {i.name: i for i in session.get_inputs()}
    results = []
    for case in golden.cases:
        if labels is not None and case.label not in labels:
            continue
        if set(case.inputs) != set(model_inputs):
            raise GoldenError(
                f"{golden.directory}: golden inputs {sorted(case.inputs)} do not match model inputs {sorted(model_inputs)}"
            )
        misfit = _shape_misfit(model_inputs, case.inputs)
        if misfit:
            results.append(CaseResult(case.label, skipped=misfit))
            continue
        try:
            actual = run_session(session, case.inputs)
        except GraphkitError as exc:
            results.append(CaseResult(case.label, skipped=f"model rejected the inputs: {exc}"))
            continue
        results.append(CaseResult(case.label, compare_outputs(actual, case.outputs, tolerances)))
    return GoldenValidation(results)


def _shape_misfit(model_inputs: dict, feeds: Mapping[str, np.ndarray]) -> str:
    for name, arg in model_inputs.items():
        shape = feeds[name].shape
        declared = arg.shape
        if len(declared) != len(shape):
            return f"input '{name}' has rank {len(declared)}, golden has {len(shape)}"
        for axis, (want, got) in enumerate(zip(declared, shape)):
            if isinstance(want, int) and want != got:
                return f"input '{name}' axis {axis} is static {want}, golden case has {got}"
    return ""
