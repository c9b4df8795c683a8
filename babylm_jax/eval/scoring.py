"""Sentence scoring: causal, masked-next-token (MNTP), pseudo-log-likelihood and fused.

A scored sequence is `(ids, start)`: token ids beginning with `<s>`, and the index of the first
token whose log-probability counts (the ones before it are context). The backends:

  causal  sum_i log p(t_i | t_<i), causal attention, read at position i-1.
  mntp    sum_i log p(t_i) with t_i replaced by <mask>, bidirectional, read at position i-1
          (GPT-BERT predicts the next token at every position, masked ones included).
  pll     as mntp but read at position i, the plain masked-LM convention.
  fused   causal + mntp.

Sequences are bucketed by length so that few shapes compile; every masked variant is one row
of a fixed-size batch; the vocabulary projection of the masked backends runs only at the one
read position of each row; log-softmax is float32. Identical sequences are scored once, so
two identical sentences always tie exactly.
"""

from __future__ import annotations

import functools
from typing import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from babylm_jax.config import BOS_ID, MASK_ID, PAD_ID
from babylm_jax.errors import ConfigError

BACKENDS = ("causal", "mntp", "pll", "fused")

Seq = tuple[tuple[int, ...], int]  # (ids starting with <s>, index of the first scored token)


def parse_backends(spec: str) -> list[str]:
  names = [b.strip() for b in str(spec).split(",") if b.strip()]
  for b in names:
    if b not in BACKENDS:
      raise ConfigError(f"eval.backend '{b}' is unknown; use a comma list of "
                        f"{', '.join(BACKENDS)}.")
  if not names:
    raise ConfigError(f"eval.backend is empty; set it to some of {', '.join(BACKENDS)}.")
  return names


def bucket_len(n: int, max_len: int) -> int:
  """The padded length for a sequence of n tokens: fine steps for short sentences."""
  step = 8 if n <= 64 else 32 if n <= 256 else 128
  return min(-(-n // step) * step, max_len)


# ---------------------------------------------------------------------------------------
# Text -> sequences.


def to_sequence(tokens: Sequence[int], start: int, max_len: int) -> Seq:
  """`<s>` + tokens, scored from tokens[start]; long contexts lose their oldest tokens."""
  ids = (BOS_ID,) + tuple(int(t) for t in tokens)
  start += 1
  if len(ids) > max_len:
    cut = len(ids) - max_len
    ids = (BOS_ID,) + ids[1 + cut:]
    start = max(1, start - cut)
  return ids, start


def tokenize(tokenizer, contexts: Sequence[str], targets: Sequence[str],
             max_len: int) -> list[Seq]:
  """One sequence per (context, target); only the target's tokens are scored.

  Context and target are tokenized together (as the model would read them) and the scored
  span starts at the first token that reaches past the context's last character.
  """
  texts, bounds = [], []
  for ctx, tgt in zip(contexts, targets):
    ctx = ctx.rstrip()
    if ctx:
      texts.append(ctx + " " + tgt.lstrip())
      bounds.append(len(ctx))
    else:
      texts.append(tgt)
      bounds.append(0)
  out = []
  for enc, bound in zip(tokenizer.encode_batch(texts, add_special_tokens=False), bounds):
    start = len(enc.ids)
    for i, (_, end) in enumerate(enc.offsets):
      if end > bound:
        start = i
        break
    out.append(to_sequence(enc.ids, start, max_len))
  return out


# ---------------------------------------------------------------------------------------
# Jitted batch scorers. `graphdef` is static; `state` holds the weights.


def _causal_batch(graphdef, state, ids_BT, seg_BT, targets_BT, scored_BT):
  model = nnx.merge(graphdef, state)
  is_causal_B = jnp.ones((ids_BT.shape[0],), bool)
  hidden_BTD = model.encode(ids_BT, seg_BT, is_causal_B, deterministic=True)
  logp_BTV = jax.nn.log_softmax(model.head(hidden_BTD).astype(jnp.float32), axis=-1)
  logp_BT = jnp.take_along_axis(logp_BTV, targets_BT[..., None], axis=-1)[..., 0]
  return jnp.sum(jnp.where(scored_BT, logp_BT, 0.0), axis=1)


def _masked_batch(graphdef, state, ids_BT, seg_BT, read_B, target_B):
  model = nnx.merge(graphdef, state)
  is_causal_B = jnp.zeros((ids_BT.shape[0],), bool)
  hidden_BTD = model.encode(ids_BT, seg_BT, is_causal_B, deterministic=True)
  # Project to the vocabulary only at the one position each row is read at.
  hidden_B1D = jnp.take_along_axis(hidden_BTD, read_B[:, None, None], axis=1)
  logits_BV = model.head(hidden_B1D)[:, 0].astype(jnp.float32)
  logp_BV = jax.nn.log_softmax(logits_BV, axis=-1)
  return jnp.take_along_axis(logp_BV, target_B[:, None], axis=-1)[:, 0]


class Scorer:
  """Scores sequences with one model; holds the model's weights and the compiled batches.

  `model` is any nnx.Module with `encode(ids_BT, segment_ids_BT, is_causal_B,
  deterministic=True) -> hidden_BTD` and `head(hidden) -> logits` (GPTBert).
  `tokens_per_batch` sets the rows per batch at each bucket length.
  """

  def __init__(self, model, max_len: int, tokens_per_batch: int = 4096):
    self.graphdef, self.state = nnx.split(model)
    self.max_len = max_len
    self.tokens_per_batch = tokens_per_batch
    self._causal = jax.jit(functools.partial(_causal_batch, self.graphdef))
    self._masked = jax.jit(functools.partial(_masked_batch, self.graphdef))
    self.reset()

  def reset(self):
    """Forgets computed scores and work counts; compiled shapes stay."""
    self._cache: dict[str, dict[Seq, float]] = {}
    # Work done, for FLOP counts: rows and padded tokens run, real tokens, the sum of squared
    # real row lengths (attention) and the positions whose log-probability is read.
    self.stats = dict(rows=0, padded_tokens=0, real_tokens=0, real_tokens_sq=0,
                      read_positions=0)

  def _rows(self, T: int) -> int:
    return max(1, self.tokens_per_batch // T)

  def score(self, seqs: Iterable[Seq], backend: str) -> np.ndarray:
    """Summed log-probability of each sequence's scored span (float64 on the host)."""
    seqs = list(seqs)
    if backend == "fused":
      return self.score(seqs, "causal") + self.score(seqs, "mntp")
    if backend not in BACKENDS:
      raise ConfigError(f"eval.backend '{backend}' is unknown; use {', '.join(BACKENDS)}.")
    cache = self._cache.setdefault(backend, {})
    todo = sorted({s for s in seqs if s not in cache}, key=lambda s: len(s[0]))
    if todo:
      run = self._run_causal if backend == "causal" else functools.partial(
          self._run_masked, read_offset=1 if backend == "mntp" else 0)
      cache.update(run(todo))
    return np.array([cache[s] for s in seqs], dtype=np.float64)

  def _count(self, n: int, reads: int):
    self.stats["real_tokens"] += n
    self.stats["real_tokens_sq"] += n * n
    self.stats["read_positions"] += reads

  def _buckets(self, seqs: list[Seq]) -> dict[int, list[Seq]]:
    buckets: dict[int, list[Seq]] = {}
    for s in seqs:
      if len(s[0]) > self.max_len:
        raise ConfigError(f"a sequence of {len(s[0])} tokens exceeds the model's "
                          f"{self.max_len} positions; shorten it with to_sequence().")
      buckets.setdefault(bucket_len(len(s[0]), self.max_len), []).append(s)
    return buckets

  def _run_causal(self, seqs: list[Seq]) -> dict[Seq, float]:
    out = {}
    for T, group in sorted(self._buckets(seqs).items()):
      B = self._rows(T)
      for lo in range(0, len(group), B):
        chunk = group[lo:lo + B]
        ids = np.full((B, T), PAD_ID, np.int32)
        seg = np.zeros((B, T), np.int32)
        targets = np.zeros((B, T), np.int32)
        scored = np.zeros((B, T), bool)
        ids[:, 0], seg[:, 0] = BOS_ID, 1  # filler rows hold one real token, never read
        for r, (s, start) in enumerate(chunk):
          n = len(s)
          ids[r, :n], seg[r, :n] = s, 1
          targets[r, :n - 1] = s[1:]
          scored[r, start - 1:n - 1] = True  # position p predicts token p + 1
          self._count(n, n - start)
        self.stats["rows"] += B
        self.stats["padded_tokens"] += B * T
        sums = np.asarray(self._causal(self.state, ids, seg, targets, scored))
        for r, key in enumerate(chunk):
          out[key] = float(sums[r])
    return out

  def _run_masked(self, seqs: list[Seq], read_offset: int) -> dict[Seq, float]:
    """One row per scored token: that token masked, read at its position - read_offset."""
    totals = {s: 0.0 for s in seqs}
    for T, group in sorted(self._buckets(seqs).items()):
      variants = [(key, i) for key in group for i in range(key[1], len(key[0]))]
      B = self._rows(T)
      for lo in range(0, len(variants), B):
        chunk = variants[lo:lo + B]
        ids = np.full((B, T), PAD_ID, np.int32)
        seg = np.zeros((B, T), np.int32)
        read = np.zeros((B,), np.int32)
        target = np.zeros((B,), np.int32)
        ids[:, 0], seg[:, 0] = BOS_ID, 1
        for r, ((s, _), i) in enumerate(chunk):
          n = len(s)
          ids[r, :n], seg[r, :n] = s, 1
          ids[r, i] = MASK_ID
          read[r], target[r] = i - read_offset, s[i]
          self._count(n, 1)
        self.stats["rows"] += B
        self.stats["padded_tokens"] += B * T
        logp = np.asarray(self._masked(self.state, ids, seg, read, target))
        for r, (key, _) in enumerate(chunk):
          totals[key] += float(logp[r])
    return totals


def useful_flops(model_cfg, stats: dict) -> float:
  """Forward FLOPs of the work that counts: real tokens only, the head only where read.

  Per real token 2 x the encoder's matmul weights and, per layer, 4*D*(n + R) for attention
  over the n real tokens of its row and the R relative positions; per read position
  2 x (the head's dense + the tied vocabulary projection). Padding is never counted.
  """
  from babylm_jax.train.flops import matmul_params
  D, V, L = model_cfg.hidden_size, model_cfg.vocab_size, model_cfg.num_layers
  R = 2 * model_cfg.position_bucket_size - 1
  head = D * D + D + V * D + V
  encoder = matmul_params(model_cfg) - head
  return (2.0 * encoder * stats["real_tokens"]
          + 4.0 * L * D * (stats["real_tokens_sq"] + R * stats["real_tokens"])
          + 2.0 * head * stats["read_positions"])


# ---------------------------------------------------------------------------------------
# The unbatched reference the tests compare against.


def reference_score(logits_fn, seq: Seq, backend: str) -> float:
  """One model call per scored position on the bare sequence: no batching, no padding.

  `logits_fn(ids_BT, segment_ids_BT, is_causal_B) -> logits_BTV`.
  """
  if backend == "fused":
    return reference_score(logits_fn, seq, "causal") + reference_score(logits_fn, seq, "mntp")
  ids, start = seq
  n = len(ids)
  seg = np.ones((1, n), np.int32)
  total = 0.0
  if backend == "causal":
    logits = np.asarray(logits_fn(np.array([ids], np.int32), seg, np.array([True])),
                        np.float64)[0]
    for i in range(start, n):
      row = logits[i - 1]
      total += row[ids[i]] - np.log(np.sum(np.exp(row - row.max()))) - row.max()
    return total
  offset = 1 if backend == "mntp" else 0
  for i in range(start, n):
    masked = list(ids)
    masked[i] = MASK_ID
    logits = np.asarray(logits_fn(np.array([masked], np.int32), seg, np.array([False])),
                        np.float64)[0]
    row = logits[i - offset]
    total += row[ids[i]] - np.log(np.sum(np.exp(row - row.max()))) - row.max()
  return total
