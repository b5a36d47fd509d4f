"""Graph inputs for the tree samplers: validation and the cached CSR walk form.

Accepted inputs:

- a networkx ``Graph`` or ``MultiGraph`` (``weight``: an edge-attribute name, or ``None`` for
  unit weights — networkx's convention; a missing attribute counts as 1.0). Nodes map to
  ``0..n-1`` in ``G.nodes`` order. A ``DiGraph`` raises ``TypeError``.
- a scipy sparse adjacency matrix (square, symmetric within 1e-12 relative, zero diagonal;
  stored zeros are ignored; entries are the weights, so ``weight`` must be ``None``).
- an ``(m, 2)`` integer edge array, with ``weight`` an ``(m,)`` array or ``None`` and
  ``n_nodes`` the vertex count (default: largest index + 1). Indices must be 0..n−1: an
  index beyond what m edges can connect (n > m + 1) is rejected before anything of size n
  is allocated, with a hint to relabel.

Parallel edges (multi-edges) are summed in every quantity of the vertex-pair graph — the
Laplacian, tree counts, resistances — and the sampler keeps them as distinct edges, so a
``MultiGraph`` tree says which copy it uses: picking the copy ∝ its weight is exactly the
summed graph's law. Self-loops are rejected with a ValueError (they are never in a tree),
and so are non-positive, NaN or infinite weights, an empty graph and a disconnected graph
(all checked before any walk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..core.validate import as_count

__all__ = ["WeightedGraph", "as_graph", "row_prefix_sums", "user_stacklevel"]


@dataclass(frozen=True, eq=False)
class WeightedGraph:
    """A validated, connected, loop-free undirected weighted multigraph on ``0..n-1``.

    ``edges`` (m, 2) int64 endpoints and ``weights`` (m,) float64 are indexed by edge id.
    ``nodes`` are the original labels (networkx input) and ``keys`` the multigraph keys.
    """

    n: int
    edges: np.ndarray
    weights: np.ndarray
    nodes: Optional[list] = None
    keys: Optional[list] = None
    source: Any = field(default=None, repr=False)  # the networkx graph given, if any

    @property
    def m(self) -> int:
        return int(self.edges.shape[0])

    @cached_property
    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Walk form ``(indptr, nbr, eid, cumw, rowtot)``: slot s of row x leads to
        ``nbr[s]`` through edge ``eid[s]``; ``cumw`` are within-row prefix sums of weights,
        each row summed on its own from 0 (see :func:`row_prefix_sums`). O(m log m), once."""
        u, v = self.edges[:, 0], self.edges[:, 1]
        rows = np.concatenate([u, v])
        nbr = np.concatenate([v, u])
        eid = np.concatenate([np.arange(self.m), np.arange(self.m)]).astype(np.int64)
        w = np.concatenate([self.weights, self.weights])
        order = np.argsort(rows, kind="stable")
        rows, nbr, eid, w = rows[order], nbr[order], eid[order], w[order]
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=self.n), out=indptr[1:])
        cumw = row_prefix_sums(indptr, w)
        rowtot = cumw[indptr[1:] - 1] if self.m else np.zeros(self.n)
        return indptr, nbr.astype(np.int64), eid, cumw, np.ascontiguousarray(rowtot)

    @cached_property
    def weighted_degree(self) -> np.ndarray:
        deg = np.zeros(self.n)
        np.add.at(deg, self.edges[:, 0], self.weights)
        np.add.at(deg, self.edges[:, 1], self.weights)
        return deg

    def laplacian(self) -> sp.csr_matrix:
        """Weighted Laplacian D_w − A_w (parallel edges summed), sparse n×n."""
        u, v, w = self.edges[:, 0], self.edges[:, 1], self.weights
        A = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([u, v]),
                                                   np.concatenate([v, u]))),
                          shape=(self.n, self.n)).tocsr()
        return (sp.diags(self.weighted_degree) - A).tocsr()


def user_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` called from parasample.trees that points at the
    first caller outside parasample.trees (the user's line)."""
    import sys

    frame, level = sys._getframe(1), 1  # the function that will call warnings.warn
    while frame is not None and frame.f_globals.get("__name__", "").startswith(__package__):
        frame, level = frame.f_back, level + 1
    return level


def row_prefix_sums(indptr: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Prefix sums of ``w`` restarted at every row of ``indptr``, summed left to right
    within the row only: ``out[s] = w[lo] + … + w[s]`` for ``lo ≤ s < hi`` of its row.

    A running total over all rows minus the row start would round a light row to the ulp
    of the heavy rows before it; here each row is exact to its own rounding. Rows of equal
    length are done together (one ``cumsum`` per distinct row length): O(len(w) + n log n).
    """
    out = np.empty_like(w, dtype=np.float64)
    deg = np.diff(indptr)
    by_len = np.argsort(deg, kind="stable")
    lens = deg[by_len]
    bounds = np.flatnonzero(np.diff(lens)) + 1
    for group in np.split(by_len, bounds):
        d = int(deg[group[0]]) if group.size else 0
        if d == 0:
            continue
        idx = indptr[group][:, None] + np.arange(d)
        out[idx] = np.cumsum(w[idx], axis=1)
    return out


def as_graph(G, *, weight=None, n_nodes: Optional[int] = None) -> WeightedGraph:
    """Validate any accepted input and return a :class:`WeightedGraph` (see module doc).
    A :class:`WeightedGraph` is already validated and is returned as it is."""
    if isinstance(G, WeightedGraph):
        if weight is not None or n_nodes is not None:
            raise ValueError("a prepared WeightedGraph carries its own weights and size")
        return G
    nodes = keys = source = None
    if _is_networkx(G):
        edges, w, nodes, keys = _from_networkx(G, weight)
        n, source = len(nodes), G
    elif sp.issparse(G):
        if weight is not None:
            raise ValueError("with a sparse adjacency matrix the entries are the weights; "
                             "pass weight=None")
        edges, w, n = _from_sparse(G)
    else:
        edges, w, n = _from_edge_array(G, weight, n_nodes)
    if n == 0:
        raise ValueError("the graph has no vertices")
    _check_weights(edges, w)
    loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
    if loops.size:
        v = int(edges[loops[0], 0])
        label = nodes[v] if nodes is not None else v
        raise ValueError(
            f"the graph has {loops.size} self-loop(s), e.g. at vertex {label!r}: a self-loop "
            "is never in a spanning tree; remove them first (networkx: "
            "G.remove_edges_from(nx.selfloop_edges(G)))"
        )
    graph = WeightedGraph(n, np.ascontiguousarray(edges, dtype=np.int64),
                          np.ascontiguousarray(w, dtype=np.float64), nodes, keys, source)
    _check_connected(graph)
    _warn_weight_span(graph)
    return graph


def _is_networkx(G) -> bool:
    mod = type(G).__module__ or ""
    return mod.startswith("networkx") or hasattr(G, "adj") and hasattr(G, "is_directed")


def _from_networkx(G, weight):
    if G.is_directed():
        raise TypeError("directed graphs are not supported (arborescences are out of scope); "
                        "convert with G.to_undirected()")
    nodes = list(G.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    if G.is_multigraph():
        triples = list(iter(G.edges(keys=True, data=True)))  # iter: skip the O(m) len()
        keys = [k for _, _, k, _ in triples]
        pairs = [(index[a], index[b]) for a, b, _, _ in triples]
        data = [d for _, _, _, d in triples]
    else:
        triples = list(iter(G.edges(data=True)))  # iter: skip the O(m) len()
        keys = None
        pairs = [(index[a], index[b]) for a, b, _ in triples]
        data = [d for _, _, d in triples]
    edges = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    if weight is None:
        w = np.ones(len(data))
    else:
        try:
            w = np.array([d.get(weight, 1.0) for d in data], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"edge attribute {weight!r} must be numeric") from exc
    return edges, w, nodes, keys


def _from_sparse(A):
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"adjacency matrix must be square, got shape {A.shape}")
    n = A.shape[0]
    if n > 1 and A.nnz < 2 * (n - 1):  # before anything of size n is allocated
        raise ValueError(
            f"the graph is disconnected: a {n}×{n} adjacency matrix with {A.nnz} stored "
            f"entries has at most {A.nnz // 2} edges, fewer than the {n - 1} a spanning tree "
            "needs (at least "
            f"{n - A.nnz // 2} connected components); sample a tree of each component "
            "separately, or drop the isolated vertices"
        )
    A = sp.csr_matrix(A)
    A.eliminate_zeros()
    if A.nnz and not np.all(np.isfinite(A.data)):
        raise ValueError("adjacency matrix contains NaN or infinite weights")
    scale = abs(A).max() if A.nnz else 0.0
    if A.nnz and abs(A - A.T).max() > 1e-12 * scale:
        raise ValueError("adjacency matrix is not symmetric: an undirected graph is required")
    loops = np.flatnonzero(A.diagonal())
    if loops.size:
        raise ValueError(
            f"the adjacency matrix has {loops.size} nonzero diagonal entries (self-loops), "
            f"e.g. at vertex {int(loops[0])}: a self-loop is never in a spanning tree; "
            "zero the diagonal first (A.setdiag(0))"
        )
    U = sp.triu(A, k=1).tocoo()
    edges = np.column_stack([U.row, U.col]).astype(np.int64)
    return edges, U.data.astype(np.float64), A.shape[0]


def _from_edge_array(E, weight, n_nodes):
    E = np.asarray(E)
    if E.ndim != 2 or E.shape[1] != 2:
        raise ValueError("expected a networkx graph, a scipy sparse adjacency matrix or an "
                         f"(m, 2) edge array; got an array of shape {E.shape}")
    if E.size and not np.issubdtype(E.dtype, np.integer):
        raise ValueError(f"edge array must hold integer vertex indices, got dtype {E.dtype}")
    E = E.astype(np.int64)
    if E.size and E.min() < 0:
        raise ValueError(f"edge array has a negative vertex index ({E.min()})")
    top = int(E.max()) if E.size else -1
    if n_nodes is not None:
        n_nodes = as_count(n_nodes, "n_nodes")
        if top >= n_nodes:
            raise ValueError(f"edge array refers to vertex {top} but n_nodes = {n_nodes}")
    n = top + 1 if n_nodes is None else n_nodes
    if n > len(E) + 1:  # m edges connect at most m + 1 vertices; checked before any O(n) work
        if n_nodes is None:
            raise ValueError(
                f"the edge array refers to vertex {top} but has only {len(E)} edges, so the "
                f"graph on 0..{top} is disconnected (a spanning tree needs {top} edges): vertex "
                "indices must be 0..n−1, with n = n_nodes or the largest index + 1 — relabel "
                "them, e.g. `labels, E = np.unique(E, return_inverse=True); E = E.reshape(-1, 2)`"
            )
        raise ValueError(
            f"the graph is disconnected: n_nodes = {n} but only {len(E)} edges (at least "
            f"{n - len(E)} connected components); sample a tree of each component separately"
        )
    w = np.ones(len(E)) if weight is None else np.asarray(weight, dtype=np.float64)
    if w.shape != (len(E),):
        raise ValueError(f"weights must have shape ({len(E)},), got {w.shape}")
    return E, w, n


def _check_weights(edges, w):
    bad = np.flatnonzero(~(np.isfinite(w) & (w > 0)))
    if bad.size:
        e = int(bad[0])
        raise ValueError(
            f"edge weights must be finite and > 0: edge {e} ({edges[e, 0]}, {edges[e, 1]}) "
            f"has weight {w[e]!r} ({bad.size} bad edge(s) in all); nothing is dropped silently"
        )


def _check_connected(graph: WeightedGraph) -> None:
    if graph.n == 1:
        return
    u, v = graph.edges[:, 0], graph.edges[:, 1]
    A = sp.coo_matrix((np.ones(graph.m), (u, v)), shape=(graph.n, graph.n))
    count, _ = connected_components(A, directed=False)
    if count > 1:
        raise ValueError(
            f"the graph is disconnected ({count} connected components): it has no spanning "
            "tree; sample a tree of each component separately"
        )


def _warn_weight_span(graph: WeightedGraph) -> None:
    """Warn where a step cannot draw an edge in float64: a walk step draws U · (weighted
    degree) with U on a 2⁻⁵³ grid, so an edge lighter than 1e-15 of its vertex's weighted
    degree gets a visibly wrong probability (or none)."""
    if graph.m == 0:
        return
    import warnings

    lo = np.full(graph.n, np.inf)
    for col in (0, 1):
        np.minimum.at(lo, graph.edges[:, col], graph.weights)
    ratio = graph.weighted_degree / lo
    v = int(np.argmax(ratio))
    if ratio[v] > 1e15:
        label = graph.nodes[v] if graph.nodes is not None else v
        warnings.warn(f"at vertex {label!r} the lightest edge weighs {1 / ratio[v]:.3g} of the "
                      "vertex's total edge weight (< 1e-15): such edges cannot be drawn "
                      "accurately in float64; rescale or merge them", RuntimeWarning,
                      stacklevel=user_stacklevel())
