"""Smoke test of the DPP benchmark (parasample.bench.dpp.run(quick=True)) and of the harness
features it relies on: interleaved timing, time caps reported as lower bounds, errors."""

import json
import math
import time

import pytest

from parasample.bench.harness import (
    Comparison, Task, _openblas_runtime, measure, rows_markdown, sleeper,
)

pytest.importorskip("dppy")

from parasample.bench.dpp import THRESHOLDS, run  # noqa: E402

ROW_KEYS = {
    "id", "size", "comparison", "ours", "baseline", "ours_s", "baseline_s",
    "baseline_is_lower_bound", "ratio", "ratio_is_lower_bound", "ratio_iqr", "must", "target",
    "verdict", "note",
}
# (id, baseline) pairs every run must contain (spec dpp.md §10, R1–R7)
EXPECTED = {
    ("R1", "dense eigh(L)"), ("R1·first", "FiniteDPP(L) + GS"), ("R2", "GS"),
    ("R2", "GS_bis"), ("R2", "KuTa12"), ("R3", "GS"), ("R3", "GS_bis"),
    ("R3", "dual Φ (GS_bis)"), ("R3", "dual Φ (GS_bis), first"), ("R4", "Chol"),
    ("R5", "Chol"), ("R6", "E"), ("R6", "AD"), ("R7", "vfx k-DPP"), ("R7", "alpha k-DPP"),
}


def check_rows(rows):
    """Every row measured both sides: a positive finite ratio, or a lower bound that comes
    from a capped baseline; a verdict consistent with the 'must' threshold."""
    assert rows, "no rows"
    for r in rows:
        assert ROW_KEYS <= set(r), f"missing columns {ROW_KEYS - set(r)}"
        where = f"{r['id']} N={r['size']} vs {r['baseline']}: {r['note']}"
        ratio = r["ratio"]
        assert ratio is not None, where
        assert isinstance(ratio, float) and math.isfinite(ratio) and ratio > 0, where
        assert r["ours_s"] is not None and 0 < r["ours_s"] < math.inf, where
        assert r["baseline_s"] is not None and 0 < r["baseline_s"] < math.inf, where
        assert r["ratio_is_lower_bound"] == r["baseline_is_lower_bound"], where
        assert math.isclose(ratio, r["baseline_s"] / r["ours_s"], rel_tol=1e-9), where
        if r["must"] is None:
            assert r["verdict"] == "—", where
        elif ratio >= r["must"]:
            assert r["verdict"] == "pass", where
        else:
            assert r["verdict"] == ("inconclusive" if r["ratio_is_lower_bound"] else "FAIL")


@pytest.fixture(scope="module")
def result():
    import scipy.linalg  # noqa: F401  (load scipy's OpenBLAS too, before comparing)

    before = _openblas_runtime()
    t0 = time.perf_counter()
    # one BLAS thread: the machine may be shared, and 2 OpenBLAS threads next to a busy
    # process make small calls erratic (structure is tested here, not speed)
    res = run(quick=True, blas_threads=1)
    res["_elapsed"] = time.perf_counter() - t0
    res["_blas_restored"] = _openblas_runtime() == before
    return res


def test_quick_run_has_all_comparisons(result):
    rows = result["rows"]
    assert {r["id"] for r in rows} == set(THRESHOLDS)
    assert {(r["id"], r["baseline"]) for r in rows} == EXPECTED
    assert all(r["size"] == 300 for r in rows)
    for r in rows:
        assert (r["must"], r["target"]) == THRESHOLDS[r["id"]]


def test_quick_run_ratios_are_measured(result):
    check_rows(result["rows"])


def test_quick_run_sampler_outputs_are_valid(result):
    checks = result["meta"]["per_size"]["300"]["checks"]
    assert set(checks) == {"sample_exact", "sample_exact_k", "sample_lowrank",
                           "sample_sequential", "sample_mcmc(k=50)"}
    bad = {k: v for k, v in checks.items() if not v["valid"]}
    assert not bad, bad


def test_quick_run_output_formats(result):
    meta = result["meta"]
    for pkg in ("numpy", "scipy", "numba", "dppy", "parasample"):
        assert meta["versions"][pkg], pkg
    assert meta["cpu_count"] >= 1 and meta["python"]
    assert "blas" in meta and not meta["interrupted"] and meta["blas_threads"] == 1
    assert all(r["num_threads"] == 1 for r in meta["blas"].get("openblas_runtime", []))
    md = result["markdown"]
    assert md.count("\n| R") == len(result["rows"])
    assert "| id | N | comparison |" in md
    json.loads(json.dumps({k: v for k, v in result.items() if not k.startswith("_")}))
    assert result["_blas_restored"], "run(blas_threads=1) must restore the thread counts"


def test_check_rows_has_power(result):
    """The row check rejects a failed sampler, a non-finite ratio and a wrong verdict."""
    good = result["rows"][0]
    for broken in (
        dict(good, ratio=None, note="parasample: ImportError"),
        dict(good, ratio=float("inf")),
        dict(good, ratio=-1.0),
        dict(good, verdict="pass" if good["verdict"] != "pass" else "FAIL"),
        dict(good, ratio_is_lower_bound=not good["ratio_is_lower_bound"]),
    ):
        with pytest.raises(AssertionError):
            check_rows([broken])


# --------------------------------------------------------------------------- harness
def test_harness_cap_gives_lower_bound_and_errors_are_recorded():
    tasks = [
        Task("slow", factory=sleeper, kwargs={"seconds": 30.0}, cap=0.5, warmup=False),
        Task("bad", factory=sleeper, kwargs={"seconds": 0.0, "fail": True}, cap=5.0),
        Task("fast", fn=lambda: time.sleep(0.002)),
    ]
    t0 = time.perf_counter()
    timings = measure(tasks, repeats=2, min_time=0.01)
    assert time.perf_counter() - t0 < 20.0  # the 30 s call was stopped
    slow, bad, fast = timings["slow"], timings["bad"], timings["fast"]
    assert slow.capped and slow.estimate == 0.5 and slow.error is None
    assert bad.error and "sleeper asked to fail" in bad.error
    assert len(fast.times) == 2 and fast.median >= 0.002
    rows = [Comparison("X", "slow", "fast", "slow", size=1, must=10.0).row(timings),
            Comparison("Y", "bad", "fast", "bad", size=1, must=1.0).row(timings)]
    assert rows[0]["ratio_is_lower_bound"] and rows[0]["ratio"] > 0
    assert rows[1]["ratio"] is None and rows[1]["verdict"] == "n/a"
    md = rows_markdown(rows)
    assert "≥" in md and "sleeper asked to fail" in md


def test_harness_refuses_uncappable_tasks():
    with pytest.raises(ValueError, match="factory"):
        Task("x", fn=lambda: None, cap=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        Task("x")
    with pytest.raises(ValueError, match="unique"):
        measure([Task("a", fn=lambda: None), Task("a", fn=lambda: None)])
