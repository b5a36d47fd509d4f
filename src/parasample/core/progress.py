"""Progress reporting for long work.

Long-running functions accept ``progress``: ``None`` (silent), ``True`` (a text bar on
stderr, shown only when stderr is a terminal unless forced) or a callable
``callback(done, total, label)``. :func:`progress_reporter` normalises that to one callable.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO, Union

__all__ = ["ProgressCallback", "ProgressBar", "progress_reporter", "track"]

ProgressCallback = Callable[[int, int, str], None]
ProgressLike = Union[None, bool, ProgressCallback]


class ProgressBar:
    """A dependency-free text progress bar: ``label [#####.....] 5/10 1.2s``."""

    def __init__(self, stream: Optional[TextIO] = None, width: int = 30, force: bool = False):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = force or bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = time.perf_counter()
        self._last_label = ""

    def __call__(self, done: int, total: int, label: str = "") -> None:
        if not self.enabled:
            return
        if label != self._last_label:
            self._start = time.perf_counter()
            self._last_label = label
        frac = 0.0 if total <= 0 else min(1.0, done / total)
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self._start
        end = "\n" if done >= total else ""
        self.stream.write(f"\r{label:<28.28} [{bar}] {done}/{total} {elapsed:6.1f}s{end}")
        self.stream.flush()


def _silent(done: int, total: int, label: str = "") -> None:
    return None


def progress_reporter(progress: ProgressLike) -> ProgressCallback:
    """Turn a ``progress`` argument into a callback."""
    if progress is None or progress is False:
        return _silent
    if progress is True:
        return ProgressBar()
    if callable(progress):
        return progress
    raise TypeError("progress must be None, a bool or a callable(done, total, label)")


def track(items, progress: ProgressLike, label: str = "", total: Optional[int] = None):
    """Iterate over ``items`` reporting progress after each item."""
    report = progress_reporter(progress)
    total = len(items) if total is None else total
    report(0, total, label)
    for i, item in enumerate(items, 1):
        yield item
        report(i, total, label)
