"""Benchmarks: the library against named baselines, in one process run.

:mod:`parasample.bench.harness` is the domain-independent part (interleaved timing, ratios,
time caps, tables, environment record); ``parasample.bench.<domain>`` modules define the
comparisons of one domain and expose ``run(...) -> {"meta", "rows", "markdown"}``.
"""

from .harness import (
    Comparison,
    Task,
    Timing,
    compare,
    environment_info,
    markdown_table,
    measure,
    rows_markdown,
)

__all__ = [
    "Comparison", "Task", "Timing", "compare", "environment_info", "markdown_table",
    "measure", "rows_markdown",
]
