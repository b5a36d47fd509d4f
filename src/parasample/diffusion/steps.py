"""Sampling steps: a deterministic mean μ_i(x, x̂0) plus state-independent noise σ_i·z_i.

Every sampler moves a state with the same method,

    advance(i, x, x̂0, z) = x + ((μ_i − x) + σ_i·z)        ("drift form", = μ_i + σ_i·z),

so that sequential, Picard and ASD runs agree bitwise wherever the maths allows. ``drift``
returns μ_i − x. When the last step ends at ᾱ = 1 (``terminal_x0``) its output is exactly x̂0
(c0 = 1, c1 = 0, σ = 0), and ``advance`` returns x̂0 itself rather than x + (x̂0 − x).

``i`` may be an int or a 1-D sequence of step indices (``range``, list, numpy or Long tensor);
with a sequence of length L the tensors carry a leading axis of length L (e.g. (L, B, *shape))
and every coefficient is broadcast along it: element-wise this is the same arithmetic, so a
windowed evaluation matches the one-step one bitwise.

Coefficients are float64 numpy vectors of length S; tensors are cast once per (dtype, device).
Cost: O(B·D) element-wise work per step, no model call.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from .schedules import Schedule, TimeGrid

__all__ = ["DDPMStep", "DDIMStep", "Step"]

Index = Union[int, Sequence[int], np.ndarray, torch.Tensor, range, slice]


class Step:
    """Common machinery of :class:`DDPMStep` and :class:`DDIMStep`.

    Attributes: ``grid`` (:class:`TimeGrid`), ``timesteps`` (int64, S), ``sigma`` (float64, S:
    the noise std of each step), ``n_steps``, ``is_ode`` (all σ = 0), ``terminal_x0`` (the
    last step returns x̂0 exactly), ``c0``/``c1`` (float64, S: μ_i = c0_i·x̂0 + c1_i·x when ε̂
    is recomputed from x̂0; the step is affine in (x̂0, x)).
    """

    _coef_names: tuple = ()

    def __init__(self, grid: TimeGrid):
        if not isinstance(grid, TimeGrid):
            raise TypeError(f"grid must be a TimeGrid, got {type(grid).__name__}")
        self.grid = grid
        self.timesteps = grid.timesteps
        self._cache: dict = {}

    # ------------------------------------------------------------ properties
    @property
    def n_steps(self) -> int:
        return self.grid.n_steps

    @property
    def schedule(self) -> Schedule:
        return self.grid.schedule

    @property
    def is_ode(self) -> bool:
        """True when no step adds noise (DDIM with η = 0)."""
        return bool(np.all(self.sigma == 0.0))

    @property
    def terminal_x0(self) -> bool:
        """True when the last step ends at ᾱ = 1, so its output is exactly x̂0."""
        return bool(self.grid.abp[-1] == 1.0)

    def __len__(self) -> int:
        return self.n_steps

    # ------------------------------------------------------------ tensors
    def coef(self, name: str, i: Index, dtype: torch.dtype, device, ndim: int) -> torch.Tensor:
        """Coefficient vector ``name`` at step(s) ``i`` as a tensor of ``dtype`` on ``device``:
        0-d for an int ``i``; shape (L, 1, …, 1) with ``ndim`` axes for a sequence."""
        key = (name, dtype, torch.device(device))
        tab = self._cache.get(key)
        if tab is None:
            tab = torch.from_numpy(np.array(getattr(self, name), dtype=np.float64)).to(
                device=device, dtype=dtype)
            self._cache[key] = tab
        if isinstance(i, (int, np.integer)):
            return tab[int(i)]
        if isinstance(i, slice):
            sel = tab[i]
        else:
            idx = torch.as_tensor(np.array(i, dtype=np.int64) if not isinstance(i, torch.Tensor)
                                  else i.to("cpu"), dtype=torch.long).to(tab.device)
            sel = tab[idx]
        return sel.reshape(sel.shape + (1,) * (ndim - 1))

    def timestep_tensor(self, device) -> torch.Tensor:
        """The grid timesteps as a LongTensor on ``device`` (cached)."""
        key = ("timesteps", torch.long, torch.device(device))
        if key not in self._cache:
            self._cache[key] = torch.tensor(self.timesteps.tolist(), dtype=torch.long).to(device)
        return self._cache[key]

    def _check_index(self, i: Index) -> None:
        if isinstance(i, (int, np.integer)) and not (0 <= int(i) < self.n_steps):
            raise IndexError(f"step index {i} out of range [0, {self.n_steps})")

    def _is_last(self, i: Index) -> bool:
        return isinstance(i, (int, np.integer)) and int(i) == self.n_steps - 1

    # ------------------------------------------------------------ the step
    def mean(self, i: Index, x: torch.Tensor, x0_hat: torch.Tensor,
             eps_hat: Optional[torch.Tensor] = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def drift(self, i: Index, x: torch.Tensor, x0_hat: torch.Tensor,
              eps_hat: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Δ_i(x) = μ_i(x, x̂0) − x."""
        return self.mean(i, x, x0_hat, eps_hat) - x

    def advance(self, i: Index, x: torch.Tensor, x0_hat: torch.Tensor,
                z: Optional[torch.Tensor], eps_hat: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x + ((μ_i − x) + σ_i·z); exactly x̂0 at a ``terminal_x0`` last step.

        ``z`` may be ``None`` (no noise term; required only to be given when σ_i ≠ 0 is to
        be applied — ODE steps pass ``None``). Cost O(numel(x)).
        """
        self._check_index(i)
        if self.terminal_x0 and self._is_last(i):
            return x0_hat.to(x.dtype)
        d = self.drift(i, x, x0_hat, eps_hat)
        if z is None:
            return x + d
        s = self.coef("sigma", i, x.dtype, x.device, x.ndim)
        return x + (d + s * z)


class DDPMStep(Step):
    """Ancestral DDPM step: μ = c0·x̂0 + c1·x, noise std σ.

    c0_i = √abp_i·β̃_i/(1−ab_i), c1_i = √(ab_i/abp_i)·(1−abp_i)/(1−ab_i);
    σ²_i = (1−abp_i)/(1−ab_i)·β̃_i (``fixed_small``) or β̃_i (``fixed_large``).
    When abp = 1 the last step is exactly x̂0: c0 = 1, c1 = 0, σ = 0 (also for fixed_large).
    """

    VARIANCES = ("fixed_small", "fixed_large")

    def __init__(self, grid: TimeGrid, variance: str = "fixed_small"):
        super().__init__(grid)
        if variance not in self.VARIANCES:
            raise ValueError(f"unknown variance {variance!r}; choose one of {self.VARIANCES}")
        self.variance = variance
        g = grid
        c0 = np.sqrt(g.abp) * g.beta_tilde / (1.0 - g.ab)
        c1 = np.sqrt(g.ab / g.abp) * (1.0 - g.abp) / (1.0 - g.ab)
        var = (g.var_small if variance == "fixed_small" else g.var_large).copy()
        if g.abp[-1] == 1.0:
            c0[-1], c1[-1], var[-1] = 1.0, 0.0, 0.0
        self.c0 = c0
        self.c1 = c1
        self.sigma = np.sqrt(var)
        for a in (self.c0, self.c1, self.sigma):
            a.setflags(write=False)

    @classmethod
    def from_schedule(cls, schedule: Schedule, n_steps: int, spacing: str = "leading", *,
                      variance: str = "fixed_small", offset: int = 0,
                      final_alpha_bar: float = 1.0) -> "DDPMStep":
        return cls(TimeGrid.spaced(schedule, n_steps, spacing, offset=offset,
                                   final_alpha_bar=final_alpha_bar), variance=variance)

    def mean(self, i, x, x0_hat, eps_hat=None):
        """μ_i = c0_i·x̂0 + c1_i·x (ε̂ unused)."""
        c0 = self.coef("c0", i, x.dtype, x.device, x.ndim)
        c1 = self.coef("c1", i, x.dtype, x.device, x.ndim)
        return c0 * x0_hat + c1 * x

    def __repr__(self) -> str:
        return f"DDPMStep({self.grid!r}, variance={self.variance!r})"


class DDIMStep(Step):
    """DDIM step: μ = √abp·x̂0 + √max(0, 1−abp−s²)·ε̂, noise std s = η·σ_i (σ_i fixed_small).

    ε̂ is recomputed from the post-processed x̂0, ε̂ = (x − √ab·x̂0)/√(1−ab), unless
    ``raw_eps=True`` (then the model's own ε̂ must be passed, as diffusers does without
    ``use_clipped_model_output``). η = 0 is an ODE step; η = 1 equals DDPM fixed_small.

    Attributes ``c_x0`` = √abp and ``c_eps`` = √max(0, 1−abp−s²); ``c0``/``c1`` give the
    equivalent affine form μ = c0·x̂0 + c1·x (recomputed ε̂).
    """

    def __init__(self, grid: TimeGrid, eta: float = 0.0, raw_eps: bool = False):
        super().__init__(grid)
        eta = float(eta)
        if not (0.0 <= eta and np.isfinite(eta)):
            raise ValueError(f"eta must be finite and non-negative, got {eta!r}")
        self.eta = eta
        self.raw_eps = bool(raw_eps)
        g = grid
        s = eta * np.sqrt(g.var_small)
        if g.abp[-1] == 1.0:
            s[-1] = 0.0
        self.sigma = s
        self.c_x0 = np.sqrt(g.abp)
        self.c_eps = np.sqrt(np.maximum(0.0, 1.0 - g.abp - s * s))
        self._sqrt_ab = np.sqrt(g.ab)
        self._sqrt_1mab = np.sqrt(1.0 - g.ab)
        self.c1 = self.c_eps / self._sqrt_1mab
        self.c0 = self.c_x0 - self.c_eps * self._sqrt_ab / self._sqrt_1mab
        for a in (self.sigma, self.c_x0, self.c_eps, self.c0, self.c1):
            a.setflags(write=False)

    @classmethod
    def from_schedule(cls, schedule: Schedule, n_steps: int, eta: float = 0.0,
                      spacing: str = "leading", *, raw_eps: bool = False, offset: int = 0,
                      final_alpha_bar: float = 1.0) -> "DDIMStep":
        return cls(TimeGrid.spaced(schedule, n_steps, spacing, offset=offset,
                                   final_alpha_bar=final_alpha_bar), eta=eta, raw_eps=raw_eps)

    def mean(self, i, x, x0_hat, eps_hat=None):
        """μ_i = √abp_i·x̂0 + c_eps_i·ε̂."""
        if self.raw_eps:
            if eps_hat is None:
                raise ValueError("DDIMStep(raw_eps=True) needs the model's eps_hat")
            eps = eps_hat
        else:
            a = self.coef("_sqrt_ab", i, x.dtype, x.device, x.ndim)
            b = self.coef("_sqrt_1mab", i, x.dtype, x.device, x.ndim)
            eps = (x - a * x0_hat) / b
        cx = self.coef("c_x0", i, x.dtype, x.device, x.ndim)
        ce = self.coef("c_eps", i, x.dtype, x.device, x.ndim)
        return cx * x0_hat + ce * eps

    def __repr__(self) -> str:
        return f"DDIMStep({self.grid!r}, eta={self.eta:g}, raw_eps={self.raw_eps})"
