"""Finite determinantal point processes.

Targets: :class:`DPP` (symmetric; from L, K or features) and :class:`NonsymmetricDPP`.
Samplers are functions returning sorted int64 index arrays:

- :func:`sample_exact` — spectral (HKPV) sampler, O(n m²) per sample after ``eigh``;
- :func:`sample_exact_k` — k-DPP via log-space elementary symmetric polynomials;
- :func:`sample_sequential` — Poulson's chain rule on K (blocked LU; nonsymmetric too);
- :func:`sample_lowrank` — low-rank sequential sampler, O(n r²);
- :func:`sample_rejection` — nonsymmetric DPP by rejection from a symmetric proposal;
- :func:`sample_mcmc` — add–delete / exchange chains with O(k²) updates;
- :func:`sample_partition` — exact partition-constrained DPP;
- :func:`sample_parallel_k_approx` — k-NDPP / partition DPP in ≈ 2k^{1/2+c} batched rounds
  (approximate, with a reported TV bound);
- :func:`map_greedy` — greedy MAP by incremental Cholesky;
- :class:`SparsifiedKDPPSampler` — repeated approximate k-DPP sampling (domain sparsification).
"""

from .esp import kdpp_inclusion_probabilities
from .kernel import DPP, Spectrum
from .map import map_greedy, map_greedy_details, quality_diversity_kernel
from .mcmc import sample_mcmc
from .nonsymmetric import NonsymmetricDPP, sample_rejection
from .parallel import sample_parallel_k
from .parallel_approx import PartitionConstraint, sample_parallel_k_approx
from .partition import partition_inclusion_probabilities, partition_normalizer, sample_partition
from .sequential import sample_lowrank, sample_sequential
from .spectral import sample_exact, sample_exact_k
from .sparsified import SparsifiedKDPPSampler

__all__ = [
    "DPP", "Spectrum", "NonsymmetricDPP",
    "sample_exact", "sample_exact_k", "kdpp_inclusion_probabilities",
    "sample_sequential", "sample_lowrank", "sample_rejection",
    "sample_mcmc", "map_greedy", "map_greedy_details", "quality_diversity_kernel",
    "sample_parallel_k", "sample_parallel_k_approx", "PartitionConstraint",
    "sample_partition", "partition_normalizer",
    "partition_inclusion_probabilities",
    "SparsifiedKDPPSampler",
]
