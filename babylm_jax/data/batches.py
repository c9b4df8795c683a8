"""Training batches from a token store: packing, GPT-BERT masking, per-process slices.

The stream. Epoch e is every document of the store once, in an order drawn from (seed, e),
each prefixed by `<s>`; epochs follow each other without a gap, so the stream is endless
and nothing is padded. `data.order` (order.py) may sort each epoch's documents into stages
(domains, difficulty buckets) read one after another, shuffled within each.

Rows. A phase (steps [start, end) of one shape: R rows of length T, see config.Phase) reads
the stream positions [base, base + (end-start)*R*T), base = derived.tokens_before(start), cut
into rows of T+1 tokens that overlap by one: logical row j of the phase covers
[base + j*T, base + (j+1)*T]. Step s reads the phase's logical rows [(s-start)*R,
(s-start+1)*R). Phases change with the sequence length and with each level of a batch-size
ramp; the stream runs on through them without a gap. With `data.shuffle_rows` (the default)
a logical row is mapped to a physical row by a permutation drawn from (seed, phase, epoch)
over the rows that start in the same epoch, so each step is a random sample of that epoch's
rows (many documents, all domains), and every row of an epoch is read exactly once; without
it, step s reads the stream from derived.tokens_before(s) on, in order. Under an order with
stages the permutation is drawn from (seed, phase, epoch, stage) over the rows that start in
one stage of one epoch, so the stages keep their sequence and rows mix only within a stage.
Input is a row's first T tokens, targets its last T. A row that starts inside a document
starts with `<s>` instead of that token (which is the last target of the row before it in the
stream), so every segment of a row begins with `<s>`; segment ids count segments from 1.
A new epoch's order moves every document to a new offset, so rows are cut differently each
epoch.

Words seen are exact: the words of the rows actually read, counted per row (in the track's
unit: whitespace words, or English-equivalent words on the multilingual track, languages.py).

Everything about step s is a pure function of (seed, s, config, store): the per-row random
numbers come from a counter-based generator (Philox) keyed by (seed, step) and advanced to the
first row of this process, so a row's objective and mask do not depend on how many processes
share the step. Nothing here touches a device.

Masking: the masker of `objective.masking` (masking.py) picks tokens of the rows that are not
causal (never special tokens nor segment starts) and corrupts them (`<mask>`, a random token or
unchanged, once per span). Bernoulli spans with objective.max_span = 1 are BERT/RoBERTa's
token-level dynamic masking: drawn anew from (seed, step) every time a row is read.

What a row becomes depends on `objective.kind` (one rule each, below; the objective modules in
babylm_jax/train/objectives/ name theirs):
- hybrid (GPT-BERT): a row is causal with probability `causal_fraction`, else masked. The
  target at position k is token k+1. Causal rows score every target inside the same document;
  masked rows score position k when token k+1 was chosen (masked-next-token prediction).
- causal: the hybrid rule with every row causal.
- masked: no row causal; the target at position k is token k itself, scored when it was
  chosen. The row's last token is read by no input (the next row starts with `<s>` in its
  place), so words seen may count one word per row that was not shown: a bound from above.
- bootstrap: as masked, but every chosen token is a `<mask>` hole (never random or kept).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Iterator

import numpy as np

from babylm_jax import config as config_lib
from babylm_jax.config import BOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, Derived
from babylm_jax.data import order as order_lib
from babylm_jax.data.masking import Masked, make_masker
from babylm_jax.errors import ConfigError

_TWO_POW_M53 = 2.0 ** -53


# objective.kind -> the fraction of its rows that are causal, where the objective fixes it
# (hybrid reads objective.causal_fraction).
CAUSAL_FRACTIONS = {"causal": 1.0, "masked": 0.0, "bootstrap": 0.0}


@dataclasses.dataclass(frozen=True)
class Rows:
  """A step's rows as drawn and masked, before an objective's rule turns them into a batch."""
  tokens: np.ndarray  # [b, T + 1] int32 stream tokens, <s> first
  starts: np.ndarray  # [b, T + 1] bool segment starts (each at a <s>)
  is_causal: np.ndarray  # [b] bool
  masked: Masked  # what the masker chose (in the rows not causal) and the corrupted tokens

  @property
  def length(self) -> int:
    return self.tokens.shape[1] - 1


def _batch(rows: Rows, inputs, targets, loss_mask) -> dict[str, np.ndarray]:
  T = rows.length
  return dict(input_ids=np.ascontiguousarray(inputs, np.int32),
              targets=np.ascontiguousarray(targets), loss_mask=loss_mask,
              segment_ids=np.cumsum(rows.starts[:, :T], axis=1, dtype=np.int32),
              is_causal=rows.is_causal)


def hybrid_rows(rows: Rows) -> dict[str, np.ndarray]:
  """GPT-BERT: causal rows and masked-next-token rows (and the causal objective's rows)."""
  T = rows.length
  loss_mask = np.where(rows.is_causal[:, None], ~rows.starts[:, 1:], rows.masked.chosen[:, 1:])
  return _batch(rows, rows.masked.tokens[:, :T], rows.tokens[:, 1:], loss_mask)


def masked_rows(rows: Rows) -> dict[str, np.ndarray]:
  """BERT-style: a chosen token is predicted at its own position."""
  T = rows.length
  return _batch(rows, rows.masked.tokens[:, :T], rows.tokens[:, :T], rows.masked.chosen[:, :T])


def hole_rows(rows: Rows) -> dict[str, np.ndarray]:
  """BootBERT: as masked_rows, but every chosen token is a <mask> hole."""
  T = rows.length
  chosen = rows.masked.chosen[:, :T]
  return _batch(rows, np.where(chosen, MASK_ID, rows.tokens[:, :T]), rows.tokens[:, :T], chosen)


ROW_RULES = {"hybrid": hybrid_rows, "causal": hybrid_rows, "masked": masked_rows,
             "bootstrap": hole_rows}


class BatchSource:
  """Batches for each step of a run from one token store (see the module docstring)."""

  def __init__(self, store, config, derived: Derived, *, process_index: int = 0,
               process_count: int = 1, causal_fraction: float | None = None,
               mask_rate: float | None = None, seed_offset: int = 0, order: str | None = None):
    if store.num_docs == 0 or store.num_tokens == 0:
      raise ConfigError("the token store is empty; run --mode=prepare on a corpus with text.")
    for p in derived.phases:
      if p.batch_rows % process_count:
        raise ConfigError(
            f"steps {p.start}-{p.end - 1} have {p.batch_rows} rows of length {p.seq_len}, which "
            f"{process_count} processes cannot share evenly; change train.tokens_per_step (or "
            f"the batch-size ramp).")
    self.store = store
    self.config = config
    self.derived = derived
    self.process_index, self.process_count = process_index, process_count
    o = config.objective
    self.causal_fraction = CAUSAL_FRACTIONS.get(
        o.kind, o.causal_fraction if causal_fraction is None else causal_fraction)
    self.make_batch = ROW_RULES[o.kind]
    self.fixed_mask_rate = mask_rate
    self.masker = make_masker(o, store.vocab_size)
    self.anti_repeat = bool(o.anti_repeat)
    self._history: dict[int, np.ndarray] = {}
    self._history_lock = threading.RLock()
    self.seed = (int(config.seed), int(seed_offset))
    self.vocab_size = int(store.vocab_size)
    self._doc_offsets = np.asarray(store.doc_offsets, np.int64)
    self._doc_lens = np.diff(self._doc_offsets)
    self._doc_words = np.asarray(store.doc_words, np.int64)
    self.stream_len = int(store.num_tokens + store.num_docs)  # one <s> per document
    self.epoch_words = int(self._doc_words.sum())
    self.shuffle_rows = bool(config.data.shuffle_rows)
    # data.order (or `order`): each document's stage and where the stages start in an epoch.
    self.doc_stage, self.num_stages = order_lib.stages(store, config, order)
    self.stage_bounds = order_lib.stage_bounds(self.doc_stage, self.num_stages, self._doc_lens)
    self._epochs: dict[int, tuple] = {}
    self._blocks: dict[tuple, tuple] = {}
    self._lock = threading.Lock()

  # ------------------------------------------------------------------ the stream

  def _epoch(self, e: int):
    """(document order, segment starts [n+1], cumulative words [n+1]) of epoch e."""
    with self._lock:
      hit = self._epochs.get(e)
      if hit is None:
        order = order_lib.epoch_order(self.seed, e, self.doc_stage, self.num_stages)
        starts = np.zeros(len(order) + 1, np.int64)
        np.cumsum(self._doc_lens[order] + 1, out=starts[1:])
        words = np.zeros(len(order) + 1, np.int64)
        np.cumsum(self._doc_words[order], out=words[1:])
        hit = (order, starts, words)
        if len(self._epochs) >= 3:
          self._epochs.pop(min(self._epochs))
        self._epochs[e] = hit
      return hit

  def lookup(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream positions (any int array): (token ids int32, is segment start bool, store index
    int64 of each token, -1 for the <s> that precedes each document), shaped like `pos`."""
    pos = np.asarray(pos, np.int64)
    flat = pos.reshape(-1)
    index = np.empty(flat.shape, np.int64)
    epochs, q = np.divmod(flat, self.stream_len)
    unique = np.unique(epochs)
    for e in unique:
      sel = slice(None) if len(unique) == 1 else epochs == e
      order, starts, _ = self._epoch(int(e))
      qe = q[sel]
      d = np.searchsorted(starts, qe, "right") - 1
      j = qe - starts[d]  # offset inside the segment; 0 is its <s>
      index[sel] = np.where(j > 0, self._doc_offsets[order[d]] + j - 1, -1)
    tok = np.where(index >= 0, self.store.tokens[np.maximum(index, 0)], BOS_ID).astype(np.int32)
    shape = pos.shape
    return tok.reshape(shape), (index < 0).reshape(shape), index.reshape(shape)

  def documents_at(self, pos: np.ndarray) -> np.ndarray:
    """The store document (int64) whose segment (its <s> and tokens) holds each stream
    position, shaped like `pos`."""
    pos = np.asarray(pos, np.int64)
    epochs, q = np.divmod(pos.reshape(-1), self.stream_len)
    out = np.empty(q.shape, np.int64)
    for e in np.unique(epochs):
      sel = epochs == e
      order, starts, _ = self._epoch(int(e))
      out[sel] = order[np.searchsorted(starts, q[sel], "right") - 1]
    return out.reshape(pos.shape)

  def stream(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream positions [a, b) (see `lookup`)."""
    return self.lookup(np.arange(a, b, dtype=np.int64))

  def _word_prefix(self, index: np.ndarray) -> np.ndarray:
    """For store indices i (0..num_tokens), the words starting in tokens [0, i) (a token may
    start several English-equivalent words in a multilingual store, so flags are summed)."""
    index = np.asarray(index, np.int64)
    order = np.argsort(index, kind="stable")
    sorted_i = index[order]
    ws = self.store.word_starts
    inner = sorted_i[sorted_i < len(ws)]
    counts = np.zeros(len(sorted_i), np.int64)
    if len(inner):
      # Word starts between consecutive query points, one pass over the flags.
      sums = np.add.reduceat(ws, inner, dtype=np.int64)
      between = np.zeros(len(inner), np.int64)
      between[1:] = sums[:-1]
      between[0] = int(ws[:inner[0]].sum(dtype=np.int64))
      # reduceat of equal neighbours yields the element itself, not 0: fix those.
      same = np.zeros(len(inner), bool)
      same[1:] = inner[1:] == inner[:-1]
      between[same] = 0
      counts[:len(inner)] = np.cumsum(between)
    if len(inner) < len(sorted_i):
      counts[len(inner):] = int(ws.sum(dtype=np.int64))
    out = np.empty(len(index), np.int64)
    out[order] = counts
    return out

  def words_at_many(self, pos: np.ndarray) -> np.ndarray:
    """words_at for an int array of stream positions."""
    pos = np.asarray(pos, np.int64).reshape(-1)
    out = np.empty(len(pos), np.int64)
    epochs, q = np.divmod(pos, self.stream_len)
    for e in np.unique(epochs):
      sel = epochs == e
      order, starts, words = self._epoch(int(e))
      d = np.searchsorted(starts, q[sel], "right") - 1
      inside = np.maximum(0, q[sel] - starts[d] - 1)  # tokens of document d already read
      first = np.where(d < len(order), self._doc_offsets[order[np.minimum(d, len(order) - 1)]],
                       0)
      part = self._word_prefix(first + inside) - self._word_prefix(first)
      out[sel] = e * self.epoch_words + words[d] + part
    return out

  def words_at(self, pos: int) -> int:
    """Exact whitespace words of the stream positions [0, pos)."""
    e, q = divmod(int(pos), self.stream_len)
    order, starts, words = self._epoch(e)
    d = int(np.searchsorted(starts, q, "right")) - 1
    inside = max(0, q - int(starts[d]) - 1)  # tokens of document d already read
    first = int(self._doc_offsets[order[d]]) if d < len(order) else 0
    part = int(self.store.word_starts[first:first + inside].sum(dtype=np.int64))
    return e * self.epoch_words + int(words[d]) + part

  # ------------------------------------------------------------------ rows

  def _phase_index(self, step: int) -> int:
    for i, p in enumerate(self.derived.phases):
      if step < p.end:
        return i
    return len(self.derived.phases) - 1

  def _block(self, phase_index: int, j: int):
    """The shuffle block of logical row j of a phase: the rows starting in one stage of one
    epoch (one stage: the whole epoch).

    Returns (first row, permutation of the block's rows, cumulative words of the rows in the
    order they are read, with a leading 0)."""
    p = self.derived.phases[phase_index]
    T, base = p.seq_len, self.derived.tokens_before(p.start)
    n_rows = (p.end - p.start) * p.batch_rows
    e, q = divmod(base + j * T, self.stream_len)
    k = int(np.searchsorted(self.stage_bounds, q, "right")) - 1  # empty stages are skipped
    key = (phase_index, e, k)
    with self._lock:
      hit = self._blocks.get(key)
    if hit is None:
      def first_row_of(pos):  # the first logical row that starts at or after stream pos
        return min(max(0, -(-(pos - base) // T)), n_rows)
      epoch_start = e * self.stream_len
      ja = first_row_of(epoch_start + int(self.stage_bounds[k]))
      jb = first_row_of(epoch_start + int(self.stage_bounds[k + 1]))
      stage = [k] if self.num_stages > 1 else []  # one stage: the shuffled order's own draws
      perm = np.random.default_rng([*self.seed, 0x5A0F, phase_index, e, *stage]).permutation(
          jb - ja)
      bounds = self.words_at_many(base + np.arange(ja, jb + 1, dtype=np.int64) * T + 1)
      row_words = np.diff(bounds)[perm]
      cum = np.zeros(jb - ja + 1, np.int64)
      np.cumsum(row_words, out=cum[1:])
      cum += bounds[0]
      hit = (ja, perm, cum)
      with self._lock:
        if len(self._blocks) >= 4:
          self._blocks.pop(next(iter(self._blocks)))
        self._blocks[key] = hit
    return hit

  def row_starts(self, step: int, first: int = 0, count: int | None = None) -> np.ndarray:
    """Stream positions where rows [first, first + count) of `step` start (int64)."""
    i = self._phase_index(step)
    p = self.derived.phases[i]
    T = p.seq_len
    count = p.batch_rows - first if count is None else count
    base = self.derived.tokens_before(p.start)
    j = (step - p.start) * p.batch_rows + first + np.arange(count, dtype=np.int64)
    if self.shuffle_rows:
      phys = np.empty_like(j)
      done = 0
      while done < count:  # at most two blocks per step (an epoch boundary)
        ja, perm, _ = self._block(i, int(j[done]))
        n = min(count - done, ja + len(perm) - int(j[done]))
        phys[done:done + n] = ja + perm[j[done:done + n] - ja]
        done += n
      j = phys
    return base + j * T

  def words_before(self, step: int) -> int:
    """Exact words of the text read (as targets) by global steps [0, step)."""
    # A row's words are those of its targets, stream positions [start + 1, start + T + 1).
    if step <= 0:
      return 0
    step = min(step, self.derived.total_steps)  # past the schedule nothing more is read
    if not self.shuffle_rows:
      return self.words_at(self.derived.tokens_before(step) + 1)
    i = self._phase_index(step - 1)
    p = self.derived.phases[i]
    j = (step - p.start) * p.batch_rows  # logical rows of the phase read, >= 1
    ja, perm, cum = self._block(i, j - 1)
    return int(cum[j - ja])

  # ------------------------------------------------------------------ batches

  def mask_rate(self, step: int) -> float:
    if self.fixed_mask_rate is not None:
      return float(self.fixed_mask_rate)
    return config_lib.mask_rate(self.config, step, self.derived.total_steps)

  def _uniforms(self, step: int, first_row: int, rows: int, per_row: int) -> np.ndarray:
    key = np.random.SeedSequence([*self.seed, 0x5EED, step]).generate_state(2, np.uint64)
    bits = np.random.Philox(key=key)
    bits.advance(first_row * per_row // 4)  # Philox yields 4 words per counter step
    raw = bits.random_raw(rows * per_row).reshape(rows, per_row)
    return (raw >> np.uint64(11)).astype(np.float64) * _TWO_POW_M53

  def _masked_rows(self, step: int, T: int, starts: np.ndarray, u: np.ndarray, history=None):
    """The rows of length T + 1 at stream positions `starts`, with their uniforms `u`: (tokens,
    segment starts, store indices, is_causal, Masked). `history` maps the rows' store indices
    to earlier mask counts (see `_history_rows`)."""
    tok_r, start_r, index = self.lookup(starts[:, None] + np.arange(T + 1)[None, :])
    tok_r[:, 0] = BOS_ID  # a row that starts inside a document starts a new segment
    start_r[:, 0] = True
    is_causal = u[:, -1] < self.causal_fraction
    eligible = ~start_r & (tok_r >= NUM_SPECIAL_TOKENS) & ~is_causal[:, None]
    k = self.masker.uniforms_per_row(T + 1)
    m = self.masker(u[:, :k], tok_r, eligible, start_r, self.mask_rate(step),
                    None if history is None else history(starts, index))
    return tok_r, start_r, index, is_causal, m

  def _row_uniforms(self, step: int, T: int, first_row: int, rows: int) -> np.ndarray:
    """The masker's uniforms and one for the row's objective (last), per row."""
    per_row = -(-(self.masker.uniforms_per_row(T + 1) + 1) // 4) * 4
    return self._uniforms(step, first_row, rows, per_row)

  def batch(self, step: int, *, with_spans: bool = False) -> dict[str, np.ndarray]:
    """This process's rows of the global batch of `step` (see the module docstring)."""
    phase = self.derived.phase_at(step)
    T = phase.seq_len
    b = phase.batch_rows // self.process_count
    r0 = self.process_index * b
    starts = self.row_starts(step, r0, b)
    tok_r, start_r, index, is_causal, m = self._masked_rows(
        step, T, starts, self._row_uniforms(step, T, r0, b),
        self._history_rows if self.anti_repeat else None)
    out = self.make_batch(Rows(tokens=tok_r, starts=start_r, is_causal=is_causal, masked=m))
    if with_spans:  # for tests: what span masking chose, before corruption
      out.update(chosen=m.chosen, decision=m.decision, original=tok_r, store_index=index,
                 **m.spans)
    return out

  # ------------------------------------------------------------------ mask history

  def _history_rows(self, starts: np.ndarray, index: np.ndarray) -> np.ndarray:
    """[b, T+1] earlier mask counts of the rows' tokens: those of the epoch each row starts
    in (0 for the <s> before a document)."""
    out = np.zeros(index.shape, np.uint8)
    row_epoch = starts // self.stream_len
    for e in np.unique(row_epoch):
      if e == 0:
        continue
      counts = self.mask_history(int(e))
      sel = row_epoch == e
      idx = index[sel]
      out[sel] = np.where(idx >= 0, counts[np.maximum(idx, 0)], 0)
    return out

  def mask_history(self, epoch: int) -> np.ndarray:
    """uint8 [num_tokens]: how often each store token was masked by the rows that start in
    epochs before `epoch` (saturating at 255).

    The counts are replayed, not stored: the rows that start in an epoch, their uniforms and
    their masks are pure functions of (seed, step, config, store) given the counts before that
    epoch, so the counts of any epoch are recomputed from epoch 0 on. A run computes each
    epoch's counts once (at its first batch in that epoch) and a resumed run recomputes them,
    which costs about one pass of batch building per epoch before the resumed step."""
    with self._history_lock:
      if epoch in self._history:
        return self._history[epoch]
      known = max((e for e in self._history if e <= epoch), default=0)
      counts = self._history.get(known, np.zeros(self.store.num_tokens, np.uint8))
      for e in range(known, epoch):
        hits = np.zeros_like(counts)  # at most 2 per token: its own row and a straddling one
        np.add.at(hits, self._masked_in_epoch(e, counts), 1)
        counts = counts + np.minimum(hits, 255 - counts)
        self._history[e + 1] = counts
        while len(self._history) > 3:
          self._history.pop(min(self._history))
      return counts

  def _step_reading(self, pos: int) -> int:
    """The step whose rows (logically, before shuffling) include the row starting at `pos`."""
    lo, hi = 0, self.derived.total_steps
    while lo < hi:  # the last step s with tokens_before(s) <= pos
      mid = (lo + hi + 1) // 2
      lo, hi = (mid, hi) if self.derived.tokens_before(mid) <= pos else (lo, mid - 1)
    return lo

  def _masked_in_epoch(self, e: int, counts: np.ndarray) -> np.ndarray:
    """Store indices masked by the rows (of every process) that start in epoch e, given the
    counts before it. Shuffling keeps a row in the epoch where it starts, so these rows belong
    to the steps that read the stream around the epoch."""
    L = self.stream_len
    first = self._step_reading(e * L)
    last = self._step_reading((e + 1) * L - 1)
    history = lambda starts, index: np.where(index >= 0, counts[np.maximum(index, 0)], 0)
    out = []
    for step in range(first, min(last, self.derived.total_steps - 1) + 1):
      p = self.derived.phase_at(step)
      starts = self.row_starts(step)
      sel = np.flatnonzero(starts // L == e)
      if len(sel) == 0:
        continue
      u = self._row_uniforms(step, p.seq_len, 0, p.batch_rows)[sel]
      _, _, index, _, m = self._masked_rows(step, p.seq_len, starts[sel], u, history)
      out.append(index[m.chosen])
    return np.concatenate(out) if out else np.zeros(0, np.int64)

  def iterator(self, start_step: int, end_step: int) -> Iterator[tuple[int, dict]]:
    """(step, batch(step)) for steps [start_step, end_step), built ahead by grain threads."""
    import grain
    prefetch = max(1, int(self.config.train.prefetch))
    ds = grain.MapDataset.range(start_step, end_step).map(lambda s: (s, self.batch(s)))
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=prefetch,
                                              prefetch_buffer_size=prefetch))
    for step, batch in it:
      yield int(step), batch
