"""Autoregressive sampling from conditional-marginal oracles: the sequential chain rule and
parallel sampling via counting (Anari–Gao–Rubinstein)."""

from .counting_form import LogCountOracle
from .digits import DigitsOracle, load_digits_model
from .dpp_oracle import DPPOracle
from .hf import MaskedLMOracle  # torch is imported only when an oracle is built (extra "hf")
from .lockstep import sample_parallel_batch, sample_sequential_batch
from .oracles import (
    CurieWeissOracle, IsingOracle, MarkovChainOracle, Oracle, ProductOracle, TableOracle,
)
from .samplers import (
    default_coupler, default_window, draw_randomness, gumbel_coupler, sample_parallel,
    sample_sequential, threshold_coupler,
)

__all__ = [
    "Oracle", "TableOracle", "ProductOracle", "IsingOracle", "CurieWeissOracle",
    "MarkovChainOracle", "threshold_coupler", "gumbel_coupler", "default_coupler",
    "draw_randomness", "default_window", "sample_sequential", "sample_parallel",
    "sample_sequential_batch", "sample_parallel_batch",
    "DigitsOracle", "load_digits_model", "DPPOracle", "LogCountOracle", "MaskedLMOracle",
]
