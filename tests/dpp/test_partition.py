"""Partition-constrained DPPs (spec dpp.md §6, §9): enumeration, laws on counts, identities."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from support.dpp_laws import low_rank_psd, random_nonsymmetric, random_psd
from support.stats import law_pvalue

from parasample.core.errors import NumericalError
from parasample.dpp import partition as pm
from parasample.dpp.kernel import DPP
from parasample.dpp.partition import (
    partition_inclusion_probabilities,
    partition_normalizer,
    sample_partition,
)

ALPHA = 1e-4


class _Kernel:
    """Stand-in for any kernel object (e.g. NonsymmetricDPP): ``n`` + ``likelihood_kernel``."""

    def __init__(self, L):
        self._L = np.array(L, dtype=float)
        self.n = self._L.shape[0]

    def likelihood_kernel(self) -> np.ndarray:
        return self._L.copy()


def _det(L, S) -> float:
    S = list(S)
    return float(np.linalg.det(L[np.ix_(S, S)])) if S else 1.0


def constrained_weights(L, labels, counts) -> dict[tuple[int, ...], float]:
    """{S: det L_S} over all feasible S (items with label −1 never appear)."""
    labels, counts = np.asarray(labels), np.asarray(counts)
    pool = np.flatnonzero(labels >= 0)
    out = {}
    for S in itertools.combinations(pool.tolist(), int(counts.sum())):
        if np.array_equal(np.bincount(labels[list(S)], minlength=counts.size), counts):
            out[S] = max(_det(L, S), 0.0)
    return out


def constrained_law(L, labels, counts) -> dict[tuple[int, ...], float]:
    w = constrained_weights(L, labels, counts)
    Z = sum(w.values())
    return {S: v / Z for S, v in w.items()}


def _kernels():
    rng = np.random.default_rng(2024)
    return {
        "dense": DPP.from_likelihood(random_psd(8, rng)),
        "lowrank": DPP.from_likelihood(low_rank_psd(8, 5, rng)),
        "nonsym": _Kernel(random_nonsymmetric(8, rng)),
    }


KERNELS = _kernels()
CASES = [
    ([0, 0, 0, 1, 1, 1, 2, 2], (1, 2, 1)),
    ([0, 1, 0, 1, 0, 1, 0, 1], (2, 1)),
    ([0] * 8, (3,)),
    ([0, 0, -1, 1, 1, 2, 2, 2], (1, 1, 0)),  # excluded item and a zero-count part
    ([0, 0, 1, 1, 1, 1, 1, 1], (2, 2)),  # part 0 forced
]


# ----------------------------------------------------------------------- exact quantities
@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("labels,counts", CASES)
def test_normalizer_and_inclusions_match_enumeration(name, labels, counts):
    dpp = KERNELS[name]
    L = dpp.likelihood_kernel()
    w = constrained_weights(L, labels, counts)
    Z = sum(w.values())
    assert partition_normalizer(dpp, labels, counts) == pytest.approx(np.log(Z), abs=1e-9)
    incl = np.zeros(8)
    for S, v in w.items():
        incl[list(S)] += v / Z
    got = partition_inclusion_probabilities(dpp, labels, counts)
    np.testing.assert_allclose(got, incl, atol=1e-9)
    assert got.sum() == pytest.approx(sum(counts), abs=1e-9)


def test_index_collections_equal_label_array():
    dpp = KERNELS["dense"]
    labels = [0, 0, -1, 1, 1, 2, 2, 2]
    parts = [[0, 1], {4, 3}, np.array([7, 5, 6])]
    a = partition_normalizer(dpp, labels, (1, 1, 2))
    b = partition_normalizer(dpp, parts, (1, 1, 2))
    assert a == b
    assert np.array_equal(sample_partition(dpp, labels, (1, 1, 2), rng=5),
                          sample_partition(dpp, parts, (1, 1, 2), rng=5))


@pytest.mark.parametrize("name", ["dense", "nonsym"])
def test_single_part_reproduces_esp(name):
    """m = 1 is the k-DPP: Z = e_k = sum of k×k principal minors (= e_k(λ) if symmetric)."""
    dpp = KERNELS[name]
    L = dpp.likelihood_kernel()
    n = dpp.n
    lam = np.linalg.eigvals(L)
    esp = np.zeros(n + 1, dtype=complex)
    esp[0] = 1.0
    for x in lam:
        esp[1:] = esp[1:] + x * esp[:-1]
    for k in range(1, n + 1):
        minors = sum(_det(L, S) for S in itertools.combinations(range(n), k))
        assert esp[k].real == pytest.approx(minors, rel=1e-10)
        got = partition_normalizer(dpp, np.zeros(n, dtype=int), (k,))
        assert got == pytest.approx(np.log(minors), abs=1e-9)


def test_counting_identities_nonsymmetric():
    """g_A(z) = det(I_Ā + D(z)L) and N_{A,i} = g_A (1 − [M⁻¹]_ii), by enumeration."""
    rng = np.random.default_rng(7)
    n = 6
    labels = np.array([0, 0, 1, 1, 2, 2])
    for _ in range(4):
        L = random_nonsymmetric(n, rng)
        A = [int(x) for x in rng.choice(n, size=rng.integers(0, 3), replace=False)]
        z = rng.normal(size=3) + 1j * rng.normal(size=3)
        notA = np.ones(n)
        notA[A] = 0.0
        M = np.diag(notA) + z[labels][:, None] * L
        g = np.linalg.det(M)
        Minv = np.linalg.inv(M)
        g_enum = 0.0
        N_enum = np.zeros(n, dtype=complex)
        for r in range(n + 1):
            for S in itertools.combinations(range(n), r):
                if not set(A) <= set(S):
                    continue
                term = _det(L, S) * np.prod(z[labels[list(S)]])
                g_enum += term
                N_enum[list(S)] += term
        assert g == pytest.approx(g_enum, rel=1e-10, abs=1e-12)
        for i in set(range(n)) - set(A):
            assert g * (1 - Minv[i, i]) == pytest.approx(N_enum[i], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", list(KERNELS))
def test_chain_step_weights_with_pinned_items(name):
    """One chain step: Z_A(c) and w_i / Z_A(c) = P(i ∈ S | A ⊆ S) against enumeration."""
    dpp = KERNELS[name]
    L = dpp.likelihood_kernel()
    labels, counts = [0, 0, 0, 1, 1, 1, 2, 2], (2, 2, 1)  # k = 5 = rank of "lowrank"
    w = constrained_weights(L, labels, counts)
    prob = pm._prepare(dpp, labels, counts)
    for A in ([0], [3], [0, 6], [1, 4]):
        sub = {S: v for S, v in w.items() if set(A) <= set(S)}
        ZA = sum(sub.values())
        if ZA <= 1e-12:
            continue
        pinned = np.zeros(8, dtype=bool)
        pinned[A] = True
        ev = pm._evaluate_step(prob, pinned, pm._initial_log_rho(prob), first=False)
        assert ev.log_z == pytest.approx(np.log(ZA), abs=1e-9)
        expect = np.zeros(8)
        for S, v in sub.items():
            expect[list(S)] += v / ZA
        np.testing.assert_allclose(ev.probs, expect[ev.free], atol=1e-9)
        assert ev.probs.sum() == pytest.approx(sum(counts) - len(A), abs=1e-9)


def test_scale_invariance_across_parts():
    """Rescaling part j by d_j (L → D L D) multiplies Z by Π d_j^{2 c_j}, even for scales
    far apart (the grid matrices are balanced as D(z)^{1/2} L D(z)^{1/2})."""
    L = KERNELS["dense"].likelihood_kernel()
    labels, counts = np.array([0, 0, 0, 1, 1, 1, 2, 2]), (1, 2, 1)
    base = partition_normalizer(KERNELS["dense"], labels, counts)
    for d in ([1e-6, 1.0, 1e3], [1e150, 1e150, 1e150], [1e-100, 1e-100, 1e-100]):
        s = np.asarray(d)[labels]
        got = partition_normalizer(DPP.from_likelihood(s[:, None] * L * s[None, :]), labels,
                                   counts)
        assert got - base == pytest.approx(2 * np.dot(counts, np.log(d)), abs=1e-8)


# ----------------------------------------------------------------------- laws on counts
def _pvalue(sampler, law, M, seed):
    rng = np.random.default_rng(seed)
    return law_pvalue([tuple(sampler(rng)) for _ in range(M)], law)


@pytest.mark.parametrize("name,seed", [("dense", 11), ("lowrank", 12), ("nonsym", 13)])
def test_sampler_law_chisquare(name, seed):
    dpp = KERNELS[name]
    labels, counts = CASES[0]
    law = constrained_law(dpp.likelihood_kernel(), labels, counts)
    p = _pvalue(lambda g: sample_partition(dpp, labels, counts, rng=g), law, 1500, seed)
    assert p > ALPHA


def _power_kernel():
    """Items 3..5 nearly duplicate items 0..2, across parts: strong cross-part repulsion."""
    rng = np.random.default_rng(99)
    B = rng.normal(size=(3, 4))
    B = np.vstack([B, B + 0.15 * rng.normal(size=B.shape), rng.normal(size=(2, 4))])
    return B @ B.T + 0.01 * np.eye(8)


def test_power_against_wrong_samplers():
    """The chi-square used above rejects a uniform sampler and per-part independent k-DPPs."""
    L = _power_kernel()
    labels, counts = [0, 0, 0, 1, 1, 1, 2, 2], (1, 2, 1)
    law = constrained_law(L, labels, counts)
    support = list(law)
    # per-part independent k-DPPs: block-diagonal kernel, cross-part interactions dropped
    mask = np.equal.outer(labels, labels)
    indep = constrained_law(np.where(mask, L, 0.0), labels, counts)
    uniform = {S: 1.0 / len(support) for S in support}
    truth = np.array([law[S] for S in support])
    for wrong in (uniform, indep):
        q = np.array([wrong[S] for S in support])
        assert 0.5 * np.abs(q - truth).sum() > 0.1  # the wrong law is genuinely different

        def sampler(g, q=q):
            return support[int(np.searchsorted(np.cumsum(q), g.random() * q.sum(), side="right"))]

        assert _pvalue(sampler, law, 1500, 3) < ALPHA
    # and the real sampler passes on this very kernel
    dpp = DPP.from_likelihood(L)
    p = _pvalue(lambda g: sample_partition(dpp, labels, counts, rng=g), law, 1500, 4)
    assert p > ALPHA


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("case", [1, 3, 4])
def test_sampler_law_chisquare_more_cases(name, case):
    dpp = KERNELS[name]
    labels, counts = CASES[case]
    law = constrained_law(dpp.likelihood_kernel(), labels, counts)
    p = _pvalue(lambda g: sample_partition(dpp, labels, counts, rng=g), law, 4000, 20 + case)
    assert p > ALPHA


# ----------------------------------------------------------------------- output contract
def test_output_and_reproducibility():
    rng = np.random.default_rng(5)
    dpp = DPP.from_likelihood(random_psd(30, rng))
    labels = rng.integers(-1, 3, size=30)
    counts = (2, 1, 3)
    S = sample_partition(dpp, labels, counts, rng=123)
    assert S.dtype == np.int64 and np.all(np.diff(S) > 0)
    assert np.array_equal(np.bincount(labels[S], minlength=3), counts)
    assert np.array_equal(S, sample_partition(dpp, labels, counts, rng=123))
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    a = [sample_partition(dpp, labels, counts, rng=g1) for _ in range(3)]
    b = [sample_partition(dpp, labels, counts, rng=g2) for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_zero_counts_give_empty_sample():
    dpp = KERNELS["dense"]
    assert sample_partition(dpp, [0] * 8, (0,), rng=0).size == 0
    assert partition_normalizer(dpp, [0] * 8, (0,)) == 0.0
    assert sample_partition(dpp, [], [], rng=0).size == 0


def test_all_forced_sample_is_deterministic():
    dpp = KERNELS["nonsym"]
    L = dpp.likelihood_kernel()
    S = sample_partition(dpp, [[1, 4], [6]], (2, 1), rng=0)
    assert S.tolist() == [1, 4, 6]
    assert partition_normalizer(dpp, [[1, 4], [6]], (2, 1)) == pytest.approx(
        np.log(_det(L, [1, 4, 6])), abs=1e-12)


# ----------------------------------------------------------------------- bad input
def _collinear_kernel():
    """Items 0..3 span one line (parts 0 and 1 below); items 4, 5 span two more directions."""
    b = np.zeros((6, 3))
    b[:4, 0] = [1.0, 2.0, 3.0, 4.0]
    b[4, 1] = b[5, 2] = 1.0
    return b @ b.T


@pytest.mark.parametrize("kernel,parts,counts,exc,match", [
    ("dense", [[0, 1], [1, 2]], (1, 1), ValueError, "overlap"),
    ("dense", [[0, 9]], (1,), ValueError, "outside"),
    ("dense", [[0, -1]], (1,), ValueError, "outside"),
    ("dense", [[0, 0, 1]], (1,), ValueError, "repeats"),
    ("dense", [0, 0, 1, 1, 2, 2, 2, 2], (1, 1), ValueError, "length 2 but there are 3"),
    ("dense", [0, 0, 1, 1, 2, 2, 2, 2], (1, -1, 1), ValueError, "non-negative integer"),
    ("dense", [0, 0, 1, 1, 2, 2, 2, 2], (1, 1.5, 1), ValueError, "non-negative integer"),
    ("dense", [0, 0, 1, 1, 2, 2, 2, 2], 3, ValueError, "1-D sequence"),
    ("dense", [0, 0, 1, 1, 2, 2, 2, 2], (3, 1, 1), ValueError, "part 0 has 2 items but count 3"),
    ("dense", [0, 0, 1], (1, 1), ValueError, "length n = 8"),
    ("dense", [0, 0, 1, 1, 2, 2, 2, -2], (1, 1, 1), ValueError, "part labels"),
    ("dense", [True] * 8, (1,), ValueError, "booleans"),
    ("dense", [0.5] * 8, (1,), ValueError, "integers"),
    ("dense", [0, [1, 2]], (1, 1), ValueError, "label array or a sequence"),
    ("lowrank", [0] * 8, (6,), ValueError, "impossible partition counts"),
    ("collinear", [0, 0, 0, 0, 1, 1], (2, 1), ValueError, "impossible partition counts"),
    ("collinear", [0, 0, 1, 1, 2, 2], (1, 1, 1), ValueError, "infeasible partition counts"),
    ("rotation", [0, 0], (1,), ValueError, "infeasible partition counts"),
    ("notpsd", [0, 0, 0], (1,), ValueError, "not positive semidefinite"),
    ("nan", [0, 0, 0], (1,), ValueError, "NaN"),
    ("nonsym", [0] * 7, (1,), ValueError, "length n = 8"),
])
def test_bad_input(kernel, parts, counts, exc, match):
    dpp = {
        "collinear": _Kernel(_collinear_kernel()),
        # L + Lᵀ = 0 ⪰ 0, but every 1×1 minor is 0: e_1 = 0 (normaliser zero)
        "rotation": _Kernel([[0.0, 1.0], [-1.0, 0.0]]),
        "notpsd": _Kernel(np.diag([1.0, -1.0, 1.0]) + np.triu(np.ones((3, 3)), 1)),
        "nan": _Kernel(np.array([[1.0, np.nan, 0], [np.nan, 1, 0], [0, 0, 1]])),
    }.get(kernel) or KERNELS[kernel]
    for fn in (lambda: sample_partition(dpp, parts, counts, rng=0),
               lambda: partition_normalizer(dpp, parts, counts),
               lambda: partition_inclusion_probabilities(dpp, parts, counts)):
        with pytest.raises(exc, match=match):
            fn()


def test_not_a_kernel_object():
    with pytest.raises(TypeError, match="likelihood_kernel"):
        sample_partition(np.eye(3), [0, 0, 0], (1,))


def test_unresolvable_tilt_raises_numerical_error(monkeypatch):
    """If ρ is far from the tilt, the target coefficient sinks below the FFT noise: the
    sampler must refuse rather than return a wrong sample."""
    dpp = DPP.from_likelihood(random_psd(12, np.random.default_rng(3)))
    real_tilt = pm._tilt
    monkeypatch.setattr(pm, "_tilt", lambda *a, **kw: real_tilt(*a, **kw) + 25.0)
    with pytest.raises(NumericalError, match="too small to resolve"):
        sample_partition(dpp, np.arange(12) % 2, (2, 2), rng=0)


@pytest.mark.slow
def test_medium_case_runs():
    """n = 100, 3 parts, counts (3, 2, 2): constraints hold, marginals are consistent."""
    rng = np.random.default_rng(0)
    dpp = DPP.from_likelihood(random_psd(100, rng))
    labels = np.arange(100) % 3
    t = time.perf_counter()
    S = sample_partition(dpp, labels, (3, 2, 2), rng=1)
    assert time.perf_counter() - t < 120
    assert np.array_equal(np.bincount(labels[S], minlength=3), (3, 2, 2))
    p = partition_inclusion_probabilities(dpp, labels, (3, 2, 2))
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(np.bincount(labels, weights=p), (3, 2, 2), atol=1e-8)
