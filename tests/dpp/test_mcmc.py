"""MCMC for DPPs: add–delete and exchange chains (spec dpp.md §4, §9).

Evidence: (1) exact stationarity and detailed balance of the transition matrix built from
the implementation's own kernel, one proposal at a time; (2) pathwise equality of the
O(k²) chain with a naive slogdet chain on shared noise, and numba == numpy twin; (3) the
long-run law by a chi-square test on counts, whose power is shown on a wrong chain;
(4) aperiodicity and mixing: the exact TV of the n-step law, from the enumerated transition
matrix, goes to 0 on the periodic examples of the non-lazy chain, and the exchange chain's
spectral gap meets the documented bound; (5) probability-zero sets are never a state.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from parasample.core.errors import NumericalError
from parasample.dpp import mcmc
from parasample.dpp.esp import log_esp
from parasample.dpp.kernel import DPP
from parasample.dpp.map import map_greedy
from parasample.dpp.mcmc import _Chain, _transition_row, sample_mcmc
from support.dpp_laws import ill_conditioned_psd, random_psd
from support.stats import (
    all_subsets,
    chisquare_counts,
    count_samples,
    tv_bootstrap_threshold,
    tv_distance,
)

ALPHA_TEST = 1e-4  # significance of the fast statistical tests (spec §9)


def _det(L, S):
    S = list(S)
    return float(np.linalg.det(L[np.ix_(S, S)])) if S else 1.0


def _kernel(n, seed, scale=2.0):
    return random_psd(n, np.random.default_rng(seed), scale=scale)


# ============================================================== 1. exact stationarity
def transition_matrix(dpp, L, *, k, alpha, acceptance, backend="numpy", support=None,
                      lazy=None):
    """P over the support (states with det L_S > 0), from the implementation's kernel
    (``lazy=None``: the default chain of ``sample_mcmc``)."""
    extra = {} if lazy is None else {"lazy": lazy}
    chain = _Chain.prepare(dpp, k=k, alpha=alpha, acceptance=acceptance, **extra)
    states = support if support is not None else all_subsets(dpp.n, k)
    index = {S: a for a, S in enumerate(states)}
    P = np.zeros((len(states), len(states)))
    for S in states:
        for S2, p in _transition_row(chain, np.array(S, dtype=np.int64), backend=backend).items():
            if p == 0.0:
                continue
            assert S2 in index, f"the chain left the support: {S} -> {S2}"
            P[index[S], index[S2]] += p
    pi = np.array([_det(L, S) for S in states]) ** alpha
    return states, P, pi / pi.sum()


def _check_stationary(P, pi):
    assert np.all(P >= 0)
    assert np.max(np.abs(P.sum(axis=1) - 1.0)) < 1e-12
    assert np.max(np.abs(pi @ P - pi)) < 1e-12
    F = pi[:, None] * P
    assert np.max(np.abs(F - F.T)) < 1e-12


@pytest.mark.parametrize("lazy", [True, False])
@pytest.mark.parametrize("acceptance", ["metropolis", "heat-bath"])
@pytest.mark.parametrize("alpha", [1.0, 0.4, 2.5])
@pytest.mark.parametrize("k", [None, 3])
def test_exact_stationarity_and_detailed_balance(k, alpha, acceptance, lazy):
    n = 7 if k is None else 8
    L = _kernel(n, seed=1 if k is None else 2)
    dpp = DPP.from_likelihood(L)
    _, P, pi = transition_matrix(dpp, L, k=k, alpha=alpha, acceptance=acceptance, lazy=lazy)
    _check_stationary(P, pi)
    # the chain moves: off-diagonal mass is substantial, so the check is not vacuous
    assert np.mean(1.0 - np.diag(P)) > (0.1 if lazy else 0.2)


@pytest.mark.parametrize("k", [None, 2])
def test_exact_stationarity_numba_kernel_and_features(k):
    rng = np.random.default_rng(4)
    B = rng.normal(size=(6, 4))
    L = B @ B.T
    support = [S for S in all_subsets(6, k) if len(S) <= 4]  # rank 4: bigger sets have det 0
    for dpp in (DPP.from_likelihood(L), DPP.from_features(B)):
        for backend in ("numpy", "numba"):
            _, P, pi = transition_matrix(dpp, L, k=k, alpha=1.3, acceptance="metropolis",
                                         backend=backend, support=support)
            _check_stationary(P, pi)


def test_stationarity_check_has_power():
    """A transition matrix for the wrong target fails the same checks."""
    L = _kernel(6, seed=3)
    dpp = DPP.from_likelihood(L)
    _, P, pi = transition_matrix(dpp, L, k=None, alpha=2.0, acceptance="metropolis")
    pi1 = np.array([_det(L, S) for S in all_subsets(6)])
    pi1 /= pi1.sum()
    assert np.max(np.abs(pi1 @ P - pi1)) > 1e-3
    with pytest.raises(AssertionError):
        _check_stationary(P, pi1)


# ============================================================== 2. pathwise equality
def _accept_prob(r, alpha, heat_bath):
    """Independent re-statement of the acceptance rules (not the library's function)."""
    if r <= 0:
        return 0.0
    x = r**alpha
    return x / (1.0 + x) if heat_bath else min(1.0, x)


def _logdet(L, S):
    if not S:
        return 0.0
    sign, val = np.linalg.slogdet(L[np.ix_(S, S)])
    return val if sign > 0 else -np.inf


def _move_uniforms(chain, u):
    """The uniform each step's acceptance test uses: lazy chains hold when u < 1/2 (NaN
    here) and otherwise test 2u − 1 < p."""
    if not chain.lazy:
        return u
    return np.where(u < 0.5, np.nan, 2.0 * u - 1.0)


def _no_near_ties(v, p):
    moved = ~np.isnan(v)
    return bool(np.all(np.abs(v[moved] - p[moved]) > 1e-9))


def naive_chain(L, chain, S0, props, u):
    """The same chain with r = exp(slogdet L_S' − slogdet L_S); same slot bookkeeping.
    Returns (slots, probabilities); a lazy step that holds has probability NaN."""
    S = [int(x) for x in S0]
    n = L.shape[0]
    out = [i for i in range(n) if i not in S]
    probs = np.empty(u.shape[0])
    v = _move_uniforms(chain, u)
    for step in range(u.shape[0]):
        if np.isnan(v[step]):
            probs[step] = np.nan
            continue
        if chain.exchange:
            t, o = int(props[0][step]), int(props[1][step])
            S2 = S.copy()
            S2[t] = out[o]
        else:
            i = int(props[0][step])
            if i in S:
                t = S.index(i)
                S2 = S.copy()
                S2[t] = S2[-1]
                S2.pop()
            else:
                S2 = S + [i] if len(S) < chain.cap else None
        if S2 is None:
            probs[step] = 0.0
            continue
        r = np.exp(_logdet(L, S2) - _logdet(L, S))
        probs[step] = _accept_prob(r, chain.alpha, chain.heat_bath)
        if v[step] < probs[step]:
            if chain.exchange:
                out[o] = S[t]
            S = S2
    return S, probs


@pytest.mark.parametrize("lazy", [True, False])
@pytest.mark.parametrize("k", [None, 8])
@pytest.mark.parametrize("acceptance", ["metropolis", "heat-bath"])
def test_pathwise_equality_with_naive_slogdet_chain(k, acceptance, lazy):
    n, steps = 30, 3000 if lazy else 1500  # about 1500 moving steps either way
    checked = 0
    for seed in range(4):
        L = _kernel(n, seed=10 + seed, scale=4.0)
        dpp = DPP.from_likelihood(L)
        chain = _Chain.prepare(dpp, k=k, alpha=0.8, acceptance=acceptance, lazy=lazy)
        S0 = chain.initial_set(None)
        props, u = chain.draw(np.random.default_rng(seed), steps)
        ref_slots, ref_p = naive_chain(L, chain, S0, props, u)
        if not _no_near_ties(_move_uniforms(chain, u), ref_p):
            continue  # near-tie: the two chains may legitimately part ways
        state = chain.new_state(S0)
        p = np.empty(steps)
        chain.run(state, props, u, backend="numba", p_out=p)
        assert state.S[: state.m].tolist() == ref_slots
        np.testing.assert_allclose(p, ref_p, rtol=1e-8, atol=1e-12)
        assert state.counters[3] >= 3  # M was rebuilt several times along the path
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("lazy", [True, False])
@pytest.mark.parametrize("k", [None, 6])
@pytest.mark.parametrize("features", [False, True])
def test_numba_equals_numpy_twin(k, features, lazy):
    n, steps = 25, 2000
    rng = np.random.default_rng(21)
    B = rng.normal(size=(n, 12)) * rng.uniform(0.5, 2.0, size=(n, 1))
    dpp = DPP.from_features(B) if features else DPP.from_likelihood(B @ B.T)
    chain = _Chain.prepare(dpp, k=k, alpha=1.0, acceptance="metropolis", lazy=lazy)
    S0 = chain.initial_set(None)
    props, u = chain.draw(np.random.default_rng(5), steps)
    a, b = chain.new_state(S0), chain.new_state(S0)
    pa, pb = np.empty(steps), np.empty(steps)
    chain.run(a, props, u, backend="numba", p_out=pa)
    chain.run(b, props, u, backend="numpy", p_out=pb)
    assert _no_near_ties(_move_uniforms(chain, u), pb)  # no near-ties on this seed
    assert np.isnan(pb).sum() == (np.sum(u < 0.5) if lazy else 0)  # holds evaluate nothing
    assert a.S.tolist() == b.S.tolist()
    assert a.counters.tolist() == b.counters.tolist()
    assert a.counters[2] > 150  # plenty of accepted moves
    # p lies in [0, 1]; absolute slack because s = L_ii − bᵀMb cancels for small ratios
    np.testing.assert_allclose(pa, pb, rtol=1e-9, atol=1e-10)
    m = a.m
    scale = np.abs(b.M[:m, :m]).max()
    assert np.max(np.abs(np.tril(a.M[:m, :m]) - np.tril(b.M[:m, :m]))) < 1e-9 * scale
    # and M is still (L_S)⁻¹
    S = a.S[:m]
    Minv = np.linalg.inv(dpp.likelihood_submatrix(S))
    assert np.max(np.abs(np.tril(a.M[:m, :m]) - np.tril(Minv))) < 1e-8 * np.abs(Minv).max()


def test_dense_and_feature_paths_agree():
    rng = np.random.default_rng(8)
    B = rng.normal(size=(20, 7))
    d1, d2 = DPP.from_likelihood(B @ B.T), DPP.from_features(B)
    for k in (None, 4):
        x = sample_mcmc(d1, k=k, n_steps=500, rng=3)
        y = sample_mcmc(d2, k=k, n_steps=500, rng=3)
        assert x.tolist() == y.tolist()


# ============================================================== 3. long-run law
def _chains(dpp, n_chains, *, seed, **kw):
    gens = np.random.default_rng(seed).spawn(n_chains)
    return [tuple(sample_mcmc(dpp, rng=g, **kw).tolist()) for g in gens]


def _law(L, states, alpha=1.0):
    w = np.array([_det(L, S) for S in states]) ** alpha
    return w / w.sum()


def _mixing_tv(dpp, L, *, k, alpha, acceptance, start, T):
    states, P, pi = transition_matrix(dpp, L, k=k, alpha=alpha, acceptance=acceptance)
    x = np.zeros(len(states))
    x[states.index(start)] = 1.0
    return 0.5 * np.abs(x @ np.linalg.matrix_power(P, T) - pi).sum()


def test_long_run_law_add_delete_chi_square_with_power():
    n, T, n_chains = 6, 120, 20000  # the lazy chain needs T = 114 for TV < 1e-4
    L = _kernel(n, seed=31, scale=3.0)
    dpp = DPP.from_likelihood(L)
    # the chains run long enough that the law after T steps is the target (exactly)
    assert _mixing_tv(dpp, L, k=None, alpha=1.0, acceptance="metropolis", start=(), T=T) < 1e-4
    states = all_subsets(n)
    pi = _law(L, states)
    counts = count_samples(_chains(dpp, n_chains, seed=1, n_steps=T), states)
    _, pval, df = chisquare_counts(counts, pi)
    assert df >= 40 and pval > ALPHA_TEST
    assert tv_distance(counts, pi) <= 1e-4 + tv_bootstrap_threshold(pi, n_chains)
    # power: the det-ratio-squared chain (TV 0.36 from pi) and a subtly tempered one
    # (alpha = 1.1, TV 0.044) fail the same test
    for alpha in (2.0, 1.1):
        wrong = count_samples(_chains(dpp, n_chains, seed=2, n_steps=T, alpha=alpha), states)
        assert chisquare_counts(wrong, pi)[1] < ALPHA_TEST
    # ... and the tempered heat-bath chain passes against its own law
    hb = count_samples(_chains(dpp, n_chains, seed=3, n_steps=T, alpha=2.0,
                               acceptance="heat-bath"), states)
    assert chisquare_counts(hb, _law(L, states, 2.0))[1] > ALPHA_TEST


def test_long_run_law_exchange_chi_square_with_power():
    n, k, T, n_chains = 6, 3, 60, 10000  # the lazy chain needs T = 57 for TV < 1e-4
    L = _kernel(n, seed=32, scale=3.0)
    dpp = DPP.from_likelihood(L)
    start = tuple(map_greedy(dpp, k).tolist())
    assert _mixing_tv(dpp, L, k=k, alpha=1.0, acceptance="metropolis", start=start,
                      T=T) < 1e-4
    states = all_subsets(n, k)
    pi = _law(L, states)
    counts = count_samples(_chains(dpp, n_chains, seed=4, k=k, n_steps=T), states)
    assert chisquare_counts(counts, pi)[1] > ALPHA_TEST
    assert tv_distance(counts, pi) <= 1e-4 + tv_bootstrap_threshold(pi, n_chains)
    for alpha in (2.0, 1.1):  # TV 0.33 and 0.039 from pi
        wrong = count_samples(_chains(dpp, n_chains, seed=5, k=k, n_steps=T, alpha=alpha),
                              states)
        assert chisquare_counts(wrong, pi)[1] < ALPHA_TEST


@pytest.mark.slow
@pytest.mark.parametrize("k", [None, 4])
def test_long_run_law_n8_heat_bath_tempered(k):
    n, T, n_chains, alpha = 8, 180, 100000, 0.7  # TV < 1e-4 needs T = 162 (k = None)
    L = _kernel(n, seed=33, scale=3.0)
    dpp = DPP.from_likelihood(L)
    start = () if k is None else tuple(map_greedy(dpp, k).tolist())
    assert _mixing_tv(dpp, L, k=k, alpha=alpha, acceptance="heat-bath", start=start,
                      T=T) < 1e-4
    states = all_subsets(n, k)
    pi = _law(L, states, alpha)
    counts = count_samples(_chains(dpp, n_chains, seed=7, k=k, n_steps=T, alpha=alpha,
                                   acceptance="heat-bath"), states)
    assert chisquare_counts(counts, pi)[1] > ALPHA_TEST
    assert tv_distance(counts, pi) <= 1e-4 + tv_bootstrap_threshold(pi, n_chains)


# ============================================================== behaviour and bad input
def test_reproducible_and_rng_forms():
    dpp = DPP.from_likelihood(_kernel(12, seed=40))
    for k in (None, 4):
        a = sample_mcmc(dpp, k=k, n_steps=300, rng=7)
        b = sample_mcmc(dpp, k=k, n_steps=300, rng=np.random.default_rng(7))
        c = sample_mcmc(dpp, k=k, n_steps=300, rng=np.random.SeedSequence(7))
        assert a.tolist() == b.tolist() == c.tolist()
        assert a.dtype == np.int64 and np.all(np.diff(a) > 0)
        g = np.random.default_rng(1)
        runs = {tuple(sample_mcmc(dpp, k=k, n_steps=300, rng=g)) for _ in range(10)}
        assert len(runs) > 1  # a passed Generator advances
    with pytest.raises(TypeError):
        sample_mcmc(dpp, n_steps=3, rng=np.random.RandomState(0))


def test_start_states_and_trivial_chains():
    L = _kernel(10, seed=41)
    dpp = DPP.from_likelihood(L)
    assert sample_mcmc(dpp, n_steps=0).tolist() == []
    assert sample_mcmc(dpp, k=4, n_steps=0).tolist() == map_greedy(dpp, 4).tolist()
    assert sample_mcmc(dpp, k=3, n_steps=0, init=[9, 0, 4]).tolist() == [0, 4, 9]
    assert sample_mcmc(dpp, n_steps=0, init=[5, 2]).tolist() == [2, 5]
    assert sample_mcmc(dpp, k=0, n_steps=50, rng=0).tolist() == []
    assert sample_mcmc(dpp, k=10, n_steps=50, rng=0).tolist() == list(range(10))
    x = sample_mcmc(dpp, k=5, n_steps=400, rng=0, init=[0, 1, 2, 3, 4])
    assert x.size == 5 and len(set(x.tolist())) == 5


def test_low_rank_add_delete_never_exceeds_rank():
    rng = np.random.default_rng(42)
    B = rng.normal(size=(15, 3)) * 3
    dpp = DPP.from_features(B)
    sizes = {sample_mcmc(dpp, n_steps=300, rng=s).size for s in range(30)}
    assert max(sizes) <= 3 and 3 in sizes


def test_near_singular_kernel_gives_valid_states():
    L = ill_conditioned_psd(10, np.random.default_rng(43))
    dpp = DPP.from_likelihood(L)
    for k in (None, 4):
        for s in range(5):
            x = sample_mcmc(dpp, k=k, n_steps=3000, rng=s)
            assert np.all(np.diff(x) > 0) and (k is None or x.size == k)
    rng = np.random.default_rng(44)
    B = rng.normal(size=(8, 3))
    Bdup = np.vstack([B, B[:2]])  # duplicated feature rows
    for k in (None, 3):
        x = sample_mcmc(DPP.from_features(Bdup), k=k, n_steps=2000, rng=1)
        assert x.size <= 3 and np.all(np.isfinite(x))


def test_bad_inputs():
    rng = np.random.default_rng(45)
    B = rng.normal(size=(8, 3))
    dpp = DPP.from_features(B)
    with pytest.raises(ValueError, match="k exceeds the rank of L"):
        sample_mcmc(dpp, k=4, n_steps=10)
    with pytest.raises(TypeError):
        sample_mcmc(dpp, k=2)  # n_steps is required
    with pytest.raises(TypeError):
        sample_mcmc(dpp, 2, n_steps=10)  # keyword-only
    for bad in (-1, 2.5, "10", None):
        with pytest.raises((ValueError, TypeError)):
            sample_mcmc(dpp, k=2, n_steps=bad)
    with pytest.raises(ValueError, match="needs k"):
        sample_mcmc(dpp, k=2, n_steps=10, init=[0, 1, 2])
    with pytest.raises(ValueError):
        sample_mcmc(dpp, k=2, n_steps=10, init=[0, 8])
    with pytest.raises(ValueError, match="repeated"):
        sample_mcmc(dpp, n_steps=10, init=[1, 1])
    with pytest.raises(ValueError, match="det L_S = 0"):
        sample_mcmc(dpp, n_steps=10, init=[0, 1, 2, 3])  # 4 items > rank 3
    dup = DPP.from_features(np.vstack([B, B[:1]]))
    with pytest.raises(ValueError, match="det L_S = 0"):
        sample_mcmc(dup, k=2, n_steps=10, init=[0, 8])
    for a in (0.0, -1.0, np.nan, np.inf, "x"):
        with pytest.raises(ValueError, match="alpha"):
            sample_mcmc(dpp, n_steps=10, alpha=a)
    with pytest.raises(ValueError, match="acceptance"):
        sample_mcmc(dpp, n_steps=10, acceptance="glauber")
    with pytest.raises(TypeError):
        sample_mcmc(B @ B.T, n_steps=10)
    proj = DPP.from_correlation(np.diag([1.0, 0.5, 0.0]))
    with pytest.raises(ValueError, match="eigenvalue 1"):
        sample_mcmc(proj, n_steps=10)


def test_correlation_kernel_without_projection_part():
    L = _kernel(7, seed=46)
    K = L @ np.linalg.inv(np.eye(7) + L)
    dK, dL = DPP.from_correlation((K + K.T) / 2), DPP.from_likelihood(L)
    chain = _Chain.prepare(dK, k=None, alpha=1.0, acceptance="metropolis")
    assert chain.features
    _, P, pi = transition_matrix(dK, L, k=None, alpha=1.0, acceptance="metropolis")
    assert np.max(np.abs(pi @ P - pi)) < 1e-10
    assert sample_mcmc(dK, k=3, n_steps=0).tolist() == map_greedy(dL, 3).tolist()


def test_progress_and_interrupt(monkeypatch):
    monkeypatch.setattr(mcmc, "CHUNK", 100)
    dpp = DPP.from_likelihood(_kernel(10, seed=47))
    calls = []
    sample_mcmc(dpp, n_steps=250, rng=0, progress=lambda d, t, lab: calls.append((d, t)))
    assert calls == [(0, 250), (100, 250), (200, 250), (250, 250)]

    def interrupt(done, total, label):
        if done >= 200:
            raise KeyboardInterrupt

    with pytest.warns(RuntimeWarning, match="interrupted after 200 of 1000"):
        x = sample_mcmc(dpp, k=3, n_steps=1000, rng=0, progress=interrupt)
    assert x.size == 3


def test_singular_rebuild_raises_numerical_error():
    """A state that became numerically singular is reported, never returned."""
    rng = np.random.default_rng(48)
    B = rng.normal(size=(6, 4))
    B[5] = B[0]  # item 5 duplicates item 0
    chain = _Chain.prepare(DPP.from_features(B), k=None, alpha=1.0, acceptance="metropolis")
    p = np.empty(1)
    for backend in ("numba", "numpy"):
        st = chain.new_state(np.array([0, 2, 1]))
        # corrupt the state: slot 1 holds the duplicate 5, so L_{S−1} = L_{0,5} is singular;
        # the (stale, valid) M makes the delete of item 1 acceptable, then M is rebuilt
        st.S[1], st.where[2], st.where[5] = 5, -1, 1
        st.counters[1] = mcmc.REBUILD_EVERY - 1
        with pytest.raises(NumericalError, match="singular"):  # u = ½: a move, tested at 0
            chain.run(st, (np.array([1]),), np.array([0.5]), backend=backend, p_out=p)
        assert p[0] > 0  # the move was accepted, then the rebuild failed


# ============================================================== 4. aperiodicity and mixing
def _start_index(states, dpp, k):
    start = () if k is None else tuple(map_greedy(dpp, k).tolist())
    return states.index(start)


def _tv_curve(P, pi, start, T_max):
    """Exact TV between the law after T steps from state ``start`` and π, T = 0..T_max."""
    x = np.zeros(len(pi))
    x[start] = 1.0
    out = []
    for _ in range(T_max + 1):
        out.append(0.5 * np.abs(x - pi).sum())
        x = x @ P
    return np.array(out)


def _spectrum(P, pi):
    """Eigenvalues (ascending) of a π-reversible P, via D^{1/2} P D^{-1/2}."""
    d = np.sqrt(pi)
    A = d[:, None] * P / d[None, :]
    return np.linalg.eigvalsh((A + A.T) / 2.0)


def _exchange_steps_bound(dpp, k, start, eps):
    """The docstring's guarantee for the lazy exchange chain (α = 1): spectral gap
    γ ≥ 1/(2k(n−k)) and eigenvalues ≥ 0 give TV ≤ ½ e^{−γT} π(S₀)^{−1/2}, so
    T = ⌈2k(n−k)·(ln(1/(2ε)) + ½ ln(1/π(S₀)))⌉ steps suffice."""
    log_pi0 = dpp.log_prob(start) + dpp.log_normalizer - log_esp(dpp.spectrum.log_lam, k)
    return math.ceil(2 * k * (dpp.n - k) * (math.log(1 / (2 * eps)) - 0.5 * log_pi0))


PERIODIC = {  # the non-lazy Metropolis chain is periodic here (issue: TV 0.5 for every T)
    "exchange n=2 k=1 equal diagonals": (np.array([[1.0, 0.4], [0.4, 1.0]]), 1),
    "exchange n=2 k=1 diagonal": (2.5 * np.eye(2), 1),
    **{f"add-delete L=I n={n}": (np.eye(n), None) for n in (2, 3, 4, 5)},
}


@pytest.mark.parametrize("name", list(PERIODIC))
def test_default_chain_is_aperiodic_on_the_periodic_examples(name):
    L, k = PERIODIC[name]
    dpp = DPP.from_likelihood(L)
    states, P, pi = transition_matrix(dpp, L, k=k, alpha=1.0, acceptance="metropolis")
    start = _start_index(states, dpp, k)
    tv = _tv_curve(P, pi, start, 80)
    assert tv[0] > 0.4 and np.max(tv[60:]) < 1e-5  # both parities converge
    assert np.all(np.diff(tv) <= 1e-15)  # a lazy reversible chain's TV never increases
    assert _spectrum(P, pi)[0] >= -1e-12  # lazy: no eigenvalue near −1
    # lazy=False is the periodic chain of the issue: TV exactly 1/2 at every T
    _, P1, _ = transition_matrix(dpp, L, k=k, alpha=1.0, acceptance="metropolis", lazy=False)
    assert np.allclose(_tv_curve(P1, pi, start, 80)[10:], 0.5, atol=1e-12)


@pytest.mark.parametrize("name", ["exchange n=2 k=1 equal diagonals", "add-delete L=I n=4"])
def test_periodic_examples_chi_square_on_counts(name):
    """sample_mcmc itself, at an even number of steps, against the exact law; the
    non-lazy chain (all chains at one parity) is the wrong sampler that must fail."""
    L, k = PERIODIC[name]
    dpp = DPP.from_likelihood(L)
    T, n_chains = 60, 4000
    states = all_subsets(dpp.n, k)
    pi = _law(L, states)
    counts = count_samples(_chains(dpp, n_chains, seed=11, k=k, n_steps=T), states)
    assert chisquare_counts(counts, pi)[1] > ALPHA_TEST
    wrong = count_samples(_chains(dpp, n_chains, seed=11, k=k, n_steps=T, lazy=False),
                          states)
    assert chisquare_counts(wrong, pi)[1] < ALPHA_TEST


def _random_small_kernels():
    """Random, low-rank, near-periodic and near-degenerate kernels with n = 2..5."""
    rng = np.random.default_rng(60)
    out = []
    for n in (2, 3, 4, 5):
        out.append(random_psd(n, rng, scale=2.0))
        B = rng.normal(size=(n, max(1, n - 1)))
        out.append(B @ B.T)  # rank n − 1
        out.append(np.eye(n) + 0.05 * np.diag(rng.uniform(size=n)))  # near L = I
        x = rng.normal(size=n)
        out.append(20 * np.outer(x, x) + np.diag(rng.uniform(0.01, 0.1, size=n)))
    return out


@pytest.mark.parametrize("acceptance", ["metropolis", "heat-bath"])
def test_exchange_chain_meets_the_documented_mixing_bound(acceptance):
    """For every k, the lazy exchange chain's spectral gap is ≥ 1/(2k(n−k)) and its
    eigenvalues are ≥ 0, so the exact TV after the documented number of steps is ≤ ε."""
    eps, checked = 0.01, 0
    for L in _random_small_kernels():
        dpp = DPP.from_likelihood(L)
        n = dpp.n
        for k in range(1, min(n - 1, dpp.rank) + 1):
            states, P, pi = transition_matrix(dpp, L, k=k, alpha=1.0, acceptance=acceptance,
                                              support=_support(L, k))
            ev = _spectrum(P, pi)
            assert ev[0] >= -1e-12
            if len(ev) > 1:
                gap = 1.0 - ev[-2]
                assert gap >= 1.0 / (2 * k * (n - k)) - 1e-12
            start = _start_index(states, dpp, k)
            T = _exchange_steps_bound(dpp, k, states[start], eps)
            tv = _tv_curve(P, pi, start, T)
            assert tv[-1] <= eps
            checked += 1
    assert checked >= 30


@pytest.mark.parametrize("acceptance", ["metropolis", "heat-bath"])
def test_add_delete_chain_converges_on_random_kernels(acceptance):
    """The lazy add–delete chain converges (TV → 0, eigenvalues ≥ 0) on every kernel;
    no bound in n alone holds (near-duplicate heavy items make a bottleneck), so the test
    uses the measured gap: TV(T) ≤ ½ (1 − γ)^T π(∅)^{−1/2}."""
    for L in _random_small_kernels():
        dpp = DPP.from_likelihood(L)
        states, P, pi = transition_matrix(dpp, L, k=None, alpha=1.0, acceptance=acceptance,
                                          support=_support(L, None))
        ev = _spectrum(P, pi)
        assert ev[0] >= -1e-12
        gap = 1.0 - ev[-2]
        assert gap > 0
        start = _start_index(states, dpp, None)
        T = 400
        tv = _tv_curve(P, pi, start, T)
        assert tv[-1] <= 0.5 * (1 - gap) ** T / math.sqrt(pi[start]) + 1e-12


def _support(L, k):
    """States with det L_S > 0 (exact rank of the small kernels here)."""
    return [S for S in all_subsets(L.shape[0], k)
            if not S or np.linalg.eigvalsh(L[np.ix_(S, S)]).min() > 1e-9 * np.abs(L).max()]


def test_add_delete_bottleneck_mixes_slowly_but_converges():
    """Two near-parallel heavy items: {0} and {1} communicate only through ∅ or {0, 1},
    both improbable, so the gap is far below the 1/(2n) of L = I — the docs' warning,
    measured (from init {0}: 520 steps to TV ≤ 0.01, against 6 at L = I)."""
    def steps_to(L, eps=0.01):
        dpp = DPP.from_likelihood(L)
        states, P, pi = transition_matrix(dpp, L, k=None, alpha=1.0, acceptance="metropolis")
        tv = _tv_curve(P, pi, states.index((0,)), 5000)
        return 1.0 - _spectrum(P, pi)[-2], int(np.argmax(tv <= eps)), tv

    gap, T, tv = steps_to(100.0 * np.array([[1.0, 0.9999], [0.9999, 1.0]]))
    assert gap < 0.01 and T == 520 and tv[-1] < 1e-12
    assert steps_to(np.eye(2))[:2] == (0.5, 6)


def _steps_to(L, k, start, lazy, eps=0.01, T_max=2000):
    """Steps until the exact TV of the default Metropolis chain (α = 1) from ``start``
    (None: the default start) is ≤ eps; None if never within T_max."""
    dpp = DPP.from_likelihood(L)
    states, P, pi = transition_matrix(dpp, L, k=k, alpha=1.0, acceptance="metropolis",
                                      lazy=lazy)
    s0 = _start_index(states, dpp, k) if start is None else states.index(start)
    tv = _tv_curve(P, pi, s0, T_max)
    return int(np.argmax(tv <= eps)) if np.any(tv <= eps) else None


def _mixing_rows():
    rnd = {n * 10 + k: random_psd(n, np.random.default_rng(n * 10 + k), scale=2.0)
           for n, k in ((5, 1), (5, 2), (6, 3))}
    bottleneck = 100.0 * np.array([[1.0, 0.9999], [0.9999, 1.0]])
    cases = [
        ("exchange, n=2, k=1, L=[[1,.4],[.4,1]]", PERIODIC["exchange n=2 k=1 equal diagonals"][0],
         1, None),
        ("exchange, n=2, k=1, L=diag(1,.99)", np.diag([1.0, 0.99]), 1, None),
        *[(f"add-delete, L=I, n={n}", np.eye(n), None, None) for n in (2, 3, 4, 5)],
        ("add-delete, L=1.05I, n=4", 1.05 * np.eye(4), None, None),
        *[(f"exchange, random L #{n * 10 + k}, n={n}, k={k}", rnd[n * 10 + k], k, None)
          for n, k in ((5, 1), (5, 2), (6, 3))],
        *[(f"add-delete, random L #{n * 10 + k}, n={n}", rnd[n * 10 + k], None, None)
          for n, k in ((5, 1), (5, 2), (6, 3))],
        ("add-delete, L=I, n=2, init {0}", np.eye(2), None, (0,)),
        ("add-delete, L=100[[1,.9999],[.9999,1]], init {0}", bottleneck, None, (0,)),
    ]
    rows = []
    for label, L, k, start in cases:
        bound = None
        if k is not None:
            dpp = DPP.from_likelihood(L)
            bound = _exchange_steps_bound(dpp, k, tuple(map_greedy(dpp, k).tolist()), 0.01)
        rows.append((label, _steps_to(L, k, start, True), _steps_to(L, k, start, False),
                     bound))
    return rows


MIXING_TABLE = [  # quoted in docs/dpp.md (MCMC); printed by `pytest -k mixing_table -s`
    ("exchange, n=2, k=1, L=[[1,.4],[.4,1]]", 1, None, 9),
    ("exchange, n=2, k=1, L=diag(1,.99)", 1, 389, 9),
    ("add-delete, L=I, n=2", 6, None, None),
    ("add-delete, L=I, n=3", 11, None, None),
    ("add-delete, L=I, n=4", 16, None, None),
    ("add-delete, L=I, n=5", 21, None, None),
    ("add-delete, L=1.05I, n=4", 16, 83, None),
    ("exchange, random L #51, n=5, k=1", 8, 3, 37),
    ("exchange, random L #52, n=5, k=2", 20, 9, 53),
    ("exchange, random L #63, n=6, k=3", 23, 11, 86),
    ("add-delete, random L #51, n=5", 34, 16, None),
    ("add-delete, random L #52, n=5", 45, 22, None),
    ("add-delete, random L #63, n=6", 46, 22, None),
    ("add-delete, L=I, n=2, init {0}", 6, None, None),
    ("add-delete, L=100[[1,.9999],[.9999,1]], init {0}", 520, 259, None),
]


def test_mixing_table():
    """Steps to exact TV ≤ 0.01 (lazy default, lazy=False, documented exchange bound)."""
    rows = _mixing_rows()
    print("\n| chain, kernel | lazy (default) | lazy=False | exchange bound |")
    print("|---|---|---|---|")
    for label, lazy, plain, bound in rows:
        print(f"| {label} | {lazy} | {'never' if plain is None else plain} | "
              f"{'—' if bound is None else bound} |")
    assert rows == MIXING_TABLE


# ============================================================== 5. probability-zero sets
def _dependent_features():
    """Integer features (exact arithmetic decides dependence): item 4 duplicates item 0,
    item 5 = item 1 + item 2, item 6 = 3·item 3; rank 4."""
    rng = np.random.default_rng(70)
    B = rng.integers(-3, 4, size=(7, 4)).astype(float)
    B[4] = B[0]
    B[5] = B[1] + B[2]
    B[6] = 3 * B[3]
    assert np.linalg.matrix_rank(B[:4]) == 4
    return B


def _zero_sets():
    return [(0, 4), (1, 2, 5), (3, 6), (0, 1, 2, 5), (0, 1, 2, 3, 4)]


def _dpps_of(B):
    L = B @ B.T
    K = L @ np.linalg.inv(np.eye(len(L)) + L)
    return [DPP.from_features(B), DPP.from_likelihood(L), DPP.from_correlation((K + K.T) / 2)]


def test_init_of_probability_zero_is_rejected_without_drawing():
    for dpp in _dpps_of(_dependent_features()):
        for S in _zero_sets():
            ks = [None] + ([len(S)] if len(S) <= dpp.rank else [])
            for k in ks:
                g = np.random.default_rng(0)
                before = g.bit_generator.state
                with pytest.raises(ValueError, match="det L_S = 0"):
                    sample_mcmc(dpp, k=k, n_steps=5, init=list(S), rng=g)
                assert g.bit_generator.state == before
        # sets of positive probability are accepted
        assert sample_mcmc(dpp, k=3, n_steps=0, init=[0, 1, 3]).tolist() == [0, 1, 3]


@pytest.mark.parametrize("k", [None, 2])
def test_tempered_chain_never_enters_a_probability_zero_state(k):
    """With α < 1 a rounding-level ratio s ≈ 1e-16 is accepted with probability s^α
    (0.16 at α = 0.05): it must be treated as 0, never become the state."""
    rng = np.random.default_rng(44)
    B = rng.normal(size=(8, 3))
    dup = DPP.from_features(np.vstack([B, B[:2]]))  # items 8, 9 duplicate items 0, 1
    for seed in range(20):
        x = sample_mcmc(dup, k=k, n_steps=300, rng=seed, alpha=0.05)
        assert np.isfinite(dup.log_prob(x))
    # both twins apply the rule: same path, and proposals of a duplicate pair get p = 0
    chain = _Chain.prepare(dup, k=k, alpha=0.05, acceptance="metropolis")
    S0 = chain.initial_set(None)
    props, u = chain.draw(np.random.default_rng(3), 3000)
    a, b = chain.new_state(S0), chain.new_state(S0)
    pa, pb = np.empty(3000), np.empty(3000)
    chain.run(a, props, u, backend="numba", p_out=pa)
    chain.run(b, props, u, backend="numpy", p_out=pb)
    assert a.S.tolist() == b.S.tolist() and a.counters[2] > 100
    np.testing.assert_allclose(pa, pb, rtol=1e-9, atol=1e-10)
    assert np.sum(pb == 0.0) > 20


def test_tempered_chain_on_rank_deficient_kernels_stays_valid():
    """Duplicated and parallel feature rows, α = 0.05: the O(k²) update computes the pivot
    of a dependent item only to ≈ ε·cond(L_S)·L_jj (above τ at times), so a near-zero
    pivot is recomputed afresh; no NumericalError and no probability-zero output."""
    for trial in (1, 2, 7, 12, 16):
        rng = np.random.default_rng(trial)
        d = rng.integers(2, 6)
        n = rng.integers(d + 2, 14)
        B = rng.normal(size=(n, d)) * rng.uniform(0.1, 3, size=(n, 1))
        B = np.vstack([B, B[:2], B[2:3] * (1 + 1e-9)])
        for dpp in (DPP.from_features(B), DPP.from_likelihood(B @ B.T)):
            for seed in range(3):
                x = sample_mcmc(dpp, n_steps=2000, rng=seed, alpha=0.05)
                assert np.isfinite(dpp.log_prob(x))


def test_bad_counts_and_failed_calls_do_not_advance_the_generator():
    rng = np.random.default_rng(45)
    dpp = DPP.from_features(rng.normal(size=(8, 3)))
    bad_calls = [
        {"k": 2.5, "n_steps": 10}, {"k": True, "n_steps": 10}, {"k": "2", "n_steps": 10},
        {"k": -1, "n_steps": 10}, {"n_steps": 2.5}, {"n_steps": True}, {"n_steps": -3},
        {"k": 4, "n_steps": 10}, {"k": 2, "n_steps": 10, "init": [0, 1, 2]},
        {"n_steps": 10, "alpha": 0.0}, {"n_steps": 10, "acceptance": "glauber"},
        {"n_steps": 10, "lazy": "yes"}, {"n_steps": 10, "init": [0, 1, 2, 3]},
    ]
    for kw in bad_calls:
        g = np.random.default_rng(1)
        before = g.bit_generator.state
        with pytest.raises((ValueError, TypeError)):
            sample_mcmc(dpp, rng=g, **kw)
        assert g.bit_generator.state == before, kw
    assert sample_mcmc(dpp, k=2.0, n_steps=3.0, rng=0).size == 2  # integral floats are counts
