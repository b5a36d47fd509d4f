"""Runnable docs: every ```python block of README.md and docs/*.md runs as written.

One test per block, id ``<file>:<index>`` (0-based, in file order). Each block runs with
``exec`` in a fresh namespace (no block builds on an earlier one), in a temporary working
directory (files a block writes land there), with matplotlib on the Agg backend. Blocks
that are not meant to run (shell sessions, pseudo-code, command lines) are fenced as
```bash, ```console, ```text or plain ```, never ```python.
"""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def _blocks():
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT).as_posix()
        for i, m in enumerate(FENCE.finditer(text)):
            first_line = text.count("\n", 0, m.start(1))  # 0-based line of the block's code
            yield pytest.param(rel, first_line, m.group(1), id=f"{rel}:{i}")


BLOCKS = list(_blocks())


def test_docs_have_python_blocks():
    files = {p.values[0] for p in BLOCKS}
    assert "README.md" in files and len(files) >= 2, files


def test_no_unclosed_or_indented_python_fences():
    # a ```python fence that the pattern above does not pair would silently skip its block
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        opened = len(re.findall(r"^[ \t]*```python\b", text, re.MULTILINE))
        assert opened == len(FENCE.findall(text)), path.name


@pytest.fixture
def docs_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    try:
        import matplotlib
    except ImportError:
        matplotlib = None
    else:
        matplotlib.use("Agg")
    # Small examples on a small shared CPU: one BLAS and one torch thread (spinning threads
    # that fight over cores made the NDPP example of docs/dpp.md 20-30x slower).
    try:
        import torch
    except ImportError:
        torch = None
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = None
    else:
        limits = threadpool_limits(limits=1, user_api="blas")
    yield tmp_path
    if limits is not None:
        limits.restore_original_limits()
    if torch is not None:
        torch.set_num_threads(threads)
    if matplotlib is not None:
        import matplotlib.pyplot as plt
        plt.close("all")


@pytest.mark.parametrize("rel, first_line, code", BLOCKS)
@pytest.mark.filterwarnings("ignore:Wilson's walk is slow:RuntimeWarning")  # docs/trees.md shows it
def test_docs_python_block_runs(rel, first_line, code, docs_env):
    # pad with blank lines so that a traceback names the line of the .md file
    source = "\n" * first_line + code
    namespace = {"__name__": "__docs__", "__file__": os.fspath(ROOT / rel)}
    exec(compile(source, os.fspath(ROOT / rel), "exec"), namespace)  # noqa: S102
