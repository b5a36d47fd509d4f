"""Hugging Face masked-LM adapter (parasample.autoregressive.hf): oracle contract, agreement
with a hand-written forward pass, batch invariance, pathwise parallel == sequential, rounds
and forward-pass accounting, tokenizer convenience, and the exact law — the mixture over
orders of P_π(x) = ∏_t p(x_{π_t} | x_{π<t}) — by enumeration, with power checks.

Everything runs offline on a tiny randomly initialised BERT (no downloads)."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from parasample.autoregressive import (  # noqa: E402
    MaskedLMOracle, Oracle, default_window, draw_randomness, sample_parallel, sample_sequential,
)
from parasample.autoregressive.samplers import _run_parallel  # noqa: E402
from parasample.core.errors import MissingExtraError  # noqa: E402
from support.stats import oracle_counts  # noqa: E402
from parasample.core.stats import (  # noqa: E402
    chisquare_counts, tv_bootstrap_threshold, tv_distance,
)

ALPHA = 1e-4
WORDS = "the cat dog sat ran on a mat log red blue big small fast slow".split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = {t: i for i, t in enumerate(SPECIAL + WORDS)}  # ids 0..19; the model has 30
CLS, SEP, MASK = VOCAB["[CLS]"], VOCAB["[SEP]"], VOCAB["[MASK]"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _bert(seed: int = 0, init: float = 0.3):
    """Tiny BERT; initializer_range 0.3 (not the default 0.02) makes its conditionals depend
    strongly on the context, so that drafts get rejected and the laws are distinguishable."""
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(
        vocab_size=30, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, initializer_range=init)
    return transformers.BertForMaskedLM(cfg)


@pytest.fixture(scope="module")
def model():
    return _bert()


def _oracle(model, n=12, cand=(5, 6, 7, 8), **kw):
    return MaskedLMOracle(model, candidate_ids=list(cand), mask_token_id=MASK, length=n,
                          prefix_ids=[CLS, 5], suffix_ids=[SEP], **kw)


def _random_rows(o, B, rng):
    values = rng.integers(0, o.q, size=(B, o.n))
    mask = rng.random((B, o.n)) < rng.random((B, 1))
    mask[0] = False
    mask[1] = True
    return values, mask


# ---------------------------------------------------------------- oracle contract

def test_contract(model):
    o = _oracle(model)
    assert (o.n, o.q) == (12, 4) and o.supports_full and isinstance(o, Oracle)
    rng = np.random.default_rng(0)
    values, mask = _random_rows(o, 30, rng)
    out = o.marginals(values, mask)
    assert out.shape == (30, 12, 4) and out.dtype == np.float64
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=0, atol=1e-12)
    b, i = np.nonzero(mask)
    np.testing.assert_array_equal(out[b, i], np.eye(4)[values[b, i]])
    # unpinned values are never read
    scrambled = np.where(mask, values, rng.integers(0, 4, size=values.shape))
    np.testing.assert_array_equal(o.marginals(scrambled, mask), out)
    # targeted answers equal the full answers bit for bit
    targets = rng.integers(0, 12, size=30)
    np.testing.assert_array_equal(o.marginals(values, mask, targets), out[np.arange(30), targets])
    # batch invariance (deterministic mode): single rows and sub-batches, bit for bit
    for r in range(0, 30, 4):
        np.testing.assert_array_equal(o.marginals(values[r:r + 1], mask[r:r + 1])[0], out[r])
    np.testing.assert_array_equal(o.marginals(values[7:19], mask[7:19]), out[7:19])
    # the model actually conditions on its pins
    one_pin = o.marginals(values[:1], np.eye(12, dtype=bool)[[0]])[0]
    assert 0.5 * np.abs(one_pin[1:] - out[0, 1:]).sum(-1).max() > 0.05
    assert o.marginals(values[:0], mask[:0]).shape == (0, 12, 4)


def test_matches_a_hand_written_forward_pass(model):
    o = _oracle(model)
    values = np.array([[0, 3, 1, 2, 0, 0, 1, 3, 2, 2, 1, 0]])
    mask = np.zeros((1, 12), dtype=bool)
    mask[0, [1, 4, 5, 9]] = True
    cand = [5, 6, 7, 8]
    ids = [CLS, 5] + [cand[v] if m else MASK for v, m in zip(values[0], mask[0])] + [SEP]
    np.testing.assert_array_equal(o.input_ids(values, mask)[0], ids)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, 2:14][:, cand].double()
    ref = torch.softmax(logits, dim=-1).numpy()
    out = o.marginals(values, mask)[0]
    free = ~mask[0]
    np.testing.assert_allclose(out[free], ref[free], rtol=0, atol=1e-12)
    np.testing.assert_allclose(o.logits(values, mask)[0], logits.numpy(), rtol=0, atol=0)


def test_forward_accounting_and_batched_mode(model):
    rng = np.random.default_rng(1)
    det = _oracle(model)
    values, mask = _random_rows(det, 10, rng)
    ref = det.marginals(values, mask)
    assert (det.forward_calls, det.forward_rows) == (10, 10)  # one pass per row
    fast = _oracle(model, deterministic=False)
    out = fast.marginals(values, mask, np.zeros(10, dtype=np.int64))
    assert (fast.forward_calls, fast.forward_rows) == (1, 10)  # one pass per round
    np.testing.assert_allclose(out, ref[:, 0], rtol=0, atol=1e-6)
    chunked = _oracle(model, deterministic=False, max_batch=4)
    np.testing.assert_allclose(chunked.marginals(values, mask), ref, rtol=0, atol=1e-6)
    assert (chunked.forward_calls, chunked.forward_rows) == (3, 10)
    chunked.reset_counts()
    assert (chunked.forward_calls, chunked.forward_rows) == (0, 0)


def test_per_position_candidates_and_decode(model):
    cand = np.array([[5 + (i % 3), 9, 12 + i] for i in range(6)])
    o = MaskedLMOracle(model, candidate_ids=cand, mask_token_id=MASK, prefix_ids=[CLS],
                       suffix_ids=[SEP])
    assert (o.n, o.q) == (6, 3)
    x = sample_sequential(o, rng=3).sample
    np.testing.assert_array_equal(o.decode(x), cand[np.arange(6), x])
    np.testing.assert_array_equal(o.sequence_ids(x), [CLS, *cand[np.arange(6), x], SEP])
    X = np.stack([x, x[::-1]])
    assert o.decode(X).shape == (2, 6) and o.sequence_ids(X).shape == (2, 8)
    with pytest.raises(ValueError):
        o.decode(np.array([0, 1, 2, 0, 1, 3]))
    with pytest.raises(ValueError):
        o.to_text(x)  # no tokenizer


# ---------------------------------------------------------------- pathwise equality

@pytest.mark.parametrize("cand", [(5, 6, 7, 8), (5, 6, 7), (6, 9, 10, 12, 14)])
def test_parallel_equals_sequential_pathwise(model, cand):
    o = _oracle(model, cand=cand)
    n = o.n
    mismatches = 0
    for seed in range(4):
        o.reset_counts()
        seq = sample_sequential(o, rng=seed)
        assert seq.cost.rounds == n and seq.cost.evaluations == n
        assert o.forward_rows == n
        for w in (1, 2, 3, 5, None, n):
            o.reset_counts()
            par = sample_parallel(o, rng=seed, window=w)
            np.testing.assert_array_equal(par.sample, seq.sample, err_msg=f"seed={seed} w={w}")
            W = default_window(n) if w is None else w
            R = par.info["mismatches"]
            mismatches += R
            if W == 1:
                assert par.cost.rounds == n
            assert par.cost.rounds <= 2 * (math.ceil(n / W) + R)
            assert n <= par.cost.evaluations <= n + (W - 1) * R
            # deterministic mode: one forward pass per row evaluated
            assert o.forward_rows == o.forward_calls == par.cost.evaluations
    assert mismatches > 0  # the reject path is exercised


def test_batched_mode_one_forward_pass_per_round(model):
    o = _oracle(model, deterministic=False)
    for seed in range(3):
        o.reset_counts()
        par = sample_parallel(o, rng=seed, window=4)
        assert o.forward_calls == par.cost.rounds
        assert o.forward_rows == par.cost.evaluations
        assert par.cost.rounds < o.n
    o = _oracle(model, deterministic=False, max_batch=2)
    par = sample_parallel(o, rng=0, window=5)
    assert par.cost.rounds < o.forward_calls <= par.cost.evaluations


# ---------------------------------------------------------------- tokenizer convenience

@pytest.fixture(scope="module")
def tokenizer():
    return transformers.BertTokenizer(vocab=dict(VOCAB))  # in-memory vocabulary, offline


def test_from_tokenizer(model, tokenizer):
    o = MaskedLMOracle.from_tokenizer(model, tokenizer, length=5, words=["cat", "dog", "mat"],
                                      prompt="the big", suffix="on a log")
    assert (o.n, o.q) == (5, 3)
    assert o.prefix_ids == (CLS, VOCAB["the"], VOCAB["big"])
    assert o.suffix_ids == (VOCAB["on"], VOCAB["a"], VOCAB["log"], SEP)
    np.testing.assert_array_equal(o.candidate_ids[0], [VOCAB[w] for w in ("cat", "dog", "mat")])
    x = sample_parallel(o, rng=0).sample
    np.testing.assert_array_equal(x, sample_sequential(o, rng=0).sample)
    words = np.array(["cat", "dog", "mat"])[x]
    assert o.to_text(x) == "the big " + " ".join(words) + " on a log"
    assert len(o.to_text(np.stack([x, x]))) == 2
    # default candidates: every non-special token of the vocabulary
    full = MaskedLMOracle.from_tokenizer(model, tokenizer, length=3)
    assert full.q == len(WORDS) and full.prefix_ids == (CLS,) and full.suffix_ids == (SEP,)
    assert not set(full.candidate_ids[0]) & set(tokenizer.all_special_ids)


def test_from_tokenizer_errors(model, tokenizer):
    with pytest.raises(ValueError, match="single token"):
        MaskedLMOracle.from_tokenizer(model, tokenizer, length=3, words=["cat", "cat dog"])
    with pytest.raises(ValueError, match="repeated"):
        MaskedLMOracle.from_tokenizer(model, tokenizer, length=3, words=["cat", "cat"])
    with pytest.raises(ValueError, match="mask token"):
        MaskedLMOracle.from_tokenizer(model, tokenizer, length=3, prompt="the [MASK]")
    with pytest.raises(ValueError):
        MaskedLMOracle.from_tokenizer(model, tokenizer, length=0)

    class NoMask:
        mask_token_id = None

    with pytest.raises(ValueError, match="no mask token"):
        MaskedLMOracle.from_tokenizer(model, NoMask(), length=3)


# ---------------------------------------------------------------- validation

def test_bad_input(model):
    def make(**kw):
        args = dict(candidate_ids=[5, 6, 7], mask_token_id=MASK, length=4)
        args.update(kw)
        return MaskedLMOracle(model, **args)

    for kw in (dict(length=None), dict(length=0), dict(candidate_ids=[5]),
               dict(candidate_ids=[5, 5, 6]), dict(candidate_ids=[5, 6, 30]),
               dict(candidate_ids=[[5, 6], [6, 7]], length=3), dict(candidate_ids=[]),
               dict(candidate_ids=[5.0, 6.0]), dict(mask_token_id=-1), dict(max_batch=0),
               dict(prefix_ids=[CLS, -2]), dict(prefix_ids=[CLS] * 61)):
        with pytest.raises(ValueError):
            make(**kw)
    o = make()
    v = np.zeros((2, 4), dtype=np.int64)
    m = np.zeros((2, 4), dtype=bool)
    with pytest.raises(ValueError):
        o.marginals(v[:, :3], m[:, :3])
    with pytest.raises(TypeError):
        o.marginals(v, m.astype(int))
    with pytest.raises(ValueError):
        o.marginals(v, m, np.array([0, 4]))
    m[0, 1], v[0, 1] = True, 3
    with pytest.raises(ValueError):
        o.marginals(v, m)


def test_missing_torch_is_clear(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(MissingExtraError, match=r"parasample\[hf\]"):
        MaskedLMOracle(model, candidate_ids=[5, 6], mask_token_id=MASK, length=2)


def test_package_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
            "import parasample.autoregressive as a\n"
            "assert a.MaskedLMOracle and a.LogCountOracle\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------- exact law by enumeration

N4, Q3 = 4, 3


class _Cached(Oracle):
    """The oracle's answers on every partial assignment of [3]^4 (256 rows), precomputed in
    one batch. The MLM oracle is a deterministic function of the row (bitwise batch
    invariant), so this is the same oracle, only fast enough for thousands of samples."""

    def __init__(self, oracle):
        self.n, self.q = oracle.n, oracle.q
        V, M = [], []
        for S in itertools.product((False, True), repeat=self.n):
            Sm = np.array(S)
            for vals in itertools.product(range(self.q), repeat=int(Sm.sum())):
                v = np.zeros(self.n, dtype=np.int64)
                v[Sm] = vals
                V.append(v)
                M.append(Sm)
        V, M = np.array(V), np.array(M)
        out = oracle.marginals(V, M)
        self.rows = {(m.tobytes(), v.tobytes()): p for v, m, p in zip(V, M, out)}

    def marginals(self, values, mask, targets=None):
        v = np.where(mask, values, 0).astype(np.int64)
        out = np.stack([self.rows[(m.tobytes(), r.tobytes())] for r, m in zip(v, mask)])
        return out if targets is None else out[np.arange(len(v)), targets]


def _order_laws(cached):
    """P_π(x) = ∏_t p(x_{π_t} | x_{π<t}) for every order π (rows) and x (columns, C order)."""
    n, q = cached.n, cached.q
    X = np.array(list(itertools.product(range(q), repeat=n)))
    laws = []
    for pi in itertools.permutations(range(n)):
        P = np.ones(len(X))
        for k, x in enumerate(X):
            v = np.zeros(n, dtype=np.int64)
            m = np.zeros(n, dtype=bool)
            for i in pi:
                P[k] *= cached.rows[(m.tobytes(), v.tobytes())][i, x[i]]
                v[i], m[i] = x[i], True
        laws.append(P)
    return np.array(laws)


@pytest.fixture(scope="module")
def small(model):
    o = MaskedLMOracle(model, candidate_ids=[5, 6, 7], mask_token_id=MASK, length=N4,
                       prefix_ids=[CLS], suffix_ids=[SEP])
    cached = _Cached(o)
    laws = _order_laws(cached)
    return o, cached, laws, laws.mean(axis=0)


def _check_law(counts, law):
    S = int(counts.sum())
    stat, p, df = chisquare_counts(counts, law)
    tv = tv_distance(counts, law)
    assert df >= 40
    assert p > ALPHA, f"chi2 = {stat:.1f}, df = {df}, p = {p:.2e}"
    assert tv <= tv_bootstrap_threshold(law, S, reps=500), f"TV = {tv:.4f}"


def test_cached_oracle_is_the_oracle(small):
    o, cached, laws, mix = small
    rng = np.random.default_rng(0)
    values, mask = _random_rows(o, 40, rng)
    np.testing.assert_array_equal(cached.marginals(values, mask), o.marginals(values, mask))
    np.testing.assert_allclose(laws.sum(axis=1), 1.0, atol=1e-12)
    # The caveat: the conditionals are not those of one joint, so P_π depends on π.
    assert max(0.5 * np.abs(P - mix).sum() for P in laws) > 0.1


@pytest.mark.parametrize("sampler,window,seed", [
    (sample_parallel, 2, 11), (sample_parallel, N4, 12), (sample_sequential, None, 13),
])
def test_exact_law_mixture_over_orders(small, sampler, window, seed):
    _, cached, _, mix = small
    kw = {} if sampler is sample_sequential else {"window": window}
    _check_law(oracle_counts(cached, sampler, 6000, seed, **kw), mix)


def _accept_all(oracle, *, rng, window):
    """WRONG sampler: the parallel loop without verification (keeps every draft)."""
    order, r = draw_randomness(oracle.n, oracle.q, rng, coupler="gumbel")
    return _run_parallel(oracle, oracle.n, "gumbel", order, r, window, verify=False)


def _fixed_order(oracle, *, rng):
    """WRONG for the mixture: always the identity order, i.e. samples P_id exactly."""
    return sample_parallel(oracle, rng=rng, window=2, order=np.arange(oracle.n))


@pytest.mark.parametrize("sampler,kw", [(_accept_all, {"window": N4}),
                                        (_accept_all, {"window": 2}), (_fixed_order, {})])
def test_power_wrong_samplers_are_rejected(small, sampler, kw):
    _, cached, laws, mix = small
    counts = oracle_counts(cached, sampler, 6000, 21, **kw)
    _, p, _ = chisquare_counts(counts, mix)
    assert p < ALPHA, f"power check failed: p = {p:.2e}"
    assert tv_distance(counts, mix) > tv_bootstrap_threshold(mix, 6000, reps=500)
    if sampler is _fixed_order:  # ... yet it is exact for its own target P_id
        _check_law(counts, laws[0])


@pytest.mark.slow
def test_exact_law_with_the_live_model(small):
    """Same law check on the live model (one forward pass per row, no cache)."""
    o, _, _, mix = small
    _check_law(oracle_counts(o, sample_parallel, 3000, 31, window=2), mix)
