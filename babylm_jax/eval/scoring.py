"""Sentence scoring: causal, masked-next-token (MNTP), pseudo-log-likelihood and fused.

A scored sequence is `(ids, start)`: token ids beginning with `<s>`, and the index of the first
token whose log-probability counts (the ones before it are context). The backends:

  causal  sum_i log p(t_i | t_<i), causal attention, read at position i-1.
  mntp    sum_i log p(t_i) with t_i replaced by <mask>, bidirectional, read at position i-1
          (GPT-BERT predicts the next token at every position, masked ones included).
  pll     as mntp but read at position i, the plain masked-LM convention.
  fused   causal + mntp.

With `ending=k` the masked backends read a token as if the text stopped there: the sequence is
cut before token i and k `<mask>` tokens are appended (the "multi-mask ending" of Samuel, 2024,
that the BabyLM reading task uses with k=3); mntp reads at position i-1, pll at the first mask.

Sequences are bucketed by length so that few shapes compile; every masked variant is one row
of a fixed-size batch; the vocabulary projection of the masked backends runs only at the one
read position of each row; log-softmax is float32. Identical sequences are scored once, so
two identical sentences always tie exactly. Causal sequences that share a long context (the
options of an entity-tracking item) run it once, and their continuations against its
key/value cache (model/cache.py), where the network has one.
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
from babylm_jax.model import cache as cache_lib

BACKENDS = ("causal", "mntp", "pll", "fused")

Seq = tuple[tuple[int, ...], int]  # (ids starting with <s>, index of the first scored token)


def parse_backends(spec: str, field: str = "eval.backend") -> list[str]:
  names = [b.strip() for b in str(spec).split(",") if b.strip()]
  for b in names:
    if b not in BACKENDS:
      raise ConfigError(f"{field} '{b}' is unknown; use a comma list of "
                        f"{', '.join(BACKENDS)}.")
  if not names:
    raise ConfigError(f"{field} is empty; set it to some of {', '.join(BACKENDS)}.")
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


def _read_batch(graphdef, causal, state, ids_BT, seg_BT, row_N, pos_N, target_N):
  """log p(target) at N read positions (row, pos); causal or bidirectional attention."""
  model = nnx.merge(graphdef, state)
  is_causal_B = jnp.full((ids_BT.shape[0],), causal)
  hidden_BTD = model.states(ids_BT, seg_BT, is_causal_B, deterministic=True)
  # Project to the vocabulary only where a token is read (not the context, not padding).
  hidden_ND = hidden_BTD[row_N, pos_N]
  logp_NV = jax.nn.log_softmax(model.head(hidden_ND).astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp_NV, target_N[:, None], axis=-1)[:, 0]


def _prefix_batch(graphdef, state, prefix_GP, pad_G, owner_O, suffix_Ot, target_Ot):
  """log p(target_Ot) [O, t] of O continuations, each after the shared prefix owner_O of G.

  Causal scoring with a key/value cache (model/cache.py): each prefix is run once, left-padded
  to P slots so that every continuation starts at slot P; its cache is copied to the rows of
  its continuations, which attend to it and causally to themselves. Relative positions only
  see slot differences, so each continuation's tokens score as in the full sequence.
  """
  model = nnx.merge(graphdef, state)
  G, P = prefix_GP.shape
  t = suffix_Ot.shape[1]
  cache = cache_lib.init_cache(model.cfg, G, P + t)
  _, cache = cache_lib.cached_states(model, prefix_GP, 0, pad_G, cache)
  cache = [{k: v[owner_O] for k, v in layer.items()} for layer in cache]
  hidden_OtD, _ = cache_lib.cached_states(model, suffix_Ot, P, pad_G[owner_O], cache)
  logp_OtV = jax.nn.log_softmax(model.head(hidden_OtD).astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp_OtV, target_Ot[..., None], axis=-1)[..., 0]


# A unit is one document placed in a row: (sequence key, ids, reads [(position, target)]).
Unit = tuple[Seq, tuple[int, ...], list[tuple[int, int]]]


def _units(seqs: list[Seq], backend: str, ending: int = 0) -> list[Unit]:
  units = []
  for key in seqs:
    ids, start = key
    n = len(ids)
    if backend == "causal":  # position p predicts token p + 1
      units.append((key, ids, [(p, ids[p + 1]) for p in range(start - 1, n - 1)]))
      continue
    offset = 1 if backend == "mntp" else 0
    for i in range(start, n):
      after = (MASK_ID,) * ending if ending else (MASK_ID,) + ids[i + 1:]
      units.append((key, ids[:i] + after, [(i - offset, ids[i])]))
  return units


def _pack(units: list[Unit], T: int) -> list[list[tuple[int, Unit]]]:
  """Best-fit packing into rows of T tokens: [(offset, unit)] per row.

  The model has relative positions only and attends within a segment, so a document scores
  the same wherever it sits in a row; packing removes nearly all padding.
  """
  rows: list[list] = []
  used: list[int] = []
  by_room: list[list[int]] = [[] for _ in range(T + 1)]  # row ids by free tokens
  for unit in sorted(units, key=lambda u: -len(u[1])):
    n = len(unit[1])
    room = next((r for r in range(n, T + 1) if by_room[r]), None)
    if room is None:
      row = len(rows)
      rows.append([])
      used.append(0)
    else:
      row = by_room[room].pop()
    rows[row].append((used[row], unit))
    used[row] += n
    by_room[T - used[row]].append(row)
  return rows


def _shared_prefixes(seqs: list[Seq], min_len: int) -> tuple[list[list[Seq]], list[Seq]]:
  """(groups of sequences that share their context, the other sequences) for causal scoring.

  A group's members have the same ids[:start - 1], of at least `min_len` tokens: the context
  less its last token, whose state predicts the first scored token and so starts each
  member's own continuation. (An entity-tracking item's five options share ~170 tokens.)
  """
  by_prefix: dict[tuple[int, ...], list[Seq]] = {}
  rest = []
  for s in seqs:
    ids, start = s
    if start - 1 >= min_len:
      by_prefix.setdefault(ids[:start - 1], []).append(s)
    else:
      rest.append(s)
  groups = [m for m in by_prefix.values() if len(m) > 1]
  return groups, rest + [m[0] for m in by_prefix.values() if len(m) == 1]


class Scorer:
  """Scores sequences with one model; holds the model's weights and the compiled batches.

  `model` is any nnx.Module with `states(ids_BT, segment_ids_BT, is_causal_B,
  deterministic=True) -> hidden_BTD` (what the head reads: a BootBERT model's decoder fills
  its `<mask>` holes there) and `head(hidden) -> logits` (GPTBert) whose attention stays within
  a segment and whose positions count from each segment's start. Sequences of up to `pack_len`
  tokens are packed several to a row of `pack_len`; longer ones get a row each, bucketed by
  length. `tokens_per_batch` sets the rows per batch. Causal sequences that share a context
  of more than `pack_len` tokens (the options of one item) run the context once and their
  continuations against its key/value cache, where the network has a cache (GPT-BERT's
  relative-position attentions, model/cache.py; others take the plain path).
  """

  def __init__(self, model, max_len: int, tokens_per_batch: int = 1024, pack_len: int = 64):
    self.graphdef, self.state = nnx.split(model)
    self.max_len = max_len
    self.pack_len = min(pack_len, max_len)
    self.tokens_per_batch = tokens_per_batch
    self._read = {causal: jax.jit(functools.partial(_read_batch, self.graphdef, causal))
                  for causal in (True, False)}
    cfg = getattr(model, "cfg", None)
    self._cached = cfg is not None and cache_lib.check_model(cfg) is None
    self._prefix = jax.jit(functools.partial(_prefix_batch, self.graphdef))
    self.reset()

  def load(self, model):
    """Scores with `model` from now on: the same network with other weights (a later point
    of the same run), so every compiled batch shape is reused. Forgets computed scores."""
    _, state = nnx.split(model)
    if jax.tree.structure(state) != jax.tree.structure(self.state):
      raise ValueError("Scorer.load needs a model of the same structure as the first one.")
    self.state = state
    self.reset()

  def reset(self):
    """Forgets computed scores and work counts; compiled shapes stay."""
    self._cache: dict[str, dict[Seq, float]] = {}
    # Work done, for FLOP counts: rows and padded tokens run, real tokens, the sum over real
    # tokens of the keys each attends to (attention) and the positions whose log-probability
    # is read; contexts run once for several sequences.
    self.stats = dict(rows=0, padded_tokens=0, real_tokens=0, real_tokens_sq=0,
                      read_positions=0, shared_contexts=0)

  def score(self, seqs: Iterable[Seq], backend: str, ending: int = 0,
            progress: tuple[str, int, str] | None = None) -> np.ndarray:
    """Summed log-probability of each sequence's scored span (float64 on the host).

    `ending` > 0 reads the masked backends with that many `<mask>` tokens in place of the
    rest of the sequence (see the module docstring); the causal backend ignores it.
    `progress` = (label, items, unit): on a terminal, a bar of the items these sequences
    score (e.g. 'blimp mntp', 1000, 'pair') with their rate and the time left.
    """
    seqs = list(seqs)
    if backend == "fused":
      return (self.score(seqs, "causal", 0, progress)
              + self.score(seqs, "mntp", ending, progress))
    if backend not in BACKENDS:
      raise ConfigError(f"eval.backend '{backend}' is unknown; use {', '.join(BACKENDS)}.")
    causal = backend == "causal"
    ending = 0 if causal else ending
    cache = self._cache.setdefault(f"{backend}/{ending}", {})
    todo = sorted({s for s in seqs if s not in cache})
    for s in todo:
      if len(s[0]) + ending > self.max_len:
        raise ConfigError(f"a sequence of {len(s[0])} tokens exceeds the model's "
                          f"{self.max_len} positions; shorten it with to_sequence().")
    if todo:
      totals = dict.fromkeys(todo, 0.0)
      groups, plain = (_shared_prefixes(todo, self.pack_len) if causal and self._cached
                       else ([], todo))
      units = _units(plain, backend, ending)
      reads = (sum(len(u[2]) for u in units)
               + sum(len(ids) - start for g in groups for ids, start in g))
      label, items, unit = progress or (backend, len(seqs), "seq")
      from tqdm import tqdm
      # Counts read positions, shown as items: the bar moves smoothly through long items.
      with tqdm(total=reads, desc=label if label.endswith(backend) else f"{label}: {backend}",
                unit=unit, unit_scale=items / max(reads, 1), disable=None, leave=False,
                dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/"
                "{total:.0f} [{elapsed}<{remaining}, {rate_fmt}]") as bar:
        for batches, P, t in self._prefix_layout(groups):
          self._run_prefixes(batches, P, t, totals, bar.update)
        for rows, T in self._layout(units):
          self._run(rows, T, causal, totals, bar.update)
      cache.update(totals)
    return np.array([cache[s] for s in seqs], dtype=np.float64)

  def _layout(self, units: list[Unit]):
    """(rows, T) groups: packed short units, then one row per long unit by length bucket."""
    short = [u for u in units if len(u[1]) <= self.pack_len]
    if short:
      yield _pack(short, self.pack_len), self.pack_len
    long: dict[int, list] = {}
    for u in units:
      if len(u[1]) > self.pack_len:
        long.setdefault(bucket_len(len(u[1]), self.max_len), []).append([(0, u)])
    for T in sorted(long):
      yield long[T], T

  def _run(self, rows, T: int, causal: bool, totals: dict, advance=lambda reads: None):
    B = max(1, self.tokens_per_batch // T)
    # Read slots per batch: every token of a causal row may be read, one per masked unit.
    N = B * T if causal else max(B, B * T // 8)
    lo = 0
    while lo < len(rows):
      hi, reads = lo, 0
      while hi < len(rows) and hi - lo < B:
        r = sum(len(u[2]) for _, u in rows[hi])
        if reads + r > N:
          break
        reads += r
        hi += 1
      self._run_batch(rows[lo:hi], B, N, T, causal, totals)
      advance(reads)
      lo = hi

  def _run_batch(self, rows, B, N, T, causal, totals):
    ids = np.full((B, T), PAD_ID, np.int32)
    seg = np.zeros((B, T), np.int32)
    ids[:, 0], seg[:, 0] = BOS_ID, 1  # filler rows hold one real token, never read
    row_N, pos_N, target_N = (np.zeros((N,), np.int32) for _ in range(3))
    owners = []  # the sequence of each read, in read order
    for r, row in enumerate(rows):
      for doc, (off, (key, unit_ids, reads)) in enumerate(row, start=1):
        n = len(unit_ids)
        ids[r, off:off + n] = unit_ids
        seg[r, off:off + n] = doc
        k = len(owners)
        for j, (pos, target) in enumerate(reads):
          row_N[k + j], pos_N[k + j], target_N[k + j] = r, off + pos, target
        owners += [key] * len(reads)
        self.stats["real_tokens"] += n
        self.stats["real_tokens_sq"] += n * n
        self.stats["read_positions"] += len(reads)
    self.stats["rows"] += B
    self.stats["padded_tokens"] += B * T
    values = np.asarray(self._read[causal](self.state, ids, seg, row_N, pos_N, target_N))
    for key, v in zip(owners, values[:len(owners)].tolist()):
      totals[key] += v

  def _prefix_layout(self, groups: list[list[Seq]]):
    """(batches of groups, P, t): groups by the padded lengths of their context and of
    their longest continuation; tokens_per_batch // P contexts a batch."""
    by_shape: dict[tuple[int, int], list] = {}
    for g in groups:
      ids, start = g[0]
      t = max(len(ids) for ids, _ in g) - (start - 1)
      # Contexts in steps of 16 tokens: their padding is run, where a continuation's is
      # short (and its attention reads the context's cache either way).
      key = (min(-(-(start - 1) // 16) * 16, self.max_len), bucket_len(t, self.max_len))
      by_shape.setdefault(key, []).append(g)
    for (P, t), gs in sorted(by_shape.items()):
      G = max(1, self.tokens_per_batch // P)
      yield [gs[i:i + G] for i in range(0, len(gs), G)], P, t

  def _run_prefixes(self, batches, P: int, t: int, totals: dict, advance):
    G = len(batches[0])
    O = G * max(len(g) for batch in batches for g in batch)  # continuation rows a batch
    for batch in batches:
      prefix = np.full((G, P), PAD_ID, np.int32)
      prefix[:, -1] = BOS_ID  # filler contexts hold one real token
      pad = np.full((G,), P - 1, np.int32)
      owner = np.zeros((O,), np.int32)
      suffix = np.full((O, t), PAD_ID, np.int32)
      target = np.zeros((O, t), np.int32)
      members = []  # (sequence, row, reads)
      for g, group in enumerate(batch):
        ids, start = group[0]
        c = start - 1
        prefix[g, P - c:], pad[g] = ids[:c], P - c
        self.stats["real_tokens"] += c
        self.stats["real_tokens_sq"] += c * c
        self.stats["shared_contexts"] += 1
        for ids, start in group:
          o = len(members)
          n = len(ids) - c  # the last context token, then the scored ones
          owner[o] = g
          suffix[o, :n] = ids[c:]
          target[o, :n - 1] = ids[c + 1:]
          members.append(((ids, start), o, n - 1))
          self.stats["real_tokens"] += n
          self.stats["real_tokens_sq"] += n * (c + n)
          self.stats["read_positions"] += n - 1
      self.stats["rows"] += G + O
      self.stats["padded_tokens"] += G * P + O * t
      logp_Ot = np.asarray(self._prefix(self.state, prefix, pad, owner, suffix, target),
                           np.float64)
      for key, o, reads in members:
        totals[key] += float(np.sum(logp_Ot[o, :reads]))
      advance(sum(reads for _, _, reads in members))


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
