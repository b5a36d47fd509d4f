"""Shared plumbing: randomness, cost accounting, results, errors, progress."""

from .cost import Cost, CountingOracle, batch_size
from .errors import MissingExtraError, NumericalError, ParasampleError, require
from .progress import ProgressBar, progress_reporter, track
from .result import SampleResult
from .rng import RngLike, as_generator, spawn
from .validate import as_count, read_only

__all__ = [
    "Cost", "CountingOracle", "batch_size", "MissingExtraError", "NumericalError",
    "ParasampleError", "require", "ProgressBar", "progress_reporter", "track",
    "SampleResult", "RngLike", "as_generator", "spawn", "as_count", "read_only",
]
