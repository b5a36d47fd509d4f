"""Kernel object (spec dpp.md §1): normalisation, marginals, size law, conversions, errors."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from parasample.dpp import DPP
from support.dpp_laws import dpp_law, ill_conditioned_psd, low_rank_psd, random_psd


def _kernels():
    rng = np.random.default_rng(0)
    return {
        "dense": random_psd(7, rng),
        "low_rank": low_rank_psd(7, 3, rng),
        "ill": ill_conditioned_psd(7, rng),
    }


@pytest.mark.parametrize("name", ["dense", "low_rank", "ill"])
def test_enumerated_law_matches_kernel_quantities(name):
    L = _kernels()[name]
    dpp = DPP.from_likelihood(L)
    law = dpp_law(L)
    probs = {S: np.exp(dpp.log_prob(S)) for S in law}
    # condition number 1e16 for "ill": subset determinants lose ~1e-12 absolutely
    tol = 1e-10 if name == "ill" else 1e-12
    assert abs(sum(probs.values()) - 1.0) < tol
    for S in law:
        assert probs[S] == pytest.approx(law[S], abs=tol)
    incl = np.array([sum(p for S, p in probs.items() if i in S) for i in range(7)])
    assert np.allclose(incl, dpp.inclusion_probabilities(), atol=1e-12)
    assert np.allclose(incl, np.diag(dpp.marginal_kernel()), atol=1e-12)
    size_law = np.zeros(dpp.rank + 1)
    for S, p in probs.items():
        if len(S) <= dpp.rank:
            size_law[len(S)] += p
        else:
            assert p == 0.0
    assert np.allclose(size_law, dpp.size_distribution(), atol=1e-12)
    assert dpp.expected_size() == pytest.approx(sum(len(S) * p for S, p in probs.items()))


def test_round_trip_L_to_K_to_L():
    L = _kernels()["dense"]
    K = DPP.from_likelihood(L).marginal_kernel()
    back = DPP.from_correlation(K)
    assert np.allclose(back.likelihood_kernel(), L, atol=1e-10)
    assert np.allclose(K @ np.linalg.inv(np.eye(7) - K), L, atol=1e-10)


def test_marginal_kernel_with_and_without_cached_spectrum_agree():
    L = _kernels()["dense"]
    a = DPP("likelihood", L.copy())  # no spectrum yet: Cholesky path
    K_chol = a.marginal_kernel()
    b = DPP.from_likelihood(L)
    assert np.allclose(K_chol, b.marginal_kernel(), atol=1e-12)


@pytest.mark.parametrize("shape", [(12, 4), (6, 9)])
def test_feature_and_dense_paths_agree(shape):
    rng = np.random.default_rng(1)
    B = rng.normal(size=shape)
    f, d = DPP.from_features(B), DPP.from_likelihood(B @ B.T)
    assert f.rank == d.rank == min(shape)
    assert np.allclose(f.marginal_kernel(), d.marginal_kernel(), atol=1e-10)
    assert np.allclose(np.sort(f.spectrum.mu), np.sort(d.spectrum.mu), atol=1e-10)
    for S in [(), (0,), (1, 3), (0, 2, 5)]:
        assert f.log_prob(S) == pytest.approx(d.log_prob(S), abs=1e-10)
    assert np.allclose(f.likelihood_diagonal(), np.diag(B @ B.T))
    assert np.allclose(f.likelihood_submatrix([1, 2], [0]), (B @ B.T)[[1, 2]][:, [0]])


def test_duplicated_feature_columns_stay_orthonormal():
    rng = np.random.default_rng(2)
    B = rng.normal(size=(50, 4))
    B = np.hstack([B, B[:, :2], B[:, :2] * (1 + 1e-15)])
    dpp = DPP.from_features(B)
    V = dpp.spectrum.V
    assert dpp.rank == 4
    assert np.max(np.abs(V.T @ V - np.eye(4))) < 1e-10
    assert np.all(np.isfinite(dpp.inclusion_probabilities()))


def test_projection_K_is_accepted_and_has_no_L():
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 3)))
    K = Q @ Q.T
    dpp = DPP.from_correlation(K)
    assert dpp.has_projection_part and dpp.expected_size() == pytest.approx(3)
    assert np.allclose(dpp.size_distribution(), [0, 0, 0, 1])
    total = sum(np.exp(dpp.log_prob(S)) for S in [(0, 1, 2), (0, 1, 3), (3, 4, 5)])
    assert 0 < total <= 1
    assert dpp.log_prob((0, 1)) == -np.inf
    with pytest.raises(ValueError, match="eigenvalue 1"):
        dpp.likelihood_kernel()


def test_sparse_input_is_accepted():
    L = _kernels()["dense"]
    assert np.allclose(DPP.from_likelihood(sp.csr_matrix(L)).marginal_kernel(),
                       DPP.from_likelihood(L).marginal_kernel())


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: DPP.from_likelihood(np.ones((3, 4))), "square"),
        (lambda: DPP.from_likelihood(np.array([[1.0, 0.5], [0.0, 1.0]])), "not symmetric"),
        (lambda: DPP.from_likelihood(np.diag([1.0, -0.5, 2.0])), r"most negative eigenvalue is -0\.5"),
        (lambda: DPP.from_likelihood(np.array([[1.0, np.nan], [np.nan, 1.0]])), "NaN"),
        (lambda: DPP.from_likelihood(np.array([[np.inf]])), "NaN or infinite"),
        (lambda: DPP.from_likelihood(np.zeros((0, 0))), "empty"),
        (lambda: DPP.from_likelihood(np.eye(2, dtype=complex)), "real"),
        (lambda: DPP.from_correlation(np.diag([0.5, 1.5])), "K ⪯ I"),
        (lambda: DPP.from_correlation(np.diag([0.5, -0.2])), "not positive semidefinite"),
        (lambda: DPP.from_features(np.ones(4)), "2-D"),
        (lambda: DPP.from_features(np.array([[1.0, np.inf]])), "NaN"),
    ],
)
def test_bad_input_raises_specific_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_subsets_raise():
    dpp = DPP.from_likelihood(np.eye(3))
    for S, match in [((0, 0), "repeated"), ((5,), "lie in"), ((-1,), "lie in"),
                     ((0.5,), "integer"), ([[0, 1]], "1-D")]:
        with pytest.raises(ValueError, match=match):
            dpp.log_prob(S)


def test_tiny_negative_eigenvalues_are_clipped_not_fatal():
    rng = np.random.default_rng(4)
    B = rng.normal(size=(30, 5))
    L = B @ B.T  # rank 5: 25 eigenvalues are rounding noise of either sign
    dpp = DPP.from_likelihood(L)
    assert dpp.rank == 5
    assert np.all(np.isfinite(dpp.marginal_kernel()))
    assert dpp.log_prob(range(6)) == -np.inf


# ---------------------------------------------------------------- probability-zero sets
def _dependent_integer_features():
    """Integer features, so exact arithmetic decides which sets are dependent: item 4
    duplicates item 0, item 5 = item 1 + item 2, item 6 = 3·item 3 (rank 4)."""
    rng = np.random.default_rng(70)
    B = rng.integers(-3, 4, size=(7, 4)).astype(float)
    B[4] = B[0]
    B[5] = B[1] + B[2]
    B[6] = 3 * B[3]
    return B


def _all_subsets(n):
    return [S for r in range(n + 1) for S in itertools.combinations(range(n), r)]


@pytest.mark.parametrize("kind", ["features", "likelihood", "correlation"])
def test_log_prob_is_minus_inf_exactly_on_dependent_sets(kind):
    """Every set whose feature rows are dependent (det L_S = 0 in exact arithmetic) gets
    −inf — including ones whose computed det is a rounding-level nonzero — and every
    independent set gets a finite value; the law still sums to 1."""
    B = _dependent_integer_features()
    L = B @ B.T
    if kind == "features":
        dpp = DPP.from_features(B)
    elif kind == "likelihood":
        dpp = DPP.from_likelihood(L)
    else:
        K = L @ np.linalg.inv(np.eye(7) + L)
        dpp = DPP.from_correlation((K + K.T) / 2)
    assert dpp.rank == 4
    rounding_nonzero = 0
    total = 0.0
    for S in _all_subsets(7):
        lp = dpp.log_prob(S)
        dependent = len(S) > 0 and np.linalg.matrix_rank(B[list(S)]) < len(S)
        if dependent:
            assert lp == -np.inf, S
            if len(S) <= 4 and np.linalg.det(L[np.ix_(S, S)]) != 0.0:
                rounding_nonzero += 1
        else:
            assert np.isfinite(lp), S
            total += np.exp(lp)
    assert rounding_nonzero >= 3  # the class the old code scored as finite
    assert total == pytest.approx(1.0, abs=1e-12)


def test_log_prob_keeps_small_but_genuine_probabilities():
    """A near-dependent set far above rounding (pivot ≈ 1e-8·|L|) stays finite and exact."""
    rng = np.random.default_rng(71)
    B = rng.normal(size=(5, 4))
    B[4] = B[0] + 1e-4 * rng.normal(size=4)
    L = B @ B.T
    for dpp in (DPP.from_features(B), DPP.from_likelihood(L)):
        S = [0, 4]
        ref = np.linalg.slogdet(L[np.ix_(S, S)])[1] - np.linalg.slogdet(np.eye(5) + L)[1]
        assert dpp.log_prob(S) == pytest.approx(ref, rel=1e-6)


def test_log_prob_zero_rule_matches_the_rank_tolerance():
    """An item whose only direction is an eigenvalue below the rank tolerance τ is a
    zero-probability item, consistent with ``rank``: L = diag(1e6, 1e-12)."""
    dpp = DPP.from_likelihood(np.diag([1e6, 1e-12]))
    assert dpp.rank == 1
    assert dpp.log_prob([1]) == -np.inf and dpp.log_prob([0, 1]) == -np.inf
    assert np.isfinite(dpp.log_prob([0])) and np.isfinite(dpp.log_prob([]))
    assert dpp.zero_tolerance == pytest.approx(10 * 2 * np.finfo(float).eps * 1e6)


def test_log_prob_projection_kernel_dependent_sets():
    """K = QQᵀ (rank 3) with row 3 = row 0 + row 1: the sets of 3 dependent rows are
    impossible; the possible sets' probabilities sum to 1."""
    rng = np.random.default_rng(72)
    B = rng.normal(size=(6, 3))
    B[3] = B[0] + B[1]
    Q, _ = np.linalg.qr(B)
    dpp = DPP.from_correlation(Q @ Q.T)
    total = 0.0
    for S in itertools.combinations(range(6), 3):
        lp = dpp.log_prob(S)
        if np.linalg.matrix_rank(B[list(S)]) < 3:
            assert lp == -np.inf, S
        else:
            assert np.isfinite(lp)
            total += np.exp(lp)
    assert total == pytest.approx(1.0, abs=1e-12)
