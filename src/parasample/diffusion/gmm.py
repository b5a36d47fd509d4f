"""Closed-form test denoisers: Gaussian mixtures, a single Gaussian, a point mass.

**Gaussian mixture** p(x0) = Σ_k π_k N(μ_k, Σ_k). With x = a·x0 + b·ε (a = √ᾱ_t, b = √(1−ᾱ_t)),
x ~ Σ_k π_k N(a·μ_k, C_k), C_k = a²Σ_k + b²I, and the exact posterior mean is

    x̂0 = E[x0 | x] = Σ_k r_k [μ_k + a·Σ_k C_k⁻¹ (x − a·μ_k)],   r_k ∝ π_k N(x; a·μ_k, C_k).

Each Σ_k = U_k diag(λ_k) U_kᵀ is eigendecomposed once, so for any a, with w = U_kᵀ(x − a·μ_k):
C_k⁻¹ has eigenvalues 1/(a²λ + b²), log det C_k = Σ log(a²λ + b²), and
Σ_k C_k⁻¹(x − aμ_k) = U_k (λ/(a²λ + b²) ⊙ w). Responsibilities are a log-sum-exp softmax in
float64. Cost per row: O(K·d²). For d ≤ 8 the contractions are element-wise products and
sums (no BLAS), so a row's result does not depend on the rest of the batch (bitwise
batch-invariance, used by the Picard-equals-sequential tests).

**Single Gaussian** N(μ, s²I): x̂0 = μ + g·(x − a·μ), g = a·s²/(a²s² + b²). The discrete chain
of any step with μ_i = c0·x̂0 + c1·x is affine-Gaussian, x' = A_i·x + B_i + σ_i·z with
A_i = c0·g + c1, B_i = c0·(1 − g·a)·μ, so the exact output law is N(m_S, v_S·I) from
m ← A·m + B, v ← A²·v + σ², m = 0, v = 1 (:func:`single_gaussian_law`).

**Point mass** at μ: D ≡ μ, declared as an x0-prediction (an ε round trip would break exact
constancy).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ..core import as_count
from ..core.rng import RngLike, as_generator
from .model import Denoiser
from .schedules import Schedule
from .steps import Step

__all__ = [
    "GaussianMixtureDenoiser", "SingleGaussianDenoiser", "PointMassDenoiser", "ring_gmm",
    "single_gaussian_law",
]

_SMALL_D = 8


def _x0_to(prediction: str, x, x0, a, b):
    """Express an exact x̂0 as the requested raw model output (table in :mod:`.model`)."""
    if prediction == "x0":
        return x0
    eps = (x - a * x0) / b
    if prediction == "epsilon":
        return eps
    return a * eps - b * x0  # "v"


class _ClosedForm(Denoiser):
    """A Denoiser whose ``fn`` computes the exact x̂0 in float64 from ``posterior_mean``."""

    def __init__(self, schedule: Schedule, prediction: str, clip_x0, dim: int):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
        self.dim = int(dim)
        self._dev_cache: dict = {}
        super().__init__(self._fn, schedule, prediction=prediction, clip_x0=clip_x0,
                         dtype=torch.float64, device="cpu")

    def _ab(self, t: torch.Tensor, device):
        sa, sb = self._table(torch.float64, device)
        return sa[t], sb[t]

    def _fn(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected rows of shape (N, {self.dim}), got {tuple(x.shape)}")
        xd = x.to(torch.float64)
        a, b = self._ab(t, x.device)
        x0 = self.posterior_mean(xd, t)
        return _x0_to(self.prediction, xd, x0, a[:, None], b[:, None])

    def _consts(self, device) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError


class GaussianMixtureDenoiser(_ClosedForm):
    """Exact denoiser of Σ_k π_k N(μ_k, Σ_k) in R^d for a training ``schedule``.

    ``weights`` (K,) positive (normalised here); ``means`` (K, d); ``covs`` (K, d, d)
    symmetric PSD, or (K, d) diagonals, or (K,) isotropic variances. ``prediction`` is the
    raw output type emitted (default ``"x0"``, the exact posterior mean). Samples have shape
    (d,); default state dtype float64 on the CPU (any device works).
    """

    def __init__(self, weights, means, covs, *, schedule: Schedule, prediction: str = "x0",
                 clip_x0=None):
        w = np.asarray(weights, dtype=np.float64)
        mu = np.asarray(means, dtype=np.float64)
        if w.ndim != 1 or w.size < 1:
            raise ValueError(f"weights must be a non-empty 1-D array, got shape {w.shape}")
        K = w.size
        if mu.ndim != 2 or mu.shape[0] != K:
            raise ValueError(f"means must have shape ({K}, d), got {mu.shape}")
        d = mu.shape[1]
        if not (np.all(np.isfinite(w)) and np.all(w > 0)):
            raise ValueError("weights must be finite and positive")
        if not np.all(np.isfinite(mu)):
            raise ValueError("means contain NaN or inf")
        c = np.asarray(covs, dtype=np.float64)
        if c.shape == (K,):
            c = c[:, None, None] * np.eye(d)
        elif c.shape == (K, d):
            c = np.stack([np.diag(row) for row in c])
        elif c.shape != (K, d, d):
            raise ValueError(f"covs must have shape ({K}, {d}, {d}), ({K}, {d}) or ({K},), "
                             f"got {c.shape}")
        if not np.all(np.isfinite(c)):
            raise ValueError("covs contain NaN or inf")
        if not np.allclose(c, np.swapaxes(c, 1, 2), rtol=1e-10, atol=1e-12):
            raise ValueError("covs must be symmetric")
        c = 0.5 * (c + np.swapaxes(c, 1, 2))
        lam, U = np.linalg.eigh(c)
        scale = max(1.0, float(np.abs(lam).max()))
        if lam.min() < -1e-10 * scale:
            k, j = np.unravel_index(np.argmin(lam), lam.shape)
            raise ValueError(f"covs[{k}] is not PSD: eigenvalue {lam[k, j]!r}")
        lam = np.maximum(lam, 0.0)
        for name, arr in (("weights", w / w.sum()), ("means", mu), ("covs", c),
                          ("eigvals", lam), ("eigvecs", U)):
            arr = arr.copy()
            arr.setflags(write=False)
            setattr(self, name, arr)
        super().__init__(schedule, prediction, clip_x0, d)

    @property
    def n_components(self) -> int:
        return int(self.weights.size)

    def _consts(self, device) -> dict:
        key = torch.device(device)
        if key not in self._dev_cache:
            f = lambda a: torch.from_numpy(np.array(a, dtype=np.float64)).to(key)  # noqa: E731
            self._dev_cache[key] = {"logw": f(np.log(self.weights)), "mu": f(self.means),
                                    "lam": f(self.eigvals), "U": f(self.eigvecs)}
        return self._dev_cache[key]

    def posterior_mean(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[x0 | x_t = x] for rows x (N, d) float64 at training timesteps t (N,)."""
        c = self._consts(x.device)
        a, b = self._ab(t, x.device)
        a3, b3 = a[:, None, None], b[:, None, None]
        mu, lam, U = c["mu"], c["lam"], c["U"]
        y = x[:, None, :] - a3 * mu[None]                         # (N, K, d)
        small = self.dim <= _SMALL_D
        if small:
            w = (y[:, :, :, None] * U[None]).sum(2)                # Uᵀ y
        else:
            w = torch.einsum("nki,kij->nkj", y, U)
        den = a3 * a3 * lam[None] + b3 * b3                       # (N, K, d)
        logp = c["logw"][None] - 0.5 * ((w * w / den).sum(-1) + torch.log(den).sum(-1)
                                        + self.dim * math.log(2.0 * math.pi))
        r = torch.exp(logp - torch.logsumexp(logp, dim=1, keepdim=True))   # (N, K)
        gw = (a3 * lam[None] / den) * w
        if small:
            m = mu[None] + (gw[:, :, None, :] * U[None]).sum(-1)   # U (g ⊙ w)
        else:
            m = mu[None] + torch.einsum("nkj,kij->nki", gw, U)
        return (r[:, :, None] * m).sum(1)

    def sample_data(self, n: int, *, rng: RngLike = None) -> np.ndarray:
        """n i.i.d. draws from the mixture itself (numpy, (n, d)); O(n·d²)."""
        n = as_count(n, "n")
        g = as_generator(rng)
        k = g.choice(self.n_components, size=n, p=self.weights)
        z = g.standard_normal((n, self.dim))
        root = self.eigvecs * np.sqrt(self.eigvals)[:, None, :]   # U diag(√λ)
        return self.means[k] + np.einsum("nij,nj->ni", root[k], z)


def ring_gmm(schedule: Optional[Schedule] = None, *, n_modes: int = 8, radius: float = 4.0,
             std: float = 0.3, prediction: str = "x0") -> GaussianMixtureDenoiser:
    """The ring test fixture: ``n_modes`` equal-weight isotropic modes (std ``std``) on a circle of
    ``radius`` in 2-D (defaults 8, 4, 0.3); ``schedule`` defaults to ``Schedule.linear()``."""
    n_modes = as_count(n_modes, "n_modes", minimum=1)
    if not (radius >= 0 and std > 0):
        raise ValueError(f"need radius >= 0 and std > 0, got radius={radius!r}, std={std!r}")
    schedule = Schedule.linear() if schedule is None else schedule
    ang = 2.0 * np.pi * np.arange(n_modes) / n_modes
    means = radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    return GaussianMixtureDenoiser(np.full(n_modes, 1.0 / n_modes), means,
                                   np.full(n_modes, std ** 2), schedule=schedule,
                                   prediction=prediction)


class SingleGaussianDenoiser(_ClosedForm):
    """Exact (affine) denoiser of N(mean, std²·I): x̂0 = μ + g·(x − a·μ), g = a·s²/(a²s² + b²)."""

    def __init__(self, mean, std: float, *, schedule: Schedule, prediction: str = "x0",
                 clip_x0=None):
        mu = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        if mu.ndim != 1 or not np.all(np.isfinite(mu)):
            raise ValueError("mean must be a finite 1-D vector")
        if not (float(std) > 0 and math.isfinite(float(std))):
            raise ValueError(f"std must be positive and finite, got {std!r}")
        mu = mu.copy()
        mu.setflags(write=False)
        self.mean = mu
        self.std = float(std)
        super().__init__(schedule, prediction, clip_x0, mu.size)

    def _consts(self, device) -> dict:
        key = torch.device(device)
        if key not in self._dev_cache:
            self._dev_cache[key] = {"mu": torch.from_numpy(np.array(self.mean)).to(key)}
        return self._dev_cache[key]

    def posterior_mean(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mu = self._consts(x.device)["mu"]
        a, b = self._ab(t, x.device)
        s2 = self.std ** 2
        g = (a * s2 / (a * a * s2 + b * b))[:, None]
        return mu[None] + g * (x - a[:, None] * mu[None])


def single_gaussian_law(step: Step, mean, std: float):
    """Exact output law N(m_S, v_S·I) of ``step``'s discrete chain started at N(0, I) for the
    data law N(mean, std²·I): m ← A_i·m + B_i, v ← A_i²·v + σ_i². Returns (m_S (d,), v_S).

    Valid for any step with μ_i = c0_i·x̂0 + c1_i·x (DDPM; DDIM with ε̂ recomputed, or raw ε̂
    of this x0-exact model). Cost O(S·d), float64.
    """
    if not isinstance(step, Step):
        raise TypeError(f"step must be a DDPMStep or DDIMStep, got {type(step).__name__}")
    mu = np.atleast_1d(np.asarray(mean, dtype=np.float64))
    s2 = float(std) ** 2
    if not s2 > 0:
        raise ValueError(f"std must be positive, got {std!r}")
    m = np.zeros_like(mu)
    v = 1.0
    for i in range(step.n_steps):
        ab = step.grid.ab[i]
        a, b2 = math.sqrt(ab), 1.0 - ab
        g = a * s2 / (ab * s2 + b2)
        A = step.c0[i] * g + step.c1[i]
        Bv = step.c0[i] * (1.0 - g * a) * mu
        m = A * m + Bv
        v = A * A * v + step.sigma[i] ** 2
    return m, v


class PointMassDenoiser(_ClosedForm):
    """D ≡ ``point`` (any per-sample shape), prediction ``"x0"``. For DDPM/DDIM steps every
    draft equals the target, which makes ASD bitwise equal to sequential."""

    def __init__(self, point, *, schedule: Schedule):
        p = np.asarray(point, dtype=np.float64)
        if p.ndim < 1 or not np.all(np.isfinite(p)):
            raise ValueError("point must be a finite array with at least one axis")
        p = p.copy()
        p.setflags(write=False)
        self.point = p
        super().__init__(schedule, "x0", None, p.size)

    def _fn(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.point.shape:
            raise ValueError(f"expected rows of shape (N, {self.point.shape}), got {tuple(x.shape)}")
        key = torch.device(x.device)
        if key not in self._dev_cache:
            self._dev_cache[key] = torch.from_numpy(np.array(self.point)).to(key)
        return self._dev_cache[key].expand(x.shape).clone()

    def posterior_mean(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self._fn(x, t)
