"""Schedules and time grids (spec §1.1–§1.2, §8 "Schedules and steps")."""

import numpy as np
import pytest

pytest.importorskip("torch")

from parasample.diffusion import Schedule, TimeGrid, spaced_timesteps  # noqa: E402


@pytest.mark.parametrize("ctor, ref", [
    (Schedule.linear, 4.0e-5), (Schedule.scaled_linear, 4.7e-3), (Schedule.cosine, 2.4e-9)])
def test_reference_alpha_bar_999(ctor, ref):
    s = ctor()
    assert s.n_train == 1000 and s.alpha_bar.dtype == np.float64
    assert s.alpha_bar[999] == pytest.approx(ref, rel=0.02)
    assert np.all(np.diff(s.alpha_bar) < 0)


def test_beta_definitions():
    lin = Schedule.linear()
    np.testing.assert_allclose(lin.betas[[0, -1]], [1e-4, 0.02], rtol=1e-12)
    np.testing.assert_allclose(lin.alpha_bar, np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)),
                               rtol=1e-12)
    sl = Schedule.scaled_linear()
    np.testing.assert_allclose(sl.betas[[0, -1]], [0.00085, 0.012], rtol=1e-12)
    cos = Schedule.cosine()
    assert cos.betas.max() <= 0.999
    f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    np.testing.assert_allclose(cos.alpha_bar[:900], (f(np.arange(1, 901) / 1000) / f(0.0)),
                               rtol=1e-10)
    assert not lin.alpha_bar.flags.writeable
    with pytest.raises(AttributeError):
        lin.n_train = 3


def test_from_alpha_bar_round_trip_and_torch():
    torch = pytest.importorskip("torch")
    lin = Schedule.linear()
    again = Schedule.from_alpha_bar(torch.tensor(lin.alpha_bar, dtype=torch.float32))
    np.testing.assert_allclose(again.alpha_bar, lin.alpha_bar, rtol=1e-6)
    assert again.alpha_bar.dtype == np.float64


@pytest.mark.parametrize("ab, match", [
    ([0.9, 0.5, np.nan], "NaN"),
    ([0.9, 0.5, 0.0], "zero terminal SNR"),
    ([0.9, 0.9, 0.5], "strictly decreasing"),
    ([0.5, 0.7, 0.1], "strictly decreasing"),
    ([1.0, 0.5, 0.1], r"\(0, 1\)"),
    ([0.9, -0.1, -0.2], r"\(0, 1\)"),
    ([], "non-empty"),
])
def test_schedule_validation(ab, match):
    with pytest.raises(ValueError, match=match):
        Schedule.from_alpha_bar(np.array(ab, dtype=float))


def test_constructor_validation():
    with pytest.raises(ValueError):
        Schedule.linear(n_train=0)
    with pytest.raises(ValueError):
        Schedule.linear(beta_start=0.02, beta_end=0.01)
    with pytest.raises(ValueError):
        Schedule.cosine(max_beta=1.0)
    with pytest.raises(ValueError):
        Schedule.from_betas([0.1, 0.0])


def test_spacing_lists_S10():
    assert spaced_timesteps(1000, 10, "leading").tolist() == list(range(900, -1, -100))
    assert spaced_timesteps(1000, 10, "trailing").tolist() == list(range(999, 98, -100))
    assert spaced_timesteps(1000, 10, "linspace").tolist() == [
        999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    assert spaced_timesteps(1000, 10, "leading", offset=1).tolist() == list(range(901, 0, -100))


def test_spacing_lists_S13():
    assert spaced_timesteps(1000, 13, "leading").tolist() == list(range(912, -1, -76))
    assert spaced_timesteps(1000, 13, "trailing").tolist() == [
        999, 922, 845, 768, 691, 614, 537, 461, 384, 307, 230, 153, 76]
    # round-half-to-even: 166.5 -> 166, 499.5 -> 500, 832.5 -> 832
    assert spaced_timesteps(1000, 13, "linspace").tolist() == [
        999, 916, 832, 749, 666, 583, 500, 416, 333, 250, 166, 83, 0]


def test_prev_timestep_from_list_not_stride():
    g = TimeGrid.spaced(Schedule.linear(), 13, "trailing")
    assert g.prev_timestep(999) == 922          # the stride rule would give 999 - 76 = 923
    assert g.prev_timesteps.tolist() == g.timesteps[1:].tolist() + [-1]
    assert g.prev_timestep(76) == -1
    with pytest.raises(ValueError):
        g.prev_timestep(998)


def test_per_step_vectors():
    s = Schedule.linear()
    g = TimeGrid(s, [999, 500, 20], final_alpha_bar=0.9999)
    ab = s.alpha_bar[[999, 500, 20]]
    abp = np.array([ab[1], ab[2], 0.9999])
    np.testing.assert_array_equal(g.ab, ab)
    np.testing.assert_array_equal(g.abp, abp)
    bt = 1 - ab / abp
    np.testing.assert_allclose(g.beta_tilde, bt, rtol=1e-15)
    np.testing.assert_allclose(g.var_small, (1 - abp) / (1 - ab) * bt, rtol=1e-15)
    np.testing.assert_allclose(g.var_large, bt, rtol=1e-15)
    assert g.n_steps == len(g) == 3
    full = TimeGrid.spaced(s, 1000, "leading")
    np.testing.assert_allclose(full.beta_tilde, s.betas[::-1], rtol=1e-10)


@pytest.mark.parametrize("t, kw, match", [
    ([10, 10, 3], {}, "strictly decreasing"),
    ([3, 10], {}, "strictly decreasing"),
    ([1000, 3], {}, r"\[0, 999\]"),
    ([5, -1], {}, r"\[0, 999\]"),
    ([5.5, 2.0], {}, "integers"),
    ([], {}, "non-empty"),
    ([10, 3], {"final_alpha_bar": 1.5}, "final_alpha_bar"),
    ([10, 3], {"final_alpha_bar": 0.5}, "final_alpha_bar"),
    ([10, 3], {"final_alpha_bar": float("nan")}, "final_alpha_bar"),
])
def test_custom_grid_validation(t, kw, match):
    with pytest.raises(ValueError, match=match):
        TimeGrid(Schedule.linear(), np.array(t), **kw)


def test_grid_accepts_float_integers_and_equal_final():
    s = Schedule.linear()
    g = TimeGrid(s, np.array([20.0, 0.0]), final_alpha_bar=s.alpha_bar[0])
    assert g.timesteps.dtype == np.int64 and g.beta_tilde[-1] == 0.0


@pytest.mark.parametrize("args, match", [
    ((1000, 0, "leading"), "n_steps"), ((1000, 1001, "leading"), "n_steps"),
    ((1000, 10, "quadratic"), "spacing"), ((1000, 10, "trailing", 1), "offset"),
    ((1000, 10, "leading", -1), "offset")])
def test_spaced_timesteps_errors(args, match):
    with pytest.raises(ValueError, match=match):
        spaced_timesteps(*args)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("S", [1, 7, 10, 13, 500, 999, 1000])
def test_spacings_are_valid_grids(spacing, S):
    t = spaced_timesteps(1000, S, spacing)
    assert t.size == S and np.all(np.diff(t) < 0) and t.min() >= 0 and t.max() <= 999
