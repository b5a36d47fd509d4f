"""MCMC for DPPs: add–delete chain (DPP) and exchange chain (k-DPP).

Target π(S) ∝ (det L_S)^α (α = 1: the DPP / k-DPP; other α: tempered batch selection).
With r = det L_{S'} / det L_S, a proposal is accepted with probability min(1, r^α)
(Metropolis) or r^α / (1 + r^α) (heat-bath); both are reversible for π.

- Add–delete: draw i uniformly from 0..n−1 and propose S △ {i}.
- Exchange: draw a position t of S and an item j ∉ S uniformly; propose S − S[t] + j.

Only ratios are computed, never a determinant of the state (DPPy #58): with M = (L_S)⁻¹,

    add i:        q = M L_{S,i},  r = s = L_ii − L_{i,S} q,
                  M ← [[M + q qᵀ/s, −q/s], [−qᵀ/s, 1/s]]
    delete t:     r = M_tt,  M ← M_{−t,−t} − M_{−t,t} M_{t,−t} / M_tt
    exchange t→j: b = L_{S,j} with b_t = 0, w = M b,
                  r = M_tt (L_jj − bᵀw) + w_t²  (then delete t, add j at slot t; s = r/M_tt)

so a step costs O(k²) (plus O(k d) entry reads with features L = BBᵀ). M is rebuilt from a
Cholesky factor of L_S every 100 accepted moves and after an accepted add with
s < 1e-10·L_ii. The hot loop is compiled with numba; ``_add_delete_np``/``_exchange_np``
are the numpy reference twins, run on the same pre-drawn noise in the tests.

Laziness (default): a step holds with probability ½ and otherwise makes the move above. One
uniform u per step decides both: hold if u < ½, else accept iff 2u − 1 < p (exact in
floating point). Without it the chain can be periodic — exchange with n = 2, k = 1 and
L_00 = L_11, or Metropolis add–delete at L = I, alternate forever — and nearly so near
such kernels; the lazy chain's eigenvalues are ≥ 0.

Probability-zero states: a move whose new Cholesky pivot (s above; r/M_tt for an exchange)
is ≤ τ = ``dpp.zero_tolerance`` is rejected — the rule ``DPP.log_prob`` uses — so a
rounding-level ratio is never accepted (with α < 1, s^α would not be small). The O(k²)
update computes s only to about ε·cond(L_S)·L_jj, so an s < 1e-10·L_jj is recomputed from
a fresh Cholesky factor of the proposed set (O(k³), rare) before the test.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numba
import numpy as np
import scipy.linalg as sla

from ..core import as_count
from ..core.errors import NumericalError
from ..core.progress import ProgressLike, progress_reporter
from ..core.rng import RngLike, as_generator
from ._validate import as_subset, require_symmetric_dpp
from .kernel import DPP
from .map import likelihood_features, map_greedy_details

__all__ = ["sample_mcmc"]

_FM = {"reassoc", "contract"}  # vectorise reductions and fuse multiply-adds (no nnan/ninf)
REBUILD_EVERY = 100  # accepted moves between rebuilds of M = (L_S)⁻¹
REBUILD_REL = 1e-10  # s < REBUILD_REL · L_jj: recompute s afresh, and rebuild M if accepted
CHUNK = 1 << 15  # steps per pre-drawn noise chunk (bounded memory, progress, Ctrl-C)
ACCEPTANCE_RULES = ("metropolis", "heat-bath")


# --------------------------------------------------------------------------- public API
def sample_mcmc(dpp: DPP, *, k: int | None = None, n_steps: int, rng: RngLike = None,
                init=None, alpha: float = 1.0, acceptance: str = "metropolis",
                lazy: bool = True, progress: ProgressLike = None) -> np.ndarray:
    """State of an MCMC chain for the DPP (``k=None``) or the k-DPP after ``n_steps``.

    ``k=None``: add–delete chain started from ∅ (or ``init``). ``k`` given: exchange chain
    started from the greedy MAP set (or ``init``, which must have k items and, like any
    ``init``, det L_S > 0). ``alpha`` tempers the target to (det L_S)^α; ``acceptance`` is
    ``"metropolis"`` or ``"heat-bath"``. ``lazy`` (default): each step holds with
    probability ½, which makes the chain aperiodic (``lazy=False`` can be periodic, e.g.
    exchange with n = 2, k = 1, L_00 = L_11, or Metropolis add–delete at L = I).

    ``n_steps`` (required) counts steps, holds included. Guidance (TV to the target ≤ ε):

    - exchange, α = 1, lazy: the spectral gap is ≥ 1/(2k(n−k)) and no eigenvalue is
      negative (from the down–up walk's gap ≥ 1/k for k-DPPs, Anari–Liu–Oveis
      Gharan–Vinzant 2019, by comparison of Dirichlet forms; checked by enumeration), so
      n_steps ≥ 2k(n−k)·(ln(1/(2ε)) + ½ ln(1/π(S₀))) guarantees it. This is a worst case;
      the often-quoted k·log(1/(ε π(S₀))) counts down–up steps, each of which resamples
      the new item from its conditional law — about n−k of the proposals made here.
    - add–delete: no bound in n alone holds. Two near-parallel items with large L_ii
      communicate only through ∅ or the pair, both improbable, so mixing slows with the
      kernel's scale. A step proposes a given item with probability 1/(2n), so runs far
      shorter than 2n·ln n steps leave some items never proposed.
    - α ≠ 1: no guarantee.

    Check a run: compare inclusion frequencies of independent chains with
    ``dpp.inclusion_probabilities()`` (k-DPP: ``kdpp_inclusion_probabilities(dpp, k)``),
    then double ``n_steps`` until they stop moving.

    Returns a sorted int64 array. Ctrl-C stops the chain between chunks and returns the
    current state with a warning. Cost O(k²) per moving step (+ O(k d) with features),
    O(1) per hold, O(k²) memory. Arguments are validated before ``rng`` is touched.
    """
    n_steps = as_count(n_steps, "n_steps")
    chain = _Chain.prepare(dpp, k=k, alpha=alpha, acceptance=acceptance, lazy=lazy)
    start = chain.initial_set(init)
    gen = as_generator(rng)
    state = chain.new_state(start)
    report = progress_reporter(progress)
    label = "dpp exchange chain" if chain.exchange else "dpp add-delete chain"
    done = 0
    report(0, n_steps, label)
    try:
        while done < n_steps:
            c = min(CHUNK, n_steps - done)
            chain.run(state, *chain.draw(gen, c), backend="numba")
            done += c
            report(done, n_steps, label)
    except KeyboardInterrupt:
        warnings.warn(f"MCMC interrupted after {done} of {n_steps} steps; returning the "
                      "current state", RuntimeWarning, stacklevel=2)
    return state.subset()


# --------------------------------------------------------------------------- chain set-up
@dataclass
class _State:
    """Chain state: S[:m] (slot order matches M), M = (L_S)⁻¹, membership bookkeeping.

    ``where[i]`` is i's slot in S (add–delete) or −1; ``out`` lists the items not in S
    (exchange). ``counters`` = [m, accepted since rebuild, accepted, rebuilds]."""

    S: np.ndarray
    M: np.ndarray
    where: np.ndarray
    out: np.ndarray
    counters: np.ndarray

    @property
    def m(self) -> int:
        return int(self.counters[0])

    def subset(self) -> np.ndarray:
        return np.sort(self.S[: self.m]).astype(np.int64)


@dataclass(frozen=True)
class _Chain:
    """Validated data of a chain: L as a dense matrix or as features B (L = BBᵀ)."""

    A: np.ndarray
    features: bool
    diag: np.ndarray
    n: int
    k: int | None
    cap: int
    alpha: float
    heat_bath: bool
    lazy: bool
    tau: float
    dpp: DPP

    @property
    def exchange(self) -> bool:
        return self.k is not None

    @classmethod
    def prepare(cls, dpp: DPP, *, k: int | None, alpha: float, acceptance: str,
                lazy: bool = True) -> "_Chain":
        require_symmetric_dpp(dpp, "sample_mcmc")
        if acceptance not in ACCEPTANCE_RULES:
            raise ValueError(f"acceptance must be one of {ACCEPTANCE_RULES}, got {acceptance!r}")
        if not isinstance(lazy, (bool, np.bool_)):
            raise TypeError(f"lazy must be True or False, got {lazy!r}")
        try:
            alpha = float(alpha)
        except (TypeError, ValueError):
            raise ValueError(f"alpha must be a positive number, got {alpha!r}") from None
        if not (np.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be finite and > 0, got {alpha!r}")
        rank = dpp.rank
        if k is not None:
            k = as_count(k, "k")
            if k > rank:
                raise ValueError(f"k exceeds the rank of L (k = {k}, rank = {rank})")
        if dpp.kind == "likelihood":
            A, features = np.ascontiguousarray(dpp._matrix), False
            diag = np.diag(A).copy()
        else:
            A, features = np.ascontiguousarray(likelihood_features(dpp)), True
            diag = np.einsum("ij,ij->i", A, A)
        cap = k if k is not None else min(dpp.n, rank)  # |S| > rank has det L_S = 0
        return cls(A, features, diag, dpp.n, k, cap, alpha, acceptance == "heat-bath",
                   bool(lazy), dpp.zero_tolerance, dpp)

    def initial_set(self, init) -> np.ndarray:
        """``init`` validated (det L_S > 0, |S| = k), else ∅ or the greedy MAP set."""
        if init is None:
            if self.k is None:
                return np.zeros(0, dtype=np.int64)
            res = map_greedy_details(self.dpp, self.k)
            if res.stopped_early:
                raise NumericalError(
                    f"greedy MAP found only {res.order.size} of k = {self.k} items with "
                    "det L_S > 0 (near-duplicates); pass a starting set with init="
                )
            return res.selection
        S = as_subset(init, self.n)
        if self.k is not None and S.size != self.k:
            raise ValueError(f"init has {S.size} items but the k-DPP chain needs k = {self.k}")
        if self.dpp.log_prob(S) == -np.inf:
            raise ValueError(
                f"init {S.tolist()} has det L_S = 0 (probability zero: more items than the "
                f"rank {self.dpp.rank}, or linearly dependent items); start from a set with "
                "det L_S > 0, e.g. map_greedy(dpp, k)"
            )
        return S

    def new_state(self, S0: np.ndarray) -> _State:
        """State at the set S0 (slots in the given order), M rebuilt from scratch."""
        cap, m = self.cap, S0.size
        S = np.full(max(cap, 1), -1, dtype=np.int64)
        S[:m] = S0
        M = np.zeros((max(cap, 1), max(cap, 1)))
        if m and not _rebuild_nb(self.A, self.features, S, m, M):
            raise ValueError("the starting set has det L_S = 0")
        where = np.full(self.n, -1, dtype=np.int64)
        where[S0] = np.arange(m)
        out = np.flatnonzero(where < 0).astype(np.int64)
        counters = np.array([m, 0, 0, 0], dtype=np.int64)
        return _State(S, M, where, out, counters)

    def draw(self, gen: np.random.Generator, c: int) -> tuple[np.ndarray, ...]:
        """Pre-drawn proposals and uniforms for c steps (see :meth:`proposals`)."""
        if self.exchange:
            k, n_out = self.k, self.n - self.k
            t = gen.integers(0, max(k, 1), size=c, dtype=np.int64)
            o = gen.integers(0, max(n_out, 1), size=c, dtype=np.int64)
            return (t, o), gen.random(c)
        return (gen.integers(0, self.n, size=c, dtype=np.int64),), gen.random(c)

    def proposals(self) -> list[tuple[tuple[int, ...], float]]:
        """All proposal codes with their probabilities, as :meth:`draw` draws them."""
        if self.exchange:
            k, n_out = self.k, self.n - self.k
            return [((t, o), 1.0 / (k * n_out)) for t in range(k) for o in range(n_out)]
        return [((i,), 1.0 / self.n) for i in range(self.n)]

    def run(self, state: _State, props: tuple[np.ndarray, ...], u: np.ndarray, *,
            backend: str = "numba", p_out: np.ndarray | None = None) -> None:
        """Advance ``state`` in place over the pre-drawn proposals ``props`` / uniforms ``u``.

        ``p_out`` (optional) receives each step's acceptance probability."""
        if p_out is None:
            p_out = np.empty(u.shape[0])
        if self.exchange and (self.k == 0 or self.k == self.n):
            p_out[:] = 0.0  # a single state: nothing to exchange
            return
        nb = backend == "numba"
        rule = (self.alpha, self.heat_bath, self.lazy, self.tau)
        if self.exchange:
            fn = _exchange_nb if nb else _exchange_np
            bad = fn(self.A, self.features, self.diag, state.S, state.M, state.out,
                     state.counters, props[0], props[1], u, *rule, p_out)
        else:
            fn = _add_delete_nb if nb else _add_delete_np
            bad = fn(self.A, self.features, self.diag, state.S, state.M, state.where,
                     state.counters, props[0], u, *rule, p_out)
        if bad >= 0:
            raise NumericalError(
                f"L_S became numerically singular at step {bad} (Cholesky of L_S failed); "
                "the kernel is too ill-conditioned — regularise it (L + εI) or use features"
            )


# --------------------------------------------------------------------------- acceptance
def _acceptance_py(r: float, alpha: float, heat_bath: bool) -> float:
    """min(1, r^α) (Metropolis) or r^α/(1+r^α) = 1/(1+r^{-α}) (heat-bath); 0 for r ≤ 0.
    A step is accepted iff u < this probability."""
    if not r > 0.0:
        return 0.0
    if heat_bath:
        return 1.0 / (1.0 + r ** (-alpha))
    if r >= 1.0:
        return 1.0
    return r if alpha == 1.0 else r ** alpha


_acceptance_nb = numba.njit(cache=True)(_acceptance_py)


def _transition_row(chain: _Chain, S0: np.ndarray, *, backend: str = "numpy"
                   ) -> dict[tuple[int, ...], float]:
    """{S': P(S0 → S')} from the implementation itself: every proposal code of
    :meth:`_Chain.proposals` is run for one step of the real kernel. Non-lazy: u = 0,
    which records the acceptance probability p and, if p > 0, moves to the proposed S'.
    Lazy: u = 0 (a hold, weight ½) and u = ½ (a move tested with 2u − 1 = 0, weight ½)."""
    row: dict[tuple[int, ...], float] = {}
    key0 = tuple(int(x) for x in np.sort(S0))
    coins = ((0.0, 0.5), (0.5, 0.5)) if chain.lazy else ((0.0, 1.0),)
    for code, prob in chain.proposals():
        for u, weight in coins:
            state = chain.new_state(S0)
            p = np.empty(1)
            chain.run(state, tuple(np.array([c], dtype=np.int64) for c in code),
                      np.array([u]), backend=backend, p_out=p)
            key = tuple(int(x) for x in state.subset())
            w = prob * weight
            if key == key0:  # held, or rejected with certainty (p = 0)
                row[key0] = row.get(key0, 0.0) + w
            else:
                row[key] = row.get(key, 0.0) + w * float(p[0])
                row[key0] = row.get(key0, 0.0) + w * (1.0 - float(p[0]))
    return row


# --------------------------------------------------------------------------- numpy twins
def _rebuild_np(A, features, S, m, M) -> bool:
    """M[:m,:m] ← (L_S)⁻¹ through a Cholesky factor; False if L_S is not PD."""
    if m == 0:
        return True  # ∅: nothing to invert (LAPACK rejects an empty triangle)
    idx = S[:m]
    G = A[idx] @ A[idx].T if features else A[np.ix_(idx, idx)]
    try:
        C = np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        return False
    if not np.all(np.diag(C) > 0):
        return False
    Ci, info = sla.lapack.dtrtri(C, lower=1)  # C⁻¹ (trsm with m RHS is far slower)
    if info != 0:
        return False
    M[:m, :m] = Ci.T @ Ci
    return True


def _fresh_pivot_np(A, features, idx, j) -> float:
    """j's pivot given the items idx, from a fresh Cholesky factor of L_{idx + [j]}
    (the squared distance of j from their span); 0 if the factorisation fails."""
    full = np.append(idx, j)
    G = A[full] @ A[full].T if features else A[np.ix_(full, full)]
    try:
        C = np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        return 0.0
    return float(C[-1, -1] ** 2)


def _symmetrise(M, m) -> None:
    """Fill the upper triangle of M[:m,:m] from the (authoritative) lower triangle."""
    T = np.tril(M[:m, :m])
    M[:m, :m] = T + np.tril(T, -1).T


def _row_np(A, features, j, idx):
    """L_{j, idx}."""
    return A[idx] @ A[j] if features else A[j, idx]


def _after_accept_np(A, features, S, M, counters, force):
    counters[1] += 1
    counters[2] += 1
    if force or counters[1] >= REBUILD_EVERY:
        counters[1] = 0
        counters[3] += 1
        return _rebuild_np(A, features, S, int(counters[0]), M)
    return True


def _move_uniform(u: float, lazy: bool) -> float:
    """The uniform a step's acceptance test uses; NaN for a lazy hold (u < ½)."""
    if not lazy:
        return u
    return np.nan if u < 0.5 else 2.0 * u - 1.0


def _add_delete_np(A, features, diag, S, M, where, counters, items, u, alpha, heat_bath,
                   lazy, tau, p_out) -> int:
    """Numpy reference of the add–delete loop; returns −1, or the failing step."""
    cap = S.shape[0]
    _symmetrise(M, int(counters[0]))
    for step in range(items.shape[0]):
        v = _move_uniform(u[step], lazy)
        if np.isnan(v):  # lazy hold: nothing is proposed
            p_out[step] = np.nan
            continue
        m = int(counters[0])
        i = int(items[step])
        t = int(where[i])
        force = False
        if t >= 0:  # delete slot t: r = M_tt
            r = M[t, t]
            p = _acceptance_py(r, alpha, heat_bath)
            p_out[step] = p
            if not v < p:
                continue
            col = M[:m, t].copy()
            M[:m, :m] -= np.outer(col, col) / r
            last = m - 1
            if t != last:
                M[t, :m] = M[last, :m]
                M[:m, t] = M[:m, last]
                S[t] = S[last]
                where[S[t]] = t
            M[last, :m] = 0.0
            M[:m, last] = 0.0
            S[last] = -1
            where[i] = -1
            counters[0] = m - 1
        else:  # add i: r = s = L_ii − bᵀ M b
            if m >= cap:
                p_out[step] = 0.0
                continue
            b = _row_np(A, features, i, S[:m])
            q = M[:m, :m] @ b
            s = diag[i] - b @ q
            if s < REBUILD_REL * diag[i]:  # near-dependent: the update may be rounding
                s = _fresh_pivot_np(A, features, S[:m], i)
            p = _acceptance_py(s if s > tau else 0.0, alpha, heat_bath)
            p_out[step] = p
            if not v < p:
                continue
            M[:m, :m] += np.outer(q, q) / s
            M[:m, m] = -q / s
            M[m, :m] = -q / s
            M[m, m] = 1.0 / s
            S[m] = i
            where[i] = m
            counters[0] = m + 1
            force = s < REBUILD_REL * diag[i]
        if not _after_accept_np(A, features, S, M, counters, force):
            return step
    return -1


def _exchange_np(A, features, diag, S, M, out, counters, pos, outs, u, alpha, heat_bath,
                 lazy, tau, p_out) -> int:
    """Numpy reference of the exchange loop; returns −1, or the failing step."""
    m = int(counters[0])
    _symmetrise(M, m)
    for step in range(pos.shape[0]):
        v = _move_uniform(u[step], lazy)
        if np.isnan(v):  # lazy hold: nothing is proposed
            p_out[step] = np.nan
            continue
        t = int(pos[step])
        o = int(outs[step])
        j = int(out[o])
        b = _row_np(A, features, j, S[:m]).astype(np.float64)
        b[t] = 0.0
        w = M[:m, :m] @ b
        Mtt = M[t, t]
        r = Mtt * (diag[j] - b @ w) + w[t] * w[t]
        s = r / Mtt  # j's pivot given S − S[t]
        if s < REBUILD_REL * diag[j]:  # near-dependent: the update may be rounding
            s = _fresh_pivot_np(A, features, np.delete(S[:m], t), j)
            r = s * Mtt
        p = _acceptance_py(r if s > tau else 0.0, alpha, heat_bath)
        p_out[step] = p
        if not v < p:
            continue
        mt = M[:m, t].copy()
        q = w - mt * (w[t] / Mtt)
        q[t] = 0.0
        M[:m, :m] += np.outer(q, q) / s - np.outer(mt, mt) / Mtt
        M[:m, t] = -q / s
        M[t, :m] = -q / s
        M[t, t] = 1.0 / s
        out[o] = S[t]
        S[t] = j
        if not _after_accept_np(A, features, S, M, counters, s < REBUILD_REL * diag[j]):
            return step
    return -1


# --------------------------------------------------------------------------- numba kernels
# The numba kernels keep only the lower triangle of M up to date (half the work of a
# symmetric rank-2 update); the lower triangle of M[:m, :m] is authoritative for both twins.


@numba.njit(cache=True, fastmath=_FM)
def _entry_nb(A, features, i, j):  # pragma: no cover - compiled
    if features:
        acc = 0.0
        for c in range(A.shape[1]):
            acc += A[i, c] * A[j, c]
        return acc
    return A[i, j]


@numba.njit(cache=True, fastmath=_FM)
def _symv_nb(M, b, w, m):  # pragma: no cover - compiled
    """w[:m] = M[:m,:m] b[:m] reading only the lower triangle of M."""
    for a in range(m):
        w[a] = 0.0
    for a in range(m):
        ba = b[a]
        acc = 0.0
        row = M[a]
        for c in range(a):
            mac = row[c]
            acc += mac * b[c]
            w[c] += mac * ba
        w[a] += acc + row[a] * ba


@numba.njit(cache=True, fastmath=_FM)
def _gram_nb(A, features, items, m):  # pragma: no cover - compiled
    """L restricted to items[:m], as a dense symmetric m×m matrix."""
    G = np.empty((m, m))
    for a in range(m):
        for c in range(a + 1):
            g = _entry_nb(A, features, items[a], items[c])
            G[a, c] = g
            G[c, a] = g
    return G


@numba.njit(cache=True, fastmath=_FM)
def _rebuild_nb(A, features, S, m, M):  # pragma: no cover - compiled
    """lower(M[:m,:m]) ← (L_S)⁻¹ via L_S = CCᵀ (LAPACK), X = C⁻¹, M = XᵀX; False if
    L_S is not positive definite. Row-oriented loops; about m³/3 multiply-adds + potrf."""
    try:
        C = np.linalg.cholesky(_gram_nb(A, features, S, m))
    except Exception:
        return False
    X = np.zeros((m, m))  # X = C⁻¹ (lower), rows by forward substitution
    for i in range(m):
        cii = C[i, i]
        if not cii > 0.0:
            return False
        xi = X[i]
        xi[i] = 1.0
        for p in range(i):
            cip = C[i, p]
            xp = X[p]
            for c in range(p + 1):
                xi[c] -= cip * xp[c]
        inv = 1.0 / cii
        for c in range(i + 1):
            xi[c] *= inv
    for a in range(m):
        for c in range(a + 1):
            M[a, c] = 0.0
    for p in range(m):  # M[a, c] = Σ_{p ≥ a} X[p, a] X[p, c]  (c ≤ a)
        xp = X[p]
        for a in range(p + 1):
            xa = xp[a]
            row = M[a]
            for c in range(a + 1):
                row[c] += xa * xp[c]
    return True


@numba.njit(cache=True, fastmath=_FM)
def _fresh_pivot_nb(A, features, S, m, skip, j):  # pragma: no cover - compiled
    """Twin of :func:`_fresh_pivot_np` for the items S[:m] without slot ``skip``."""
    idx = np.empty(m + 1, dtype=np.int64)
    c = 0
    for a in range(m):
        if a != skip:
            idx[c] = S[a]
            c += 1
    idx[c] = j
    size = c + 1
    try:
        C = np.linalg.cholesky(_gram_nb(A, features, idx, size))
    except Exception:  # noqa: BLE001 - numba catches no narrower class
        return 0.0
    return C[size - 1, size - 1] ** 2


@numba.njit(cache=True, fastmath=_FM)
def _after_accept_nb(A, features, S, M, counters, force):  # pragma: no cover - compiled
    counters[1] += 1
    counters[2] += 1
    if force or counters[1] >= REBUILD_EVERY:
        counters[1] = 0
        counters[3] += 1
        return _rebuild_nb(A, features, S, counters[0], M)
    return True


@numba.njit(cache=True, fastmath=_FM)
def _add_delete_nb(A, features, diag, S, M, where, counters, items, u, alpha, heat_bath,
                   lazy, tau, p_out):  # pragma: no cover - compiled
    """Numba twin of :func:`_add_delete_np` (lower triangle of M only)."""
    cap = S.shape[0]
    b = np.empty(cap)
    q = np.empty(cap)
    n_steps = items.shape[0]
    for step in range(n_steps):
        v = u[step]
        if lazy:
            if v < 0.5:  # hold: nothing is proposed
                p_out[step] = np.nan
                continue
            v = 2.0 * v - 1.0
        m = counters[0]
        i = items[step]
        t = where[i]
        force = False
        if t >= 0:  # delete slot t: r = M_tt
            r = M[t, t]
            p = _acceptance_nb(r, alpha, heat_bath)
            p_out[step] = p
            if not v < p:
                continue
            for a in range(t):
                q[a] = M[t, a]
            for a in range(t, m):
                q[a] = M[a, t]
            inv_r = 1.0 / r
            for a in range(m):
                qa = q[a] * inv_r
                row = M[a]
                for c in range(a + 1):
                    row[c] -= qa * q[c]
            last = m - 1
            if t != last:  # move slot `last` into slot t (reads row `last` only)
                for c in range(t):
                    M[t, c] = M[last, c]
                M[t, t] = M[last, last]
                for a in range(t + 1, last):
                    M[a, t] = M[last, a]
                S[t] = S[last]
                where[S[t]] = t
            S[last] = -1
            where[i] = -1
            counters[0] = m - 1
        else:  # add i at slot m: r = s = L_ii − bᵀ M b
            if m >= cap:
                p_out[step] = 0.0
                continue
            for a in range(m):
                b[a] = _entry_nb(A, features, i, S[a])
            _symv_nb(M, b, q, m)
            s = diag[i]
            for a in range(m):
                s -= b[a] * q[a]
            if s < REBUILD_REL * diag[i]:  # near-dependent: the update may be rounding
                s = _fresh_pivot_nb(A, features, S, m, -1, i)
            p = _acceptance_nb(s if s > tau else 0.0, alpha, heat_bath)
            p_out[step] = p
            if not v < p:
                continue
            inv_s = 1.0 / s
            for a in range(m):
                qa = q[a] * inv_s
                row = M[a]
                for c in range(a + 1):
                    row[c] += qa * q[c]
                M[m, a] = -qa
            M[m, m] = inv_s
            S[m] = i
            where[i] = m
            counters[0] = m + 1
            force = s < REBUILD_REL * diag[i]
        if not _after_accept_nb(A, features, S, M, counters, force):
            return step
    return -1


@numba.njit(cache=True, fastmath=_FM)
def _exchange_nb(A, features, diag, S, M, out, counters, pos, outs, u, alpha, heat_bath,
                 lazy, tau, p_out):  # pragma: no cover - compiled
    """Numba twin of :func:`_exchange_np` (lower triangle of M only)."""
    m = counters[0]
    b = np.empty(m)
    w = np.empty(m)
    q = np.empty(m)
    mt = np.empty(m)
    n_steps = pos.shape[0]
    for step in range(n_steps):
        v = u[step]
        if lazy:
            if v < 0.5:  # hold: nothing is proposed
                p_out[step] = np.nan
                continue
            v = 2.0 * v - 1.0
        t = pos[step]
        j = out[outs[step]]
        for a in range(m):
            b[a] = _entry_nb(A, features, j, S[a])
        b[t] = 0.0
        _symv_nb(M, b, w, m)
        bw = 0.0
        for a in range(m):
            bw += b[a] * w[a]
        Mtt = M[t, t]
        r = Mtt * (diag[j] - bw) + w[t] * w[t]
        inv_mtt = 1.0 / Mtt
        s = r * inv_mtt  # j's pivot given S − S[t]
        if s < REBUILD_REL * diag[j]:  # near-dependent: the update may be rounding
            s = _fresh_pivot_nb(A, features, S, m, t, j)
            r = s * Mtt
        p = _acceptance_nb(r if s > tau else 0.0, alpha, heat_bath)
        p_out[step] = p
        if not v < p:
            continue
        inv_s = 1.0 / s
        coef = w[t] * inv_mtt
        for a in range(t):
            mt[a] = M[t, a]
        for a in range(t, m):
            mt[a] = M[a, t]
        for a in range(m):
            q[a] = w[a] - mt[a] * coef
        q[t] = 0.0
        for a in range(m):
            qa = q[a] * inv_s
            ma = mt[a] * inv_mtt
            row = M[a]
            for c in range(a + 1):
                row[c] += qa * q[c] - ma * mt[c]
        for c in range(t):
            M[t, c] = -q[c] * inv_s
        for a in range(t + 1, m):
            M[a, t] = -q[a] * inv_s
        M[t, t] = inv_s
        out[outs[step]] = S[t]
        S[t] = j
        if not _after_accept_nb(A, features, S, M, counters, s < REBUILD_REL * diag[j]):
            return step
    return -1
