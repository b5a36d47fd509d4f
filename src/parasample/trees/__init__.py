"""Random spanning trees (spec: shared/specs/trees.md)."""

# --- laplacian ---
from .laplacian import (
    approx_effective_resistances,
    count_spanning_trees,
    edge_marginals,
    effective_resistances,
    transfer_current_matrix,
)

__all__ = globals().get("__all__", []) + [
    "approx_effective_resistances",
    "count_spanning_trees",
    "edge_marginals",
    "effective_resistances",
    "transfer_current_matrix",
]
# --- end laplacian ---

# --- wilson ---
from .aldous_broder import aldous_broder_tree
from .wilson import (
    random_spanning_tree,
    random_spanning_tree_edges,
    random_spanning_trees,
    wilson_tree,
    wilson_trees,
)

__all__ = globals().get("__all__", []) + [
    "aldous_broder_tree",
    "random_spanning_tree",
    "random_spanning_tree_edges",
    "random_spanning_trees",
    "wilson_tree",
    "wilson_trees",
]
# --- end wilson ---

# --- sparsified ---
from .sparsified import SparsifiedTreeSampler

__all__ = globals().get("__all__", []) + ["SparsifiedTreeSampler"]
# --- end sparsified ---
