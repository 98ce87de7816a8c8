"""Golden sets: seeded inputs and recorded outputs, with a manifest that says what they are.

Layout of a golden directory::

    manifest.json        model hash, producer, seed, input spec, cases, tolerances
    b1.inputs.npz        inputs of the case with batch 1 (one array per graph input)
    b1.outputs.npz       expected outputs of that case
    b2.inputs.npz ...

A golden set is reused only when its manifest matches the request (model hash, producer,
seed, input spec, batch sizes); a mismatch is an error, never a silent regeneration.
Dynamic batch is covered by one case per batch size.

A golden set has at least one case and every case at least one output, both when it is made
and when it is loaded; case labels are plain names (no path can escape the folder). A set is
written into a staging folder and moved into place, so a failed write (a full disk, an
unwritable folder) leaves no half-written set. Validation never skips a case: a case that
cannot run on the candidate model (onnxruntime error, input names, dtypes or static dims that
do not fit, a missing output) is a failed case whose error is in the result.

This module holds the set itself (making, writing, loading); defaults chosen from the model are
in :mod:`graphkit.check.golden_defaults`, validation against a set in
:mod:`graphkit.check.golden_validation`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from graphkit.check.compare import Tolerances
from graphkit.check.golden_validation import (
    ort_error_text,
)
from graphkit.ir.model_io import content_hash
from graphkit.runtime.feeds import (
    check_allocatable,
    graph_inputs,
    input_dims,
    load_npz,
    np_dtype,
    resolve_shape,
    seeded_feeds,
    symbolic_dim_names,
)
from graphkit.runtime.ort import (
    OPTIMIZATION_LEVELS,
    ValidationRuntime,
    create_session,
    forward_purpose,
    run_session,
)
from graphkit.util.errors import GoldenError, GraphkitError, InputError, one_line
from graphkit.util.files import current_umask
from graphkit.util.typed_config import from_mapping, to_mapping

FORMAT = "graphkit-golden/1"
Producer = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_MANIFEST_BYTES = 16 * 2**20

logger = logging.getLogger(__name__)


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
            Tolerances, self.manifest.get("tolerances", {}), f"{self.directory / 'manifest.json'}: tolerances"
        )

    def output_ranks(self) -> dict[str, int]:
        """Output name -> rank, from the first case."""
        return {name: np.ndim(array) for name, array in self.cases[0].outputs.items()} if self.cases else {}


def input_specs(model: onnx.ModelProto) -> dict[str, InputSpec]:
    """The declared input spec of a model (dims as ints or symbolic names)."""
    specs = {}
    for value in graph_inputs(model):
        dims = [f"{value.name}:{axis}" if d is None else d for axis, d in enumerate(input_dims(value))]
        specs[value.name] = InputSpec(shape=dims, dtype=np_dtype(value).name)
    return specs


def case_shapes(model: onnx.ModelProto, dims: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """The input shapes of one case; InputError names the input, axis and value that do not fit."""
    return {value.name: resolve_shape(value, dims) for value in graph_inputs(model)}


def make_inputs(
    model: onnx.ModelProto,
    dims: Mapping[str, int],
    seed: int,
    what: str = "the golden inputs of one case",
    ranges: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, np.ndarray]:
    """Seeded inputs for one case (:func:`graphkit.runtime.feeds.seeded_feeds`): floats ~ N(0, 1),
    booleans 0/1, integers in ``ranges[name]`` (``[low, high]``, both included) or else in [0, 3].

    The size is checked against the memory available before anything is allocated.
    """
    shapes = case_shapes(model, dims)
    dtypes = {value.name: np_dtype(value) for value in graph_inputs(model)}
    for name, dtype in dtypes.items():
        if dtype.kind not in "fiub":
            raise GoldenError(f"input '{name}': cannot generate golden data of type {dtype}")
    check_allocatable(shapes, dtypes, what)
    return seeded_feeds(shapes, dtypes, seed, ranges)


def onnxruntime_producer(model: onnx.ModelProto, runtime: ValidationRuntime | None = None) -> Producer:
    """A producer that runs ``model`` with onnxruntime (CPU, at ``runtime``'s optimization level)."""
    runtime = runtime or ValidationRuntime()
    try:
        session = create_session(model, threads=runtime.threads, optimization=runtime.optimization)
    except Exception as exc:  # onnxruntime raises its own exception types
        reason = ort_error_text(exc).removeprefix("onnxruntime cannot load the model: ")
        raise GoldenError(f"onnxruntime cannot load the source model: {reason}") from exc

    def produce(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return run_session(session, feeds, case=_case_label(feeds))
        except Exception as exc:  # InputError, or any onnxruntime failure while running
            raise GoldenError(f"the source model failed to run: {ort_error_text(exc)}") from exc

    return produce


def _case_label(feeds: Mapping[str, np.ndarray]) -> str:
    first = next(iter(feeds.values()), None)
    shape = np.shape(first) if first is not None else ()
    return f"b{shape[0]}" if shape else "b1"


def check_request(model: onnx.ModelProto, batch_sizes, seed, dims) -> None:
    """GoldenError (exit 2) for batch sizes, a seed or dims that cannot make a golden set."""
    if not isinstance(batch_sizes, (list, tuple)) or not batch_sizes:
        raise GoldenError("golden batch sizes: give at least one batch size (a golden set with no case checks nothing)")
    for batch in batch_sizes:
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise GoldenError(f"golden batch sizes: each must be an integer >= 1, got {batch!r}")
    if len(set(batch_sizes)) != len(batch_sizes):
        raise GoldenError(f"golden batch sizes: {list(batch_sizes)} repeats a batch size")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GoldenError(f"golden seed: must be an integer >= 0, got {seed!r}")
    known = symbolic_dim_names(model)
    batch_axis = {"batch"}
    for value in graph_inputs(model):
        first = input_dims(value)[:1]
        if first and not isinstance(first[0], int):
            batch_axis |= {f"{value.name}:0", first[0]} - {None}
    for name, size in (dims or {}).items():
        if name in batch_axis:
            raise GoldenError(
                f"golden dims: '{name}' is the batch axis, set per case by the batch sizes; do not give it in dims"
            )
        if name not in known:
            names = ", ".join(sorted(known - batch_axis)) or "none besides the batch axis"
            raise GoldenError(f"golden dims: the model has no symbolic dim '{name}'; its symbolic dims: {names}")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise GoldenError(f"golden dims: '{name}' must be an integer >= 1, got {size!r}")


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
    input_ranges: Mapping[str, Sequence[int]] | None = None,
    runtime: ValidationRuntime | None = None,
) -> tuple[GoldenSet, bool]:
    """Load the golden set in ``directory`` if its manifest matches, else make it.

    Returns ``(golden, reused)``. Raises GoldenError when a different golden set is already
    there and ``regenerate`` is false, and for requests that cannot make a valid set (no batch
    size, sizes < 1, a negative seed, unknown dims, inputs too large to allocate). ``producer``
    defaults to onnxruntime on ``model`` at ``runtime``'s optimization level, which the manifest
    records as ``optimization`` (a reused set keeps the level it was made with; validating at
    another level is allowed and noted). ``tolerances`` must name only outputs the model has.
    """
    runtime = runtime or ValidationRuntime()
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise GoldenError(f"{directory}: the golden folder is a file, not a folder")
    check_request(model, batch_sizes, seed, dims)
    tolerances = tolerances or Tolerances()
    model_hash = model_hash or content_hash(model)
    request = {
        "format": FORMAT,
        "model_hash": model_hash,
        "producer": producer_name,
        "seed": int(seed),
        "inputs": to_mapping(input_specs(model)),
        "batch_sizes": [int(b) for b in batch_sizes],
        "dims": {k: int(v) for k, v in (dims or {}).items()},
    }
    if input_ranges:  # only when given: golden sets made before ranges existed stay reusable
        request["input_ranges"] = {k: [int(lo), int(hi)] for k, (lo, hi) in sorted(input_ranges.items())}
    manifest_path = directory / "manifest.json"
    if manifest_path.exists() and not regenerate:
        existing = load_golden(directory)
        keys = [*request, *({"input_ranges"} & set(existing.manifest) - set(request))]
        mismatched = [k for k in keys if existing.manifest.get(k) != request.get(k)]
        if not mismatched:
            tolerances.check_outputs(existing.output_ranks())
            return existing, True
        details = "; ".join(_difference(key, existing.manifest.get(key), request.get(key)) for key in mismatched)
        raise GoldenError(
            f"{directory}: golden set was made for a different request ({', '.join(mismatched)} differ: {details}); "
            "use another golden dir, or re-record it with --regenerate-golden (graphkit apply) "
            "or --regenerate (graphkit golden make)"
        )
    tolerances.check_outputs(_declared_ranks(model))  # before any heavy work
    made_by_ort = producer is None
    if producer is None:
        producer = onnxruntime_producer(model, runtime)
    cases = []
    for batch in request["batch_sizes"]:
        label = f"b{batch}"
        logger.info("golden: recording case %s with %s ...", label, producer_name)
        case_dims = {**request["dims"], "batch": batch}
        _check_batch_fits(model, batch)
        feeds = make_inputs(
            model, case_dims, request["seed"] + batch, f"the inputs of golden case {label}", input_ranges
        )
        try:
            with forward_purpose(f"golden {label}", model_hash):
                produced = producer(feeds)
        except GraphkitError as exc:
            raise GoldenError(f"golden case {label}: the producer failed: {one_line(exc, 2000)}") from exc
        outputs = {str(k): np.asarray(v) for k, v in produced.items()}
        if not outputs:
            raise GoldenError(f"golden case {label}: the producer returned no outputs (nothing to validate against)")
        for name, array in outputs.items():
            if array.dtype.kind not in "fiub":
                raise GoldenError(
                    f"golden case {label}: output '{name}' is {array.dtype} data (a sequence, map or text?); "
                    "only numeric and boolean tensors can be recorded and compared"
                )
        cases.append(GoldenCase(label, case_dims, feeds, outputs))
    golden_outputs = {name: np.ndim(array) for name, array in cases[0].outputs.items()}
    tolerances.check_outputs(golden_outputs)
    manifest = {
        **request,
        "output_names": list(cases[0].outputs),
        "optimization": runtime.optimization if made_by_ort else None,
        "tolerances": to_mapping(tolerances),
        "cases": [{"label": c.label, "dims": c.dims} for c in cases],
    }
    _write_golden(directory, manifest, cases)
    return GoldenSet(directory, manifest, cases), False


_WHAT = {"model_hash": "model content hash", "producer": "producer"}


def _difference(key: str, recorded, requested) -> str:
    """One mismatched manifest key, both values: what the set holds and what this run asks for."""

    def shown(value) -> str:
        return one_line(json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value), 120)

    return f"{_WHAT.get(key, key)}: the set has {shown(recorded)}, this run has {shown(requested)}"


def _declared_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Output name -> declared rank (outputs without a declared shape are left out of the
    argmax range check here, and checked on the recorded outputs)."""
    ranks = {}
    for value in model.graph.output:
        tensor = value.type.tensor_type
        ranks[value.name] = len(tensor.shape.dim) if tensor.HasField("shape") else 10**6
    return ranks


def _check_batch_fits(model: onnx.ModelProto, batch: int) -> None:
    for value in graph_inputs(model):
        dims = input_dims(value)
        if dims and isinstance(dims[0], int) and dims[0] != batch:
            raise GoldenError(
                f"input '{value.name}' has static batch {dims[0]}; cannot make a golden case with batch {batch}"
            )


def _write_golden(directory: Path, manifest: dict, cases: list[GoldenCase]) -> None:
    """Write the set into a staging folder beside ``directory``, then move it into place.

    A failure leaves no half-written set: a new folder appears only complete; an existing one
    loses its manifest first (an incomplete set is never reused) and gets the manifest last.
    """
    staging = None
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        for case in cases:
            for kind in ("inputs", "outputs"):
                with open(staging / f"{case.label}.{kind}.npz", "wb") as handle:
                    np.savez(handle, **getattr(case, kind))
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if not directory.exists():
            os.chmod(staging, 0o777 & ~current_umask())
            os.rename(staging, directory)
            return
        (directory / "manifest.json").unlink(missing_ok=True)
        for old in directory.glob("*.npz"):
            if old.name.endswith((".inputs.npz", ".outputs.npz")) and LABEL.match(old.name.split(".")[0]):
                old.unlink()
        for path in staging.iterdir():
            if path.name != "manifest.json":
                os.replace(path, directory / path.name)
        os.replace(staging / "manifest.json", directory / "manifest.json")
    except OSError as exc:
        raise GoldenError(
            f"{directory}: cannot write the golden set ({exc.strerror or one_line(exc, 200)}); no set was written"
        ) from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def load_golden(directory: str | os.PathLike) -> GoldenSet:
    """Read and check a golden set; GoldenError (or SpecError for bad tolerances) names the file
    and the field when it is missing, corrupt or invalid."""
    directory = Path(directory)
    if not directory.exists():
        raise GoldenError(f"{directory}: not a golden set (no such folder)")
    if not directory.is_dir():
        raise GoldenError(f"{directory}: not a golden set (a file, not a folder)")
    manifest_path = directory / "manifest.json"
    manifest = _read_manifest(manifest_path)
    where = str(manifest_path)
    cases = []
    for entry in manifest["cases"]:
        arrays = {}
        for kind in ("inputs", "outputs"):
            try:
                arrays[kind] = load_npz(directory / f"{entry['label']}.{kind}.npz", f"golden {kind}")
            except InputError as exc:
                raise GoldenError(str(exc)) from exc
        if not arrays["outputs"]:
            raise GoldenError(f"{where}: case '{entry['label']}' has no outputs (nothing to validate against)")
        names = sorted(arrays["outputs"])
        if names != sorted(manifest["output_names"]):
            raise GoldenError(
                f"{where}: case '{entry['label']}' holds outputs {names}, the manifest lists {sorted(manifest['output_names'])}"
            )
        if cases and sorted(arrays["inputs"]) != sorted(cases[0].inputs):
            raise GoldenError(f"{where}: case '{entry['label']}' holds other inputs than case '{cases[0].label}'")
        cases.append(GoldenCase(entry["label"], entry["dims"], arrays["inputs"], arrays["outputs"]))
    golden = GoldenSet(directory, manifest, cases)
    golden.tolerances.check_outputs(golden.output_ranks(), f"{where}: tolerances")
    return golden


def _json_kind(value) -> str:
    kinds = {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
    }
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _read_manifest(path: Path) -> dict:
    """The manifest as a dict whose fields have the types the format promises."""
    if not path.is_file():
        if path.exists():
            raise GoldenError(f"{path}: not a regular file")
        raise GoldenError(f"{path.parent}: not a golden set (no manifest.json)")
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise GoldenError(f"{path}: manifest larger than {MAX_MANIFEST_BYTES // 2**20} MiB; not a golden manifest")
        text = path.read_bytes().decode("utf-8")
        manifest = json.loads(text)
    except UnicodeDecodeError as exc:
        raise GoldenError(f"{path}: manifest is not UTF-8 text") from exc
    except (OSError, json.JSONDecodeError, RecursionError) as exc:
        raise GoldenError(f"{path}: unreadable manifest ({one_line(exc, 160)})") from exc
    if not isinstance(manifest, dict):
        raise GoldenError(f"{path}: manifest must be a JSON object, got {_json_kind(manifest)}")
    if manifest.get("format") != FORMAT:
        raise GoldenError(f"{path}: unknown golden format {str(manifest.get('format'))[:80]!r} (expected {FORMAT})")
    expected = {
        "model_hash": str,
        "producer": str,
        "seed": int,
        "inputs": dict,
        "batch_sizes": list,
        "dims": dict,
        "output_names": list,
        "tolerances": dict,
        "cases": list,
    }
    for key, kind in expected.items():
        if key not in manifest:
            raise GoldenError(f"{path}: manifest lacks the key '{key}'")
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            raise GoldenError(f"{path}: manifest '{key}' must be {_json_kind(kind())}, got {_json_kind(manifest[key])}")
    level = manifest.get("optimization")
    if level is not None and level not in OPTIMIZATION_LEVELS:
        raise GoldenError(
            f"{path}: manifest 'optimization' must be one of {', '.join(OPTIMIZATION_LEVELS)} or null, "
            f"got {str(level)[:80]!r}"
        )
    if not manifest["cases"]:
        raise GoldenError(f"{path}: manifest has no cases (a golden set with no case checks nothing)")
    if not manifest["output_names"] or not all(isinstance(n, str) for n in manifest["output_names"]):
        raise GoldenError(f"{path}: manifest 'output_names' must be a non-empty list of names")
    labels = set()
    for index, entry in enumerate(manifest["cases"]):
        key = f"cases[{index}]"
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("label"), str)
            or not isinstance(entry.get("dims"), dict)
        ):
            raise GoldenError(f"{path}: manifest {key} must be an object with a 'label' (text) and 'dims' (object)")
        label = entry["label"]
        if not LABEL.match(label):
            raise GoldenError(
                f"{path}: manifest {key}.label {label[:80]!r} is not a plain name (letters, digits, '_' and '-' only)"
            )
        if label in labels:
            raise GoldenError(f"{path}: manifest {key}.label '{label}' appears twice")
        labels.add(label)
        for name, size in entry["dims"].items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise GoldenError(f"{path}: manifest {key}.dims.{name} must be an integer >= 1, got {size!r}")
    return manifest
