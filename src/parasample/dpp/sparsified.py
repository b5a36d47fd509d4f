"""Repeated k-DPP sampling by domain sparsification (Anari–Liu–Vuong, arXiv 2204.02570),
reconstructed from the paper's abstract and standard theory; **approximate** (each output
within TV ε of the k-DPP).

Preprocessing (once, O(n d²) from features, O(n m²) by Nyström otherwise):

- marginal overestimates p̃_i = min(1, 2 τ_i(α)), τ_i(α) = [L(L+αI)⁻¹]_ii, with α
  bisected (in log α) to the largest value with P(|X_α| ≥ k) ≥ ½, X_α the DPP with
  kernel L/α; then P(i ∈ S) ≤ τ_i(α)/P(|X_α| ≥ k) ≤ p̃_i. Exact from features (or a
  cached spectrum); otherwise Nyström with m = O(k log k) landmarks M: τ̃_i = (L_ii −
  L_{iM}(L_M+αI)⁻¹L_{Mi})/α ≥ τ_i, and the size law from the eigenvalues of L_{:M} L_M⁻¹ L_{M:}.
  Items with L_ii > 0 get p̃_i ≥ 10⁻³·k/n (irreducibility); items with L_ii = 0 never appear
  and get p̃_i = 0.
- the greedy MAP set S₀ (restart start) and the cumulative sums of p̃ (draws ∝ p̃ by
  binary search, O(log n) each).

One down–up step from S (|S| = k), cost O(t log n + t²·(cost of an L entry) + t³),
independent of n:

- **up** (:meth:`SparsifiedKDPPSampler.up`): add t − k i.i.d. draws ∝ p̃; c_i = multiplicity
  in the multiset S ⊎ draws, U = supp;
- **down** (:meth:`SparsifiedKDPPSampler.down_kernel`): the k-DPP on U with kernel
  D^{1/2} L_U D^{1/2}, D = diag(c/p̃), sampled exactly by :func:`sample_exact_k`.

The joint law of (S, T) is F(T)·μ(S)·Π_{i∈S} c_i/p̃_i, so the down step is the exact
conditional of S given T: a data-augmentation Gibbs step, reversible w.r.t. the k-DPP μ for
any positive p̃ (tested by enumerating the transition matrix).

**Number of steps (derived here; checked by enumeration).** With K = max(Σ p̃, k) and
λ = (K+1)/(K+1 + t − k), about the share of the up-step multiset (in p̃ units) that S
contributes, the rule assumes that each step contracts the relative entropy to μ by λ:
KL(law after s steps ‖ μ) ≤ λ^s·H₀, where H₀ = k·log tr L − log k! − log det L_{S₀} ≥
log 1/μ(S₀) (as e_k(λ) ≤ (tr L)^k/k!). Pinsker then gives TV ≤ √(λ^s H₀/2) ≤ ε at

    s(ε) = ⌈ log(H₀/(2ε²)) / log(1/λ) ⌉   (at least 1),

the default ``n_steps``: O(log(k log n / ε) / log(t/k)) steps, so the per-sample cost grows
only through log log n. The contraction is not proved here (the paper proves Õ(1) steps
with unspecified constants). Its leading term holds: from a cold start (μ(S₀) → 0) one step
leaves KL ≈ H₀·P(stay at S₀), P(stay) ≈ (Σ_{S₀} p̃/K)^{t−k} ≤ (1 − 1/K)^{t−k} ≤ K/(K+t−k),
as overestimates give K ≥ Σ_{S₀} p̃ + 1 − μ(S₀); the +1 in λ covers the slower middle phase
measured with p̃ = the exact marginals and the least likely start (without it, KL_s reaches
1.71·λ^s H there). ``python
benchmarks/sparsified_tv.py`` computes the exact output law by enumeration on 264 random
instances (n = 6..9, every k; default t, t = k + 1, and that stress case): the largest
KL_s/(λ^s H) is 0.88 (H = log 1/μ(S₀)) and the largest TV at s(ε) is 0.13·ε (ε = 0.1, 0.05,
0.01); a fixed 4 steps gave TV up to 0.87 there. A smaller user ``n_steps`` warns
(:meth:`tv_bound` gives its bound); the guarantee assumes p̃_i ≥ P(i ∈ S), which the
computed p̃ satisfy.

**t ≥ n.** The multiset then covers the ground set, so a down step costs as much as exact
sampling: the sampler draws exactly with :func:`sample_exact_k` (TV 0; attribute
``exact``); ``n_steps`` is 0.

Modes:

- ``"restart"`` (default): every sample runs ``n_steps`` from S₀; outputs are independent
  and each within TV ε.
- ``"chained"``: continue from the previous output. From an exact start (``start=``) every
  output has exactly law μ; from S₀ each output is within the same ε (the divergence only
  decreases along the chain). Consecutive outputs are correlated.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Literal

import numpy as np

from ..core import as_count
from ..core.rng import RngLike, as_generator
from ._validate import as_subset, require_symmetric_dpp
from .kernel import DPP
from .map import map_greedy
from .spectral import sample_exact_k

__all__ = ["SparsifiedKDPPSampler"]

Mode = Literal["restart", "chained"]


class SparsifiedKDPPSampler:
    """Repeated approximate k-DPP sampler by domain sparsification (module docstring).

    Parameters
    ----------
    dpp : DPP
        The target (likelihood, features, or a K-ensemble without eigenvalue 1).
    k : int
        Sample size.
    eps : float
        TV target of each output: the default ``n_steps`` is the step rule s(ε).
    t : int, optional
        Size of the intermediate multiset; default ⌈2k ln(e·k)⌉, at least k + 1. When
        t ≥ n, samples are exact (:func:`sample_exact_k`).
    n_steps : int, optional
        Down–up steps per sample; default s(ε). Fewer steps than s(ε) warn: the ε
        guarantee then no longer holds (see :meth:`tv_bound`).
    landmarks : int or array of int, optional
        Force the Nyström estimate of τ with this many landmarks (or these items). Default:
        exact τ from features or a cached spectrum, else Nyström with ⌈4 k ln(e k)⌉.
    mode : "restart" | "chained"
    start : array of int, optional
        Initial state (default: the greedy MAP set); needs det L_S > 0. In chained mode an
        exact k-DPP sample here makes every output exact.
    overestimates : array, optional
        Use these p̃ instead of computing them (> 0 wherever L_ii > 0). The ε guarantee
        assumes p̃_i ≥ P(i ∈ S).
    rng : RNG for landmark selection (and the default for :meth:`sample`).

    Every argument is checked before any random draw. Attributes: ``overestimates`` (p̃),
    ``t``, ``n_steps``, ``steps_for_eps`` (s(ε)), ``exact`` (t ≥ n), ``start`` (S₀),
    ``preprocess_seconds``, ``alpha`` (the bisected α; None when p̃ was given), ``state``.
    """

    def __init__(self, dpp: DPP, k: int, *, eps: float = 0.1, t: int | None = None,
                 n_steps: int | None = None, landmarks=None, mode: Mode = "restart",
                 start=None, overestimates=None, rng: RngLike = None):
        t0 = time.perf_counter()
        require_symmetric_dpp(dpp, "SparsifiedKDPPSampler")
        if mode not in ("restart", "chained"):
            raise ValueError(f"mode must be 'restart' or 'chained', got {mode!r}")
        self.dpp, self.n, self.eps, self.mode = dpp, dpp.n, _check_eps(eps), mode
        self.k = k = as_count(k, "k", minimum=1)
        n = self.n
        if k > n:
            raise ValueError(f"k = {k} exceeds the number of items n = {n}")
        if dpp.kind == "correlation" and dpp.has_projection_part:
            raise ValueError(
                "this DPP's K has eigenvalue 1 (no likelihood kernel); the sparsified "
                "sampler needs L — use sample_exact_k"
            )
        user_steps = None if n_steps is None else as_count(n_steps, "n_steps", minimum=1)
        if t is None:
            t = max(math.ceil(2 * k * math.log(math.e * k)), k + 1)
        self.t = as_count(t, "t", minimum=k)
        self.exact = self.t >= n
        if not self.exact and self.t == k:
            raise ValueError(f"t = {t} must exceed k = {k}: the up step adds t − k items")
        landmarks = _check_landmarks(landmarks, k, n)
        diag = np.asarray(dpp.likelihood_diagonal(), dtype=np.float64)
        if overestimates is not None:
            overestimates = _check_overestimates(overestimates, diag)
        if start is None:
            start = map_greedy(dpp, k)
            if start.size < k:
                raise ValueError(f"k = {k} exceeds the numerical rank of L: the greedy start "
                                 f"found only {start.size} independent items")
        self._start = self._check_state(start)
        self._log_inv_start = _log_inv_start_bound(dpp, self._start, diag, k)
        self._rng = gen = as_generator(rng)
        # ---- validated: the first random draws (Nyström landmarks) happen below
        self.alpha: float | None = None
        if overestimates is None:
            tau, self.alpha = _tau_overestimates(dpp, k, diag, landmarks, gen)
            p = np.minimum(1.0, 2.0 * tau)
            overestimates = np.where(diag > 0, np.maximum(p, 1e-3 * k / n), 0.0)
        self.overestimates = overestimates
        self._cum = np.cumsum(overestimates)
        self._features = dpp.kind == "features" and dpp._matrix.shape[1] < self.t
        self._set_steps(user_steps)
        self.state = self._start.copy()
        self.preprocess_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------ the step rule
    def _set_steps(self, user_steps: int | None) -> None:
        """n_steps = s(ε) unless given; fewer than s(ε) warn (0 when t ≥ n: exact)."""
        self.steps_for_eps = 0 if self.exact else self.steps_for(self.eps)
        self.n_steps = self.steps_for_eps if user_steps is None or self.exact else user_steps
        if self.n_steps < self.steps_for_eps:
            warnings.warn(
                f"n_steps = {self.n_steps} is below the {self.steps_for_eps} down–up steps "
                f"that guarantee TV ≤ eps = {self.eps} (bound for {self.n_steps} steps: "
                f"{self.tv_bound():.3g}); the ε guarantee no longer holds — leave n_steps "
                "unset to use the rule", UserWarning, stacklevel=3)

    @property
    def contraction(self) -> float:
        """λ = (K+1)/(K+1 + t − k), K = max(Σ p̃, k): the rule's per-step entropy contraction."""
        mass = max(float(self.overestimates.sum()), float(self.k)) + 1.0
        return mass / (mass + self.t - self.k)

    @property
    def start(self) -> np.ndarray:
        """S₀, the restart state (sorted int64 copy)."""
        return self._start.copy()

    def steps_for(self, eps: float) -> int:
        """s(ε) = ⌈log(H₀/(2ε²))/log(1/λ)⌉ (≥ 1): steps whose bound √(λ^s H₀/2) is ≤ ε."""
        eps = _check_eps(eps)
        target = self._log_inv_start / (2.0 * eps * eps)
        if target <= 1.0:
            return 1
        return max(1, math.ceil(math.log(target) / -math.log(self.contraction)))

    def tv_bound(self, n_steps: int | None = None) -> float:
        """The rule's TV bound √(λ^s H₀/2) after s = ``n_steps`` steps (0 when exact)."""
        if self.exact:
            return 0.0
        s = self.n_steps if n_steps is None else as_count(n_steps, "n_steps")
        return min(1.0, math.sqrt(self.contraction ** s * self._log_inv_start / 2.0))

    # ------------------------------------------------------------------ pieces of a step
    def _check_state(self, S) -> np.ndarray:
        S = as_subset(S, self.n)
        if S.size != self.k:
            raise ValueError(f"a state must be {self.k} distinct items in 0..{self.n - 1}, "
                             f"got {S.size}")
        return S

    def draw_up(self, rng: np.random.Generator) -> np.ndarray:
        """t − k i.i.d. items ∝ p̃ (O(t log n))."""
        u = rng.random(self.t - self.k) * self._cum[-1]
        idx = np.searchsorted(self._cum, u, side="right")
        return np.minimum(idx, self.n - 1).astype(np.int64)

    @staticmethod
    def up(S: np.ndarray, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(U, c): the distinct items of the multiset S ⊎ draws and their multiplicities."""
        return np.unique(np.concatenate((S, draws)), return_counts=True)

    def down_weights(self, U: np.ndarray, c: np.ndarray) -> np.ndarray:
        """D = c/p̃ on U (the tilt that makes the down step the exact conditional)."""
        return c / self.overestimates[U]

    def down_kernel(self, U: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The |U|×|U| kernel D^{1/2} L_U D^{1/2} of the down k-DPP (for tests)."""
        s = np.sqrt(self.down_weights(U, c))
        A = self.dpp.likelihood_submatrix(U) * np.outer(s, s)
        return (A + A.T) / 2.0

    def _down_dpp(self, U: np.ndarray, c: np.ndarray) -> DPP:
        s = np.sqrt(self.down_weights(U, c))
        if self._features:  # rows of B scaled: the d×d dual spectrum
            return DPP.from_features(self.dpp._matrix[U] * s[:, None])
        return DPP.from_likelihood(self.down_kernel(U, c))

    def down(self, U: np.ndarray, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Exact k-DPP draw on U with kernel D^{1/2} L_U D^{1/2} (sorted original ids)."""
        local = sample_exact_k(self._down_dpp(U, c), self.k, rng=rng)
        return U[local]

    def step(self, S, *, rng: RngLike = None, draws=None) -> np.ndarray:
        """One down–up step from S; ``draws`` fixes the up-draws (else drawn ∝ p̃)."""
        S = self._check_state(S)
        if draws is not None:
            draws = np.asarray(draws, dtype=np.int64)
            if draws.shape != (self.t - self.k,) or np.any((draws < 0) | (draws >= self.n)):
                raise ValueError(f"draws must be {self.t - self.k} items in 0..{self.n - 1}")
        gen = as_generator(rng)
        if draws is None:
            draws = self.draw_up(gen)
        U, c = self.up(S, draws)
        return self.down(U, c, gen)

    # ------------------------------------------------------------------ public sampling
    def reset(self, start=None) -> None:
        """Set the chain state (default: the start set S₀)."""
        self.state = self._start.copy() if start is None else self._check_state(start)

    def sample(self, *, rng: RngLike = None) -> np.ndarray:
        """One sample (sorted int64, size k): ``n_steps`` down–up steps from S₀ (restart)
        or from the previous output (chained); an exact draw when t ≥ n."""
        gen = self._rng if rng is None else as_generator(rng)
        if self.exact:
            S = sample_exact_k(self.dpp, self.k, rng=gen)
        else:
            S = self._start if self.mode == "restart" else self.state
            for _ in range(self.n_steps):
                U, c = self.up(S, self.draw_up(gen))
                S = self.down(U, c, gen)
        self.state = S
        return S.copy()

    def __repr__(self) -> str:
        return (f"SparsifiedKDPPSampler(n={self.n}, k={self.k}, t={self.t}, "
                f"n_steps={self.n_steps}, mode={self.mode!r}, exact={self.exact})")


# ----------------------------------------------------------------------------- checks
def _check_eps(eps) -> float:
    ok = isinstance(eps, (int, float, np.integer, np.floating)) and not isinstance(eps, bool)
    if not (ok and 0.0 < eps < 1.0):
        raise ValueError(f"eps must be a number in (0, 1), got {eps!r}")
    return float(eps)


def _check_landmarks(landmarks, k: int, n: int):
    """None, a count (≥ k, capped at n later) or an array of distinct items."""
    if landmarks is None:
        return None
    if np.ndim(landmarks) == 0:
        return as_count(landmarks, "landmarks", minimum=k)
    M = np.asarray(landmarks)
    if M.ndim != 1 or M.size == 0 or not np.issubdtype(M.dtype, np.integer):
        raise ValueError("landmarks must be a count or a 1-D array of integer items")
    M = np.unique(M.astype(np.int64))
    if M[0] < 0 or M[-1] >= n:
        raise ValueError(f"landmark items must lie in 0..{n - 1}")
    return M


def _check_overestimates(p, diag: np.ndarray) -> np.ndarray:
    p = np.array(p, dtype=np.float64)
    if p.shape != diag.shape or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("overestimates must be a finite non-negative (n,) array")
    if np.any((p <= 0) & (diag > 0)):
        raise ValueError("overestimates must be > 0 for every item with L_ii > 0")
    return p


def _log_inv_start_bound(dpp: DPP, S: np.ndarray, diag: np.ndarray, k: int) -> float:
    """H₀ = k log tr L − log k! − log det L_S ≥ log 1/μ(S) (e_k(λ) ≤ (tr L)^k/k!). O(k³)."""
    A = dpp.likelihood_submatrix(S)
    sign, logdet = np.linalg.slogdet((A + A.T) / 2.0)
    if sign <= 0 or not np.isfinite(logdet):
        raise ValueError("the start set has probability zero under the k-DPP (det L_S = 0): "
                         "pass a start set with det L_S > 0")
    return max(0.0, k * math.log(float(diag.sum())) - math.lgamma(k + 1) - float(logdet))


# ----------------------------------------------------------------------------- preprocessing
def _size_tail(lam: np.ndarray, alpha: float, k: int) -> float:
    """P(|X_α| ≥ k) for the DPP with eigenvalues λ/α (Poisson-binomial, truncated at k)."""
    mu = lam / (lam + alpha)
    q = np.zeros(k)  # pmf of |X| on 0..k−1
    q[0] = 1.0
    for m in mu:
        q[1:] = q[1:] * (1.0 - m) + q[:-1] * m
        q[0] *= 1.0 - m
    return float(max(0.0, 1.0 - q.sum()))


def _bisect_alpha(lam: np.ndarray, k: int) -> float:
    """Largest α (to ~1e-6 relative) with P(|X_α| ≥ k) ≥ ½."""
    lam = lam[lam > 0]
    if lam.size < k:
        raise ValueError(f"k exceeds the rank of L (k = {k}, rank ≈ {lam.size})")
    hi = float(lam.sum()) * 4.0 + 1e-300
    while _size_tail(lam, hi, k) >= 0.5:
        hi *= 16.0
    lo = float(np.sort(lam)[-k]) * 1e-3
    while _size_tail(lam, lo, k) < 0.5:
        lo /= 16.0
        if lo < 1e-300:
            raise ValueError("could not bracket α: L is too ill-conditioned at size k")
    llo, lhi = math.log(lo), math.log(hi)
    while lhi - llo > 1e-6:
        mid = 0.5 * (llo + lhi)
        if _size_tail(lam, math.exp(mid), k) >= 0.5:
            llo = mid
        else:
            lhi = mid
    return math.exp(llo)


def _tau_overestimates(dpp: DPP, k: int, diag: np.ndarray, landmarks, rng) -> tuple:
    """(τ or τ̃ ≥ τ at the bisected α, α)."""
    if landmarks is None and (dpp.kind == "features" or "spectrum" in dpp.__dict__):
        if dpp.kind == "features":  # τ_i = Σ_j (b_i·w_j)² / (λ_j + α), BᵀB = W Λ Wᵀ
            B = dpp._matrix
            lam, W = np.linalg.eigh(B.T @ B)
            lam = np.maximum(lam, 0.0)
            Y = B @ W
        else:
            s = dpp.spectrum
            lam = np.exp(s.log_lam)
            Y = s.V * np.sqrt(lam)
        alpha = _bisect_alpha(lam, k)
        tau = (Y * Y) @ (1.0 / (lam + alpha))
        return np.clip(tau, 0.0, None), alpha
    # Nyström with landmarks M
    n = dpp.n
    if landmarks is None or np.isscalar(landmarks):
        m = math.ceil(4 * k * math.log(math.e * k)) if landmarks is None else int(landmarks)
        m = min(n, max(m, k))
        pos = np.flatnonzero(diag > 0)
        if pos.size <= m:
            M = pos
        else:  # landmarks ∝ L_ii without replacement
            M = np.sort(rng.choice(pos, size=m, replace=False, p=diag[pos] / diag[pos].sum()))
    else:
        M = np.unique(np.asarray(landmarks, dtype=np.int64))
    C = dpp.likelihood_submatrix(np.arange(n), M)           # n×m
    LM = C[M]
    LM = (LM + LM.T) / 2.0
    theta, Q = np.linalg.eigh(LM)
    theta = np.maximum(theta, 0.0)
    Z = C @ Q
    keep = theta > theta.max(initial=0.0) * 1e-12
    F = Z[:, keep] / np.sqrt(theta[keep])                   # L_{:M} L_M⁻¹ L_{M:} = F Fᵀ
    lam_ny = np.linalg.eigvalsh(F.T @ F)
    alpha = _bisect_alpha(np.maximum(lam_ny, 0.0), k)
    tau = (diag - (Z * Z) @ (1.0 / (theta + alpha))) / alpha
    return np.clip(tau, 0.0, None), alpha
