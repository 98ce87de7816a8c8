"""The type of a tensor value as graphkit's shape code reads it (element type and dims), and the
ops whose outputs are not a function of their inputs. :mod:`graphkit.ir.shapes` re-exports both."""

from __future__ import annotations

from dataclasses import dataclass

# Ops whose outputs are not a function of their inputs: never folded, never compared on random data.
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
)

Dim = int | str | None


@dataclass(frozen=True)
class ValueType:
    """Element type and dims of a tensor value (``dims`` is None when the rank is unknown)."""

    elem_type: int
    dims: tuple[Dim, ...] | None

    @property
    def is_static(self) -> bool:
        return self.dims is not None and all(isinstance(d, int) for d in self.dims)
