"""Tolerances: a pure value type for "how close is close enough", per output.

An element passes when ``|actual - expected| <= atol + rtol * |expected|`` (numpy's
``allclose`` rule; the comparison itself is :mod:`graphkit.check.compare`). Tolerances are
finite numbers >= 0; :class:`Tolerance` checks this wherever one is made (YAML, ``--set``, CLI
flags, a golden manifest, a pass's declaration), so a NaN can never switch validation off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from graphkit.util.errors import FieldValueError, SpecError
from graphkit.util.typed_config import close_names


def check_tolerance_value(key: str, value) -> float:
    """``value`` as a float when it is a finite number >= 0; FieldValueError naming ``key`` if not."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise FieldValueError(key, f"must be a finite number >= 0, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise FieldValueError(key, f"must be a finite number >= 0, got {number!r}")
    return number


@dataclass
class Tolerance:
    """Tolerance for one output. ``argmax_axis`` adds a task-level check on that axis.

    ``atol`` and ``rtol`` are finite and >= 0; ``min_argmax_agreement`` is in [0, 1].
    """

    atol: float = 1e-5
    rtol: float = 1e-4
    argmax_axis: int | None = None
    min_argmax_agreement: float = 1.0

    def __post_init__(self) -> None:
        self.atol = check_tolerance_value("atol", self.atol)
        self.rtol = check_tolerance_value("rtol", self.rtol)
        agreement = self.min_argmax_agreement
        if isinstance(agreement, bool) or not isinstance(agreement, (int, float, np.integer, np.floating)):
            raise FieldValueError("min_argmax_agreement", f"must be a number in [0, 1], got {agreement!r}")
        if not 0.0 <= float(agreement) <= 1.0:  # NaN fails this too
            raise FieldValueError("min_argmax_agreement", f"must be a number in [0, 1], got {float(agreement)!r}")
        self.min_argmax_agreement = float(agreement)
        axis = self.argmax_axis
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
            raise FieldValueError("argmax_axis", f"must be an integer axis or null, got {axis!r}")
        self.argmax_axis = None if axis is None else int(axis)


@dataclass
class Tolerances:
    """A default tolerance plus per-output overrides."""

    default: Tolerance = field(default_factory=Tolerance)
    outputs: dict[str, Tolerance] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.default, Tolerance):
            raise FieldValueError("default", f"must be a Tolerance, got {type(self.default).__name__}")
        for name, tol in self.outputs.items():
            if not isinstance(name, str) or not isinstance(tol, Tolerance):
                raise FieldValueError("outputs", f"entry {name!r} must map an output name to a Tolerance")

    def for_output(self, name: str) -> Tolerance:
        """The tolerance that applies to output ``name``."""
        return self.outputs.get(name, self.default)

    def check_outputs(self, ranks: Mapping[str, int], where: str = "tolerances") -> None:
        """SpecError when a per-output tolerance names no output in ``ranks`` (name -> rank), or
        an ``argmax_axis`` is out of range for an output it applies to."""
        for name in self.outputs:
            if name not in ranks:
                raise SpecError(
                    f"{where}: per-output tolerance for '{name}', but the model has no output of that name"
                    f"{close_names(name, ranks)}; its outputs: {', '.join(ranks) or 'none'}"
                )
        for name, rank in ranks.items():
            axis = self.for_output(name).argmax_axis
            if axis is not None and not -rank <= axis < rank:
                key = f"outputs.{name}" if name in self.outputs else "default"
                raise SpecError(f"{where}: {key}.argmax_axis {axis} is out of range for output '{name}' of rank {rank}")
