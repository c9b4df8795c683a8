"""Which tokens of a row a masked objective hides and predicts, and how they are corrupted.

A masker is chosen once from `objective.masking` (`make_masker`) and is then called on rows of
n tokens with one signature:

    masker(u_BK, tokens_BN, eligible_BN, segment_start_BN, rate, history_BN=None) -> Masked

`u_BK` holds K = `masker.uniforms_per_row(n)` uniform numbers in [0, 1) per row (the caller
draws them, so that a row's mask is a pure function of its random numbers); `eligible_BN` marks
the positions that may be chosen (never special tokens nor a segment's `<s>`);
`segment_start_BN` marks each segment's `<s>`; `rate` is the mask rate of the step;
`history_BN` (only for the strategies that use it) counts how often each token was masked
before. A chosen token's input becomes `<mask>`, a random non-special token or stays, decided
once per span with probabilities `mask_token_prob`, `random_token_prob` and the rest.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import numpy as np

from babylm_jax.config import MASK_ID, MASKING_STRATEGIES, NUM_SPECIAL_TOKENS


class Masked(NamedTuple):
  chosen: np.ndarray  # [b, n] bool: tokens to predict (a subset of the eligible ones)
  tokens: np.ndarray  # [b, n] int32: the row with the chosen tokens corrupted
  decision: np.ndarray  # [b, n] int8: 0 <mask>, 1 random token, 2 unchanged, -1 not chosen
  spans: dict  # what the strategy drew, for tests


def make_masker(objective, vocab_size: int):
  """The masker that `objective.masking` names."""
  kind = objective.masking
  common = dict(max_span=int(objective.max_span), mask_prob=float(objective.mask_token_prob),
                random_prob=float(objective.random_token_prob), vocab_size=int(vocab_size))
  if kind == "bernoulli":
    return BernoulliSpans(**common)
  if kind == "ranked":
    return RankedSpans(**common)
  raise ValueError(f"objective.masking '{kind}' is unknown; use one of {MASKING_STRATEGIES}.")


def _decisions(u, mask_prob: float, random_prob: float) -> np.ndarray:
  """0 <mask>, 1 random token, 2 unchanged, from uniform numbers."""
  return np.where(u < mask_prob, 0, np.where(u < mask_prob + random_prob, 1, 2)).astype(np.int8)


def _corrupt(tokens_BN, chosen_BN, decision_BN, u_tok_BN, vocab_size: int) -> np.ndarray:
  out = np.array(tokens_BN, np.int32)
  out[chosen_BN & (decision_BN == 0)] = MASK_ID
  rnd = chosen_BN & (decision_BN == 1)
  random_tok = NUM_SPECIAL_TOKENS + (u_tok_BN * (vocab_size - NUM_SPECIAL_TOKENS)).astype(np.int32)
  out[rnd] = random_tok[rnd]
  return out


@functools.lru_cache(maxsize=4096)
def span_start_prob(rate: float, max_span: int) -> float:
  """q such that a position is covered by some span with probability `rate` when spans start
  anywhere with probability q and have lengths uniform in 1..max_span."""
  def coverage(q):
    miss = 1.0
    for d in range(max_span):
      miss *= 1.0 - q * (max_span - d) / max_span
    return 1.0 - miss
  lo, hi = 0.0, 1.0
  for _ in range(60):
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if coverage(mid) < rate else (lo, mid)
  return 0.5 * (lo + hi)


@dataclasses.dataclass(frozen=True)
class BernoulliSpans:
  """Spans start at each position independently, with lengths uniform in 1..max_span and the
  start probability solved so that each token is covered with probability `rate`; a row's
  masked fraction varies around the rate (binomially). Span starts sit at extended positions
  -(max_span-1) .. n-1 so that every position has the same chance of cover."""
  max_span: int
  mask_prob: float
  random_prob: float
  vocab_size: int

  def uniforms_per_row(self, n: int) -> int:
    return 3 * (n + self.max_span - 1) + n

  def __call__(self, u_BK, tokens_BN, eligible_BN, segment_start_BN, rate, history_BN=None):
    del segment_start_BN, history_BN  # spans cross segments; covered specials are dropped
    b, n = tokens_BN.shape
    S, ext = self.max_span, self.max_span - 1
    w = n + ext
    starts = u_BK[:, :w] < span_start_prob(float(rate), S)
    lengths = 1 + (u_BK[:, w:2 * w] * S).astype(np.int64)
    decision = _decisions(u_BK[:, 2 * w:3 * w], self.mask_prob, self.random_prob)
    dec_ext = np.full((b, w + ext), -1, np.int8)
    for d in range(S):
      np.copyto(dec_ext[:, d:d + w], decision, where=starts & (lengths > d))
    covered_dec = dec_ext[:, ext:ext + n]
    chosen = (covered_dec >= 0) & eligible_BN
    decision_BN = np.where(chosen, covered_dec, -1).astype(np.int8)
    tokens = _corrupt(tokens_BN, chosen, decision_BN, u_BK[:, 3 * w:3 * w + n], self.vocab_size)
    return Masked(chosen, tokens, decision_BN, dict(span_starts=starts, span_lengths=lengths))


def _span_starts(segment_start_BN, lengths_BN) -> np.ndarray:
  """[b, n] bool: where spans start when each segment's `<s>` is a span of its own and a span
  starting at t covers lengths_BN[t] tokens, cut short at the next `<s>`.

  The starts are the positions reached from position 0 by t -> next(t); all iterates of next
  are computed at once by pointer doubling (log2 n gathers instead of a loop over n)."""
  b, n = segment_start_BN.shape
  idx = np.arange(n)
  starts_at = np.where(segment_start_BN, idx, n)
  # The first <s> after t (n if none): a reversed running minimum, shifted by one.
  after = np.full((b, n + 1), n, np.int64)
  after[:, :n] = np.minimum.accumulate(starts_at[:, ::-1], axis=1)[:, ::-1]
  nxt = np.full((b, n + 1), n, np.int64)  # position n is the sink
  nxt[:, :n] = np.where(segment_start_BN, idx + 1, np.minimum(idx + lengths_BN, after[:, 1:]))
  # Flat indices into [b, n + 1], so that each gather is one np.take.
  row = (np.arange(b) * (n + 1))[:, None]
  jump = (nxt + row).ravel()
  reached = np.broadcast_to(row, (b, n + 1)).ravel().copy()  # k iterates of next from 0
  k = np.tile(np.arange(n + 1), b)
  for bit in range(max(1, int(n).bit_length())):
    take = (k >> bit) & 1 == 1
    reached[take] = jump[reached[take]]
    jump = jump[jump]
  starts = np.zeros(b * (n + 1), bool)
  starts[reached] = True
  return starts.reshape(b, n + 1)[:, :n]


@dataclasses.dataclass(frozen=True)
class RankedSpans:
  """GPT-BERT's reference masking. Each segment (the tokens after one `<s>`) is cut into
  consecutive spans of lengths uniform in 1..max_span from its first token; each span draws one
  uniform number u, and a token's key is u * exp(h), h its `history_BN` count (the reference's
  weighting by the softmax of earlier mask counts; the normaliser is one per segment and does
  not change the order). With n the segment's tokens and U uniform, the k = max(1,
  floor(n * rate + U)) smallest keys of its eligible tokens set a threshold, and every eligible
  token whose key is at most the threshold is chosen, so the span of the k-th token is masked
  whole. A segment's masked count is therefore k to k + max_span - 1 tokens: the masked
  fraction is nearly exact where the Bernoulli spans' varies binomially.

  Uniforms per row of n positions: span lengths, span keys, span decisions, per-segment U and
  random tokens, n of each (a row holds at most n spans and n segments).
  """
  max_span: int
  mask_prob: float
  random_prob: float
  vocab_size: int

  def uniforms_per_row(self, n: int) -> int:
    return 5 * n

  def __call__(self, u_BK, tokens_BN, eligible_BN, segment_start_BN, rate, history_BN=None):
    b, n = tokens_BN.shape
    u_len, u_key, u_dec, u_k, u_tok = (u_BK[:, i * n:(i + 1) * n] for i in range(5))
    lengths = 1 + (u_len * self.max_span).astype(np.int64)
    new_span = _span_starts(segment_start_BN, lengths)
    span = np.cumsum(new_span, axis=1) - 1
    key = np.take_along_axis(u_key, span, axis=1)
    if history_BN is not None:
      key = key * np.exp(np.asarray(history_BN, np.float64))
    key = np.where(eligible_BN, key, np.inf)

    # Per segment (cut at each <s> and at the row start): k, then the k-th smallest key. The
    # segment numbers rise along a row, so sorting each row by (segment, key) keeps every
    # segment where it was, its keys ascending.
    seg_start = segment_start_BN.copy()
    seg_start[:, 0] = True
    seg = np.cumsum(seg_start, axis=1) - 1
    g = (np.arange(b)[:, None] * n + seg).ravel()
    size = np.bincount(g, weights=~segment_start_BN.ravel(), minlength=b * n)
    n_eligible = np.bincount(g, weights=eligible_BN.ravel(), minlength=b * n).astype(np.int64)
    k = np.maximum(1, np.floor(size * float(rate) + u_k.ravel())).astype(np.int64)
    k = np.minimum(k, n_eligible)[g].reshape(b, n)
    by_key = np.argsort(key, axis=1)
    by_seg = np.argsort(np.take_along_axis(seg, by_key, axis=1), axis=1, kind="stable")
    sorted_key = np.take_along_axis(key, np.take_along_axis(by_key, by_seg, axis=1), axis=1)
    first = np.maximum.accumulate(np.where(seg_start, np.arange(n), 0), axis=1)
    kth = np.take_along_axis(sorted_key, np.maximum(first + k - 1, 0), axis=1)
    chosen = eligible_BN & (k > 0) & (key <= kth)

    decision = np.take_along_axis(_decisions(u_dec, self.mask_prob, self.random_prob), span,
                                  axis=1)
    decision_BN = np.where(chosen, decision, -1).astype(np.int8)
    tokens = _corrupt(tokens_BN, chosen, decision_BN, u_tok, self.vocab_size)
    return Masked(chosen, tokens, decision_BN,
                  dict(span_ids=span, span_keys=key, segment_k=k))
