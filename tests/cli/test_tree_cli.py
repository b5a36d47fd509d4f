"""`parasample tree` and the trees benchmark smoke run."""

import json

import networkx as nx
import numpy as np
import pytest

from parasample.cli.main import main


def _is_spanning_tree(edges, nodes):
    T = nx.Graph()
    T.add_nodes_from(nodes)
    T.add_edges_from(edges)
    return nx.is_tree(T) and T.number_of_nodes() == len(nodes)


def test_tree_from_generator_json(capsys):
    assert main(["tree", "--graph", "grid:6x7", "--json", "--count", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 42 and out["method"] == "wilson" and out["median_walk_steps"] > 0
    assert _is_spanning_tree([tuple(e) for e in out["trees"][0]], range(42))
    G = nx.grid_2d_graph(6, 7)
    assert out["log_tree_count"] == pytest.approx(np.log(float(nx.number_of_spanning_trees(G))))
    assert main(["tree", "--graph", "grid:6x7", "--json", "--seed", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["trees"] == out["trees"]


def test_tree_from_weighted_edge_file_with_labels(tmp_path, capsys):
    f = tmp_path / "g.txt"
    f.write_text("# a weighted square with a diagonal\na b 1.0\nb c 2\nc d 0.5\nd a 1\na c 3\n")
    out_file = tmp_path / "t.txt"
    assert main(["tree", "--edges", str(f), "--weighted", "--output", str(out_file),
                 "--samples", "3", "--exact", "--no-progress"]) == 0
    blocks = [b for b in out_file.read_text().strip().split("\n")]
    edges = [tuple(line.split()) for line in blocks]
    assert len(edges) == 9  # 3 trees × 3 edges, labels preserved
    for i in range(3):
        assert _is_spanning_tree(edges[3 * i:3 * i + 3], "abcd")


def test_many_samples_use_the_sparsified_sampler(capsys):
    assert main(["tree", "--graph", "complete:40", "--random-weights", "--samples", "5",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "sparsified" and len(out["trees"]) == 5
    for t in out["trees"]:
        assert _is_spanning_tree([tuple(e) for e in t], range(40))


def test_tree_plot(tmp_path):
    png = tmp_path / "maze.png"
    assert main(["tree", "--graph", "grid:12x12", "--plot", str(png), "--output",
                 str(tmp_path / "t.txt")]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, message", [
    (["tree", "--graph", "blob:3"], "unknown graph"),
    (["tree", "--edges", "nope.txt"], "no such file"),
    (["tree", "--graph", "random:10:5"], "M >= N"),
    (["tree", "--samples", "0"], "at least 1"),
])
def test_tree_errors(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_disconnected_edge_file_is_refused(tmp_path, capsys):
    f = tmp_path / "g.txt"
    f.write_text("0 1\n2 3\n")
    assert main(["tree", "--edges", str(f)]) == 2
    assert "disconnected (2 connected components)" in capsys.readouterr().err


def test_bench_trees_quick_runs_with_baselines():
    from parasample.bench.trees import run

    report = run(quick=True)
    ids = {r["id"] for r in report["rows"]}
    assert ids == {"T1", "T2"}
    for r in report["rows"]:
        assert r["ratio"] is not None and np.isfinite(r["ratio"]) and r["ratio"] > 0, r
    for name in ("scale", "batch", "sparsified_trees", "sparsified_kdpp"):
        assert report["tables"][name] and len(report["tables"][name][0]) > 1, report["tables"][name]
