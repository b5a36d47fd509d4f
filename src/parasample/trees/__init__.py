"""Random spanning trees.

- :func:`random_spanning_tree` — exact weighted uniform spanning tree (Wilson, numba);
  ``max_steps=`` caps a walk (:class:`WalkBudgetError`);
- :func:`count_spanning_trees`, :func:`effective_resistances`,
  :func:`approx_effective_resistances`, :func:`edge_marginals` — Kirchhoff quantities;
- :class:`SparsifiedTreeSampler` — repeated sampling by domain sparsification (TV ≤ ε);
- :func:`spanning_tree_law` — the exact law of a small graph by enumeration.
"""

from .aldous_broder import aldous_broder_tree
from .enumerate import spanning_tree_law
from .laplacian import (
    approx_effective_resistances,
    count_spanning_trees,
    edge_marginals,
    effective_resistances,
    transfer_current_matrix,
)
from .sparsified import SparsifiedTreeSampler
from .wilson import (
    random_spanning_tree,
    random_spanning_tree_edges,
    random_spanning_trees,
    WalkBudgetError,
    wilson_tree,
    wilson_trees,
)

__all__ = [
    "random_spanning_tree", "random_spanning_trees", "random_spanning_tree_edges",
    "wilson_tree", "wilson_trees", "aldous_broder_tree",
    "count_spanning_trees", "effective_resistances", "approx_effective_resistances",
    "edge_marginals", "transfer_current_matrix",
    "SparsifiedTreeSampler", "spanning_tree_law", "WalkBudgetError",
]
