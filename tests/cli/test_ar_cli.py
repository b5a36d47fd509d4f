"""`parasample ar`: exact oracles, parallel == sequential, rounds sweep, errors."""

import json

import pytest

from parasample.cli.main import main


@pytest.mark.parametrize("oracle", ["curie-weiss", "markov"])
def test_ar_json_reports_rounds_and_identity(capsys, oracle):
    assert main(["ar", "--oracle", oracle, "--n", "200", "--samples", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["identical_to_sequential"] is True
    assert out["sequential_rounds"] == 200
    assert out["parallel_rounds"] < 200 / 2
    assert len(out["samples"]) == 2 and all(len(s) == 200 for s in out["samples"])


def test_ar_sweep_slope(capsys):
    assert main(["ar", "--sweep", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(r["identical"] for r in out["rows"])
    assert 0.55 < out["loglog_slope"] < 0.8
    assert out["rows"][-1]["parallel rounds"] < out["rows"][-1]["n"] / 6


@pytest.mark.parametrize("argv, message", [
    (["ar", "--n", "0"], "at least 1"),
    (["ar", "--window", "0"], "at least 1"),
    (["ar", "--oracle", "markov", "--n", "10", "--png", "x.png"], "square number"),
])
def test_ar_errors(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
