"""Cost accounting: rounds (parallel depth) and evaluations (total work).

Cost is *measured*: wrap a batch-first oracle in :class:`CountingOracle` and every call
counts one round and ``len(batch)`` evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

__all__ = ["Cost", "CountingOracle", "batch_size"]

T = TypeVar("T")


@dataclass(frozen=True)
class Cost:
    """``rounds`` = sequential batched calls; ``evaluations`` = individual evaluations."""

    rounds: int
    evaluations: int

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.rounds + other.rounds, self.evaluations + other.evaluations)

    def as_dict(self) -> dict[str, int]:
        return {"rounds": self.rounds, "evaluations": self.evaluations}


def batch_size(batch: Any) -> int:
    """Number of rows of a batch: ``len`` of its first axis (arrays, tensors, lists)."""
    shape = getattr(batch, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    return len(batch)


class CountingOracle(Generic[T]):
    """Wraps a batch-first callable ``fn(batch, *args, **kw)``: one call is one round and
    ``size(batch)`` evaluations. Attribute access falls through to the wrapped object."""

    def __init__(self, fn: Callable[..., T], *, size: Callable[[Any], int] = batch_size):
        self._fn = fn
        self._size = size
        self.rounds = 0
        self.evaluations = 0

    def __call__(self, batch: Any, *args: Any, **kwargs: Any) -> T:
        self.rounds += 1
        self.evaluations += self._size(batch)
        return self._fn(batch, *args, **kwargs)

    def count(self, evaluations: int) -> None:
        """Record one round of ``evaluations`` done outside ``__call__``."""
        if evaluations < 0:
            raise ValueError("evaluations must be non-negative")
        self.rounds += 1
        self.evaluations += int(evaluations)

    @property
    def cost(self) -> Cost:
        return Cost(self.rounds, self.evaluations)

    def reset(self) -> None:
        self.rounds = 0
        self.evaluations = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fn, name)
