"""parasample: fast, parallel, exact sampling.

Domains live in sub-packages (``parasample.dpp``, ...); shared plumbing lives in
``parasample.core``.
"""

__version__ = "0.1.0"
