"""Partition-constrained DPPs by a sampling-to-counting chain.

Target: parts P_1..P_m with counts c (k = Σc) and

    π(S) ∝ det L_S · 1[|S ∩ P_j| = c_j for all j].

A k-DPP is the case m = 1. L may be symmetric PSD or nonsymmetric with L + Lᵀ ⪰ 0 (then all
principal minors are ≥ 0 and everything below holds unchanged).

**Counting.** For pinned items A let M(z) = I_Ā + D(z) L with D(z) = diag(z_part(i)). Then

    g_A(z)   = det M(z)                   = Σ_{S ⊇ A} det L_S Π_j z_j^{|S∩P_j|},
    N_{A,i}  = g_A(z) (1 − [M(z)⁻¹]_ii)   = the same sum over S ∋ i   (i ∉ A),

so Z_A(c) = [z^c] g_A and w_i = [z^c] N_{A,i}. Coefficients are read off from values on a
complex torus grid with one DFT bin (the inverse m-dim FFT at the single frequency c).

**Grid.** It is as small as exactness allows (no aliasing onto c). With lo_j = |A∩P_j|,
D_j = min(|P_j|, rank L[P_j,:]) and R the largest possible total degree, the plain grid has
N_j = max(c_j − lo_j, min(D_j − c_j, R − k)) + 1 points on axis j. When m ≥ 2 the
homogenised grid z_j = t·w_j (one part carries only t) is used when smaller: the t axis
needs max(k − |lo|, R − k) + 1 points and each w axis at most k + 1, because only monomials
of total degree k survive the t extraction. Real L gives g(z̄) = conj g(z), so only half of
the grid is evaluated (the extracted coefficient is real by construction).

**Numerics.** The DFT error is ≈ ε·max_grid|g| = ε·g(ρ), so ρ is chosen by exponential
tilting: a few multiplicative fixed-point steps on ρ_j ← ρ_j (c_j − lo_j)/(E_ρ|S∩P_j∖A|)
make the tilted law put its mean at c; the target coefficient then has tilted probability
Ẑ = P_ρ(counts = c) ≈ Π_j (2π var_j)^{-1/2}, far above the noise. M is formed as the
similar matrix I_Ā + D^{1/2} L D^{1/2} (same det and diag M⁻¹, balanced when parts have
different scales); values are rescaled in log space by g(ρ) (the grid maximum); grid
points where M is ill-conditioned (1-norm κ > 1e8) move ρ. The
results are checked: Ẑ must exceed 1e-8, the weights must be non-negative beyond noise,
Σ_i w_i = (k − |A|) Z_A(c), and Z_{A+i} must match the previous step's w_i; otherwise
:class:`~parasample.core.NumericalError` ("constraint probability too small to resolve").

**Chain.** From A = forced items, repeat: w_i/((k − |A|) Z_A(c)) is the law of a uniformly
random unrevealed element of S, so draw i from it and pin it; the final A is an exact
sample. Parts that become full drop their unpinned items, and parts whose remaining items
are all needed are pinned at once.

**Cost.** O(G n³) per step (batched complex LU/inverse over the half grid), O(k G n³)
in total, plus O(2^m n³) for the feasibility checks. Intended for O(1) parts and n up to a
few hundred; G ≤ 1e7 is enforced.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..core.errors import NumericalError
from ..core.rng import RngLike, as_generator
from ._draw import draw_index
from ._validate import as_count, as_square_matrix, psd_tolerance

__all__ = ["sample_partition", "partition_normalizer", "partition_inclusion_probabilities"]

_MAX_GRID = 10_000_000  # grid points per step; beyond this the method is hopeless
_KAPPA_MOVE = 1e8  # move ρ when a grid point's 1-norm condition number exceeds this
_KAPPA_FAIL = 1e10  # ... and give up if no move gets below this
_RESOLVE = 1e-8  # smallest tilted probability Ẑ of the target counts we trust
_ZERO = 1e-13  # Ẑ below this is zero to working precision
_W_NOISE = 1e-12  # absolute noise level of a scaled weight (units of max|g| = 1)
_CHUNK_BYTES = 32 * 2**20
_MAX_RADO_PARTS = 10


# ---------------------------------------------------------------------------- public API
def sample_partition(dpp, parts, counts, *, rng: RngLike = None) -> np.ndarray:
    """Exact sample from π(S) ∝ det L_S · 1[|S ∩ P_j| = c_j ∀j] (sorted int64 array).

    ``dpp``: any object with ``n`` and a dense ``likelihood_kernel()`` (``DPP``,
    ``NonsymmetricDPP``). ``parts``: a length-n integer label array (item i is in part
    ``labels[i]``, labels 0..m−1, and −1 for "in no part"), or a sequence of m disjoint
    index collections. Items in no part are excluded (they count as a part with count 0).
    ``counts``: m non-negative integers.

    Raises ValueError on bad input or infeasible counts, before any sampling work, and
    NumericalError if the constraint probability is too small to resolve in floating point.
    Cost: O(k G n³), see the module docstring.
    """
    prob = _prepare(dpp, parts, counts)
    gen = as_generator(rng)
    uniforms = gen.random(max(prob.k, 1))
    pinned = np.zeros(prob.nw, dtype=bool)
    log_rho = _initial_log_rho(prob)
    prev: tuple[float, float] | None = None  # (log Z_{A+i} predicted, tolerance)
    for s in range(prob.k + 1):
        _pin_forced(prob, pinned)
        if pinned.sum() == prob.k:
            if s == 0:
                _logdet_pinned(prob, pinned)  # raises if the forced set is impossible
            break
        ev = _evaluate_step(prob, pinned, log_rho, first=(s == 0))
        log_rho = ev.log_rho
        if prev is not None and abs(ev.log_z - prev[0]) > prev[1]:
            raise NumericalError(
                "constraint probability too small to resolve: consecutive counts disagree "
                f"(log Z {ev.log_z:.12g} vs predicted {prev[0]:.12g}); rescale L or use "
                "fewer/larger parts"
            )
        r = prob.k - int(pinned.sum())
        j = draw_index(ev.probs, float(uniforms[s]), expected_total=float(r))
        i = int(ev.free[j])
        share = ev.probs[j] / float(np.sum(ev.probs))
        prev = (ev.log_z + float(np.log(ev.probs[j])), 1e-6 + 1e-9 / max(share, 1e-300))
        pinned[i] = True
    return np.sort(prob.items[pinned]).astype(np.int64)


def partition_normalizer(dpp, parts, counts) -> float:
    """log Z = log Σ_{S feasible} det L_S (one grid evaluation; O(G n³))."""
    prob = _prepare(dpp, parts, counts)
    pinned = np.zeros(prob.nw, dtype=bool)
    _pin_forced(prob, pinned)
    if pinned.sum() == prob.k:
        return _logdet_pinned(prob, pinned)
    return _evaluate_step(prob, pinned, _initial_log_rho(prob), first=True).log_z


def partition_inclusion_probabilities(dpp, parts, counts) -> np.ndarray:
    """P(i ∈ S) under the constraint, for every item (length n; O(G n³)).

    Equals [z^c] N_{∅,i} / Z(c); excluded items get 0 and forced items 1.
    """
    prob = _prepare(dpp, parts, counts)
    out = np.zeros(prob.n)
    pinned = np.zeros(prob.nw, dtype=bool)
    _pin_forced(prob, pinned)
    if pinned.sum() < prob.k:
        ev = _evaluate_step(prob, pinned, _initial_log_rho(prob), first=True)
        out[prob.items[ev.free]] = np.clip(ev.probs, 0.0, 1.0)
    elif prob.k > 0:
        _logdet_pinned(prob, pinned)  # raises if the forced set is impossible
    out[prob.items[pinned]] = 1.0
    return out


# ---------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class _Problem:
    """The constraint restricted to the working items W (parts with positive count)."""

    n: int
    L: np.ndarray  # L[W, W]
    items: np.ndarray  # W, original indices
    part: np.ndarray  # index into ``counts`` for each working item
    counts: np.ndarray  # c_j > 0 of the working parts
    part_rank: np.ndarray  # rank of L restricted to each part's rows (degree bound)
    rank: int  # rank of L[W, W] (bound on |S|)
    symmetric: bool
    rado_exact: bool  # feasibility was decided exactly before any work

    @property
    def nw(self) -> int:
        return int(self.items.shape[0])

    @property
    def k(self) -> int:
        return int(self.counts.sum())


def _prepare(dpp, parts, counts) -> _Problem:
    if not hasattr(dpp, "n") or not hasattr(dpp, "likelihood_kernel"):
        raise TypeError("dpp must expose `n` and `likelihood_kernel()` (e.g. DPP, NonsymmetricDPP)")
    n = int(dpp.n)
    labels, m = _as_labels(parts, n)
    c = _as_counts(counts, m)
    sizes = np.bincount(labels[labels >= 0], minlength=m)
    for j in range(m):
        if c[j] > sizes[j]:
            raise ValueError(
                f"impossible partition counts: part {j} has {sizes[j]} items but count {c[j]}"
            )
    L, symmetric = _kernel(dpp, n)
    keep = np.flatnonzero(c > 0)
    remap = -np.ones(m, dtype=np.int64)
    remap[keep] = np.arange(keep.size)
    items = np.flatnonzero(np.append(c, 0)[labels] > 0).astype(np.int64)  # label −1 → 0
    part = remap[labels[items]]
    cw = c[keep]
    Lw = L[np.ix_(items, items)]
    part_rank, rank = _check_feasible(Lw, part, cw, keep, symmetric)
    rado_exact = symmetric and cw.size <= _MAX_RADO_PARTS
    return _Problem(n, Lw, items, part, cw, part_rank, rank, symmetric, rado_exact)


def _as_labels(parts, n: int) -> tuple[np.ndarray, int]:
    """Length-n labels (−1 = in no part) and the number of parts m."""
    if isinstance(parts, np.ndarray) and parts.ndim == 1 and parts.dtype != object:
        seq: list = list(parts)
        scalar = True
    else:
        if isinstance(parts, (str, bytes)) or not hasattr(parts, "__iter__"):
            raise ValueError("parts must be a label array or a sequence of index collections")
        seq = list(parts)
        scalar = all(np.ndim(x) == 0 and not isinstance(x, (set, frozenset, dict)) for x in seq)
    if scalar and seq:
        lab = _integral(np.asarray(seq), "part labels")
        if lab.shape[0] != n:
            raise ValueError(f"a part label array must have length n = {n}, got {lab.shape[0]}")
        if lab.min() < -1:
            raise ValueError(f"part labels must be −1 (no part) or 0..m−1, got {lab.min()}")
        return lab, int(lab.max()) + 1
    labels = -np.ones(n, dtype=np.int64)
    for j, P in enumerate(seq):
        if np.ndim(P) == 0 and not isinstance(P, (set, frozenset)):
            raise ValueError(
                "parts must be a label array or a sequence of index collections, "
                f"got element {j} = {P!r}"
            )
        idx = _integral(np.asarray(sorted(P) if isinstance(P, (set, frozenset)) else list(P)),
                        f"part {j}")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
            raise ValueError(f"part {j} has index {bad} outside [0, {n - 1}]")
        if np.unique(idx).size != idx.size:
            raise ValueError(f"part {j} repeats an index")
        clash = idx[labels[idx] >= 0]
        if clash.size:
            raise ValueError(
                f"parts overlap: item {int(clash[0])} is in parts {int(labels[clash[0]])} and {j}"
            )
        labels[idx] = j
    return labels, len(seq)


def _integral(a: np.ndarray, name: str) -> np.ndarray:
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D collection of integers, got shape {a.shape}")
    if a.dtype == bool:
        raise ValueError(f"{name} must hold integers, not booleans")
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    if np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    raise ValueError(f"{name} must hold integers, got {a.dtype} values")


def _as_counts(counts, m: int) -> np.ndarray:
    if isinstance(counts, (str, bytes)) or np.ndim(counts) != 1:
        raise ValueError(f"counts must be a 1-D sequence of m = {m} non-negative integers")
    c = [as_count(x, f"counts[{j}]") for j, x in enumerate(counts)]
    if len(c) != m:
        raise ValueError(f"counts has length {len(c)} but there are {m} parts")
    return np.asarray(c, dtype=np.int64)


def _kernel(dpp: object, n: int) -> tuple[np.ndarray, bool]:
    """Dense real L and whether it is symmetric; validates PSD / L + Lᵀ ⪰ 0."""
    from .kernel import DPP

    L = as_square_matrix(dpp.likelihood_kernel(), "L")
    if L.shape[0] != n:
        raise ValueError(f"likelihood_kernel() has shape {L.shape} but dpp.n = {n}")
    if isinstance(dpp, DPP):
        return L, True
    scale = float(np.max(np.abs(L)))
    symmetric = float(np.max(np.abs(L - L.T))) <= 1e-12 * max(scale, np.finfo(float).tiny)
    S = (L + L.T) / 2.0
    lam = np.linalg.eigvalsh(S)
    tau = psd_tolerance(n, float(lam.max(initial=0.0)))
    if lam.min() < -tau:
        what = "L" if symmetric else "the symmetric part (L + Lᵀ)/2"
        raise ValueError(
            f"{what} is not positive semidefinite: its most negative eigenvalue is "
            f"{lam.min():.6g} (tolerance {tau:.3g})"
        )
    return (S if symmetric else L), symmetric


def _check_feasible(Lw: np.ndarray, part: np.ndarray, c: np.ndarray, labels_kept: np.ndarray,
                    symmetric: bool) -> tuple[np.ndarray, int]:
    """Rank conditions. For symmetric PSD L, Rado's theorem makes them exact: a feasible
    set exists iff Σ_{j∈J} c_j ≤ rank L[∪_J P_j] for every set J of parts (checked for all
    J when m ≤ 10, else for single parts and all of them). For nonsymmetric L they are
    only necessary; a normaliser that is zero to working precision is reported later."""
    m = c.size
    if m == 0:
        return np.zeros(0, dtype=np.int64), 0
    # Ranks are taken after a diagonal equilibration S L S (rank-preserving): an absolute
    # tolerance on L itself would call parts with small scale rank-deficient, and a rank
    # that is too small breaks the alias-free grid sizes.
    Le = _equilibrate(Lw)
    smax = float(np.linalg.norm(Le, 2))
    tol = psd_tolerance(Le.shape[0], smax)

    def rank_of(mask: np.ndarray) -> int:
        if not mask.any() or smax == 0.0:
            return 0
        r = np.linalg.matrix_rank(Le[mask], tol=tol)
        if not symmetric:
            r = min(r, np.linalg.matrix_rank(Le[:, mask], tol=tol))
        return int(r)

    part_rank = np.array([rank_of(part == j) for j in range(m)], dtype=np.int64)
    for j in range(m):
        if c[j] > part_rank[j]:
            raise ValueError(
                f"impossible partition counts: part {labels_kept[j]} needs {c[j]} items but "
                f"L restricted to it has rank {part_rank[j]}"
            )
    rank = rank_of(np.ones(part.size, dtype=bool))
    if c.sum() > rank:
        raise ValueError(
            f"impossible partition counts: they sum to {int(c.sum())} but L (on the items "
            f"of parts with positive counts) has rank {rank}"
        )
    if 3 <= m <= _MAX_RADO_PARTS:
        for size in range(2, m):
            for J in combinations(range(m), size):
                need = int(c[list(J)].sum())
                have = rank_of(np.isin(part, J))
                if need > have:
                    names = tuple(int(labels_kept[j]) for j in J)
                    raise ValueError(
                        f"infeasible partition counts: parts {names} "
                        f"need {need} items together but span rank {have}, so no set has "
                        "positive probability (the normaliser is zero)"
                    )
    return part_rank, rank


def _equilibrate(L: np.ndarray, sweeps: int = 4) -> np.ndarray:
    """S L S with positive diagonal S making every row and column max-norm ≈ 1 (Ruiz)."""
    s = np.ones(L.shape[0])
    for _ in range(sweeps):
        A = np.abs(s[:, None] * L * s[None, :])
        r = np.maximum(A.max(axis=1, initial=0.0), A.max(axis=0, initial=0.0))
        s = np.where(r > 0, s / np.sqrt(np.where(r > 0, r, 1.0)), s)
    return s[:, None] * L * s[None, :]


# ---------------------------------------------------------------------------- the chain
def _pin_forced(prob: _Problem, pinned: np.ndarray) -> None:
    """Pin every unpinned item of a part whose remaining need equals its remaining items."""
    m = prob.counts.size
    lo = np.bincount(prob.part[pinned], minlength=m)
    avail = np.bincount(prob.part[~pinned], minlength=m)
    need = prob.counts - lo
    for j in np.flatnonzero((need > 0) & (need == avail)):
        pinned[(prob.part == j) & ~pinned] = True


def _initial_log_rho(prob: _Problem) -> np.ndarray:
    """First guess from the small-ρ regime E|S∩P_j| ≈ ρ_j Σ_{i∈P_j} L_ii."""
    m = prob.counts.size
    diag = np.bincount(prob.part, weights=np.abs(np.diag(prob.L)), minlength=m)
    with np.errstate(divide="ignore"):
        out = np.where(diag > 0, np.log(prob.counts) - np.log(np.where(diag > 0, diag, 1.0)), 0.0)
    return out


def _logdet_pinned(prob: _Problem, pinned: np.ndarray) -> float:
    if prob.k == 0:
        return 0.0
    idx = np.flatnonzero(pinned)
    sign, logdet = np.linalg.slogdet(prob.L[np.ix_(idx, idx)])
    if sign <= 0:  # (the rank check already made L_A numerically nonsingular)
        raise ValueError("infeasible partition counts: the only feasible set has det L_S = 0 "
                         "(the normaliser is zero)")
    return float(logdet)


@dataclass(frozen=True)
class _Step:
    log_z: float  # log Z_A(c)
    free: np.ndarray  # working indices of the candidate items
    probs: np.ndarray  # P(i ∈ S | A ⊆ S) for the candidates (sums to k − |A|)
    log_rho: np.ndarray  # tilt used, per working part
    grid_points: int


def _evaluate_step(prob: _Problem, pinned: np.ndarray, log_rho: np.ndarray,
                   *, first: bool) -> _Step:
    """Z_A(c) and the weights w_i/Z_A(c) for all free items, by one grid evaluation."""
    m = prob.counts.size
    lo_all = np.bincount(prob.part[pinned], minlength=m)
    active = np.flatnonzero(lo_all < prob.counts)
    in_u = pinned | np.isin(prob.part, active)
    U = np.flatnonzero(in_u)
    LU = prob.L[np.ix_(U, U)]
    notA = ~pinned[U]
    dim = -np.ones(m, dtype=np.int64)
    dim[active] = np.arange(active.size)
    dim_of = dim[prob.part[U]]  # −1 for (pinned) items of full parts: z = 1 there
    c = prob.counts[active]
    lo = lo_all[active]
    size_u = np.bincount(prob.part[U], minlength=m)[active]
    D = np.minimum(size_u, prob.part_rank[active])
    r_max = min(prob.rank - int(prob.counts.sum() - c.sum()), int(D.sum()))
    sizes, P = _grid(c, lo, D, r_max)
    G = int(np.prod(sizes))
    if G > _MAX_GRID:
        raise ValueError(
            f"the coefficient grid would need {G} points per step (parts {m}); this method "
            "is intended for O(1) parts — merge parts or use fewer items"
        )
    f = c - lo
    lr = _tilt(LU, notA, dim_of, f, log_rho[active].copy(), iters=40 if first else 10)
    free_u = np.flatnonzero(notA)
    result = None
    for attempt in range(5):
        ok, res = _grid_sum(LU, notA, dim_of, lr, sizes, P, c)
        if ok and res[3] <= _KAPPA_MOVE:
            result = res
            break
        if ok and (result is None or res[3] < result[3]):
            result = res
        # move ρ off the singular / ill-conditioned grid points, deterministically
        lr = lr + 0.05 * (attempt + 1) * (1.0 + 0.37 * np.arange(lr.size)) * (-1.0) ** attempt
    if result is None or result[3] > _KAPPA_FAIL:
        raise NumericalError(
            "constraint probability too small to resolve: the counting matrices are "
            "singular on the coefficient grid even after moving ρ; rescale L"
        )
    log_shift, z_hat, w_hat, _, lr = result
    r = prob.k - int(pinned.sum())
    if not z_hat > _ZERO:
        if first and not prob.rado_exact:
            raise ValueError(
                "infeasible partition counts: the normaliser is zero to working precision "
                f"(tilted probability {z_hat:.3g}); no feasible set has det L_S > 0"
            )
        raise NumericalError(f"constraint probability too small to resolve (Ẑ = {z_hat:.3g})")
    if z_hat < _RESOLVE:
        raise NumericalError(
            f"constraint probability too small to resolve (tilted probability {z_hat:.3g} "
            f"< {_RESOLVE:g}); rescale L or choose less extreme counts"
        )
    w = w_hat[free_u]
    if np.any(w < -_W_NOISE):
        raise NumericalError(
            f"constraint probability too small to resolve: negative weight {w.min():.3g}"
        )
    w = np.where(w > _W_NOISE, w, 0.0)
    total = float(w.sum())
    if abs(total - r * z_hat) > 1e-8 * r * z_hat + w.size * _W_NOISE:
        raise NumericalError(
            "constraint probability too small to resolve: Σ w_i = "
            f"{total:.12g} but (k − |A|) Z = {r * z_hat:.12g}"
        )
    lrho = np.array(log_rho, dtype=float)
    lrho[active] = lr
    log_z = log_shift + float(np.log(z_hat)) - float(c.astype(float) @ lr)
    return _Step(log_z, U[free_u], w / z_hat, lrho, G)


def _grid(c: np.ndarray, lo: np.ndarray, D: np.ndarray,
          r_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Alias-free axis sizes and the map P (parts × axes) with log z = P · log ζ."""
    J = c.size
    if J == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    k, lo_t = int(c.sum()), int(lo.sum())
    plain = np.maximum(c - lo, np.minimum(D - c, r_max - k)) + 1
    best = (int(np.prod(plain)), plain, np.eye(J))
    if J >= 2:
        n_t = max(k - lo_t, r_max - k) + 1
        nw = np.maximum(c - lo, np.minimum(D, k - lo_t + lo) - c) + 1
        for js in range(J):
            others = [j for j in range(J) if j != js]
            G = n_t * int(np.prod(nw[others]))
            if G < best[0]:
                P = np.zeros((J, J))
                P[:, 0] = 1.0
                for a, j in enumerate(others, start=1):
                    P[j, a] = 1.0
                best = (G, np.concatenate(([n_t], nw[others])), P)
    return np.asarray(best[1], dtype=np.int64), best[2]


def _tilt(LU: np.ndarray, notA: np.ndarray, dim_of: np.ndarray, f: np.ndarray,
          lr: np.ndarray, *, iters: int) -> np.ndarray:
    """Fixed point ρ_j ← ρ_j f_j / E_ρ|free ∩ P_j| (log space, steps clipped)."""
    J = f.size
    if J == 0:
        return lr
    free = notA
    idx = np.arange(LU.shape[0])
    for _ in range(iters):
        h = np.where(dim_of >= 0, np.exp(lr / 2.0)[np.maximum(dim_of, 0)], 1.0)
        M = h[:, None] * LU * h[None, :]  # similar to I_Ā + D(ρ)L, balanced
        M[idx, idx] += notA
        try:
            Minv = np.linalg.inv(M)
        except np.linalg.LinAlgError:
            break
        p = np.clip(1.0 - np.diag(Minv), 0.0, 1.0)
        F = np.bincount(dim_of[free], weights=p[free], minlength=J)
        step = np.log(f) - np.log(np.maximum(F, 1e-300))
        if not np.all(np.isfinite(step)):
            break
        lr = lr + np.clip(step, -4.0, 4.0)
        if np.max(np.abs(step)) < 0.02:
            break
    return lr


def _grid_sum(LU: np.ndarray, notA: np.ndarray, dim_of: np.ndarray, lr_parts: np.ndarray,
              sizes: np.ndarray, P: np.ndarray, c: np.ndarray) -> tuple[bool, tuple | None]:
    """Evaluate g and N on the half grid and take the DFT bin at c.

    Returns (ok, (log g(ρ), Ẑ, ŵ, max κ, lr_parts)) where Ẑ = Z ρ^c / g(ρ) and
    ŵ_i = w_i ρ^c / g(ρ) (the scaled coefficients).
    """
    nU = LU.shape[0]
    idx = np.arange(nU)
    J = c.size
    lr_ax = np.linalg.solve(P, lr_parts) if J else np.zeros(0)
    e_ax = P.T @ c if J else np.zeros(0)
    # real point a = 0: the maximum of |g| over the torus (non-negative coefficients)
    h0 = np.where(dim_of >= 0, np.exp(lr_parts / 2.0)[np.maximum(dim_of, 0)] if J else 1.0, 1.0)
    M0 = h0[:, None] * LU * h0[None, :]
    M0[idx, idx] += notA
    sign0, log_shift = np.linalg.slogdet(M0)
    if not sign0 > 0:
        return False, None
    G = int(np.prod(sizes)) if J else 1
    chunk = max(1, _CHUNK_BYTES // (16 * nU * nU))
    z_acc = 0.0
    w_acc = np.zeros(nU)
    kappa = 0.0
    for start in range(0, G, chunk):
        flat = np.arange(start, min(G, start + chunk))
        if J:
            a = np.stack(np.unravel_index(flat, sizes), axis=1)
            partner = np.ravel_multi_index(tuple(((-a) % sizes).T), sizes)
        else:
            a = np.zeros((flat.size, 0), dtype=np.int64)
            partner = flat
        keep = flat <= partner
        a, mult = a[keep], np.where(flat[keep] == partner[keep], 1.0, 2.0)
        if a.shape[0] == 0:
            continue
        theta = 2.0 * np.pi * a / sizes  # (B, axes)
        logz = (lr_ax[None, :] + 1j * theta) @ P.T  # (B, J)
        sqrt_z = np.exp(logz / 2.0)
        phase = np.exp(-1j * (theta @ e_ax))  # ω^{−a·e}
        h = np.ones((a.shape[0], nU), dtype=complex)
        act = dim_of >= 0
        h[:, act] = sqrt_z[:, dim_of[act]]
        # D^{1/2} L D^{1/2} instead of D L: a diagonal similarity, so det and diag(M⁻¹)
        # are unchanged, but the matrix stays balanced when parts have different scales
        M = h[:, :, None] * LU[None, :, :] * h[:, None, :]
        M[:, idx, idx] += notA
        sign, logabs = np.linalg.slogdet(M)
        try:
            Minv = np.linalg.inv(M)
        except np.linalg.LinAlgError:
            return False, None
        norm_m = np.abs(M).sum(axis=1).max(axis=1)
        norm_i = np.abs(Minv).sum(axis=1).max(axis=1)
        kappa = max(kappa, float(np.max(norm_m * norm_i)))
        g = sign * np.exp(logabs - log_shift)
        coef = mult * phase * g  # (B,)
        z_acc += float(np.sum(coef.real))
        w_acc += np.real(coef[:, None] * (1.0 - np.diagonal(Minv, axis1=1, axis2=2))).sum(axis=0)
    if not np.isfinite(z_acc) or not np.all(np.isfinite(w_acc)):
        return False, None
    return True, (float(log_shift), z_acc / G, w_acc / G, kappa, lr_parts)
