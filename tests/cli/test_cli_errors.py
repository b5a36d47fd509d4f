"""Errors of the `parasample` command (issue 9, items 8 and 13): every output path checked
before any work, one-line messages for bad input / missing extras / parse errors (with a
--debug switch for the traceback), vertex labels in tree errors, example sizes checked
before allocation, and a working default for nonsymmetric kernels."""

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from parasample.cli import ar_cmd, bench, diffusion_cmd, dpp_cmd, tree_cmd
from parasample.cli.main import build_parser, main
from parasample.core import MissingExtraError, NumericalError, ParasampleError
from parasample.core.stats import chisquare_counts


def run_cli(argv, capsys):
    """(exit code, stderr) of an in-process run; argparse exits count as returns."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def assert_one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and not lines[0].startswith("usage:"), err
    return lines[0]


# ------------------------------------------------------------------- 13 (a) outputs
OUTPUTS = [  # (module whose run must not start, argv before the output path)
    (dpp_cmd, ["dpp", "--example", "points:30", "--output"]),
    (dpp_cmd, ["dpp", "--example", "points:30", "--plot"]),
    (tree_cmd, ["tree", "--graph", "grid:4x4", "--output"]),
    (tree_cmd, ["tree", "--graph", "grid:4x4", "--plot"]),
    (ar_cmd, ["ar", "--oracle", "curie-weiss", "--n", "16", "--png"]),
    (diffusion_cmd, ["diffusion", "--steps", "10", "--samples", "2", "--png"]),
    (bench, ["bench", "ar", "--quick", "--plot"]),
    (bench, ["bench", "dpp", "--quick", "--output"]),
]
IMAGE_OPTIONS = {"--plot", "--png"}


def _unwritable(tmp_path: Path) -> Path | None:
    """A file in a directory this process cannot write to, or None if there is none."""
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        return ro / "out.png"
    return Path("/sys/parasample-test.png") if Path("/sys").is_dir() else None


def _bad_paths(tmp_path: Path, image: bool):
    (tmp_path / "a-file.txt").write_text("x")
    bad = {
        "directory": (tmp_path, "is a directory"),
        "missing directory": (tmp_path / "no" / "such" / "out.png", "does not exist"),
        "parent is a file": (tmp_path / "a-file.txt" / "out.png", "not a directory"),
    }
    if (ro := _unwritable(tmp_path)) is not None:
        bad["unwritable"] = (ro, "cannot write")
    if image:
        bad["no suffix"] = (tmp_path / "picture", "file name ending in")
        bad["unknown suffix"] = (tmp_path / "picture.txt", "file name ending in")
    return bad


@pytest.mark.parametrize("module, argv", OUTPUTS, ids=lambda x: " ".join(x)
                         if isinstance(x, list) else x.__name__.rsplit(".", 1)[-1])
def test_every_output_path_is_checked_before_any_work(module, argv, tmp_path, capsys,
                                                      monkeypatch):
    started = []
    monkeypatch.setattr(module, "run", lambda args: started.append(args) or 0)
    for kind, (path, message) in _bad_paths(tmp_path, argv[-1] in IMAGE_OPTIONS).items():
        rc, err = run_cli(argv + [str(path)], capsys)
        line = assert_one_line(err)
        assert rc == 2 and not started, (kind, err)
        assert message in line and argv[-1] in line, (kind, line)
    # a good path is accepted and left as it was (no empty file is created early)
    good = tmp_path / "fine.png"
    assert main(argv + [str(good)]) == 0 and len(started) == 1 and not good.exists()


def test_every_file_option_is_declared_as_input_or_output():
    """No sub-command option takes a bare Path: each is an input (checked on load) or an
    output (checked at parse time) — so a new output option cannot skip the check."""
    from parasample.cli._common import image_file, input_file, output_file

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    seen = 0
    for name, sub in subs.choices.items():
        for action in sub._actions:
            assert action.type is not Path, f"{name} {action.option_strings}: bare Path"
            if action.type in (image_file, output_file):
                seen += 1
                assert action.dest in ("output", "plot", "png"), (name, action.dest)
            if action.dest in ("output", "plot", "png"):
                assert action.type in (image_file, output_file), (name, action.dest)
            if action.dest in ("kernel", "correlation", "features", "parts", "edges"):
                assert action.type is input_file, (name, action.dest)
    assert seen == len(OUTPUTS)


@pytest.mark.parametrize("argv", [
    ["dpp", "--example", "points:30", "--kernel", "{d}/L.npy"],  # mutually exclusive
    ["tree", "--graph", "grid:4x4", "--plot", "{d}/maze.png", "--edges", "{d}/g.txt"],
])
def test_conflicting_options_are_one_line_usage_errors(argv, tmp_path, capsys):
    np.save(tmp_path / "L.npy", np.eye(2))
    (tmp_path / "g.txt").write_text("a b\n")
    rc, err = run_cli([a.format(d=tmp_path) for a in argv], capsys)
    assert rc == 2 and "not allowed with" in assert_one_line(err)


@pytest.mark.parametrize("argv, message", [
    (["dpp", "--kernel", "{L}", "--plot", "{out}/p.png"], "--example points:N"),
    (["tree", "--graph", "complete:5", "--plot", "{out}/p.png"], "grid"),
    (["ar", "--oracle", "markov", "--n", "10", "--png", "{out}/p.png"], "square number"),
    (["ar", "--sweep", "--png", "{out}/p.png"], "--sweep"),
])
def test_output_that_cannot_be_drawn_is_refused_before_sampling(argv, message, tmp_path,
                                                                capsys, monkeypatch):
    np.save(tmp_path / "L.npy", np.eye(3))
    argv = [a.format(L=tmp_path / "L.npy", out=tmp_path) for a in argv]
    for name in ("sample_exact",):
        monkeypatch.setattr(f"parasample.dpp.{name}", _forbidden)
    monkeypatch.setattr("parasample.trees.wilson.wilson_tree", _forbidden)
    monkeypatch.setattr("parasample.autoregressive.sample_parallel", _forbidden)
    rc, err = run_cli(argv, capsys)
    assert rc == 2 and message in assert_one_line(err)
    assert not (tmp_path / "p.png").exists()


def _forbidden(*args, **kwargs):
    raise AssertionError("sampling started before the options were checked")


# ------------------------------------------------------------------- 13 (b) one line
@pytest.mark.parametrize("exc, code, words", [
    (ValueError("k = 7 exceeds the rank 3\nuse a smaller k"), 2, "exceeds the rank 3 use"),
    (TypeError("expected a DPP"), 2, "expected a DPP"),
    (ParasampleError("bad state"), 1, "bad state"),
    (NumericalError("pivot vanished; rescale L"), 1, "rescale L"),
    (MissingExtraError('install it with: pip install "parasample[plot]"'), 1,
     "parasample[plot]"),
    (ImportError("No module named 'torch'", name="torch"), 1, 'pip install "parasample[torch]"'),
    (ImportError("No module named 'diffusers'", name="diffusers"), 1, "parasample[hf]"),
    (FileNotFoundError(2, "No such file or directory", "L.npy"), 2, "No such file"),
    (IsADirectoryError(21, "Is a directory", "out"), 2, "Is a directory: out"),
    (PermissionError(13, "Permission denied", "/x"), 2, "Permission denied: /x"),
    (OSError(28, "No space left on device", "out.txt"), 1, "No space left on device"),
    (MemoryError(), 1, "out of memory"),
])
def test_errors_of_every_sub_command_are_one_line(exc, code, words, capsys, monkeypatch):
    def boom(args):
        raise exc

    for module, argv in [(dpp_cmd, ["dpp"]), (tree_cmd, ["tree"]), (ar_cmd, ["ar"]),
                         (diffusion_cmd, ["diffusion"]), (bench, ["bench", "trees"])]:
        monkeypatch.setattr(module, "run", boom)
        rc, err = run_cli(argv, capsys)
        line = assert_one_line(err)
        assert rc == code and line.startswith("parasample: error: ") and words in line, line


def test_debug_switch_shows_the_traceback(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "vector.npy", np.ones(3))
    argv = ["dpp", "--kernel", str(tmp_path / "vector.npy")]
    rc, err = run_cli(argv, capsys)
    assert rc == 2 and "shape (3,)" in assert_one_line(err)
    for debug_argv in (["--debug"] + argv, argv + ["--debug"]):
        with pytest.raises(ValueError):
            main(debug_argv)
    monkeypatch.setenv("PARASAMPLE_DEBUG", "1")
    with pytest.raises(ValueError):
        main(argv)
    monkeypatch.delenv("PARASAMPLE_DEBUG")

    def trouble(args):
        raise NumericalError("pivot vanished")

    monkeypatch.setattr(dpp_cmd, "run", trouble)  # a failed run points to --debug
    rc, err = run_cli(["dpp"], capsys)
    assert rc == 1 and "--debug" in assert_one_line(err)


def test_library_warnings_are_one_line(capsys, monkeypatch):
    import warnings

    def noisy(args):
        warnings.warn("edge weights span 1e16:\nthe lightest edges cannot be drawn",
                      RuntimeWarning, stacklevel=2)
        return 0

    monkeypatch.setattr(tree_cmd, "run", noisy)
    rc, err = run_cli(["tree"], capsys)
    assert rc == 0
    assert assert_one_line(err) == ("parasample: warning: edge weights span 1e16: the lightest "
                                    "edges cannot be drawn")


def test_unexpected_exceptions_keep_their_traceback(monkeypatch):
    """A bug (not bad input) is not hidden behind a one-line message."""
    def bug(args):
        raise KeyError("internal")

    monkeypatch.setattr(dpp_cmd, "run", bug)
    with pytest.raises(KeyError):
        main(["dpp"])


def test_missing_matplotlib_is_reported_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    started = []
    for module, argv in OUTPUTS:
        if argv[-1] not in IMAGE_OPTIONS:
            continue
        monkeypatch.setattr(module, "run", lambda args: started.append(args) or 0)
        rc, err = run_cli(argv + [str(tmp_path / "x.png")], capsys)
        line = assert_one_line(err)
        assert rc == 2 and not started, line
        assert 'pip install "parasample[plot]"' in line, line


def test_missing_torch_is_one_line(capsys, monkeypatch):
    from parasample.core import errors

    real = errors.require

    def require(module, extra):  # as if torch were not installed
        if module.split(".")[0] == "torch":
            raise MissingExtraError(f"{module!r} is needed here; install it with: pip install "
                                    f'"parasample[{extra}]"')
        return real(module, extra)

    def load_digits_model(*args, **kwargs):
        raise ImportError("No module named 'torch'", name="torch")

    monkeypatch.setattr(errors, "require", require)
    monkeypatch.setattr("parasample.autoregressive.load_digits_model", load_digits_model)
    for argv in (["diffusion", "--steps", "10", "--samples", "2"],
                 ["ar", "--oracle", "digits"]):
        rc, err = run_cli(argv, capsys)
        line = assert_one_line(err)
        assert rc == 1 and 'pip install "parasample[torch]"' in line, line


def _bad_matrix_files(d: Path) -> dict:
    np.save(d / "vector.npy", np.ones(3))
    np.save(d / "rect.npy", np.ones((3, 4)))
    np.save(d / "cube.npy", np.ones((2, 2, 2)))
    np.save(d / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(d / "objects.npy", np.array([[None, 1], [2, 3]], dtype=object), allow_pickle=True)
    np.savez(d / "archive.npz", L=np.eye(2))
    (d / "archive.npz").rename(d / "archive.npy")
    (d / "garbage.npy").write_bytes(b"\x00\x01 not numpy \xff" * 10)
    (d / "truncated.npy").write_bytes((d / "rect.npy").read_bytes()[:90])
    (d / "words.txt").write_text("root:x:0:0\n")
    (d / "ragged.csv").write_text("1,2\n3\n")
    (d / "binary.txt").write_bytes(b"\xff\xfe\x00\x81" * 20)
    (d / "empty.txt").write_text("")
    (d / "folder.npy").mkdir()
    return {
        "vector.npy": "shape (3,)", "rect.npy": "square", "cube.npy": "shape (2, 2, 2)",
        "strings.npy": "numbers", "objects.npy": "", "archive.npy": "np.save",
        "garbage.npy": "", "truncated.npy": "", "words.txt": "", "ragged.csv": "",
        "binary.txt": "", "empty.txt": "", "folder.npy": "directory", "missing.npy":
        "no such file",
    }


@pytest.mark.parametrize("option", ["--kernel", "--correlation"])
def test_bad_matrix_files_are_one_line(option, tmp_path, capsys):
    for name, words in _bad_matrix_files(tmp_path).items():
        rc, err = run_cli(["dpp", option, str(tmp_path / name)], capsys)
        line = assert_one_line(err)
        assert rc == 2 and name in line and option in line and words in line, line


def test_bad_features_and_partition_files_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("parasample.dpp.DPP.from_likelihood", _forbidden)  # checked first
    np.save(tmp_path / "B.npy", np.random.default_rng(0).normal(size=(6, 3)))
    np.save(tmp_path / "L.npy", np.eye(6))
    np.save(tmp_path / "vector.npy", np.ones(3))
    cases = {  # argv -> words
        ("--features", "vector.npy"): "2-D",
        ("--kernel", "L.npy", "--method", "partition", "--parts", "half.txt", "--counts",
         "1", "1"): "integer",
        ("--kernel", "L.npy", "--method", "partition", "--parts", "short.txt", "--counts",
         "1", "1"): "6",
        ("--kernel", "L.npy", "--method", "partition", "--parts", "nope.txt", "--counts",
         "1", "1"): "no such file",
    }
    np.savetxt(tmp_path / "half.txt", [0, 0, 0.5, 1, 1, 1])
    np.savetxt(tmp_path / "short.txt", [0, 0, 1, 1], fmt="%d")
    for args, words in cases.items():
        argv = ["dpp"] + [str(tmp_path / a) if "." in a else a for a in args]
        rc, err = run_cli(argv, capsys)
        assert rc == 2 and words in assert_one_line(err), (args, err)


@pytest.mark.parametrize("content, words", [
    (b"\xff\xfe\x00\x81" * 20, "text"),
    (b"", "no edges"),
    (b"a\n", "expected 'u v'"),
])
def test_bad_edge_files_are_one_line(content, words, tmp_path, capsys):
    f = tmp_path / "g.txt"
    f.write_bytes(content)
    rc, err = run_cli(["tree", "--edges", str(f)], capsys)
    line = assert_one_line(err)
    assert rc == 2 and words in line and str(f) in line, line
    rc, err = run_cli(["tree", "--edges", str(tmp_path)], capsys)
    assert rc == 2 and "directory" in assert_one_line(err)


@pytest.mark.parametrize("argv, words", [
    (["dpp", "--k", "2.5"], "invalid int value"),
    (["dpp", "--method", "spectral"], "invalid choice"),
    (["dpp", "--example", "points:abc"], "points:N"),
    (["dpp", "--example", "points:-5"], "points:N"),
    (["dpp", "--example", "gaussian:10:x"], "gaussian:N:D"),
    (["dpp", "--example", "points:4:5"], "unknown example"),
    (["tree", "--graph", "grid:3"], "grid:AxB"),
    (["tree", "--graph", "grid:0x4"], "grid:AxB"),
    (["tree", "--graph", "complete:two"], "complete:N"),
    (["tree", "--graph", "hypercube:-1"], "hypercube:D"),
    (["tree", "--seed", "x"], "invalid int value"),
    (["ar", "--oracle", "gpt"], "invalid choice"),
    (["bench"], "required"),
    (["--nonsense"], "unrecognized arguments"),
])
def test_parse_errors_are_one_line(argv, words, capsys):
    rc, err = run_cli(argv, capsys)
    line = assert_one_line(err)
    assert rc == 2 and words in line, line


# ------------------------------------------------------------------- 13 (c) labels
@pytest.mark.parametrize("text, weighted, words", [
    ("alpha beta\nbeta beta\nbeta gamma\n", False, ["'beta'", ":2:", "self-loop"]),
    ("7 9\n9 9\n9 4\n", False, ["'9'", ":2:", "self-loop"]),
    ("a b 1\nb c -2\n", True, ["'b'", "'c'", ":2:", "-2"]),
    ("x y 1\ny z nan\n", True, ["'y'", "'z'", ":2:", "nan"]),
    ("x y 1\ny z inf\n", True, ["'y'", "'z'", ":2:", "inf"]),
    ("x y 0\ny z 1\n", True, ["'x'", "'y'", ":1:", "> 0"]),
    ("10 20\n20 30\n40 50\n", False, ["disconnected (2 connected components)", "'10'", "'40'"]),
    ("p q\nr s\nt u\nq p\n", False, ["disconnected (3 connected components)", "'p'", "'r'"]),
])
def test_tree_errors_name_the_users_vertex_labels(text, weighted, words, tmp_path, capsys,
                                                  monkeypatch):
    monkeypatch.setattr("parasample.trees.wilson.wilson_tree", _forbidden)
    f = tmp_path / "g.txt"
    f.write_text(text)
    rc, err = run_cli(["tree", "--edges", str(f)] + (["--weighted"] if weighted else []),
                      capsys)
    line = assert_one_line(err)
    assert rc == 2, line
    for w in words:
        assert w in line, (w, line)


# ------------------------------------------------------------------- 13 (d) sizes
@pytest.mark.parametrize("argv, words", [
    (["dpp", "--example", "points:20000"], ["maximum", "5000", "N×N", "3.2 GB"]),
    (["dpp", "--example", "points:1000000000"], ["maximum", "5000", "N×N"]),
    (["dpp", "--example", "gaussian:100000000:1000"], ["maximum", "N·D"]),
    (["dpp", "--example", "gaussian:6000:6000"], ["maximum", "min(N, D)"]),
    (["tree", "--graph", "grid:100000x100000"], ["maximum", "edges"]),
    (["tree", "--graph", "complete:100000"], ["maximum", "edges"]),
    (["tree", "--graph", "random:100:10000000000"], ["maximum", "edges"]),
    (["tree", "--graph", "hypercube:40"], ["maximum", "edges"]),
    (["tree", "--graph", "wheel:100000000"], ["maximum", "edges"]),
])
def test_example_sizes_are_checked_before_allocation(argv, words, capsys, monkeypatch):
    # every builder of an example fails the test instead of allocating (also on old code)
    for name in ("grid_edges", "random_connected_graph", "complete_graph_edges"):
        monkeypatch.setattr(f"parasample.bench.trees.{name}", _forbidden)
    for name in ("complete_graph", "wheel_graph", "hypercube_graph"):
        monkeypatch.setattr(f"networkx.{name}", _forbidden)
    monkeypatch.setattr(dpp_cmd, "example_points", _forbidden)
    real = dpp_cmd.as_generator
    monkeypatch.setattr(dpp_cmd, "as_generator", lambda seed: _NoDraws(real(seed)))
    t = time.perf_counter()
    rc, err = run_cli(argv, capsys)
    assert time.perf_counter() - t < 5
    line = assert_one_line(err)
    assert rc == 2, line
    for w in words:
        assert w in line, (w, line)


class _NoDraws:
    """A Generator whose array draws fail the test (an example would be allocated)."""

    def __init__(self, gen):
        self._gen = gen

    def __getattr__(self, name):
        return _forbidden if name in ("normal", "random") else getattr(self._gen, name)


def test_largest_allowed_examples_are_accepted(monkeypatch):
    """The caps sit where stated: N = 5000 points is built, 5001 is refused."""
    built = []
    monkeypatch.setattr(dpp_cmd, "example_points",
                        lambda n, rng: built.append(n) or (np.zeros((1, 2)), np.eye(1)))
    assert main(["dpp", "--example", "points:5000", "--no-progress"]) == 0
    assert built == [5000]
    assert main(["dpp", "--example", "points:5001"]) == 2 and built == [5000]


# ------------------------------------------------------------------- 8 nonsymmetric
def _ndpp_kernel(n=3):
    """A nonsymmetric L with L + Lᵀ ⪰ 0 and a large skew part (so a symmetrised kernel
    would give a visibly different law)."""
    rng = np.random.default_rng(5)
    A = rng.normal(size=(n, n))
    C = rng.normal(size=(n, n))
    return A @ A.T / n + 0.2 * np.eye(n) + 1.5 * (C - C.T)


def _ndpp_law(L, k=None):
    n = L.shape[0]
    sizes = range(n + 1) if k is None else [k]
    sets = [S for m in sizes for S in itertools.combinations(range(n), m)]
    w = np.array([np.linalg.det(L[np.ix_(S, S)]) if S else 1.0 for S in sets])
    return sets, w / w.sum()


def test_nonsymmetric_kernel_gets_a_working_default_with_the_right_law(tmp_path, capsys):
    L = _ndpp_kernel()
    np.save(tmp_path / "L.npy", L)
    M = 1000
    assert main(["dpp", "--kernel", str(tmp_path / "L.npy"), "--nonsymmetric", "--samples",
                 str(M), "--seed", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "sequential"
    sets, probs = _ndpp_law(L)
    index = {S: i for i, S in enumerate(sets)}
    counts = np.zeros(len(sets))
    for s in out["samples"]:
        counts[index[tuple(s)]] += 1
    assert chisquare_counts(counts, probs)[1] > 1e-4
    # the test has power: the law of the symmetric part is rejected on the same counts
    S = (L + L.T) / 2
    assert chisquare_counts(counts, _ndpp_law(S)[1])[1] < 1e-6


def test_nonsymmetric_k_has_the_k_ndpp_law(tmp_path, capsys):
    L = _ndpp_kernel(4)
    np.save(tmp_path / "L.npy", L)
    M = 600
    assert main(["dpp", "--kernel", str(tmp_path / "L.npy"), "--nonsymmetric", "--method",
                 "k", "--k", "2", "--samples", str(M), "--seed", "3", "--json"]) == 0
    samples = json.loads(capsys.readouterr().out)["samples"]
    sets, probs = _ndpp_law(L, 2)
    index = {S: i for i, S in enumerate(sets)}
    counts = np.zeros(len(sets))
    for s in samples:
        counts[index[tuple(s)]] += 1
    assert chisquare_counts(counts, probs)[1] > 1e-4
    assert chisquare_counts(counts, _ndpp_law((L + L.T) / 2, 2)[1])[1] < 1e-6  # power


def test_nonsymmetric_partition_runs(tmp_path, capsys):
    np.save(tmp_path / "L.npy", _ndpp_kernel(4))
    np.savetxt(tmp_path / "parts.txt", [0, 0, 1, 1], fmt="%d")
    assert main(["dpp", "--kernel", str(tmp_path / "L.npy"), "--nonsymmetric", "--method",
                 "partition", "--parts", str(tmp_path / "parts.txt"), "--counts", "1", "1",
                 "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["samples"][0]
    assert sum(i < 2 for i in s) == 1 and sum(i >= 2 for i in s) == 1


@pytest.mark.parametrize("method", ["exact", "lowrank", "mcmc", "map"])
def test_symmetric_only_method_with_nonsymmetric_is_one_line(method, tmp_path, capsys,
                                                             monkeypatch):
    monkeypatch.setattr("parasample.dpp.NonsymmetricDPP.from_likelihood", _forbidden)
    np.save(tmp_path / "L.npy", _ndpp_kernel())
    rc, err = run_cli(["dpp", "--kernel", str(tmp_path / "L.npy"), "--nonsymmetric",
                       "--method", method, "--k", "2"], capsys)
    line = assert_one_line(err)
    assert rc == 2 and f"--method {method}" in line and "sequential" in line, line


@pytest.mark.parametrize("source", [["--example", "points:10"], ["--features", "B.npy"],
                                    ["--correlation", "K.npy"], []])
def test_nonsymmetric_needs_a_kernel_file(source, tmp_path, capsys):
    np.save(tmp_path / "B.npy", np.ones((4, 2)))
    np.save(tmp_path / "K.npy", np.eye(4) / 2)
    argv = ["dpp", *[str(tmp_path / a) if a.endswith(".npy") else a for a in source],
            "--nonsymmetric"]
    rc, err = run_cli(argv, capsys)
    assert rc == 2 and "--kernel" in assert_one_line(err)
