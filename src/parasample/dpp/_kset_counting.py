"""Counting oracles on k-sets for the approximate parallel sampler
(:mod:`.parallel_approx`): k-(N)DPPs by Schur complements and elementary symmetric
polynomials of (possibly nonsymmetric) matrices, and partition-constrained DPPs through the
counting machinery of :mod:`.partition`.

An oracle holds the pinned set A and answers, in one batched evaluation, log Σ_{S⊇A} w(S),
the conditional marginals p_i = P(i∈S | A⊆S) and the log-weights of candidate extensions
A ∪ B. Costs: O(n³) per evaluation for dense kernels, O(nd²) through a d×d dual for
low-rank ones, O(G·n³) (G grid points) for partition constraints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import NumericalError
from . import partition as _partition

if TYPE_CHECKING:
    from .parallel_approx import PartitionConstraint

_CHUNK_BYTES = 64 * 2**20  # candidate blocks are scored in chunks of at most this size
_NEG_INF = -np.inf

# ----------------------------------------------------------------------------- oracles
@dataclass
class State:
    """Pinned items (oracle coordinates, in order), log Σ_{S⊇A} w(S), the conditional
    marginals p (0 on pinned and impossible items) and route-specific data."""

    pinned: np.ndarray
    log_z: float
    p: np.ndarray
    aux: object = None


class KOracle:
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
    def from_target(cls, target, k: int, symmetric: bool) -> "KOracle":
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
    def start(self) -> State:
        st = self.__dict__.get("_start")
        if st is None:
            st = self._state(np.zeros(0, dtype=np.int64))
            if st.log_z == _NEG_INF:
                raise ValueError(f"e_{self.k}(L) = 0 to working precision: k exceeds the "
                                 "numerical rank of L")
            st.p.setflags(write=False)
            self._start = st
        return st

    def advance(self, state: State, B: np.ndarray, j) -> State:
        return self._state(np.concatenate((state.pinned, np.asarray(B, dtype=np.int64))))

    def _state(self, X: np.ndarray) -> State:
        n, L = self.n, self.L
        x = X.size
        r = self.k - x
        p = np.zeros(n)
        rest = np.setdiff1d(np.arange(n), X)
        if x:
            LXX = L[np.ix_(X, X)]
            sign, ld = np.linalg.slogdet(LXX)
            if not (sign > 0 and np.isfinite(ld) and well_posed(LXX[None])[0]):
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
            return State(X, float(ld), p)
        if self.symmetric:
            lam, U = np.linalg.eigh((M + M.T) / 2.0)
            W = U.T
        else:
            lam, U = np.linalg.eig(M)
            try:
                W = np.linalg.inv(U)
            except np.linalg.LinAlgError:
                W = None
        la, lb = factor_logs(lam)
        P, S = prefix_suffix(la, lb, r)
        log_e = float(P[-1, r])
        if log_e == _NEG_INF:
            return State(X, _NEG_INF, p)
        q = None
        if W is not None and np.all(np.isfinite(W)):
            q = eigen_marginals(lam, U, W, P, S, r, log_e)
        if q is None or not marginals_ok(q, r):
            # fall back to ratios of counts, Z(X + i)/Z(X), batched over i
            log_zi = self._log_counts(X, rest[:, None])
            q = np.exp(log_zi - (ld + log_e))
        p[rest] = np.clip(q, 0.0, None)
        return State(X, float(ld + log_e), p)

    # -- batched counts for candidates
    def score(self, state: State, tuples: np.ndarray) -> np.ndarray:
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
            good = (sign > 0) & np.isfinite(ld) & well_posed(LXX)
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
                la, lb = factor_logs(np.linalg.eigvals(H))
                val = ld + log_poly(la, lb, d)[:, d]
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
            la, lb = factor_logs(lam)
            log_e = log_poly(la, lb, d)[:, d]
            val = ld + log_e
            out[s0:s0 + m] = np.where(good & np.isfinite(val), val, _NEG_INF)
        return out


class PartitionOracle:
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
        self._cache: dict[int, State] = {}

    def start(self) -> State:
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

    def advance(self, state: State, B: np.ndarray, j) -> State:
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

    def score(self, state: State, tuples: np.ndarray) -> np.ndarray:
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
                  first: bool) -> State | None:
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
            return State(pinned, float(ld), p, log_rho)
        if prob.symmetric:
            idx = np.flatnonzero(mask)
            if idx.size:
                LA = prob.L[np.ix_(idx, idx)]
                sign, _ = np.linalg.slogdet(LA)
                if not (sign > 0 and well_posed(LA[None])[0]):
                    return None  # PSD: every superset is singular too
        ev = _partition._evaluate_step(prob, mask, log_rho, first=first)
        p[ev.free] = ev.probs
        return State(pinned, float(ev.log_z), p, ev.log_rho)


def well_posed(LXX: np.ndarray) -> np.ndarray:
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
def factor_logs(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def poly_step(E: np.ndarray, la, lb) -> np.ndarray:
    """Log-coefficients of E(z)·(1 + a z + b z²) (truncated), batched over leading axes."""
    new = E.copy()
    if new.shape[-1] > 1:
        np.logaddexp(new[..., 1:], np.asarray(la)[..., None] + E[..., :-1], out=new[..., 1:])
    if new.shape[-1] > 2:
        np.logaddexp(new[..., 2:], np.asarray(lb)[..., None] + E[..., :-2], out=new[..., 2:])
    return new


def log_poly(la: np.ndarray, lb: np.ndarray, d: int) -> np.ndarray:
    """Log-coefficients 0..d of Π_f (1 + a_f z + b_f z²) over the last axis of la, lb."""
    E = np.full(la.shape[:-1] + (d + 1,), _NEG_INF)
    E[..., 0] = 0.0
    for f in range(la.shape[-1]):
        E = poly_step(E, la[..., f], lb[..., f])
    return E


def prefix_suffix(la: np.ndarray, lb: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """P[f] = coefficients of the product of factors < f, S[t] = of the last t factors."""
    m = la.shape[0]
    P = np.full((m + 1, d + 1), _NEG_INF)
    S = np.full((m + 1, d + 1), _NEG_INF)
    P[0, 0] = S[0, 0] = 0.0
    for f in range(m):
        P[f + 1] = poly_step(P[f], la[f], lb[f])
        S[f + 1] = poly_step(S[f], la[m - 1 - f], lb[m - 1 - f])
    return P, S


def leave_one_out(P: np.ndarray, S: np.ndarray, deg: int) -> np.ndarray:
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


def eigen_marginals(lam, U, W, P, S, r: int, log_e: float) -> np.ndarray:
    """p_i = Re Σ_j U_ij W_ji λ_j e_{r−1}(λ_{−j}) / e_r(λ) (W = U⁻¹). For Im λ_j > 0 the
    leave-one-out product keeps the partner: e_{r−1}(λ_{−j}) = F_{r−1} + λ̄_j F_{r−2} with F
    the product of the other factors; conjugate pairs contribute 2 Re."""
    lam = np.asarray(lam)
    re, im = np.real(lam), np.imag(lam)
    F1 = np.exp(leave_one_out(P, S, r - 1) - log_e)
    F2 = np.exp(leave_one_out(P, S, r - 2) - log_e)
    quad = im > 0
    lin = im == 0
    w = np.where(lin, lam * F1, 0.0).astype(complex)
    w = np.where(quad, 2.0 * (lam * F1 + (re * re + im * im) * F2), w)
    q = np.real(((U * w[None, :]) * W.T).sum(axis=1))
    return q


def marginals_ok(q: np.ndarray, r: int) -> bool:
    return bool(np.all(np.isfinite(q)) and q.min(initial=0.0) >= -1e-9 * r
                and q.max(initial=0.0) <= 1.0 + 1e-9 * r and abs(q.sum() - r) <= 1e-9 * r)
