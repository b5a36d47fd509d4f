"""`parasample diffusion`: Picard / ASD on the ring GMM, accounting, PNG, errors; the
diffusion benchmark in quick form."""

import json

import pytest

pytest.importorskip("torch")

from parasample.cli.main import main  # noqa: E402


def _json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_picard_reports_rounds_and_same_noise_gap(capsys):
    out = _json(capsys, ["diffusion", "--method", "picard", "--steps", "200", "--window",
                         "50", "--tol", "0.01", "--samples", "4"])
    assert out["sequential_rounds"] == 200
    assert out["rounds"] < 200 / 2
    assert out["nfe_per_sample"] <= 50 * out["rounds"]
    assert out["max_abs_vs_sequential_same_noise"] < 0.05


def test_picard_tol0_is_sequential(capsys):
    out = _json(capsys, ["diffusion", "--method", "picard", "--steps", "30", "--window",
                         "8", "--tol", "0", "--samples", "2", "--sampler", "ddim"])
    assert out["rounds"] == 30
    assert out["max_abs_vs_sequential_same_noise"] <= 1e-10


def test_asd_energy_test_and_png(capsys, tmp_path):
    png = tmp_path / "ring.png"
    out = _json(capsys, ["diffusion", "--method", "asd", "--steps", "100", "--k", "8",
                         "--samples", "200", "--png", str(png)])
    assert out["rounds"] < 100 / 2
    assert 0.5 < out["acceptance"] <= 1.0
    assert out["permutation_p"] > 1e-3
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["diffusion", "--steps", "1"], "at least 2"),
    (["diffusion", "--method", "asd", "--sampler", "ddim"], "--sampler ddpm"),
])
def test_diffusion_errors(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bench_diffusion_quick_structure():
    from parasample.bench.diffusion import method_grid, run

    grid = method_grid(100, quick=True)
    assert grid[0][0] == "sequential" and {n for n, _ in grid} == {"sequential", "picard", "asd"}
    report = run(sizes=(20,), repeats=1, quick=True)
    lat = [r for r in report["rows"] if r["section"] == "latency"]
    seq = [r for r in lat if r["method"] == "sequential"]
    assert all(r["rounds_mean"] == 20 for r in seq)
    assert all(r["rounds_mean"] <= 21 for r in lat)
    assert "Rounds and NFE" in report["markdown"]
