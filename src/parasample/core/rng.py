"""Randomness handling, following Scientific Python SPEC 7.

Every random public function takes a keyword-only ``rng`` that may be ``None``, an ``int``,
a :class:`numpy.random.SeedSequence` or a :class:`numpy.random.Generator`. It is normalised
once, at the public entry point, with :func:`as_generator`.
"""

from __future__ import annotations

from typing import Union

import numpy as np

RngLike = Union[None, int, np.integer, np.random.SeedSequence, np.random.Generator]

__all__ = ["RngLike", "as_generator", "spawn"]


def as_generator(rng: RngLike = None) -> np.random.Generator:
    """Return a Generator for ``rng``; a Generator is passed through unchanged.

    ``RandomState`` and other objects are refused: the library keeps no global state.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer, np.random.SeedSequence)):
        if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng < 0:
            raise ValueError(f"rng seed must be non-negative, got {rng}")
        return np.random.default_rng(rng)
    raise TypeError(
        "rng must be None, an int, a numpy SeedSequence or a numpy Generator, "
        f"got {type(rng).__name__}"
    )


def spawn(rng: RngLike, n: int) -> list[np.random.Generator]:
    """``n`` independent child generators of ``rng`` (via ``Generator.spawn``)."""
    if n < 0:
        raise ValueError(f"cannot spawn a negative number of generators ({n})")
    return as_generator(rng).spawn(n)
