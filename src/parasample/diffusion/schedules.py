"""Training noise schedules and sampling time grids.

Notation, for t = 0…T−1: β_t noise rates, α_t = 1 − β_t, ᾱ_t = ∏_{s≤t} α_s, so that a
training state is x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε.

Everything here is float64 numpy, computed once on the CPU; samplers cast the per-step
vectors to the model's dtype and device when they start. Arrays are read-only.

A :class:`TimeGrid` is a strictly decreasing list t_0 > … > t_{S−1} of training timesteps plus
``final_alpha_bar`` (ᾱ after the last step, default 1). The previous timestep of t_i is always
read from the list (t_{i+1}), never computed as t − ⌊T/S⌋ (the stride bug, wrong
whenever consecutive grid steps are not ⌊T/S⌋ apart).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..core import as_count

__all__ = ["Schedule", "TimeGrid", "spaced_timesteps", "SPACINGS"]

SPACINGS = ("leading", "trailing", "linspace")


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _check_n_train(n_train) -> int:
    return as_count(n_train, "n_train", minimum=1)


class Schedule:
    """An immutable training noise schedule, defined by ᾱ (float64, length ``n_train``).

    Attributes: ``n_train`` (T), ``alpha_bar`` (ᾱ_t), ``betas`` (β_t = 1 − ᾱ_t/ᾱ_{t−1},
    β_0 = 1 − ᾱ_0), ``alphas`` (1 − β_t), ``sqrt_alpha_bar``, ``sqrt_one_minus_alpha_bar``.

    Validation: ᾱ finite, strictly decreasing, within (0, 1). ᾱ_{T−1} = 0 (zero terminal
    SNR, e.g. diffusers' ``rescale_betas_zero_snr``) is refused: ε-prediction is ill-posed
    there (x̂0 = (x − b·ε̂)/a divides by a = 0). ᾱ_0 = 1 (β_0 = 0) is refused too, since
    ε̂ = (x − a·x̂0)/b would divide by b = 0.
    """

    __slots__ = ("n_train", "alpha_bar", "betas", "alphas", "sqrt_alpha_bar",
                 "sqrt_one_minus_alpha_bar", "name")

    def __init__(self, alpha_bar, *, name: str = "custom"):
        ab = np.asarray(alpha_bar, dtype=np.float64)
        if ab.ndim != 1 or ab.size < 1:
            raise ValueError(f"alpha_bar must be a non-empty 1-D array, got shape {ab.shape}")
        if not np.all(np.isfinite(ab)):
            raise ValueError("alpha_bar contains NaN or inf")
        if ab[-1] == 0.0:
            raise ValueError(
                "zero terminal SNR (alpha_bar[T-1] == 0): epsilon-prediction is ill-posed at the "
                "last training step; use a schedule with alpha_bar[T-1] > 0")
        if np.any(ab <= 0.0) or np.any(ab >= 1.0):
            bad = int(np.flatnonzero((ab <= 0.0) | (ab >= 1.0))[0])
            raise ValueError(f"alpha_bar must lie in (0, 1); alpha_bar[{bad}] = {ab[bad]!r}")
        if ab.size > 1 and np.any(np.diff(ab) >= 0.0):
            bad = int(np.flatnonzero(np.diff(ab) >= 0.0)[0])
            raise ValueError(
                f"alpha_bar must be strictly decreasing; alpha_bar[{bad}] = {ab[bad]!r} <= "
                f"alpha_bar[{bad + 1}] = {ab[bad + 1]!r}")
        prev = np.concatenate([[1.0], ab[:-1]])
        betas = 1.0 - ab / prev
        object.__setattr__(self, "n_train", int(ab.size))
        object.__setattr__(self, "alpha_bar", _readonly(ab))
        object.__setattr__(self, "betas", _readonly(betas))
        object.__setattr__(self, "alphas", _readonly(1.0 - betas))
        object.__setattr__(self, "sqrt_alpha_bar", _readonly(np.sqrt(ab)))
        object.__setattr__(self, "sqrt_one_minus_alpha_bar", _readonly(np.sqrt(1.0 - ab)))
        object.__setattr__(self, "name", str(name))

    def __setattr__(self, key, value):
        raise AttributeError("Schedule is immutable")

    def __len__(self) -> int:
        return self.n_train

    def __repr__(self) -> str:
        return (f"Schedule({self.name}, n_train={self.n_train}, "
                f"alpha_bar[-1]={self.alpha_bar[-1]:.3g})")

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_betas(cls, betas, *, name: str = "custom") -> "Schedule":
        """ᾱ = cumprod(1 − β); β must be finite and in (0, 1)."""
        b = np.asarray(betas, dtype=np.float64)
        if b.ndim != 1 or b.size < 1:
            raise ValueError(f"betas must be a non-empty 1-D array, got shape {b.shape}")
        if not np.all(np.isfinite(b)) or np.any(b <= 0.0) or np.any(b > 1.0):
            raise ValueError("betas must be finite and lie in (0, 1]")
        return cls(np.cumprod(1.0 - b), name=name)

    @classmethod
    def linear(cls, n_train: int = 1000, beta_start: float = 1e-4,
               beta_end: float = 0.02) -> "Schedule":
        """β evenly spaced from ``beta_start`` to ``beta_end`` (DDPM). ᾱ_999 ≈ 4.0e-5."""
        n = _check_n_train(n_train)
        _check_beta_range(beta_start, beta_end)
        return cls.from_betas(np.linspace(beta_start, beta_end, n), name="linear")

    @classmethod
    def scaled_linear(cls, n_train: int = 1000, beta_start: float = 0.00085,
                      beta_end: float = 0.012) -> "Schedule":
        """β = (evenly spaced √beta_start … √beta_end)² (Stable Diffusion). ᾱ_999 ≈ 4.7e-3."""
        n = _check_n_train(n_train)
        _check_beta_range(beta_start, beta_end)
        return cls.from_betas(np.linspace(beta_start ** 0.5, beta_end ** 0.5, n) ** 2,
                              name="scaled_linear")

    @classmethod
    def cosine(cls, n_train: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "Schedule":
        """β_t = min(1 − f((t+1)/T)/f(t/T), max_beta), f(u) = cos²(π/2·(u+s)/(1+s))
        (Nichol & Dhariwal). ᾱ_999 ≈ 2.4e-9."""
        n = _check_n_train(n_train)
        if not (s >= 0.0 and math.isfinite(s)):
            raise ValueError(f"s must be finite and non-negative, got {s!r}")
        if not (0.0 < max_beta < 1.0):
            raise ValueError(f"max_beta must lie in (0, 1), got {max_beta!r}")
        u = np.arange(n + 1, dtype=np.float64) / n
        f = np.cos((u + s) / (1.0 + s) * math.pi / 2.0) ** 2
        betas = np.minimum(1.0 - f[1:] / f[:-1], max_beta)
        return cls.from_betas(betas, name="cosine")

    @classmethod
    def from_alpha_bar(cls, alpha_bar) -> "Schedule":
        """Custom ᾱ (e.g. ``scheduler.alphas_cumprod`` copied from diffusers; float32 is
        upcast to float64, not recomputed). Accepts numpy arrays, sequences or CPU tensors."""
        if hasattr(alpha_bar, "detach"):  # a torch tensor, without importing torch here
            alpha_bar = alpha_bar.detach().cpu().double().numpy()
        return cls(alpha_bar, name="custom")

    # ------------------------------------------------------------------ helpers
    def grid(self, n_steps: int, spacing: str = "leading", *, offset: int = 0,
             final_alpha_bar: float = 1.0) -> "TimeGrid":
        """Shorthand for ``TimeGrid.spaced(self, n_steps, spacing, ...)``."""
        return TimeGrid.spaced(self, n_steps, spacing, offset=offset,
                               final_alpha_bar=final_alpha_bar)


def _check_beta_range(beta_start, beta_end) -> None:
    if not (0.0 < beta_start <= beta_end < 1.0):
        raise ValueError(
            f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start!r}, "
            f"beta_end={beta_end!r}")


def spaced_timesteps(n_train: int, n_steps: int, spacing: str = "leading",
                     offset: int = 0) -> np.ndarray:
    """Strictly decreasing int64 timesteps t_0 > … > t_{S−1} in [0, T−1].

    - ``leading``:  t_i = (S−1−i)·⌊T/S⌋ + offset          (S=10: 900, 800, …, 0)
    - ``trailing``: t_i = round(T − i·T/S) − 1 (+ offset)  (S=13: 999, 922, 845, …)
    - ``linspace``: round(linspace(0, T−1, S)) reversed (+ offset)  (S=10: 999, 888, …, 0)

    Rounding is half-to-even (numpy), as in diffusers. Cost O(S).
    """
    T = _check_n_train(n_train)
    S = as_count(n_steps, "n_steps", minimum=1)
    if S > T:
        raise ValueError(f"n_steps must be an integer in [1, n_train={T}], got {n_steps!r}")
    offset = as_count(offset, "offset")
    if spacing == "leading":
        t = (np.arange(S - 1, -1, -1, dtype=np.int64) * (T // S))
    elif spacing == "trailing":
        t = np.round(T - np.arange(S, dtype=np.float64) * (T / S)).astype(np.int64) - 1
    elif spacing == "linspace":
        t = np.round(np.linspace(0.0, T - 1, S))[::-1].astype(np.int64)
    else:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {SPACINGS}")
    t = t + offset
    if t[0] > T - 1:
        raise ValueError(f"offset {offset} pushes the first timestep to {int(t[0])} > T-1 = {T - 1}")
    return t


class TimeGrid:
    """Sampling steps: strictly decreasing timesteps t_0 > … > t_{S−1} in [0, T−1] of a
    :class:`Schedule`, plus ``final_alpha_bar`` (ᾱ after the last step; default 1).

    Per-step float64 vectors (length S, read-only):
    - ``ab``        ab_i = ᾱ[t_i]
    - ``abp``       abp_i = ᾱ[t_{i+1}], or ``final_alpha_bar`` for i = S−1
    - ``beta_tilde``  β̃_i = 1 − ab_i/abp_i
    - ``var_small``   σ²_i = (1−abp_i)/(1−ab_i)·β̃_i  (``fixed_small``)
    - ``var_large``   σ²_i = β̃_i                       (``fixed_large``)
    - ``prev_timesteps``  t_{i+1}, and −1 for the last step (read from the list).

    ``final_alpha_bar`` must satisfy ab_{S−1} ≤ final_alpha_bar ≤ 1 (equality gives an
    identity last step, as diffusers' DDIM with ``set_alpha_to_one=False`` ending at t = 0).
    """

    __slots__ = ("schedule", "timesteps", "final_alpha_bar", "ab", "abp", "beta_tilde",
                 "var_small", "var_large", "prev_timesteps")

    def __init__(self, schedule: Schedule, timesteps: Sequence[int], *,
                 final_alpha_bar: float = 1.0):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
        if hasattr(timesteps, "detach"):
            timesteps = timesteps.detach().cpu().numpy()
        raw = np.asarray(timesteps)
        if raw.ndim != 1 or raw.size < 1:
            raise ValueError(f"timesteps must be a non-empty 1-D list, got shape {raw.shape}")
        if raw.dtype.kind == "f":
            if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
                raise ValueError("timesteps must be integers")
        elif raw.dtype.kind not in "iu":
            raise ValueError(f"timesteps must be integers, got dtype {raw.dtype}")
        t = raw.astype(np.int64)
        T = schedule.n_train
        if t.min() < 0 or t.max() > T - 1:
            raise ValueError(f"timesteps must lie in [0, {T - 1}], got range "
                             f"[{int(t.min())}, {int(t.max())}]")
        if t.size > 1 and np.any(np.diff(t) >= 0):
            bad = int(np.flatnonzero(np.diff(t) >= 0)[0])
            raise ValueError(f"timesteps must be strictly decreasing; t[{bad}] = {int(t[bad])}, "
                             f"t[{bad + 1}] = {int(t[bad + 1])}")
        fab = float(final_alpha_bar)
        ab = schedule.alpha_bar[t]
        if not (math.isfinite(fab) and ab[-1] <= fab <= 1.0):
            raise ValueError(f"final_alpha_bar must lie in [alpha_bar[t_last] = {float(ab[-1])!r}, 1], "
                             f"got {final_alpha_bar!r}")
        abp = np.concatenate([ab[1:], [fab]])
        beta_tilde = 1.0 - ab / abp
        var_small = (1.0 - abp) / (1.0 - ab) * beta_tilde
        sets = object.__setattr__
        sets(self, "schedule", schedule)
        sets(self, "timesteps", _readonly(t))
        sets(self, "final_alpha_bar", fab)
        sets(self, "ab", _readonly(ab))
        sets(self, "abp", _readonly(abp))
        sets(self, "beta_tilde", _readonly(beta_tilde))
        sets(self, "var_small", _readonly(var_small))
        sets(self, "var_large", _readonly(beta_tilde))
        sets(self, "prev_timesteps", _readonly(np.concatenate([t[1:], [-1]])))

    def __setattr__(self, key, value):
        raise AttributeError("TimeGrid is immutable")

    @classmethod
    def spaced(cls, schedule: Schedule, n_steps: int, spacing: str = "leading", *,
               offset: int = 0, final_alpha_bar: float = 1.0) -> "TimeGrid":
        """Grid from :func:`spaced_timesteps` (``leading``/``trailing``/``linspace``)."""
        t = spaced_timesteps(schedule.n_train, n_steps, spacing, offset)
        return cls(schedule, t, final_alpha_bar=final_alpha_bar)

    @property
    def n_steps(self) -> int:
        return int(self.timesteps.size)

    def __len__(self) -> int:
        return self.n_steps

    def prev_timestep(self, t: int) -> int:
        """The timestep after ``t`` in this grid (−1 after the last one), read from the list."""
        idx = np.flatnonzero(self.timesteps == int(t))
        if idx.size == 0:
            raise ValueError(f"timestep {t} is not in this grid")
        return int(self.prev_timesteps[idx[0]])

    def __repr__(self) -> str:
        return (f"TimeGrid(S={self.n_steps}, t=[{int(self.timesteps[0])}…"
                f"{int(self.timesteps[-1])}], final_alpha_bar={self.final_alpha_bar:g})")
