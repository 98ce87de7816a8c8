"""Where the generators' random decisions come from.

Generators never call :mod:`random` directly: they draw from a :class:`Choices`, so that the
same generator code runs seeded (one attempt = ``(seed, index)``, reproducible) or driven by
atheris' mutated bytes (:class:`DataChoices`, coverage-guided).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Choices:
    """Seeded decisions: the same ``(seed, index)`` always gives the same draws."""

    def __init__(self, seed: int, index: int):
        self._rng = random.Random(f"graphkit-fuzz:{seed}:{index}")

    def integer(self, low: int, high: int) -> int:
        """An integer in ``[low, high]``."""
        return self._rng.randint(low, high)

    def unit(self) -> float:
        """A float in ``[0, 1)``."""
        return self._rng.random()

    def data(self, size: int) -> bytes:
        """``size`` random bytes."""
        return self._rng.randbytes(size)

    def pick(self, options: Sequence[T]) -> T:
        """One of ``options``."""
        return options[self.integer(0, len(options) - 1)]

    def chance(self, probability: float) -> bool:
        """True with ``probability``."""
        return self.unit() < probability

    def sample(self, options: Sequence[T], count: int) -> list[T]:
        """``count`` distinct items of ``options`` (fewer when there are fewer), in draw order."""
        pool = list(options)
        picked = []
        for _ in range(min(count, len(pool))):
            picked.append(pool.pop(self.integer(0, len(pool) - 1)))
        return picked


class DataChoices(Choices):
    """Decisions read from atheris' ``FuzzedDataProvider``: libFuzzer mutates the bytes."""

    def __init__(self, provider):
        self._provider = provider

    def integer(self, low: int, high: int) -> int:
        return self._provider.ConsumeIntInRange(low, high) if high > low else low

    def unit(self) -> float:
        return self._provider.ConsumeProbability()

    def data(self, size: int) -> bytes:
        got = self._provider.ConsumeBytes(size)
        return got + bytes(size - len(got))
