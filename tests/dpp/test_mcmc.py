"""MCMC for DPPs: add–delete and exchange chains (spec dpp.md §4, §9).

Evidence: (1) exact stationarity and detailed balance of the transition matrix built from
the implementation's own kernel, one proposal at a time; (2) pathwise equality of the
O(k²) chain with a naive slogdet chain on shared noise, and numba == numpy twin; (3) the
long-run law by a chi-square test on counts, whose power is shown on a wrong chain.
"""

from __future__ import annotations

import numpy as np
import pytest

from parasample.core.errors import NumericalError
from parasample.dpp import mcmc
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
def transition_matrix(dpp, L, *, k, alpha, acceptance, backend="numpy", support=None):
    """P over the support (states with det L_S > 0), from the implementation's kernel."""
    chain = _Chain.prepare(dpp, k=k, alpha=alpha, acceptance=acceptance)
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


@pytest.mark.parametrize("acceptance", ["metropolis", "heat-bath"])
@pytest.mark.parametrize("alpha", [1.0, 0.4, 2.5])
@pytest.mark.parametrize("k", [None, 3])
def test_exact_stationarity_and_detailed_balance(k, alpha, acceptance):
    n = 7 if k is None else 8
    L = _kernel(n, seed=1 if k is None else 2)
    dpp = DPP.from_likelihood(L)
    _, P, pi = transition_matrix(dpp, L, k=k, alpha=alpha, acceptance=acceptance)
    _check_stationary(P, pi)
    # the chain moves: off-diagonal mass is substantial, so the check is not vacuous
    assert np.mean(1.0 - np.diag(P)) > 0.2


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


def naive_chain(L, chain, S0, props, u):
    """The same chain with r = exp(slogdet L_S' − slogdet L_S); same slot bookkeeping.
    Returns (slots, probabilities)."""
    S = [int(x) for x in S0]
    n = L.shape[0]
    out = [i for i in range(n) if i not in S]
    probs = np.empty(u.shape[0])
    for step in range(u.shape[0]):
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
        if u[step] < probs[step]:
            if chain.exchange:
                out[o] = S[t]
            S = S2
    return S, probs


@pytest.mark.parametrize("k", [None, 8])
@pytest.mark.parametrize("acceptance", ["metropolis", "heat-bath"])
def test_pathwise_equality_with_naive_slogdet_chain(k, acceptance):
    n, steps = 30, 1500
    checked = 0
    for seed in range(4):
        L = _kernel(n, seed=10 + seed, scale=4.0)
        dpp = DPP.from_likelihood(L)
        chain = _Chain.prepare(dpp, k=k, alpha=0.8, acceptance=acceptance)
        S0 = chain.initial_set(None)
        props, u = chain.draw(np.random.default_rng(seed), steps)
        ref_slots, ref_p = naive_chain(L, chain, S0, props, u)
        if np.min(np.abs(u - ref_p)) < 1e-9:
            continue  # near-tie: the two chains may legitimately part ways
        state = chain.new_state(S0)
        p = np.empty(steps)
        chain.run(state, props, u, backend="numba", p_out=p)
        assert state.S[: state.m].tolist() == ref_slots
        np.testing.assert_allclose(p, ref_p, rtol=1e-8, atol=1e-12)
        assert state.counters[3] >= 3  # M was rebuilt several times along the path
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("k", [None, 6])
@pytest.mark.parametrize("features", [False, True])
def test_numba_equals_numpy_twin(k, features):
    n, steps = 25, 2000
    rng = np.random.default_rng(21)
    B = rng.normal(size=(n, 12)) * rng.uniform(0.5, 2.0, size=(n, 1))
    dpp = DPP.from_features(B) if features else DPP.from_likelihood(B @ B.T)
    chain = _Chain.prepare(dpp, k=k, alpha=1.0, acceptance="metropolis")
    S0 = chain.initial_set(None)
    props, u = chain.draw(np.random.default_rng(5), steps)
    a, b = chain.new_state(S0), chain.new_state(S0)
    pa, pb = np.empty(steps), np.empty(steps)
    chain.run(a, props, u, backend="numba", p_out=pa)
    chain.run(b, props, u, backend="numpy", p_out=pb)
    assert np.min(np.abs(u - pb)) > 1e-9  # no near-ties on this seed
    assert a.S.tolist() == b.S.tolist()
    assert a.counters.tolist() == b.counters.tolist()
    assert a.counters[2] > 200  # plenty of accepted moves
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
    n, T, n_chains = 6, 60, 20000
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
    n, k, T, n_chains = 6, 3, 40, 10000
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
    n, T, n_chains, alpha = 8, 120, 100000, 0.7
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
        with pytest.raises(NumericalError, match="singular"):
            chain.run(st, (np.array([1]),), np.zeros(1), backend=backend, p_out=p)
        assert p[0] > 0  # the move was accepted, then the rebuild failed
