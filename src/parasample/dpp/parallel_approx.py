"""Approximate parallel sampling for k-NDPPs and partition-constrained DPPs by batched
rejection with a capped acceptance ratio (spec dpp.md §7, "Approximate mode";
Anari–Burgess–Tian–Vuong, arXiv 2203.11190).

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
batched call, so the next round needs no extra one).
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
from . import partition as _partition
from ._validate import as_count
from .kernel import DPP
from .nonsymmetric import NonsymmetricDPP
from .parallel import _choose, _draw_many, _log_M

__all__ = ["PartitionConstraint", "sample_parallel_k_approx"]

_MAX_CANDIDATES = 4096  # per round; fewer only means more retries (the law is unchanged)
_CHUNK_BYTES = 64 * 2**20
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
        """The sample size Σ c_j."""
        return int(sum(int(c) for c in self.counts))


# ----------------------------------------------------------------------------- public API
def sample_parallel_k_approx(target, k: int, *, rng: RngLike = None, C: float = 1.0,
                             c: float = 0.0, window: int | None = None,
                             delta: float = 1e-3) -> SampleResult:
    """One approximate sample of a k-NDPP, k-DPP or partition-constrained DPP in about
    2k^{1/2+c} batched rounds, by batched rejection with the capped acceptance
    min(1, ρ/(C M_ℓ)) (spec dpp.md §7, approximate mode; see the module docstring).

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
        if isinstance(window, bool) or int(window) != window or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        window = int(window)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must lie in (0, 1), got {delta!r}")

    if route == "partition":
        oracle = _PartitionOracle(target, k)
    else:
        oracle = _KOracle.from_target(target, k, symmetric=(route == "k-dpp"))
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


# ----------------------------------------------------------------------------- oracles
@dataclass
class _State:
    """Pinned items (oracle coordinates, in order), log Σ_{S⊇A} w(S), the conditional
    marginals p (0 on pinned and impossible items) and route-specific data."""

    pinned: np.ndarray
    log_z: float
    p: np.ndarray
    aux: object = None


class _KOracle:
    """Counting for k-(N)DPPs: Z(X) = det L_X · e_{k−|X|}(L/X) by Schur complements and
    eigenvalues (module docstring)."""

    def __init__(self, L: np.ndarray, k: int, symmetric: bool):
        self.L = np.ascontiguousarray(L, dtype=np.float64)
        self.n = int(L.shape[0])
        self.k = k
        self.symmetric = symmetric
        self.items = np.arange(self.n, dtype=np.int64)
        # Low-rank kernels: L = Z Y (truncated SVD, rank d). The nonzero eigenvalues of
        # L/X = Z_R P Y_R, P = I − Y_X L_X⁻¹ Z_X, are those of the d×d matrix
        # P (Y Z − Y_X Z_X), so candidate counts cost O(d³) instead of O(n³).
        self._dual = None
        if self.n >= 16:
            U, sv, Vt = np.linalg.svd(self.L)
            d = int(np.count_nonzero(sv > self.n * np.finfo(float).eps * sv[0]))
            if d <= 0.75 * self.n:
                Z = np.ascontiguousarray(U[:, :d] * sv[:d])
                YT = np.ascontiguousarray(Vt[:d].T)
                self._dual = (Z, YT, YT.T @ Z)

    @classmethod
    def from_target(cls, target, k: int, symmetric: bool) -> "_KOracle":
        n = int(target.n)
        if k > n:
            raise ValueError(f"k = {k} exceeds the number of items n = {n}")
        if k > target.rank:
            raise ValueError(
                f"k exceeds the rank of L (k = {k}, rank = {target.rank}): a k-DPP needs at "
                "least k linearly independent items"
            )
        # The oracle is stateless apart from its memoised start: cache one per target (as
        # the ESP tables are cached on a DPP), so repeated samples skip the O(n³) set-up.
        cache = target.__dict__.setdefault("_parallel_approx_cache", {})
        oracle = cache.get("oracle")
        if oracle is None or (oracle.k, oracle.symmetric) != (k, symmetric):
            L = target.likelihood_kernel()
            if symmetric:
                L = (L + L.T) / 2.0
            oracle = cls(L, k, symmetric)
            cache["oracle"] = oracle
        return oracle

    # -- one state, with marginals
    def start(self) -> _State:
        st = self.__dict__.get("_start")
        if st is None:
            st = self._state(np.zeros(0, dtype=np.int64))
            if st.log_z == _NEG_INF:
                raise ValueError(f"e_{self.k}(L) = 0 to working precision: k exceeds the "
                                 "numerical rank of L")
            st.p.setflags(write=False)
            self._start = st
        return st

    def advance(self, state: _State, B: np.ndarray, j) -> _State:
        return self._state(np.concatenate((state.pinned, np.asarray(B, dtype=np.int64))))

    def _state(self, X: np.ndarray) -> _State:
        n, L = self.n, self.L
        x = X.size
        r = self.k - x
        p = np.zeros(n)
        rest = np.setdiff1d(np.arange(n), X)
        if x:
            LXX = L[np.ix_(X, X)]
            sign, ld = np.linalg.slogdet(LXX)
            if not (sign > 0 and np.isfinite(ld) and _well_posed(LXX[None])[0]):
                raise NumericalError(
                    "a pinned set has det L_A ≤ 0 to working precision although it was "
                    "drawn with positive probability: the kernel has singular principal "
                    "minors inside positive ones (e.g. a zero diagonal); sample it as a "
                    "PartitionConstraint with one part instead"
                )
            M = L[np.ix_(rest, rest)] - L[np.ix_(rest, X)] @ np.linalg.solve(
                L[np.ix_(X, X)], L[np.ix_(X, rest)])
        else:
            ld, M = 0.0, L
        if r == 0:
            return _State(X, float(ld), p)
        if self.symmetric:
            lam, U = np.linalg.eigh((M + M.T) / 2.0)
            W = U.T
        else:
            lam, U = np.linalg.eig(M)
            try:
                W = np.linalg.inv(U)
            except np.linalg.LinAlgError:
                W = None
        la, lb = _factor_logs(lam)
        P, S = _prefix_suffix(la, lb, r)
        log_e = float(P[-1, r])
        if log_e == _NEG_INF:
            return _State(X, _NEG_INF, p)
        q = None
        if W is not None and np.all(np.isfinite(W)):
            q = _eigen_marginals(lam, U, W, P, S, r, log_e)
        if q is None or not _marginals_ok(q, r):
            # fall back to ratios of counts, Z(X + i)/Z(X), batched over i
            log_zi = self._log_counts(X, rest[:, None])
            q = np.exp(log_zi - (ld + log_e))
        p[rest] = np.clip(q, 0.0, None)
        return _State(X, float(ld + log_e), p)

    # -- batched counts for candidates
    def score(self, state: _State, tuples: np.ndarray) -> np.ndarray:
        R = tuples.shape[0]
        out = np.full(R, _NEG_INF)
        srt = np.sort(tuples, axis=1)
        ok = ~np.any(srt[:, 1:] == srt[:, :-1], axis=1)
        if np.any(ok):
            out[ok] = self._log_counts(state.pinned, tuples[ok])
        return out

    def _log_counts(self, A: np.ndarray, tuples: np.ndarray) -> np.ndarray:
        """log Σ_{|S|=k, S ⊇ A ∪ B_j} det L_S for each row B_j (distinct items, disjoint
        from A): log det L_X + log e_{k−|X|}(L/X), X = A ∪ B_j; −inf when det L_X ≤ 0."""
        R = tuples.shape[0]
        n = self.n
        X = np.hstack((np.broadcast_to(A, (R, A.size)), tuples)).astype(np.int64)
        x = X.shape[1]
        d = self.k - x
        out = np.full(R, _NEG_INF)
        if d < 0:
            return out
        chunk = max(1, _CHUNK_BYTES // (8 * n * n * 3))
        for s0 in range(0, R, chunk):
            Xc = X[s0:s0 + chunk]
            m = Xc.shape[0]
            LXX = self.L[Xc[:, :, None], Xc[:, None, :]]
            sign, ld = np.linalg.slogdet(LXX)
            good = (sign > 0) & np.isfinite(ld) & _well_posed(LXX)
            if d == 0 or not np.any(good):
                out[s0:s0 + m] = np.where(good, ld, _NEG_INF)
                continue
            LXX[~good] = np.eye(x)
            if self._dual is not None:
                Z, YT, G = self._dual
                Zx = Z[Xc]  # m×x×d
                Yx = YT[Xc].transpose(0, 2, 1)  # m×d×x
                H = G - Yx @ Zx
                H = H - Yx @ np.linalg.solve(LXX, Zx @ H)
                la, lb = _factor_logs(np.linalg.eigvals(H))
                val = ld + _log_poly(la, lb, d)[:, d]
                out[s0:s0 + m] = np.where(good & np.isfinite(val), val, _NEG_INF)
                continue
            mask = np.ones((m, n), dtype=bool)
            mask[np.arange(m)[:, None], Xc] = False
            rest = np.nonzero(mask)[1].reshape(m, n - x)
            LXR = self.L[Xc[:, :, None], rest[:, None, :]]
            LRX = self.L[rest[:, :, None], Xc[:, None, :]]
            LRR = self.L[rest[:, :, None], rest[:, None, :]]
            M = LRR - LRX @ np.linalg.solve(LXX, LXR)
            if self.symmetric:
                lam = np.linalg.eigvalsh((M + M.transpose(0, 2, 1)) / 2.0)
            else:
                lam = np.linalg.eigvals(M)
            la, lb = _factor_logs(lam)
            log_e = _log_poly(la, lb, d)[:, d]
            val = ld + log_e
            out[s0:s0 + m] = np.where(good & np.isfinite(val), val, _NEG_INF)
        return out


class _PartitionOracle:
    """Counting for partition constraints by the grid machinery of :mod:`.partition`, on
    its working items (parts with positive count); ``items`` maps back to 0..n−1."""

    def __init__(self, pc: PartitionConstraint, k: int):
        self._pc = pc
        if "problem" not in pc._prepared:
            pc._prepared["problem"] = _partition._prepare(pc.dpp, pc.parts, pc.counts)
        self.prob = pc._prepared["problem"]
        if k != self.prob.k:
            raise ValueError(f"k = {k} but the partition counts sum to {self.prob.k}")
        self.k = k
        self.items = self.prob.items
        self.n = self.prob.nw
        self._cache: dict[int, _State] = {}

    def start(self) -> _State:
        st = self._pc._prepared.get("start")
        if st is None:
            mask = np.zeros(self.n, dtype=bool)
            st = self._evaluate(mask, np.zeros(0, dtype=np.int64),
                                _partition._initial_log_rho(self.prob), first=True)
            if st is None:
                raise ValueError("infeasible partition counts: the normaliser is zero")
            st.p.setflags(write=False)
            self._pc._prepared["start"] = st
        return st

    def advance(self, state: _State, B: np.ndarray, j) -> _State:
        if j is not None and j in self._cache:
            st = self._cache[j]
        else:
            mask = np.zeros(self.n, dtype=bool)
            mask[state.pinned] = True
            mask[B] = True
            st = self._evaluate(mask, np.concatenate((state.pinned, B)), state.aux,
                                first=False)
            if st is None:
                raise NumericalError("the sequential step pinned an item of zero "
                                     "probability; the counts are not resolved")
        self._cache = {}
        return st

    def score(self, state: _State, tuples: np.ndarray) -> np.ndarray:
        self._cache = {}
        R = tuples.shape[0]
        out = np.full(R, _NEG_INF)
        base = np.zeros(self.n, dtype=bool)
        base[state.pinned] = True
        for j in range(R):
            B = tuples[j]
            if np.unique(B).size != B.size:
                continue
            mask = base.copy()
            mask[B] = True
            st = self._evaluate(mask, np.concatenate((state.pinned, B)), state.aux,
                                first=False)
            if st is not None:
                out[j] = st.log_z
                self._cache[j] = st
        return out

    def _evaluate(self, mask: np.ndarray, pinned: np.ndarray, log_rho, *,
                  first: bool) -> _State | None:
        """The state at the pinned set ``mask`` (None when no feasible set contains it)."""
        prob = self.prob
        m = prob.counts.size
        lo = np.bincount(prob.part[mask], minlength=m)
        need = prob.counts - lo
        avail = np.bincount(prob.part[~mask], minlength=m)
        if np.any(need < 0) or np.any(need > avail):
            return None
        p = np.zeros(self.n)
        r = int(need.sum())
        forced = (need > 0) & (need == avail)
        if r == 0 or np.all(forced | (need == 0)):
            full = mask | (np.isin(prob.part, np.flatnonzero(forced)) & ~mask)
            idx = np.flatnonzero(full)
            sign, ld = np.linalg.slogdet(prob.L[np.ix_(idx, idx)])
            if not sign > 0:
                return None
            p[full & ~mask] = 1.0
            return _State(pinned, float(ld), p, log_rho)
        if prob.symmetric:
            idx = np.flatnonzero(mask)
            if idx.size:
                LA = prob.L[np.ix_(idx, idx)]
                sign, _ = np.linalg.slogdet(LA)
                if not (sign > 0 and _well_posed(LA[None])[0]):
                    return None  # PSD: every superset is singular too
        ev = _partition._evaluate_step(prob, mask, log_rho, first=first)
        p[ev.free] = ev.probs
        return _State(pinned, float(ev.log_z), p, ev.log_rho)


def _well_posed(LXX: np.ndarray) -> np.ndarray:
    """det L_X is resolved (not rounding noise): σ_min ≥ 100·x·ε·σ_max, per matrix of the
    batch. A set failing it counts as zero mass (ρ = 0); for PSD kernels its true mass is
    below ~1e-12 relative, for kernels with singular minors inside positive ones see the
    module docstring."""
    x = LXX.shape[-1]
    if x == 0:
        return np.ones(LXX.shape[0], dtype=bool)
    sv = np.linalg.svd(LXX, compute_uv=False)
    return sv[:, -1] >= 100.0 * x * np.finfo(float).eps * sv[:, 0]


# ----------------------------------------------------------------------------- ESPs
def _factor_logs(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-coefficients (a, b) of the real factors of Π_j (1 + λ_j z): 1 + a z for real λ
    (a = λ), 1 + a z + b z² for Im λ > 0 (a = 2 Re λ, b = |λ|²; its conjugate partner is
    then the factor 1). a, b ≥ 0 for eigenvalues of M with M + Mᵀ ⪰ 0 (rounding clipped)."""
    re = np.real(lam)
    im = np.imag(lam)
    quad = im > 0
    lin = im == 0
    a = np.where(lin, re, np.where(quad, 2.0 * re, 0.0))
    b = np.where(quad, re * re + im * im, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.maximum(a, 0.0)), np.log(b)


def _poly_step(E: np.ndarray, la, lb) -> np.ndarray:
    """Log-coefficients of E(z)·(1 + a z + b z²) (truncated), batched over leading axes."""
    new = E.copy()
    if new.shape[-1] > 1:
        np.logaddexp(new[..., 1:], np.asarray(la)[..., None] + E[..., :-1], out=new[..., 1:])
    if new.shape[-1] > 2:
        np.logaddexp(new[..., 2:], np.asarray(lb)[..., None] + E[..., :-2], out=new[..., 2:])
    return new


def _log_poly(la: np.ndarray, lb: np.ndarray, d: int) -> np.ndarray:
    """Log-coefficients 0..d of Π_f (1 + a_f z + b_f z²) over the last axis of la, lb."""
    E = np.full(la.shape[:-1] + (d + 1,), _NEG_INF)
    E[..., 0] = 0.0
    for f in range(la.shape[-1]):
        E = _poly_step(E, la[..., f], lb[..., f])
    return E


def _prefix_suffix(la: np.ndarray, lb: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """P[f] = coefficients of the product of factors < f, S[t] = of the last t factors."""
    m = la.shape[0]
    P = np.full((m + 1, d + 1), _NEG_INF)
    S = np.full((m + 1, d + 1), _NEG_INF)
    P[0, 0] = S[0, 0] = 0.0
    for f in range(m):
        P[f + 1] = _poly_step(P[f], la[f], lb[f])
        S[f + 1] = _poly_step(S[f], la[m - 1 - f], lb[m - 1 - f])
    return P, S


def _leave_one_out(P: np.ndarray, S: np.ndarray, deg: int) -> np.ndarray:
    """log [z^deg] of the product of all factors but f, for every f."""
    m = P.shape[0] - 1
    if deg < 0:
        return np.full(m, _NEG_INF)
    pre = P[:m, : deg + 1]
    suf = S[m - 1 - np.arange(m)][:, deg::-1]
    terms = pre + suf
    mx = terms.max(axis=1)
    out = np.full(m, _NEG_INF)
    ok = mx > _NEG_INF
    out[ok] = mx[ok] + np.log(np.exp(terms[ok] - mx[ok, None]).sum(axis=1))
    return out


def _eigen_marginals(lam, U, W, P, S, r: int, log_e: float) -> np.ndarray:
    """p_i = Re Σ_j U_ij W_ji λ_j e_{r−1}(λ_{−j}) / e_r(λ) (W = U⁻¹). For Im λ_j > 0 the
    leave-one-out product keeps the partner: e_{r−1}(λ_{−j}) = F_{r−1} + λ̄_j F_{r−2} with F
    the product of the other factors; conjugate pairs contribute 2 Re."""
    lam = np.asarray(lam)
    re, im = np.real(lam), np.imag(lam)
    F1 = np.exp(_leave_one_out(P, S, r - 1) - log_e)
    F2 = np.exp(_leave_one_out(P, S, r - 2) - log_e)
    quad = im > 0
    lin = im == 0
    w = np.where(lin, lam * F1, 0.0).astype(complex)
    w = np.where(quad, 2.0 * (lam * F1 + (re * re + im * im) * F2), w)
    q = np.real(((U * w[None, :]) * W.T).sum(axis=1))
    return q


def _marginals_ok(q: np.ndarray, r: int) -> bool:
    return bool(np.all(np.isfinite(q)) and q.min(initial=0.0) >= -1e-9 * r
                and q.max(initial=0.0) <= 1.0 + 1e-9 * r and abs(q.sum() - r) <= 1e-9 * r)
