"""Hugging Face masked language models as conditional-marginal oracles, used as
any-order autoregressive models.

:class:`MaskedLMOracle` wraps a BERT-style masked LM (``AutoModelForMaskedLM``, or any torch
module called as ``model(input_ids=LongTensor[B, L])`` that returns logits ``[B, L, V]``
directly, as a tuple's first element or as ``.logits``). The sampled window is n contiguous
**free positions** between fixed ``prefix_ids`` and ``suffix_ids``; position i chooses among
q candidate tokens ``candidate_ids`` (shared, shape (q,), or per position, shape (n, q)), and
the value x_i ∈ 0..q-1 indexes them. A row (values, mask) becomes the sequence

    prefix_ids + [candidate_ids[i, values[i]] if mask[i] else mask_token_id for i < n] + suffix_ids

and the answer for free position i is the model's softmax over the q candidates at that
position (float64, max-subtracted), i.e. the masked-LM conditional renormalised to the
candidates; pinned positions are one-hot. One forward pass answers all positions
(``supports_full = True``), so one batched pass is one round.

**What is sampled.** A masked LM's conditionals are not the conditionals of one joint law.
Under the order π the chain rule samples P_π(x) = ∏_t p(x_{π_t} | x_{π<t}); both samplers of
:mod:`parasample.autoregressive` reproduce it pathwise (same (π, r) → same output), hence
sample **exactly** the mixture of P_π over uniformly random π ("random-order decoding"),
``sample_parallel`` in about n^(2/3) rounds instead of n.

**Batch invariance** (oracle contract). With ``deterministic=True`` (default) every row is its
own forward pass with batch size 1, so its answer cannot depend on the other rows of the batch:
bit-for-bit invariance holds in the model's own precision, float32 included; ``model.double()``
is not needed. It is not sufficient either: batched float64 forwards still differ from
single-row ones in the last bits (measured ~1e-13 on the logits of a hidden-size-256 BERT,
~7e-5 in float32), and then a near-tie in the coupler could make ``sample_parallel`` and
``sample_sequential`` differ. ``deterministic=False`` runs one forward pass per ``marginals``
call (split into chunks of ``max_batch`` rows): fast, and exact in law up to those last-bit
effects. On CUDA, bitwise reproducibility additionally needs deterministic kernels
(``torch.use_deterministic_algorithms(True)``).

torch is imported lazily (extra ``hf``); transformers is never imported here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core import NumericalError, as_count, require
from .counting_form import _softmax_rows
from .oracles import Oracle, check_batch

__all__ = ["MaskedLMOracle"]


def _int_list(ids, name: str) -> list[int]:
    arr = np.asarray(ids)
    if arr.size == 0:
        return []
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0:
        raise ValueError(f"{name} must be a sequence of nonnegative token ids")
    return [int(x) for x in arr]


class MaskedLMOracle(Oracle):
    """Conditional-marginal oracle of a masked language model over a window of free positions.

    Parameters
    ----------
    model:
        A masked LM, e.g. ``transformers.AutoModelForMaskedLM.from_pretrained(...)``. It is put
        in eval mode (dropout off) and, if ``device`` is given, moved there.
    candidate_ids:
        Token ids a free position may take: shape (q,) for all positions, or (n, q) per
        position; distinct within a position, q >= 2. Values are indices into them.
    mask_token_id:
        The model's mask token, placed at unpinned free positions.
    length:
        Number n of free positions; required when ``candidate_ids`` is 1-D.
    prefix_ids, suffix_ids:
        Fixed token ids before and after the window (e.g. ``[CLS] + prompt`` and ``[SEP]``).
    device:
        Torch device; default: the device of the model's parameters.
    deterministic:
        True (default): one forward pass per row, bitwise batch invariant (see module doc).
        False: one forward pass per ``marginals`` call (chunks of ``max_batch`` rows).
    max_batch:
        Rows per forward pass when ``deterministic=False`` (default: the whole batch).

    Attributes
    ----------
    n, q, candidate_ids (int64[n, q]), prefix_ids, suffix_ids, mask_token_id,
    forward_calls (model invocations so far), forward_rows (sequences evaluated so far),
    tokenizer (set by :meth:`from_tokenizer`, else None).
    """

    supports_full = True

    def __init__(self, model, *, candidate_ids, mask_token_id: int, length: int | None = None,
                 prefix_ids: Sequence[int] = (), suffix_ids: Sequence[int] = (), device=None,
                 deterministic: bool = True, max_batch: int | None = None):
        torch = require("torch", "hf")
        self._torch = torch
        cand = np.asarray(candidate_ids)
        if cand.size == 0 or not np.issubdtype(cand.dtype, np.integer) or cand.ndim not in (1, 2):
            raise ValueError("candidate_ids must be a non-empty integer array of shape (q,) "
                             "or (n, q)")
        if cand.ndim == 1:
            if length is None:
                raise ValueError("length (the number of free positions) is required when "
                                 "candidate_ids is 1-D")
            length = as_count(length, "length", minimum=1)
            cand = np.broadcast_to(cand, (length, cand.size))
        elif length is not None and as_count(length, "length", minimum=1) != cand.shape[0]:
            raise ValueError(f"length = {length} disagrees with candidate_ids of shape "
                             f"{cand.shape}")
        n, q = cand.shape
        if q < 2:
            raise ValueError(f"need at least 2 candidate tokens per position, got {q}")
        if cand.min() < 0:
            raise ValueError("candidate_ids must be nonnegative token ids")
        if any(len(np.unique(row)) != q for row in cand):
            raise ValueError("candidate_ids must be distinct within each position")
        mask_token_id = as_count(mask_token_id, "mask_token_id")
        max_batch = None if max_batch is None else as_count(max_batch, "max_batch", minimum=1)
        prefix = _int_list(prefix_ids, "prefix_ids")
        suffix = _int_list(suffix_ids, "suffix_ids")
        config = getattr(model, "config", None)
        vocab = getattr(config, "vocab_size", None)
        used = [cand.max(), int(mask_token_id)] + prefix + suffix
        if vocab is not None and max(used) >= vocab:
            raise ValueError(f"token id {max(used)} is outside the model's vocabulary "
                             f"(vocab_size = {vocab})")
        L = len(prefix) + n + len(suffix)
        max_pos = getattr(config, "max_position_embeddings", None)
        if max_pos is not None and L > max_pos:
            raise ValueError(f"sequence length {L} exceeds max_position_embeddings = {max_pos}")

        self.n, self.q = int(n), int(q)
        self.candidate_ids = np.array(cand, dtype=np.int64)
        self.candidate_ids.setflags(write=False)
        self.mask_token_id = int(mask_token_id)
        self.prefix_ids, self.suffix_ids = tuple(prefix), tuple(suffix)
        self.deterministic = bool(deterministic)
        self.max_batch = None if max_batch is None else int(max_batch)
        self.tokenizer = None
        self.forward_calls = 0
        self.forward_rows = 0

        if device is not None:
            model = model.to(device)
            self.device = torch.device(device)
        else:
            param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
            self.device = param.device if param is not None else torch.device("cpu")
        if hasattr(model, "eval"):
            model.eval()
        self.model = model
        self._template = np.array(prefix + [self.mask_token_id] * n + suffix, dtype=np.int64)
        self._start = len(prefix)
        self._cand_t = torch.tensor(np.array(self.candidate_ids), device=self.device)

    # -- construction from a tokenizer ---------------------------------------------------------
    @classmethod
    def from_tokenizer(cls, model, tokenizer, *, length: int, words: Sequence[str] | None = None,
                       prompt: str = "", suffix: str = "", **kwargs) -> "MaskedLMOracle":
        """Build the oracle for "``prompt`` + ``length`` free tokens + ``suffix``".

        The template is ``tokenizer(prompt + " [MASK]"*length + " " + suffix)`` with the
        tokenizer's special tokens (e.g. ``[CLS] … [SEP]``); the mask tokens must come out as
        ``length`` contiguous ids. ``words`` (each must be a single token) are the candidates
        at every position; default: the whole vocabulary except special tokens (q ≈ vocab).
        Other keyword arguments go to the constructor. The tokenizer is kept for
        :meth:`to_text`.
        """
        length = as_count(length, "length", minimum=1)
        mask_id = getattr(tokenizer, "mask_token_id", None)
        if mask_id is None:
            raise ValueError("the tokenizer has no mask token; a masked LM tokenizer is needed")
        mask_tok = tokenizer.mask_token
        text = " ".join(s for s in (prompt, " ".join([mask_tok] * int(length)), suffix) if s)
        ids = list(tokenizer(text)["input_ids"])
        where = [k for k, t in enumerate(ids) if t == mask_id]
        if len(where) != length or where != list(range(where[0], where[0] + length)):
            raise ValueError("prompt and suffix must not contain the mask token, and the "
                             f"{length} mask tokens must stay contiguous after tokenization")
        if words is None:
            special = set(getattr(tokenizer, "all_special_ids", []))
            vocab = len(tokenizer)
            model_vocab = getattr(getattr(model, "config", None), "vocab_size", None)
            if model_vocab is not None:
                vocab = min(vocab, model_vocab)
            cand = [t for t in range(vocab) if t not in special]
        else:
            cand = []
            for w in words:
                tok = list(tokenizer(w, add_special_tokens=False)["input_ids"])
                if len(tok) != 1:
                    raise ValueError(f"word {w!r} is not a single token (ids {tok})")
                cand.append(tok[0])
            if len(set(cand)) != len(cand):
                raise ValueError("words map to repeated token ids")
        oracle = cls(model, candidate_ids=np.array(cand, dtype=np.int64), mask_token_id=mask_id,
                     length=int(length), prefix_ids=ids[:where[0]],
                     suffix_ids=ids[where[-1] + 1:], **kwargs)
        oracle.tokenizer = tokenizer
        return oracle

    # -- model evaluation ----------------------------------------------------------------------
    def reset_counts(self) -> None:
        self.forward_calls = 0
        self.forward_rows = 0

    def input_ids(self, values, mask) -> np.ndarray:
        """The model inputs int64[B, L] of a batch (unpinned free positions get the mask)."""
        values = np.asarray(values)
        mask = np.asarray(mask, dtype=bool)
        B = values.shape[0]
        ids = np.repeat(self._template[None], B, axis=0)
        free = ids[:, self._start:self._start + self.n]
        tok = self.candidate_ids[np.arange(self.n), np.where(mask, values, 0)]
        free[mask] = tok[mask]
        return ids

    def _forward(self, ids: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.as_tensor(ids, dtype=torch.long, device=self.device)
            out = self.model(input_ids=x)
            logits = getattr(out, "logits", None)
            if logits is None:
                logits = out[0] if isinstance(out, (tuple, list)) else out
            sel = logits[:, self._start:self._start + self.n, :]
            sel = torch.gather(sel, 2, self._cand_t.unsqueeze(0).expand(len(ids), -1, -1))
            res = sel.to(torch.float64).cpu().numpy()
        self.forward_calls += 1
        self.forward_rows += len(ids)
        return res

    def logits(self, values, mask) -> np.ndarray:
        """Candidate logits float64[B, n, q] of a batch (raw model outputs, not one-hot)."""
        ids = self.input_ids(values, mask)
        B = len(ids)
        if B == 0:
            return np.empty((0, self.n, self.q))
        step = 1 if self.deterministic else (B if self.max_batch is None else self.max_batch)
        return np.concatenate([self._forward(ids[s:s + step]) for s in range(0, B, step)])

    def marginals(self, values, mask, targets=None) -> np.ndarray:
        v, mask, targets = check_batch(self, values, mask, targets)
        B, n, q = v.shape[0], self.n, self.q
        logit = self.logits(v, mask)
        if np.isnan(logit).any() or np.any(logit == np.inf):
            raise NumericalError("the model returned NaN or +inf logits")
        out = _softmax_rows(logit.reshape(B * n, q)).reshape(B, n, q)
        out[np.isnan(out).any(axis=(1, 2))] = np.nan  # a position with all -inf: NaN row
        b, i = np.nonzero(mask)
        ok = ~np.isnan(out[b, i, 0])
        b, i = b[ok], i[ok]
        out[b, i] = 0.0
        out[b, i, v[b, i]] = 1.0
        if targets is None:
            return out
        return out[np.arange(B), targets].copy()

    # -- decoding ------------------------------------------------------------------------------
    def decode(self, sample) -> np.ndarray:
        """Token ids of the free positions for a sample int[n] (or a batch int[S, n])."""
        x = np.asarray(sample)
        if x.shape[-1:] != (self.n,) or not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"sample must be an integer array of shape (..., {self.n})")
        if x.size and (x.min() < 0 or x.max() >= self.q):
            raise ValueError(f"sample values must lie in 0..{self.q - 1}")
        return self.candidate_ids[np.arange(self.n), x]

    def sequence_ids(self, sample) -> np.ndarray:
        """Full token ids prefix + decoded free positions + suffix (shape (..., L))."""
        tok = self.decode(sample)
        lead = tok.shape[:-1]
        pre, suf = (np.broadcast_to(np.array(ids, dtype=np.int64), lead + (len(ids),))
                    for ids in (self.prefix_ids, self.suffix_ids))
        return np.concatenate([pre, tok, suf], axis=-1)

    def to_text(self, sample, *, skip_special_tokens: bool = True) -> str | list[str]:
        """Decode a sample (or a batch) to text with the tokenizer of :meth:`from_tokenizer`."""
        if self.tokenizer is None:
            raise ValueError("no tokenizer: build the oracle with MaskedLMOracle.from_tokenizer")
        ids = self.sequence_ids(sample)
        if ids.ndim == 1:
            return self.tokenizer.decode(ids.tolist(), skip_special_tokens=skip_special_tokens)
        return [self.tokenizer.decode(r.tolist(), skip_special_tokens=skip_special_tokens)
                for r in ids.reshape(-1, ids.shape[-1])]
