"""Golden inputs the user names: arrays files, an image folder, token-id files, and per-input
distributions for the seeded cases (the anchor: Polygraphy's data loaders).

Every source becomes :class:`UserCase` objects (a label ``u1``, ``u2``..., the source text the
report shows, the arrays, a digest that keys the golden request), recorded beside the seeded
cases by :func:`graphkit.check.golden.make_or_load_golden`. The layouts:

- **npz** (``--inputs F.npz``, ``golden.inputs.files``): one case per file with one array per
  graph input (key = input name), or several cases in one file with keys ``NAME:0``,
  ``NAME:1``... (every input at every index). Every graph input must be there.
- **images** (``golden.inputs.images``): the image files of a folder (``.png``, ``.jpg``,
  ``.jpeg``, ``.bmp``, ``.ppm``, ``.webp``; sorted by name, at most ``limit``), RGB, resized to
  ``size`` [H, W] (bilinear), times ``scale``, minus ``mean``, divided by ``std`` (per channel),
  in ``layout`` NCHW or NHWC, stacked into one case (batch = images) for ``input``.
- **tokens** (``golden.inputs.tokens``): a text file of integer ids, one sequence per line,
  whitespace- or comma-separated, every line the same length: one case [lines, length] for
  ``input``.

An image or token case names one input; the model's other inputs get seeded values for that case
(the golden defaults: ranges for ids and masks). Distributions (``golden.distributions``) replace
the seeded values of an input in every seeded case: ``uniform`` [low, high), ``normal`` (mean,
std), ``int`` [low, high] both included, ``data`` values drawn from that input's values in the
user's cases. Anything that does not fit the model's declared inputs (a missing or unknown input,
another dtype or rank, a static dim that differs, a dim shared by two inputs at two sizes, NaN in
an integer input, a folder without images, an unreadable file) is a GoldenError naming the file
(one line, exit 2).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from graphkit.ir.model_io import graph_inputs
from graphkit.runtime.feeds import input_dims, load_npz, np_dtype
from graphkit.util.errors import FieldValueError, GoldenError, InputError, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp")
MAX_TOKEN_FILE_BYTES = 64 * 2**20
_INDEXED = re.compile(r"^(.+):(\d+)$")


@dataclass
class ImageFolder:
    """Images as one golden case; see the module docstring for the preprocessing order."""

    dir: str
    input: str | None = None  # default: the model's only float input of rank 4
    size: list[int] | None = None  # [H, W]; default: the input's static H and W
    scale: float = 1 / 255
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    limit: int = 4

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3:
            raise FieldValueError("mean", "mean and std need 3 values (R, G, B)")
        if any(not np.isfinite(s) or s == 0 for s in self.std):
            raise FieldValueError("std", f"must be finite and non-zero, got {self.std}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise FieldValueError("size", f"must be [H, W] with sizes >= 1, got {self.size}")
        if self.limit < 1:
            raise FieldValueError("limit", f"must be >= 1, got {self.limit}")


@dataclass
class TokenFile:
    """Token ids, one sequence per line, as one golden case for ``input``."""

    file: str
    input: str | None = None  # default: the model's only integer input of rank 2, else its first


@dataclass
class UserInputs:
    """The golden cases taken from the user's data (``golden.inputs`` in a pipeline)."""

    files: list[str] = field(default_factory=list)
    images: ImageFolder | None = None
    tokens: list[TokenFile] = field(default_factory=list)

    def given(self) -> bool:
        return bool(self.files or self.images or self.tokens)


@dataclass
class Distribution:
    """How the seeded values of one input are drawn (``golden.distributions.NAME``)."""

    kind: Literal["uniform", "normal", "int", "data"]
    low: float = 0.0
    high: float = 1.0
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        values = (self.low, self.high, self.mean, self.std)
        if not all(np.isfinite(v) for v in values):
            raise FieldValueError("low", "low, high, mean and std must be finite")
        if self.kind in ("uniform", "int") and self.low > self.high:
            raise FieldValueError("low", f"must be <= high ({self.low} > {self.high})")
        if self.kind == "normal" and self.std < 0:
            raise FieldValueError("std", f"must be >= 0, got {self.std}")


@dataclass
class UserCase:
    """One golden case from the user's data: ``feeds`` may name only some inputs (the rest are
    seeded for the case's dims); ``dims`` are read from the arrays."""

    label: str
    source: str
    feeds: dict[str, np.ndarray] = field(repr=False)
    dims: dict[str, int]

    @property
    def digest(self) -> str:
        hasher = hashlib.sha256()
        for name in sorted(self.feeds):
            array = np.ascontiguousarray(self.feeds[name])
            hasher.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            hasher.update(array.tobytes())
        return hasher.hexdigest()[:32]


def load_user_cases(model: onnx.ModelProto, inputs: UserInputs) -> list[UserCase]:
    """Every case of ``inputs``, checked against the model's declared inputs (labels u1, u2...)."""
    found: list[tuple[str, dict[str, np.ndarray], bool]] = []  # source, feeds, complete
    for path in inputs.files:
        found += [(source, feeds, True) for source, feeds in npz_cases(path)]
    if inputs.images is not None:
        found.append((*image_case(model, inputs.images), False))
    for tokens in inputs.tokens:
        found.append((*token_case(model, tokens), False))
    cases = []
    for index, (source, feeds, complete) in enumerate(found, start=1):
        dims = check_feeds(model, feeds, source, complete)
        cases.append(UserCase(f"u{index}", source, feeds, dims))
    return cases


def npz_cases(path: str) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The cases of one npz file: ``NAME`` keys (one case) or ``NAME:INDEX`` keys (one per index)."""
    try:
        arrays = load_npz(path, "golden inputs file")
    except InputError as exc:
        raise GoldenError(str(exc)) from exc
    if not arrays:
        raise GoldenError(f"{path}: golden inputs file holds no arrays")
    indexed = {key: _INDEXED.match(key) for key in arrays}
    if not any(indexed.values()):
        return [(str(path), arrays)]
    plain = [key for key, match in indexed.items() if not match]
    if plain:
        raise GoldenError(
            f"{path}: mixes plain keys ({', '.join(plain[:3])}) with indexed keys NAME:INDEX; use one layout"
        )
    cases: dict[int, dict[str, np.ndarray]] = {}
    for key, match in indexed.items():
        cases.setdefault(int(match.group(2)), {})[match.group(1)] = arrays[key]
    names = {frozenset(feeds) for feeds in cases.values()}
    if len(names) > 1:
        raise GoldenError(f"{path}: the cases name different inputs (every index needs every input)")
    return [(f"{path} [{index}]", cases[index]) for index in sorted(cases)]


def check_feeds(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], source: str, complete: bool) -> dict[str, int]:
    """The dims of a user case (``batch`` and every symbolic dim by name); GoldenError naming
    ``source`` when the arrays do not fit the declared inputs."""
    declared = {value.name: value for value in graph_inputs(model)}
    unknown = sorted(set(feeds) - set(declared))
    if unknown:
        raise GoldenError(f"{source}: the model has no input '{unknown[0]}' (inputs: {', '.join(declared) or 'none'})")
    missing = [name for name in declared if name not in feeds]
    if complete and missing:
        raise GoldenError(f"{source}: input '{missing[0]}' is missing (give an array for every graph input)")
    dims: dict[str, int] = {}
    seen: dict[str, str] = {}
    for name, array in feeds.items():
        value = declared[name]
        dtype, want = np.asarray(array).dtype, np_dtype(value)
        if dtype.kind == "f" and want.kind in "iub" and np.isnan(array).any():
            raise GoldenError(f"{source}: input '{name}' holds NaN but the model's input is {want}")
        if dtype != want:
            raise GoldenError(f"{source}: input '{name}' is {dtype}, the model's input is {want}")
        shape, declared_dims = np.shape(array), input_dims(value)
        if len(shape) != len(declared_dims):
            raise GoldenError(
                f"{source}: input '{name}' has rank {len(shape)} {list(shape)}, the model's input has rank "
                f"{len(declared_dims)} {declared_dims}"
            )
        for axis, (size, dim) in enumerate(zip(shape, declared_dims, strict=True)):
            if size < 1:
                raise GoldenError(f"{source}: input '{name}' axis {axis} is empty (size {size})")
            if isinstance(dim, int):
                if size != dim:
                    raise GoldenError(f"{source}: input '{name}' axis {axis} is {size}, the model declares {dim}")
                continue
            key = "batch" if axis == 0 else (dim or f"{name}:{axis}")
            if key in dims and dims[key] != size:
                raise GoldenError(
                    f"{source}: dim '{key}' is {dims[key]} in input '{seen[key]}' and {size} in input '{name}'"
                )
            dims[key], seen[key] = int(size), name
    if "batch" not in dims:
        first = next((input_dims(v)[:1] for v in declared.values() if input_dims(v)), [])
        dims["batch"] = first[0] if first and isinstance(first[0], int) else 1
    return dims


def _the_input(model: onnx.ModelProto, name: str | None, wanted: str, kinds: str, rank: int, where: str):
    inputs = graph_inputs(model)
    if name is not None:
        found = next((v for v in inputs if v.name == name), None)
        if found is None:
            raise GoldenError(f"{where}: the model has no input '{name}' (inputs: {', '.join(v.name for v in inputs)})")
        return found
    fitting = [v for v in inputs if np_dtype(v).kind in kinds and len(input_dims(v)) == rank]
    if len(fitting) != 1:
        raise GoldenError(f"{where}: name the input ({len(fitting)} inputs are {wanted}): add input: NAME")
    return fitting[0]


def image_case(model: onnx.ModelProto, spec: ImageFolder) -> tuple[str, dict[str, np.ndarray]]:
    """The images of ``spec.dir``, preprocessed, as one batch for ``spec.input``."""
    from PIL import Image, UnidentifiedImageError

    where = f"golden.inputs.images ({spec.dir})"
    folder = Path(spec.dir)
    if not folder.is_dir():
        raise GoldenError(f"{spec.dir}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GoldenError(f"{spec.dir}: no images in the folder ({', '.join(IMAGE_SUFFIXES)})")
    files = files[: spec.limit]
    value = _the_input(model, spec.input, "float inputs of rank 4", "f", 4, where)
    dims = input_dims(value)
    channels = dims[1] if spec.layout == "NCHW" else dims[3]
    if channels not in (3, None) and not isinstance(channels, str):
        raise GoldenError(f"{where}: input '{value.name}' has {channels} channels; images give 3 (RGB)")
    spatial = dims[2:4] if spec.layout == "NCHW" else dims[1:3]
    size = spec.size or [d if isinstance(d, int) else None for d in spatial]
    if None in size:
        raise GoldenError(f"{where}: input '{value.name}' has symbolic H/W; give size: [H, W]")
    batch = []
    for path in files:
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
                pixels = np.asarray(rgb, dtype=np.float32)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            raise GoldenError(f"{path}: not a readable image ({one_line(exc, 120)})") from exc
        pixels = (pixels * np.float32(spec.scale) - np.float32(spec.mean)) / np.float32(spec.std)
        batch.append(pixels.transpose(2, 0, 1) if spec.layout == "NCHW" else pixels)
    array = np.stack(batch).astype(np_dtype(value))
    names = ", ".join(p.name for p in files)
    return f"images {spec.dir} ({names})", {value.name: array}


def token_case(model: onnx.ModelProto, spec: TokenFile) -> tuple[str, dict[str, np.ndarray]]:
    """The id sequences of ``spec.file`` as one [lines, length] case for ``spec.input``."""
    path = Path(spec.file)
    if not path.is_file():
        raise GoldenError(
            f"{spec.file}: no such token file" if not path.exists() else f"{spec.file}: not a regular file"
        )
    if path.stat().st_size > MAX_TOKEN_FILE_BYTES:
        raise GoldenError(f"{spec.file}: token file larger than {MAX_TOKEN_FILE_BYTES // 2**20} MiB")
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenError(f"{spec.file}: unreadable token file ({one_line(exc, 120)})") from exc
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        items = line.replace(",", " ").split()
        if not items:
            continue
        try:
            rows.append([int(item) for item in items])
        except ValueError:
            bad = next(item for item in items if not item.lstrip("+-").isdigit())
            raise GoldenError(f"{spec.file}:{number}: '{bad[:40]}' is not an integer token id") from None
        if len(rows[-1]) != len(rows[0]):
            raise GoldenError(
                f"{spec.file}:{number}: {len(rows[-1])} ids, the first line has {len(rows[0])} (every line the same length)"
            )
    if not rows:
        raise GoldenError(f"{spec.file}: no token ids in the file")
    value = _the_input(model, spec.input, "integer inputs of rank 2", "iu", 2, f"golden.inputs.tokens ({spec.file})")
    dtype = np_dtype(value)
    if dtype.kind not in "iu":
        raise GoldenError(f"{spec.file}: input '{value.name}' is {dtype}, not an integer input")
    limits = np.iinfo(dtype)
    flat = [v for row in rows for v in row]
    if min(flat) < limits.min or max(flat) > limits.max:
        raise GoldenError(f"{spec.file}: ids outside the values of input '{value.name}' ({dtype})")
    return f"tokens {spec.file} ({len(rows)} lines)", {value.name: np.array(rows, dtype=dtype)}


def apply_distributions(
    model: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    distributions: Mapping[str, Distribution],
    seed: int,
    user_cases: list[UserCase],
) -> dict[str, np.ndarray]:
    """``feeds`` with the inputs named in ``distributions`` redrawn (same shape and dtype)."""
    rng = np.random.default_rng([seed, 104729])
    dtypes = {value.name: np_dtype(value) for value in graph_inputs(model)}
    out = dict(feeds)
    for name, dist in distributions.items():
        if name not in dtypes:
            raise GoldenError(f"golden.distributions: the model has no input '{name}' (inputs: {', '.join(dtypes)})")
        shape, dtype = np.shape(feeds[name]), dtypes[name]
        if dist.kind == "uniform":
            values = rng.uniform(dist.low, dist.high, size=shape)
        elif dist.kind == "normal":
            values = rng.normal(dist.mean, dist.std, size=shape)
        elif dist.kind == "int":
            values = rng.integers(int(dist.low), int(dist.high), size=shape, endpoint=True)
        else:
            pool = [np.ravel(case.feeds[name]) for case in user_cases if name in case.feeds]
            if not pool:
                raise GoldenError(
                    f"golden.distributions.{name}: kind 'data' needs the user's data for input '{name}' "
                    "(golden.inputs or --inputs)"
                )
            values = rng.choice(np.concatenate(pool), size=shape)
        if dtype.kind in "iu":
            limits = np.iinfo(dtype)
            if np.min(values, initial=0) < limits.min or np.max(values, initial=0) > limits.max:
                raise GoldenError(f"golden.distributions.{name}: values outside {dtype}")
        out[name] = np.asarray(values).astype(dtype)
    return out
