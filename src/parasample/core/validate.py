"""Argument checks shared by every domain: clear errors before any work is done."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_count", "read_only"]


def as_count(value: Any, name: str, *, minimum: int = 0) -> int:
    """``value`` as an ``int`` that is at least ``minimum``, or a ValueError naming ``name``.

    Accepts Python and numpy integers and floats with no fractional part (``3.0``); rejects
    ``2.5``, booleans, strings, NaN and anything below ``minimum`` — never truncates.
    """
    ok_type = isinstance(value, (int, np.integer)) or (
        isinstance(value, (float, np.floating)) and float(value).is_integer()
    )
    if isinstance(value, (bool, np.bool_)) or not ok_type or value < minimum:
        bound = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` to hand to user code (models, oracles), so that a callee
    that writes into its input raises instead of silently corrupting the sampler's state."""
    view = array.view()
    view.flags.writeable = False
    return view
