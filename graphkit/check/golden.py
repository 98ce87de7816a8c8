"""Golden sets: seeded inputs and recorded outputs, with a manifest that says what they are.

Layout of a golden directory::

    manifest.json        model hash, producer, seed, input spec, cases, tolerances
    b1.inputs.npz        inputs of the case with batch 1 (one array per graph input)
    b1.outputs.npz       expected outputs of that case
    b2.inputs.npz ...

A golden set is reused only when its manifest matches the request (model hash, producer,
seed, input spec, batch sizes, dim sizes, the user's cases by digest); a mismatch is an error,
never a silent regeneration. Dynamic batch is covered by one case per batch size; every other
symbolic dim by two sizes alternated over the cases (``b1``, ``b2``, and ``b<N>-d2`` for a
single batch size: :mod:`graphkit.check.golden_cases`); the user's own data adds cases ``u1``,
``u2``... (:mod:`graphkit.check.golden_inputs`). Each manifest case names its ``source``.

Integrity: the manifest records the SHA-256 of every array file (``files``) and a ``digest``
of itself (every other field: model hash, producer, cases, tolerances, format, the file
digests). Both are written by the code that records the set (:func:`~graphkit.check.golden_files.write_golden_files`) and
checked on every load (:mod:`graphkit.check.golden_integrity`); a set that does not verify raises
:class:`~graphkit.check.golden_integrity.GoldenIntegrityError`. A set
in graphkit's cache is then recorded again with a warning (``recompute_untrusted``); a folder
the user named is an error (its reference outputs may not be reproducible here).

A golden set has at least one case and every case at least one output, both when it is made
and when it is loaded; case labels are plain names (no path can escape the folder). A set is
written into a staging folder and moved into place, so a failed write (a full disk, an
unwritable folder) leaves no half-written set. Validation never skips a case: a case that
cannot run on the candidate model (onnxruntime error, input names, dtypes or static dims that
do not fit, a missing output) is a failed case whose error is in the result.

This module holds the set itself (making, writing, loading); defaults chosen from the model are
in :mod:`graphkit.check.golden_defaults`, the cases a request makes in
:mod:`graphkit.check.golden_cases`, validation against a set in
:mod:`graphkit.check.golden_validation`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from graphkit.check.golden_cases import PlannedCase, check_batch_fits, check_request, plan_cases, symbolic_batch
from graphkit.check.golden_files import FORMAT, read_manifest, write_golden_files
from graphkit.check.golden_inputs import Distribution, UserCase, apply_distributions
from graphkit.check.golden_integrity import verify_digests
from graphkit.ir.model_io import content_hash, graph_inputs
from graphkit.runtime.backend import open_validation_backend
from graphkit.runtime.feeds import (
    check_allocatable,
    input_dims,
    load_npz,
    np_dtype,
    resolve_shape,
    seeded_feeds,
)
from graphkit.runtime.ort import (
    ValidationRuntime,
    forward_purpose,
    ort_error_text,
)
from graphkit.util.errors import GoldenError, GraphkitError, InputError, SpecError, one_line
from graphkit.util.tolerance import Tolerances
from graphkit.util.typed_config import from_mapping, to_mapping

logger = logging.getLogger(__name__)

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
        backend = open_validation_backend(model, runtime.optimization, runtime.threads)
    except Exception as exc:  # onnxruntime raises its own exception types
        reason = ort_error_text(exc).removeprefix("onnxruntime cannot load the model: ")
        raise GoldenError(f"onnxruntime cannot load the source model: {reason}") from exc

    def produce(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return backend.run(feeds, case=_case_label(feeds))
        except Exception as exc:  # InputError, or any onnxruntime failure while running
            raise GoldenError(f"the source model failed to run: {ort_error_text(exc)}") from exc

    return produce


def _case_label(feeds: Mapping[str, np.ndarray]) -> str:
    first = next(iter(feeds.values()), None)
    shape = np.shape(first) if first is not None else ()
    return f"b{shape[0]}" if shape else "b1"


def make_or_load_golden(
    model: onnx.ModelProto,
    directory: str | os.PathLike | None,
    *,
    batch_sizes: list[int],
    seed: int = 0,
    dims: Mapping[str, int | Sequence[int]] | None = None,
    producer: Producer | None = None,
    producer_name: str = "onnxruntime",
    tolerances: Tolerances | None = None,
    regenerate: bool = False,
    model_hash: str | None = None,
    input_ranges: Mapping[str, Sequence[int]] | None = None,
    runtime: ValidationRuntime | None = None,
    user_cases: Sequence[UserCase] | None = None,
    distributions: Mapping[str, Distribution] | None = None,
    recompute_untrusted: bool = False,
) -> tuple[GoldenSet, bool]:
    """Load the golden set in ``directory`` if its manifest matches, else make it.

    Returns ``(golden, reused)``. Raises GoldenError when a different golden set is already
    there and ``regenerate`` is false, and for requests that cannot make a valid set (no batch
    size, sizes < 1, a negative seed, unknown dims, inputs too large to allocate). ``dims`` maps
    each symbolic dim to one size or two (the cases alternate them: :func:`plan_cases`); when the
    source fails at a case's second sizes, that case is recorded at the first sizes instead (or
    dropped when it would repeat another) and the manifest names those dims under
    ``unexercised_dims`` with the reason. ``user_cases`` (the user's data,
    :mod:`graphkit.check.golden_inputs`) are recorded after the seeded cases, labelled ``u1``...;
    ``distributions`` redraw named inputs of the seeded cases; both enter the request (the user
    cases by digest) and each manifest case names its ``source``. ``producer``
    defaults to onnxruntime on ``model`` at ``runtime``'s optimization level, which the manifest
    records as ``optimization`` (a reused set keeps the level it was made with; validating at
    another level is allowed and noted). ``tolerances`` must name only outputs the model has.
    ``directory=None`` makes the set in memory only: nothing is read or written, and its
    ``directory`` is :data:`IN_MEMORY`. ``recompute_untrusted`` (for sets in graphkit's cache): a
    set there that does not load or verify is recorded again with a warning instead of raising.
    """
    runtime = runtime or ValidationRuntime()
    directory = None if directory is None else Path(directory)
    if directory is not None and directory.exists() and not directory.is_dir():
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
        "dims": {k: [int(x) for x in v] if isinstance(v, (list, tuple)) else int(v) for k, v in (dims or {}).items()},
    }
    if input_ranges:  # only when given: golden sets made before ranges existed stay reusable
        request["input_ranges"] = {k: [int(lo), int(hi)] for k, (lo, hi) in sorted(input_ranges.items())}
    if user_cases:  # the same: only when given
        request["user_inputs"] = [{"label": c.label, "digest": c.digest} for c in user_cases]  # not the path
    if distributions:
        request["distributions"] = to_mapping(dict(sorted(distributions.items())))
    existing = None
    if directory is not None and (directory / "manifest.json").exists() and not regenerate:
        try:
            existing = load_golden(directory)
        except (GoldenError, SpecError) as exc:
            if not recompute_untrusted:
                raise
            logger.warning("golden: %s; not trusted, recording the set again", one_line(exc, 300))
    if existing is not None:
        optional = {"input_ranges", "user_inputs", "distributions"}
        keys = [*request, *(optional & set(existing.manifest) - set(request))]
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
    manifest, cases = _record(
        model, request, producer, producer_name, tolerances, input_ranges, runtime, user_cases, distributions
    )
    if directory is None:
        return GoldenSet(IN_MEMORY, manifest, cases), False
    manifest = write_golden_files(directory, manifest, cases)
    return GoldenSet(directory, manifest, cases), False


IN_MEMORY = Path("<in memory>")  # the ``directory`` of a golden set made with directory=None


def _record(
    model: onnx.ModelProto,
    request: dict,
    producer: Producer | None,
    producer_name: str,
    tolerances: Tolerances,
    input_ranges: Mapping[str, Sequence[int]] | None,
    runtime: ValidationRuntime,
    user_cases: Sequence[UserCase] | None,
    distributions: Mapping[str, Distribution] | None,
) -> tuple[dict, list[GoldenCase]]:
    """Run the producer (onnxruntime on ``model`` when None) on each planned case, then the user's
    cases: the manifest and the cases (see :func:`make_or_load_golden`)."""
    model_hash = request["model_hash"]
    tolerances.check_outputs(_declared_ranks(model))  # before any heavy work
    made_by_ort = producer is None
    if producer is None:
        producer = onnxruntime_producer(model, runtime)
    cases: list[GoldenCase] = []
    unexercised: dict[str, str] = {}
    sources: dict[str, str] = {}
    user_cases = list(user_cases or [])

    def seeded(planned: PlannedCase) -> dict[str, np.ndarray]:
        what = f"the inputs of golden case {planned.label}"
        feeds = make_inputs(model, planned.dims, planned.seed, what, input_ranges)
        return apply_distributions(model, feeds, distributions or {}, planned.seed, user_cases)

    def record(planned: PlannedCase) -> tuple[dict, dict]:
        feeds = seeded(planned)
        sources[planned.label] = f"seeded noise (seed {planned.seed})"
        return feeds, _record_case(planned.label, feeds, producer, producer_name, model_hash)

    for planned in plan_cases(request["batch_sizes"], request["dims"], request["seed"], symbolic_batch(model)):
        check_batch_fits(model, planned.dims["batch"])
        try:
            feeds, outputs = record(planned)
        except GoldenError as exc:
            if not planned.second:
                raise
            first = next(c for c in plan_cases(request["batch_sizes"], request["dims"], request["seed"]))
            differing = {k: v for k, v in planned.dims.items() if k != "batch" and first.dims.get(k) != v}
            reason = f"the source fails at {', '.join(f'{k}={v}' for k, v in differing.items())}: {one_line(exc, 300)}"
            logger.warning("golden: %s; case %s falls back to the first sizes", reason, planned.label)
            unexercised.update({name: reason for name in differing})
            planned = PlannedCase(planned.label, {**first.dims, "batch": planned.dims["batch"]}, planned.seed)
            if any(c.dims == planned.dims for c in cases):
                continue  # the same sizes as a case already recorded: nothing new to record
            feeds, outputs = record(planned)
        cases.append(GoldenCase(planned.label, planned.dims, feeds, outputs))
    first_sizes = plan_cases([1], request["dims"], 0)[0].dims
    for index, user in enumerate(user_cases):
        planned = PlannedCase(user.label, {**first_sizes, **user.dims}, request["seed"] + 1000 + index)
        feeds = {**seeded(planned), **user.feeds} if set(user.feeds) != set(input_specs(model)) else dict(user.feeds)
        sources[user.label] = user.source
        cases.append(
            GoldenCase(
                user.label, planned.dims, feeds, _record_case(user.label, feeds, producer, producer_name, model_hash)
            )
        )
    golden_outputs = {name: np.ndim(array) for name, array in cases[0].outputs.items()}
    tolerances.check_outputs(golden_outputs)
    manifest = {
        **request,
        "output_names": list(cases[0].outputs),
        "optimization": runtime.optimization if made_by_ort else None,
        "tolerances": to_mapping(tolerances),
        "cases": [{"label": c.label, "dims": c.dims, "source": sources[c.label]} for c in cases],
    }
    if unexercised:
        manifest["unexercised_dims"] = unexercised
    return manifest, cases


def _record_case(
    label: str, feeds: dict[str, np.ndarray], producer: Producer, producer_name: str, model_hash: str
) -> dict[str, np.ndarray]:
    """The outputs the producer records for one case's inputs."""
    logger.info("golden: recording case %s with %s ...", label, producer_name)
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
    return outputs


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


def load_golden(directory: str | os.PathLike) -> GoldenSet:
    """Read and check a golden set; GoldenError (or SpecError for bad tolerances) names the file
    and the field when it is missing, corrupt or invalid."""
    directory = Path(directory)
    if not directory.exists():
        raise GoldenError(f"{directory}: not a golden set (no such folder)")
    if not directory.is_dir():
        raise GoldenError(f"{directory}: not a golden set (a file, not a folder)")
    manifest_path = directory / "manifest.json"
    manifest = read_manifest(manifest_path)
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
    verify_digests(manifest, directory)  # last: a malformed field is reported as itself first
    return golden
