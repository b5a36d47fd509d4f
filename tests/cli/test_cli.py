"""The `parasample` command: sub-commands, options, errors, and README/CI consistency."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from parasample.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S).group(1)
    return [line.strip() for line in block.splitlines()
            if line.strip() and not line.startswith("#")]


def test_readme_opens_with_the_two_setup_commands_and_ci_runs_the_second():
    main_job, tests = _readme_commands()[:2]
    assert main_job.endswith("parasample tour")
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in [line.strip() for line in ci], "CI must run the README test command verbatim"


def test_help_and_unknown_command(capsys):
    assert main([]) == 2
    assert main(["nonsense"]) == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0


def test_dpp_command_json_and_output_file(tmp_path, capsys):
    out = tmp_path / "samples.txt"
    assert main(["dpp", "--example", "points:60", "--samples", "3", "--seed", "4",
                 "--json", "--output", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n"] == 60 and len(payload["samples"]) == 3
    lines = out.read_text().splitlines()
    assert [list(map(int, line.split())) for line in lines] == payload["samples"]
    for s in payload["samples"]:
        assert s == sorted(set(s)) and all(0 <= i < 60 for i in s)
    # same seed, same samples
    assert main(["dpp", "--example", "points:60", "--samples", "3", "--seed", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == payload["samples"]


@pytest.mark.parametrize("method, extra", [
    ("k", ["--k", "4"]), ("sequential", []), ("mcmc", ["--k", "3", "--steps", "50"]),
    ("map", ["--k", "5"]), ("lowrank", []),
])
def test_dpp_command_methods_on_a_kernel_file(tmp_path, capsys, method, extra):
    rng = np.random.default_rng(0)
    B = rng.normal(size=(20, 6))
    np.save(tmp_path / "B.npy", B)
    assert main(["dpp", "--features", str(tmp_path / "B.npy"), "--method", method, "--json",
                 *extra]) == 0
    sample = json.loads(capsys.readouterr().out)["samples"][0]
    if method in ("k", "map") or method == "mcmc":
        assert len(sample) == int(extra[1])
    assert sample == sorted(set(sample))


def test_dpp_command_partition(tmp_path, capsys):
    rng = np.random.default_rng(1)
    A = rng.normal(size=(8, 8))
    np.save(tmp_path / "L.npy", A @ A.T)
    np.savetxt(tmp_path / "parts.txt", [0, 0, 0, 0, 1, 1, 1, 1], fmt="%d")
    assert main(["dpp", "--kernel", str(tmp_path / "L.npy"), "--method", "partition",
                 "--parts", str(tmp_path / "parts.txt"), "--counts", "2", "1", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["samples"][0]
    assert sum(i < 4 for i in s) == 2 and sum(i >= 4 for i in s) == 1


def test_dpp_command_plot(tmp_path):
    png = tmp_path / "dpp.png"
    assert main(["dpp", "--example", "points:80", "--plot", str(png), "--no-progress"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["dpp", "--method", "k"], "needs --k"),
    (["dpp", "--kernel", "missing.npy"], "no such file"),
    (["dpp", "--example", "blobs:3"], "unknown example"),
    (["dpp", "--samples", "0"], "at least 1"),
])
def test_dpp_command_errors_are_clear(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_dpp_command_rejects_bad_kernel(tmp_path, capsys):
    np.save(tmp_path / "L.npy", np.diag([1.0, -2.0]))
    assert main(["dpp", "--kernel", str(tmp_path / "L.npy")]) == 2
    assert "not positive semidefinite" in capsys.readouterr().err


def test_tour_prints_one_table_and_all_checks_pass(capsys):
    assert main(["tour", "--seed", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["domain"] for r in rows} == {"dpp", "trees", "autoregressive", "diffusion"}
    assert len(rows) >= 16
    checks = [r["exactness check"] for r in rows]
    assert not any(c.startswith("FAIL") for c in checks), rows
    assert sum(c.startswith("pass: chi²") for c in checks) >= 9, rows
    assert sum(c.startswith("pass") for c in checks) >= 15, rows
