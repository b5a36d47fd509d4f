"""Drawing an index from non-negative weights, the robust way.

Draw ``u * cumsum(w)[-1]``, binary-search it (right side) and clamp to the last positive
weight. Never normalise and hand the weights to a "choice with p" routine: that is how DPPy
fails with "probabilities do not sum to 1" (DPPy #61, #70).
"""

from __future__ import annotations

import numba
import numpy as np

from ..core.errors import NumericalError

__all__ = ["draw_index", "draw_index_nb"]


def draw_index(weights: np.ndarray, u: float, expected_total: float | None = None) -> int:
    """Index i with probability ``w_i / sum(w)`` from one uniform ``u`` in [0, 1).

    Raises :class:`NumericalError` when the total weight is not positive or is below
    ``1e-12 * expected_total`` (the weights have collapsed numerically).
    """
    c = np.cumsum(weights)
    total = float(c[-1]) if c.size else 0.0
    if not total > 0.0 or (expected_total is not None and total <= 1e-12 * expected_total):
        raise NumericalError(
            f"sampling weights collapsed (total {total:.3g}, expected {expected_total}); "
            "the kernel is too ill-conditioned at this point — rescale it or use a "
            "lower-rank representation"
        )
    i = int(np.searchsorted(c, u * total, side="right"))
    return _clamp_to_positive(weights, i)


def _clamp_to_positive(weights: np.ndarray, i: int) -> int:
    n = weights.shape[0]
    if i >= n or weights[i] <= 0.0:
        i = min(i, n - 1)
        while i > 0 and weights[i] <= 0.0:
            i -= 1
    return i


@numba.njit(cache=True)
def draw_index_nb(weights, u):  # pragma: no cover - compiled
    """Numba twin of :func:`draw_index` (returns -1 when the total weight is not positive)."""
    n = weights.shape[0]
    total = 0.0
    for j in range(n):
        total += weights[j]
    if not total > 0.0:
        return -1
    target = u * total
    acc = 0.0
    last_pos = -1
    for j in range(n):
        if weights[j] > 0.0:
            last_pos = j
        acc += weights[j]
        if acc > target and weights[j] > 0.0:
            return j
    return last_pos
