"""Approximate parallel sampling for k-NDPPs and partition-constrained DPPs by batched
rejection with a capped acceptance ratio (Anari–Burgess–Tian–Vuong,
arXiv 2203.11190).

**Target.** μ on k-sets, one of

- a k-NDPP, μ(S) ∝ det L_S for |S| = k, L + Lᵀ ⪰ 0 (:class:`NonsymmetricDPP`);
- a symmetric k-DPP (:class:`DPP`; then C = 1 makes the sampler exact);
- a partition-constrained DPP, μ(S) ∝ det L_S · 1[|S ∩ P_j| = c_j ∀j]
  (:class:`PartitionConstraint`, the arguments of :func:`.partition.sample_partition`
  bundled in one object).

**The chain being batched** is that of :mod:`.parallel`: with pinned A and r = k − |A| it
draws i with probability p_i / r, p_i = P(i∈S | A⊆S); ℓ of its steps form the ordered tuple
(i_1..i_ℓ) with probability T = P(B⊆S | A⊆S)·(r−ℓ)!/r!, B = {i_1..i_ℓ}.

**A round.** ℓ = max(1, ⌊r^{1/2−c}⌋) unless ``window`` is given (capped at r).

1. propose R tuples of ℓ i.i.d. draws from q = p/Σp, R = ⌈log(1/δ)/(−log(1 − 1/(C M_ℓ)))⌉
   (at most 4096; a round where nothing is accepted is retried);
2. score ρ_j = T(B_j)/q(B_j) = [P(B_j⊆S|A)/Π_t p_{i_t}] · r^ℓ (r−ℓ)!/r! (0 on repeats),
   in log space;
3. accept tuple j with probability min(1, ρ_j/(C M_ℓ)), M_ℓ = Π_{t<ℓ} r/(r−t); take the
   FIRST accepted tuple and set A ← A ∪ B.

ℓ = 1 gives ρ ≡ 1: no acceptance uniform is drawn and the round is one step of the plain
sequential chain (exact; pathwise equal to it on shared uniforms).

**Error (derived here; checked by enumeration in the tests).** A round's output law is
Q ∝ q·min(1, ρ/(CM)) = min(CM q, T)/(CM), normalised by (1 − η)/(CM) with

    η(A) = Σ_x (T(x) − CM q(x))₊ = E_q[(ρ − CM)₊].

Since Q ≥ T wherever ρ ≤ CM and T − Q ≤ T − CMq elsewhere, TV(Q, T) = Σ(T − Q)₊ ≤ η(A);
for symmetric k-DPPs ρ ≤ M_ℓ (negative correlation), so η = 0 when C ≥ 1. Replacing the
exact steps one at a time (hybrid argument) bounds the TV of the whole sample by
E[Σ_rounds η(A_t)] along the approximate chain. The sampler reports ``tv_bound`` =
Σ over pinned states of the mean of (ρ_j − C M_ℓ)₊ over all candidates scored at that
state (retries pooled): an unbiased estimate of that bound (per sample it is noisy; average
it over samples). Acceptance per candidate is (1 − η)/(C M_ℓ). A candidate whose L_X is
singular to working precision (σ_min < 100·|X|·ε·σ_max) counts as zero mass.

**Counting oracles.**

- k-(N)DPP: Σ_{|S|=k, S⊇X} det L_S = det L_X · e_{k−|X|}(L/X) with L/X the Schur
  complement. e_r of a real matrix M with M + Mᵀ ⪰ 0 is computed from its eigenvalues as
  the degree-r coefficient of Π_real (1 + λz) · Π_{Im λ>0} (1 + 2Re λ z + |λ|² z²): every
  factor has non-negative coefficients (Re λ ≥ 0), so the log-space product has no
  cancellation. The marginals at a state come from one eigendecomposition M = U Λ U⁻¹:
  p_i = Re Σ_j U_ij (U⁻¹)_ji λ_j e_{r−1}(λ_{−j}) / e_r(λ), with leave-one-factor-out
  coefficients from prefix/suffix log tables; if they fail the check Σp = r they are
  recomputed as ratios of counts. O(n³) per evaluation (batched over the candidates);
  candidates of a kernel with rank d ≤ 3n/4 are counted in the d×d dual, O(d³).
  Kernels whose pinned sets can have det L_A = 0 although a completion has positive mass
  (e.g. a zero diagonal) are refused with NumericalError; use the partition route with one
  part for them.
- partition constraints: the grid counting of :mod:`.partition` (Z_A(c) and all
  marginals at A in one grid evaluation), O(G n³) per evaluation; for O(1) parts and small
  n.

**Cost.** ``Cost(rounds, evaluations)`` as in :func:`.parallel.sample_parallel_k`: one
round for the marginals at A = ∅ plus one per batched oracle call (retries included);
evaluations = 1 + candidates scored (the marginals at the accepted A ∪ B belong to the same
batched call, so the next round needs no extra one). The counting oracles live in
:mod:`._kset_counting`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..core.cost import Cost
from ..core.errors import NumericalError
from ..core.result import SampleResult
from ..core.rng import RngLike, as_generator
from ._kset_counting import KOracle, PartitionOracle
from ._validate import as_count
from .kernel import DPP
from .nonsymmetric import NonsymmetricDPP
from .parallel import _choose, _draw_many, _log_M

__all__ = ["PartitionConstraint", "sample_parallel_k_approx"]

_MAX_CANDIDATES = 4096  # per round; fewer only means more retries (the law is unchanged)
_NEG_INF = -np.inf


# ----------------------------------------------------------------------------- targets
@dataclass(frozen=True, eq=False)
class PartitionConstraint:
    """The partition-constrained DPP π(S) ∝ det L_S · 1[|S ∩ P_j| = c_j for all j].

    ``dpp``: any kernel object with ``n`` and a dense ``likelihood_kernel()`` (``DPP``,
    ``NonsymmetricDPP``); ``parts``: a length-n label array (−1 = in no part) or a sequence
    of m disjoint index collections; ``counts``: m non-negative integers. Exactly the
    arguments of :func:`parasample.dpp.sample_partition`, validated when sampling.
    """

    dpp: object
    parts: object
    counts: tuple = field(default=())
    # the validated problem and the counts at A = ∅, computed on first use (deterministic)
    _prepared: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.counts, (str, bytes)) and np.ndim(self.counts) == 1:
            object.__setattr__(self, "counts", tuple(self.counts))

    @property
    def k(self) -> int:
        """The sample size Σ c_j (ValueError if a count is not a non-negative integer)."""
        return sum(as_count(c, f"counts[{j}]") for j, c in enumerate(self.counts))


# ----------------------------------------------------------------------------- public API
def sample_parallel_k_approx(target, k: int, *, rng: RngLike = None, C: float = 1.0,
                             c: float = 0.0, window: int | None = None,
                             delta: float = 1e-3) -> SampleResult:
    """One approximate sample of a k-NDPP, k-DPP or partition-constrained DPP in about
    2k^{1/2+c} batched rounds, by batched rejection with the capped acceptance
    min(1, ρ/(C M_ℓ)) (see the module docstring).

    ``target``: a :class:`NonsymmetricDPP` (k-NDPP, P(S) ∝ det L_S, |S| = k), a symmetric
    :class:`DPP` (k-DPP; exact for every C ≥ 1) or a :class:`PartitionConstraint` (then
    ``k`` must equal Σ counts). ``C`` ≥ 1 scales the acceptance bound: larger C means
    smaller error and more candidates per round (≈ C M_ℓ per acceptance). ``c`` ∈ [0, ½)
    sets the window ℓ = max(1, ⌊r^{1/2−c}⌋) (r items left); ``window`` fixes ℓ instead
    (``window=1`` is the exact sequential chain, k rounds). ``delta`` sets the candidates
    per round R so that a round fails with probability ≈ δ.

    Returns a :class:`SampleResult`: the sorted int64 sample, ``Cost(rounds, evaluations)``
    and ``info`` with ``window_per_round``, ``accepted_per_round`` (items pinned),
    ``eta_per_round`` (each round's mean of (ρ_j − C M_ℓ)₊), ``clipped_per_round``
    (candidates with ρ_j > C M_ℓ), ``candidates``, ``tv_bound`` (Σ over pinned states of
    the pooled estimate of η: an unbiased estimate of an upper bound on the TV distance to
    the exact law), ``depth_speedup`` (k/rounds) and ``route`` ("k-dpp", "k-ndpp" or
    "partition").

    Raises TypeError for another target type; ValueError when k is invalid (negative, > n,
    above the rank, ≠ Σ counts), C < 1, c ∉ [0, ½), ``window`` < 1 or δ ∉ (0, 1);
    NumericalError when a count cannot be resolved in floating point.
    """
    if isinstance(target, PartitionConstraint):
        route = "partition"
    elif isinstance(target, NonsymmetricDPP):
        route = "k-ndpp"
    elif isinstance(target, DPP):
        route = "k-dpp"
    else:
        raise TypeError(
            "target must be a NonsymmetricDPP, a DPP or a PartitionConstraint, got "
            f"{type(target).__name__}"
        )
    k = as_count(k, "k")
    if isinstance(C, bool) or not isinstance(C, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(C)) or float(C) < 1.0:
        raise ValueError(f"C must be a finite number ≥ 1, got {C!r}")
    C = float(C)
    if isinstance(c, bool) or not isinstance(c, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(c) < 0.5:
        raise ValueError(f"c must lie in [0, 1/2), got {c!r}")
    c = float(c)
    if window is not None:
        window = as_count(window, "window", minimum=1)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must lie in (0, 1), got {delta!r}")

    if route == "partition":
        oracle = PartitionOracle(target, k)
    else:
        oracle = KOracle.from_target(target, k, symmetric=(route == "k-dpp"))
    gen = as_generator(rng)
    if k == 0:
        info = {"window_per_round": [], "accepted_per_round": [], "eta_per_round": [],
                "clipped_per_round": [], "candidates": 0, "tv_bound": 0.0,
                "depth_speedup": float("nan"), "route": route, "C": C, "c": c}
        return SampleResult(np.zeros(0, dtype=np.int64), Cost(0, 0), info)
    order, info = _approx_chain(oracle, k, gen.random, C=C, c=c, window=window, delta=delta)
    rounds = 1 + len(info["window_per_round"])
    info.update(depth_speedup=k / rounds, route=route, C=C, c=c)
    sample = np.sort(oracle.items[np.asarray(order, dtype=np.int64)]).astype(np.int64)
    return SampleResult(sample, Cost(rounds, 1 + info["candidates"]), info)


# ----------------------------------------------------------------------------- the driver
def _window(r: int, c: float) -> int:
    """ℓ = max(1, ⌊r^{1/2−c}⌋) (integer square root when c = 0)."""
    if c == 0.0:
        return max(1, math.isqrt(r))
    ell = int(math.floor(math.exp((0.5 - c) * math.log(r)) * (1.0 + 1e-12)))
    return max(1, ell)


def _num_candidates(log_bound: float, delta: float) -> int:
    """R = ⌈log(1/δ)/(−log(1 − 1/B))⌉ for the acceptance bound B = C M_ℓ (1 when B = 1),
    capped at 4096. With C = 1 it is :func:`.parallel._num_candidates`."""
    if log_bound <= 0.0:
        return 1
    R = math.ceil(math.log(1.0 / delta) / -math.log1p(-math.exp(-log_bound)))
    return int(min(max(1, R), _MAX_CANDIDATES))


def _log_rho(log_z_cand: np.ndarray, log_z: float, p: np.ndarray, tuples: np.ndarray,
             r: int) -> np.ndarray:
    """log ρ_j = log T(B_j) − log q(B_j) with T = P(B⊆S|A)(r−ℓ)!/r!, q = Π p_{i_t}/Σp;
    −inf on repeats and on candidates with zero count."""
    R, ell = tuples.shape
    log_T = log_z_cand - log_z + math.lgamma(r - ell + 1) - math.lgamma(r + 1)
    with np.errstate(divide="ignore"):
        log_q = np.log(p[tuples]).sum(axis=1) - ell * math.log(float(p.sum()))
    srt = np.sort(tuples, axis=1)
    repeat = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
    out = log_T - log_q
    return np.where(repeat | ~np.isfinite(out), _NEG_INF, out)


def _approx_chain(oracle, k: int, uniforms: Callable[[int], np.ndarray], *, C: float,
                  c: float, window: int | None, delta: float) -> tuple[list[int], dict]:
    """The batched chain; returns the items (oracle coordinates) in the order pinned, and
    info. Each round pre-draws its uniforms: R·ℓ proposal uniforms, then R acceptance
    uniforms (one uniform and no acceptance when ℓ = 1)."""
    state = oracle.start()
    order: list[int] = []
    windows: list[int] = []
    accepted_per_round: list[int] = []
    eta_per_round: list[float] = []
    clipped_per_round: list[int] = []
    candidates = 0
    tv_bound = 0.0
    pooled_sum, pooled_n = 0.0, 0  # excess (ρ − CM)₊ over all candidates at this state
    log_C = math.log(C)
    while len(order) < k:
        r = k - len(order)
        ell = min(r, window if window is not None else _window(r, c))
        p = state.p
        total = float(p.sum())
        if not abs(total - r) <= 1e-6 * r:
            raise NumericalError(
                f"conditional marginals do not sum to the {r} items left (Σp = {total:.9g}); "
                "the counts are not resolved to working precision — rescale the kernel"
            )
        if ell == 1:
            B = _draw_many(p, uniforms(1))
            candidates += 1
            windows.append(1)
            accepted_per_round.append(1)
            eta_per_round.append(0.0)
            clipped_per_round.append(0)
            state = oracle.advance(state, B, None)
            order.extend(int(b) for b in B)
            continue
        log_CM = log_C + _log_M(r, ell)
        R = _num_candidates(log_CM, delta)
        u = uniforms(R * ell + R)
        tuples = _draw_many(p, u[: R * ell]).reshape(R, ell)
        log_rho = _log_rho(oracle.score(state, tuples), state.log_z, p, tuples, r)
        candidates += R
        with np.errstate(over="ignore"):
            excess = math.exp(log_CM) * np.maximum(np.expm1(log_rho - log_CM), 0.0)
        windows.append(ell)
        eta_per_round.append(float(excess.mean()))
        clipped_per_round.append(int(np.count_nonzero(log_rho > log_CM)))
        pooled_sum += float(excess.sum())
        pooled_n += R
        accepted = np.log(u[R * ell:]) < log_rho - log_CM
        j = _choose(accepted, log_rho)
        if j < 0:
            accepted_per_round.append(0)
            continue
        accepted_per_round.append(ell)
        tv_bound += pooled_sum / pooled_n
        pooled_sum, pooled_n = 0.0, 0
        B = tuples[j]
        state = oracle.advance(state, B, j)
        order.extend(int(b) for b in B)
    return order, {"window_per_round": windows, "accepted_per_round": accepted_per_round,
                   "eta_per_round": eta_per_round, "clipped_per_round": clipped_per_round,
                   "candidates": candidates, "tv_bound": tv_bound}
