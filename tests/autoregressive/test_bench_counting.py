"""Smoke test of parasample.bench.counting (spec counting.md §9) and of its helper oracles."""

from __future__ import annotations

import numpy as np
import pytest

from parasample.autoregressive import CurieWeissOracle, MarkovChainOracle
from parasample.bench.counting import BatchedCurieWeissOracle, ising_chain, run


def _rows(n, B, seed):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 2, size=(B, n))
    m = rng.random((B, n)) < rng.random((B, 1))
    return v, m, rng.integers(0, n, size=B)


def test_helper_oracles_agree_with_library_ones():
    v, m, t = _rows(30, 100, 0)
    fast = ising_chain(30)
    ref = MarkovChainOracle(fast.init, fast.P[0], 30)
    np.testing.assert_allclose(fast.marginals(v, m), ref.marginals(v, m), atol=1e-12)
    b, c = BatchedCurieWeissOracle(30, 0.5), CurieWeissOracle(30, 0.5)
    full = b.marginals(v, m)
    np.testing.assert_allclose(full, c.marginals(v, m), atol=1e-12)
    # batch invariance and targeted == full, bit for bit
    np.testing.assert_array_equal(b.marginals(v, m, t), full[np.arange(100), t])
    np.testing.assert_array_equal(b.marginals(v[3:4], m[3:4]), full[3:4])


def test_run_quick(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "rounds.png"
    res = run(quick=True, repeats=1, plot=str(png))
    assert set(res) >= {"meta", "rows", "markdown", "plot"}
    sections = {r["section"] for r in res["rows"]}
    assert sections == {"rounds_vs_n", "kdpp_rounds", "wall_clock", "digits"}
    rvn = [r for r in res["rows"] if r["section"] == "rounds_vs_n"]
    assert len(rvn) == 8 and all(r["outputs_equal"] for r in rvn)
    assert all(r["seq_rounds"] == r["n"] for r in rvn)
    for slope in res["meta"]["slopes"].values():
        assert 0.5 <= slope <= 0.85
    assert all(r["outputs_equal"] for r in res["rows"] if r["section"] == "wall_clock")
    assert "Curie–Weiss" in res["markdown"] and "k-DPP" in res["markdown"]
    assert res["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kw", [{"repeats": 2.5}, {"repeats": True}, {"sizes": (64, 125.5)},
                                {"sizes": (0,)}])
def test_run_rejects_non_integer_counts(kw):
    with pytest.raises(ValueError, match="integer"):
        run(quick=True, **kw)
