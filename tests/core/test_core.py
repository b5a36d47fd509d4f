import numpy as np
import pytest

from parasample.core import (
    Cost, CountingOracle, MissingExtraError, ProgressBar, SampleResult, as_generator,
    progress_reporter, require, spawn, track,
)


def test_as_generator_accepts_spec7_forms():
    g = np.random.default_rng(3)
    assert as_generator(g) is g
    a = as_generator(5).random(4)
    b = as_generator(np.random.SeedSequence(5)).random(4)
    assert np.array_equal(a, b)
    assert isinstance(as_generator(None), np.random.Generator)
    assert as_generator(np.int64(7)).random() == as_generator(7).random()


@pytest.mark.parametrize("bad", [np.random.RandomState(0), "seed", 1.5])
def test_as_generator_rejects_other_types(bad):
    with pytest.raises(TypeError, match="rng must be"):
        as_generator(bad)


def test_as_generator_rejects_negative_seed():
    with pytest.raises(ValueError):
        as_generator(-1)


def test_spawn_gives_independent_reproducible_streams():
    a = [g.random() for g in spawn(1, 3)]
    b = [g.random() for g in spawn(1, 3)]
    assert a == b and len(set(a)) == 3


def test_counting_oracle_measures_rounds_and_evaluations():
    calls = []
    oracle = CountingOracle(lambda batch: calls.append(len(batch)) or np.sum(batch, axis=1))
    oracle(np.ones((4, 2)))
    oracle(np.ones((1, 2)))
    oracle([[1, 2], [3, 4], [5, 6]])
    assert oracle.cost == Cost(3, 8)
    assert calls == [4, 1, 3]
    oracle.count(10)
    assert oracle.cost == Cost(4, 18)
    oracle.reset()
    assert oracle.cost == Cost(0, 0)


def test_cost_adds_and_result_holds_info():
    c = Cost(2, 5) + Cost(1, 1)
    assert c == Cost(3, 6) and c.as_dict() == {"rounds": 3, "evaluations": 6}
    r = SampleResult(np.arange(3), c, {"acceptance": 0.5})
    assert r.cost.rounds == 3 and r.info["acceptance"] == 0.5


def test_require_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"parasample\[nope\]"):
        require("definitely_not_a_module_xyz", "nope")
    assert require("math", "x").sqrt(4) == 2


def test_progress_bar_and_callbacks(capsys):
    import io

    stream = io.StringIO()
    bar = ProgressBar(stream=stream, force=True)
    for i in range(3):
        bar(i + 1, 3, "work")
    assert "3/3" in stream.getvalue() and stream.getvalue().endswith("\n")
    seen = []
    assert list(track([1, 2], lambda d, t, l: seen.append((d, t, l)), "x")) == [1, 2]
    assert seen == [(0, 2, "x"), (1, 2, "x"), (2, 2, "x")]
    progress_reporter(None)(1, 2, "silent")
    with pytest.raises(TypeError):
        progress_reporter(3)


@pytest.mark.parametrize("good,expected", [(3, 3), (np.int64(4), 4), (5.0, 5), (0, 0)])
def test_as_count_accepts_whole_numbers(good, expected):
    from parasample.core import as_count
    assert as_count(good, "k") == expected


@pytest.mark.parametrize("bad", [2.5, -1, True, "3", float("nan"), np.float64(1.5), None])
def test_as_count_rejects_fractions_bools_and_negatives(bad):
    from parasample.core import as_count
    with pytest.raises(ValueError, match="k must be"):
        as_count(bad, "k")


def test_as_count_minimum():
    from parasample.core import as_count
    assert as_count(1, "window", minimum=1) == 1
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        as_count(0, "window", minimum=1)


def test_read_only_view_refuses_writes():
    from parasample.core import read_only
    a = np.zeros(3)
    v = read_only(a)
    with pytest.raises(ValueError):
        v[0] = 1.0
    a[0] = 2.0  # the owner keeps write access
    assert v[0] == 2.0
