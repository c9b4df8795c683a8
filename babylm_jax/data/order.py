"""The order of the text within an epoch (`data.order`): shuffled, by domain, by difficulty.

An order is defined over documents, then packed. Each document of the store gets a stage
(`stages`): 0 for all under 'shuffled'; its domain's place in `data.order_domains` under
'domains'; its difficulty bucket under 'difficulty'. Epoch e's document order is a random
permutation drawn from (seed, e), stably sorted by stage (`epoch_order`): the stages follow
each other and the documents inside a stage are shuffled anew each epoch. Every epoch repeats
the sequence of stages.

The batches (batches.py) cut that stream into rows and read the rows that start in one stage
of one epoch in a random order before any row of the next stage. A stage holds the same
documents every epoch, so its span of stream positions within an epoch (`stage_bounds`) is
the same every epoch and a row's stage follows from its start position alone: which rows a
step reads stays a pure function of (seed, step, config, store), every row of an epoch is read
once, and words seen stay exact. A row that starts near the end of a stage may end in the next
one; it is read with the stage it starts in.

Difficulty is a document's mean unigram surprisal in nats per token, -log(count(t) / N)
averaged over its tokens t, with count and N from the training store itself: documents of
frequent words (child-directed speech, dialogue) come first, those with rare words
(encyclopedia, old novels) last. Each token's surprisal is rounded to 2^-16 nats and summed as
an integer, so every host of a run sorts the documents the same way whatever its floating
point. Documents are sorted by score (ties by store index) and cut into `data.order_buckets`
buckets of about equal stream tokens; an empty document scores 0.

BabyLM 2023 (Warstadt et al., findings) saw most curriculum learning submissions do no better
than their shuffled baselines; these orders are there to measure that, not on faith.
"""

from __future__ import annotations

import math

import numpy as np

from babylm_jax import config as config_lib
from babylm_jax.errors import ConfigError

_CHUNK = 1 << 22  # tokens per pass over the store (bounds the memory of the integer sums)
_SCALE = 1 << 16  # surprisal units per nat


def stages(store, config, order: str | None = None) -> tuple[np.ndarray, int]:
  """(stage of each document int64 [num_docs], number of stages) for `order` (default
  data.order)."""
  order = order or config.data.order
  if order == "shuffled":
    return np.zeros(store.num_docs, np.int64), 1
  if order == "domains":
    names = config_lib.order_domains(config.data)
    missing = [d for d in store.domains if d not in names]
    if missing:
      raise ConfigError(
          f"data.order_domains does not name the store's domain(s) {', '.join(missing)}; "
          f"list every one of {','.join(store.domains)} in the order to read them.")
    unknown = [n for n in names if n not in store.domains]
    if unknown:
      raise ConfigError(
          f"data.order_domains names {', '.join(unknown)}, which the store does not hold; "
          f"its domains are {','.join(store.domains)}.")
    rank = np.array([names.index(d) for d in store.domains], np.int64)
    return rank[np.asarray(store.doc_domains, np.int64)], len(names)
  if order == "difficulty":
    buckets = int(config.data.order_buckets)
    return difficulty_buckets(unigram_surprisal(store), np.diff(store.doc_offsets), buckets), \
        buckets
  raise ConfigError(f"data.order '{order}' is unknown; use one of "
                    f"{', '.join(config_lib.DATA_ORDERS)}.")


def unigram_surprisal(store) -> np.ndarray:
  """float64 [num_docs]: each document's mean surprisal in nats per token under the store's
  own unigram model (see the module docstring)."""
  tokens, offsets = store.tokens, np.asarray(store.doc_offsets, np.int64)
  n = len(tokens)
  counts = np.zeros(store.vocab_size, np.int64)
  for a in range(0, n, _CHUNK):
    counts += np.bincount(tokens[a:a + _CHUNK], minlength=store.vocab_size)[:store.vocab_size]
  # math.log, not numpy's vectorised log, so that hosts with other SIMD units agree.
  log_n = math.log(n) if n else 0.0
  table = np.array([round((log_n - math.log(c)) * _SCALE) if c else 0 for c in counts.tolist()],
                   np.int64)
  at_offsets = np.zeros(len(offsets), np.int64)  # integer surprisal of tokens [0, offset)
  running = 0
  for a in range(0, n, _CHUNK):
    b = min(n, a + _CHUNK)
    cum = np.cumsum(table[tokens[a:b]]) + running
    lo, hi = np.searchsorted(offsets, [a, b], "right")  # offsets in (a, b]
    at_offsets[lo:hi] = cum[offsets[lo:hi] - a - 1]
    running = int(cum[-1])
  lengths = np.diff(offsets)
  return np.diff(at_offsets) / np.maximum(lengths, 1) / _SCALE


def difficulty_buckets(scores: np.ndarray, doc_lens: np.ndarray, buckets: int) -> np.ndarray:
  """int64 [num_docs]: the bucket of each document, 0 the easiest; buckets of about equal
  stream tokens (a document and its <s>) in order of score, ties by store index."""
  by_score = np.argsort(scores, kind="stable")
  size = np.asarray(doc_lens, np.int64)[by_score] + 1
  before = np.cumsum(size) - size  # stream tokens of the easier documents
  out = np.empty(len(scores), np.int64)
  out[by_score] = np.minimum(buckets - 1, before * buckets // max(int(size.sum()), 1))
  return out


def stage_bounds(stage: np.ndarray, num_stages: int, doc_lens: np.ndarray) -> np.ndarray:
  """int64 [num_stages + 1]: where each stage starts in an epoch's stream (and the epoch's
  length last); every epoch has the same bounds."""
  size = np.zeros(num_stages, np.int64)
  np.add.at(size, stage, np.asarray(doc_lens, np.int64) + 1)
  bounds = np.zeros(num_stages + 1, np.int64)
  np.cumsum(size, out=bounds[1:])
  return bounds


def epoch_order(seed: tuple[int, int], epoch: int, stage: np.ndarray,
                num_stages: int) -> np.ndarray:
  """The documents of `epoch` in the order they are read (see the module docstring)."""
  perm = np.random.default_rng([*seed, 0x0E0C, epoch]).permutation(len(stage))
  if num_stages == 1:
    return perm
  return perm[np.argsort(stage[perm], kind="stable")]
