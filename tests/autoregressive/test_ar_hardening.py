"""Hardening of parasample.autoregressive against bad oracles and bad input (issue 9):

- every oracle answer is checked (shape, dtype, finiteness, non-negativity, row sums) in every
  sampler, with an error naming the oracle; tiny drift is renormalised;
- oracles get read-only inputs, so an oracle that writes into them raises;
- counts (window, n_samples, n, q, max_batch, length …) are integers, never truncated;
- a call that fails validation leaves the caller's Generator as it was;
- loading the digits model leaves torch's global RNG as it was.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from parasample.autoregressive import (
    CurieWeissOracle, LogCountOracle, MarkovChainOracle, Oracle, TableOracle, default_window,
    draw_randomness, sample_parallel, sample_parallel_batch, sample_sequential,
    sample_sequential_batch,
)
from parasample.autoregressive.counting_form import table_log_count
from parasample.autoregressive.oracles import check_marginals
from parasample.core import NumericalError

SAMPLERS = {
    "sequential": lambda o, **kw: sample_sequential(o, rng=0, **kw),
    "parallel_w2": lambda o, **kw: sample_parallel(o, rng=0, window=2, **kw),
    "parallel_default": lambda o, **kw: sample_parallel(o, rng=0, **kw),
    "parallel_adaptive": lambda o, **kw: sample_parallel(o, rng=0, window="adaptive", **kw),
    "parallel_wn": lambda o, **kw: sample_parallel(o, rng=0, window=o.n, **kw),
    "sequential_batch": lambda o, **kw: sample_sequential_batch(o, 3, rng=0, **kw),
    "parallel_batch": lambda o, **kw: sample_parallel_batch(o, 3, rng=0, **kw),
    "parallel_batch_adaptive":
        lambda o, **kw: sample_parallel_batch(o, 3, rng=0, window="adaptive", **kw),
}


def _bases():
    rng = np.random.default_rng(1)
    return {
        "cw_q2": CurieWeissOracle(7, 0.8, 0.1),  # threshold coupler
        "table_q3": TableOracle(rng.dirichlet(np.ones(81)).reshape((3,) * 4)),  # Gumbel
    }


BASES = _bases()


# ---------------------------------------------------------------- oracle outputs

def _set_row0(out, row):
    out = np.array(out)
    out[(0,) * (out.ndim - 1)] = row[:out.shape[-1]]
    return out


def _negative(out):
    return _set_row0(out, np.r_[1.5, -0.5, np.zeros(out.shape[-1])])


def _nan_entry(out):
    return _set_row0(out, np.r_[np.nan, np.ones(out.shape[-1])])


def _inf_entry(out):
    return _set_row0(out, np.r_[np.inf, np.zeros(out.shape[-1])])


def _scaled(c):
    return lambda out: _set_row0(out, c * out[(0,) * (out.ndim - 1)])


# name -> (corruption of the answer, expected exception, message fragment)
CORRUPTIONS = {
    "extra_column": (lambda o: np.concatenate([o, np.zeros(o.shape[:-1] + (1,))], -1),
                     ValueError, "shape"),
    "missing_column": (lambda o: o[..., :-1], ValueError, "shape"),
    "extra_row": (lambda o: np.concatenate([o, o[:1]]), ValueError, "shape"),
    "missing_row": (lambda o: o[:-1], ValueError, "shape"),
    "flattened": (lambda o: o.reshape(-1), ValueError, "shape"),
    "extra_axis": (lambda o: o[..., None], ValueError, "shape"),
    "nan_entry": (_nan_entry, NumericalError, "row"),
    "inf_entry": (_inf_entry, NumericalError, "row"),
    "negative": (_negative, NumericalError, "negative"),
    "sums_to_0.9": (_scaled(0.9), NumericalError, "sum"),
    "sums_to_1.1": (_scaled(1.1), NumericalError, "sum"),
    "all_nan": (lambda o: np.full(o.shape, np.nan), NumericalError, "probability zero"),
    "none": (lambda o: None, TypeError, "numbers"),
    "strings": (lambda o: o.astype(str), TypeError, "numbers"),
    "complex": (lambda o: o.astype(complex), TypeError, "numbers"),
    "bool": (lambda o: o > 0.5, TypeError, "numbers"),
}


class BadOracle(Oracle):
    """A correct oracle whose every answer is passed through ``corrupt``."""

    def __init__(self, base, corrupt):
        self.base, self.corrupt = base, corrupt
        self.n, self.q = base.n, base.q

    def marginals(self, values, mask, targets=None):
        return self.corrupt(self.base.marginals(values, mask, targets))


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("base", list(BASES))
@pytest.mark.parametrize("bad", list(CORRUPTIONS))
def test_bad_oracle_answers_raise_naming_the_oracle(bad, base, sampler):
    corrupt, exc, fragment = CORRUPTIONS[bad]
    with pytest.raises(exc) as info:
        SAMPLERS[sampler](BadOracle(BASES[base], corrupt))
    msg = str(info.value)
    assert "BadOracle" in msg and fragment in msg, msg


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_shape_error_names_expected_and_actual(sampler):
    o = BadOracle(BASES["cw_q2"], CORRUPTIONS["extra_column"][0])
    with pytest.raises(ValueError) as info:
        SAMPLERS[sampler](o)
    msg = str(info.value)
    B = 3 if "batch" in sampler else 1
    expected = (B, 2) if sampler.startswith("sequential") else (B, 7, 2)
    assert str(expected) in msg and str(expected[:-1] + (3,)) in msg, msg


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_bad_row_is_named(sampler):
    """The error points at the first bad row, here row 0 (coordinate 0 of a full answer)."""
    o = BadOracle(BASES["cw_q2"], _scaled(0.5))
    with pytest.raises(NumericalError, match=r"row (0|\(0, 0\))[^0-9,]"):
        SAMPLERS[sampler](o)


def _markov_zeros(n=12, seed=3):
    """q = 3 chain with forbidden transitions: zero entries in the rows the samplers use, and
    legitimate NaN (zero-probability) verification rows."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(3, 0.7), size=(n - 1, 3))
    P[:, 0, 1] = P[:, 2, 0] = 0.0
    P /= P.sum(axis=-1, keepdims=True)
    return MarkovChainOracle(rng.dirichlet(np.ones(3)), P)


def test_check_marginals_unit():
    o = _markov_zeros()
    P = np.array([[0.5, 0.5 + 4e-10, -2e-10], [np.nan] * 3, [0.2, 0.3, 0.5]])
    out = check_marginals(o, P, (3, 3))
    assert out.dtype == np.float64 and out is not P
    assert out[0, 2] == 0.0 and abs(out[0].sum() - 1) < 1e-15
    assert np.isnan(out[1]).all()
    np.testing.assert_array_equal(out[2], P[2] / P[2].sum())
    assert check_marginals(o, np.empty((0, 12, 3)), (0, 12, 3)).shape == (0, 12, 3)
    msg = r"MarkovChainOracle.*row \(0, 1\) has a negative entry -0.1 "
    with pytest.raises(NumericalError, match=msg):
        check_marginals(o, np.array([[[1, 0, 0], [0.5, 0.6, -0.1]]]), (1, 2, 3))


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("base", [*BASES, "markov_zeros"])
def test_tiny_drift_is_renormalised(sampler, base):
    """Rows within the tolerance are renormalised (entries within it below 0 clip to 0): the
    sample is that of the clean oracle. Lists of numbers are accepted as answers."""
    o = _markov_zeros() if base == "markov_zeros" else BASES[base]

    def drift(out):
        out = np.array(out) * (1 + 3e-10)
        out[..., 0] -= 2e-10  # may go slightly negative where the entry is 0
        return out.tolist()

    clean = SAMPLERS[sampler](o)
    np.testing.assert_array_equal(SAMPLERS[sampler](BadOracle(o, drift)).sample, clean.sample)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_float32_answers_are_accepted(sampler):
    """A float32 answer may drift by 1e-5 (rounding of a float32 softmax), not more."""
    o = BadOracle(BASES["table_q3"], lambda out: np.asarray(out, dtype=np.float32))
    res = SAMPLERS[sampler](o)
    assert res.sample.shape[-1] == 4
    bad = BadOracle(BASES["table_q3"], lambda out: np.asarray(1.001 * out, dtype=np.float32))
    with pytest.raises(NumericalError, match="sum"):
        SAMPLERS[sampler](bad)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_counting_form_nan_for_a_needed_row_raises(sampler):
    """A log_count that says the sampled prefix has weight 0 (all -inf) makes NaN rows that
    the sampler needs: a clear error naming the oracle, never a sample."""
    o = LogCountOracle(lambda v, m: np.full(len(v), -np.inf), 5, 2)
    with pytest.raises(NumericalError, match="LogCountOracle.*probability zero"):
        SAMPLERS[sampler](o)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_nan_rows_after_the_first_mismatch_are_fine(sampler):
    """Zero-probability verification rows (legitimate NaN) still sample like the sequential
    sampler: a Markov chain with forbidden transitions."""
    o = _markov_zeros()
    ref = SAMPLERS["sequential_batch" if "batch" in sampler else "sequential"](o)
    np.testing.assert_array_equal(SAMPLERS[sampler](o).sample, ref.sample)


# ---------------------------------------------------------------- oracles writing inputs

class WritingOracle(Oracle):
    """Answers correctly, then writes into one of its input arrays."""

    def __init__(self, base, which):
        self.base, self.which = base, which
        self.n, self.q = base.n, base.q

    def marginals(self, values, mask, targets=None):
        out = self.base.marginals(np.array(values), np.array(mask),
                                  None if targets is None else np.array(targets))
        arr = {"values": values, "mask": mask, "targets": targets}[self.which]
        if arr is not None:
            arr[...] = 0 if self.which != "mask" else ~np.asarray(mask)
        else:
            values[...] = 0
        return out


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("which", ["values", "mask", "targets"])
def test_oracle_writing_its_input_raises(which, sampler):
    o = WritingOracle(BASES["table_q3"], which)
    with pytest.raises(ValueError, match="WritingOracle.*read-only"):
        SAMPLERS[sampler](o)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_log_count_writing_its_input_raises(sampler):
    log_count, n, q = table_log_count(np.random.default_rng(0).random((2,) * 5))

    def writer(values, mask):
        out = log_count(np.array(values), np.array(mask))
        mask[...] = True
        return out

    with pytest.raises(ValueError, match="log_count.*read-only"):
        SAMPLERS[sampler](LogCountOracle(writer, n, q))


# ---------------------------------------------------------------- integer counts

class _Sized(Oracle):
    def __init__(self, n, q):
        self.n, self.q = n, q

    def marginals(self, values, mask, targets=None):  # pragma: no cover - never reached
        raise AssertionError("validation must come first")


_CW = CurieWeissOracle(6, 0.5)
_P2 = np.array([[0.9, 0.1], [0.2, 0.8]])
COUNT_CALLS = {
    "window": lambda x: sample_parallel(_CW, rng=0, window=x),
    "batch_window": lambda x: sample_parallel_batch(_CW, 2, rng=0, window=x),
    "n_samples_parallel": lambda x: sample_parallel_batch(_CW, x, rng=0),
    "n_samples_sequential": lambda x: sample_sequential_batch(_CW, x, rng=0),
    "oracle_n": lambda x: sample_sequential(_Sized(x, 2), rng=0),
    "oracle_q": lambda x: sample_parallel(_Sized(4, x), rng=0),
    "batch_oracle_n": lambda x: sample_parallel_batch(_Sized(x, 2), 2, rng=0),
    "draw_randomness_n": lambda x: draw_randomness(x, 2, 0),
    "draw_randomness_q": lambda x: draw_randomness(4, x, 0),
    "default_window_n": lambda x: default_window(x),
    "curie_weiss_n": lambda x: CurieWeissOracle(x, 0.5),
    "markov_n": lambda x: MarkovChainOracle([0.5, 0.5], _P2, n=x),
    "log_count_n": lambda x: LogCountOracle(lambda v, m: np.zeros(len(v)), x, 2),
    "log_count_q": lambda x: LogCountOracle(lambda v, m: np.zeros(len(v)), 3, x),
    "log_count_max_batch":
        lambda x: LogCountOracle(lambda v, m: np.zeros(len(v)), 3, 2, max_batch=x),
}


@pytest.mark.parametrize("value", [2.5, True, "3", float("nan"), -3])
@pytest.mark.parametrize("where", list(COUNT_CALLS))
def test_non_integer_counts_are_rejected(where, value):
    with pytest.raises(ValueError, match="integer"):
        COUNT_CALLS[where](value)


def test_integral_floats_are_counts():
    assert sample_parallel(_CW, rng=0, window=3.0).info["window"] == 3
    assert sample_parallel_batch(_CW, 2.0, rng=0).sample.shape == (2, 6)
    assert MarkovChainOracle([0.5, 0.5], _P2, n=4.0).n == 4


@pytest.mark.parametrize("value", [2.5, True])
@pytest.mark.parametrize("where", ["length", "max_batch", "mask_token_id"])
def test_masked_lm_counts(where, value):
    pytest.importorskip("torch")
    from parasample.autoregressive import MaskedLMOracle

    kw = {"candidate_ids": [5, 6], "mask_token_id": 4, "length": 3}
    kw[where] = value
    with pytest.raises(ValueError, match="integer"):
        MaskedLMOracle(None, **kw)


# ---------------------------------------------------------------- caller's Generator

_T3 = BASES["table_q3"]
FAILING_CALLS = {
    "parallel_window_0": lambda g: sample_parallel(_CW, rng=g, window=0),
    "parallel_window_2.5": lambda g: sample_parallel(_CW, rng=g, window=2.5),
    "parallel_window_word": lambda g: sample_parallel(_CW, rng=g, window="fast"),
    "parallel_order": lambda g: sample_parallel(_CW, rng=g, order=[0, 0, 1, 2, 3, 4]),
    "sequential_order": lambda g: sample_sequential(_CW, rng=g, order=np.arange(5)),
    "parallel_coupler": lambda g: sample_parallel(_CW, rng=g, coupler="inverse"),
    "sequential_threshold_q3": lambda g: sample_sequential(_T3, rng=g, coupler="threshold"),
    "sequential_oracle_n": lambda g: sample_sequential(_Sized(2.5, 2), rng=g),
    "parallel_oracle_q": lambda g: sample_parallel(_Sized(4, 1), rng=g),
    "batch_n_samples": lambda g: sample_parallel_batch(_CW, 2.5, rng=g),
    "batch_n_samples_0": lambda g: sample_sequential_batch(_CW, 0, rng=g),
    "batch_coupler": lambda g: sample_parallel_batch(_CW, 2, rng=g, coupler="inverse"),
    "sequential_batch_coupler":
        lambda g: sample_sequential_batch(_T3, 2, rng=g, coupler="threshold"),
    "batch_window": lambda g: sample_parallel_batch(_CW, 2, rng=g, window=2.5),
    "batch_oracle_n": lambda g: sample_sequential_batch(_Sized(0, 2), 2, rng=g),
    "draw_randomness_coupler": lambda g: draw_randomness(5, 3, g, coupler="threshold"),
    "draw_randomness_n": lambda g: draw_randomness(2.5, 2, g),
}


@pytest.mark.parametrize("call", list(FAILING_CALLS))
def test_failed_validation_leaves_generator_alone(call):
    g = np.random.default_rng(12345)
    state = copy.deepcopy(g.bit_generator.state)
    spawned = g.bit_generator.seed_seq.n_children_spawned
    with pytest.raises((ValueError, TypeError)):
        FAILING_CALLS[call](g)
    assert g.bit_generator.state == state
    assert g.bit_generator.seed_seq.n_children_spawned == spawned


# ---------------------------------------------------------------- global RNG state

@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_loading_digits_model_leaves_global_rngs_alone(backend):
    torch = pytest.importorskip("torch")
    from parasample.autoregressive import load_digits_model

    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    load_digits_model(backend=backend)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    assert after[2:] == np_state[2:]
