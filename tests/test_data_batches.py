"""Batches from a real token store: packing, segments, GPT-BERT masking, determinism, slices."""

import numpy as np
import pytest

from babylm_jax import config as config_lib
from babylm_jax.config import BOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, base_config
from babylm_jax.data.batches import BatchSource
from babylm_jax.data.prepare import prepare_data
from babylm_jax.errors import ConfigError
from conftest import data_path

T = 128


def _config(cache):
  c = base_config()
  c.data.path = str(data_path("babylm_text", "train_100k"))
  c.data.cache_dir = str(cache)
  c.model.vocab_size = 512
  c.train.tokens_per_step = 8 * 1024
  c.train.seq_lens = (T, 256)
  c.train.seq_len_fractions = (0.5, 0.5)
  c.train.steps = 1000
  return c


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  c = _config(tmp_path_factory.mktemp("cache"))
  p = prepare_data(c)
  return c, p, config_lib.derive(c)


@pytest.fixture(scope="module")
def source(setup):
  c, p, d = setup
  return BatchSource(p.train, c, d)


def _many(source, steps):
  out = [source.batch(s, with_spans=True) for s in steps]
  return {k: np.concatenate([b[k] for b in out]) for k in out[0]}


def test_shapes_dtypes_and_phases(source, setup):
  c, _, d = setup
  first, last = source.batch(0), source.batch(d.total_steps - 1)
  assert first["input_ids"].shape == (64, T) and last["input_ids"].shape == (32, 256)
  for b in (first, last):
    assert b["input_ids"].dtype == np.int32 and b["targets"].dtype == np.int32
    assert b["loss_mask"].dtype == bool and b["is_causal"].dtype == bool
    assert b["segment_ids"].dtype == np.int32
    assert b["input_ids"].size == c.train.tokens_per_step


def _check_rows(b, starts, source):
  """Each row is the stream at its start position, with <s> first and segments at <s>."""
  tok, _, index = source.lookup(starts[:, None] + np.arange(T + 1)[None, :])
  rows = b["original"]
  assert (rows[:, 1:] == tok[:, 1:]).all()  # every stream token of the row is a target once
  assert (rows[:, 0] == BOS_ID).all()
  assert (b["segment_ids"] >= 1).all()  # no padding
  # Segment ids step exactly at <s>; within a segment the store indices are consecutive,
  # so a segment never mixes documents.
  seg = b["segment_ids"]
  seg_starts = np.concatenate([np.ones((len(seg), 1), bool), seg[:, 1:] != seg[:, :-1]], 1)
  assert (seg_starts == (rows[:, :T] == BOS_ID)).all()
  inner = ~seg_starts[:, 1:] & ~seg_starts[:, :-1]
  assert (np.diff(index[:, :T], axis=1)[inner] == 1).all()


def test_contiguous_rows_are_the_stream_cut_with_one_token_overlap(setup):
  c, p, d = setup
  c = _config(c.data.cache_dir)
  c.data.shuffle_rows = False
  source = BatchSource(p.train, c, d)
  for step in (0, 7):
    b = source.batch(step, with_spans=True)
    starts = source.row_starts(step)
    assert (starts == step * 8192 + np.arange(64) * T).all()
    _check_rows(b, starts, source)


def test_shuffled_rows_are_whole_stream_rows(source):
  for step in (0, 7, 480):
    b = source.batch(step, with_spans=True)
    starts = source.row_starts(step)
    assert (starts % T == 0).all() and len(np.unique(starts)) == len(starts)
    _check_rows(b, starts, source)


def test_every_row_of_an_epoch_is_read_once(source):
  """Steps of the first phase read each row starting in epoch 0 exactly once, in an order
  that is not the stream's."""
  L = source.stream_len
  rows_in_epoch = -(-L // T)
  steps = -(-rows_in_epoch // 64) + 1
  starts = np.concatenate([source.row_starts(s) for s in range(steps)])
  first_epoch = np.sort(starts[starts < L])
  assert (first_epoch == np.arange(rows_in_epoch) * T).all()
  assert not (starts[:64] == np.arange(64) * T).all()
  # Phase two (length 256) is shuffled too and starts where phase one stopped.
  phase = source.derived.phases[1]
  s2 = source.row_starts(phase.start)
  assert ((s2 - phase.start * 8192) % 256 == 0).all() and (s2 >= phase.start * 8192).all()


def _docs_of_rows(source, starts):
  """The store document of each row's first real token."""
  _, _, index = source.lookup(starts[:, None] + np.arange(1, T + 1)[None, :])
  first = np.array([r[r >= 0][0] for r in index])
  return np.searchsorted(source._doc_offsets, first, "right") - 1


def test_a_step_draws_rows_from_many_documents(source, setup):
  """The expected number of distinct documents among R rows drawn without replacement from the
  epoch's N rows is sum_d 1 - C(N - n_d, R) / C(N, R) (n_d: rows of document d); the
  measured mean over 20 steps matches it, far above the contiguous layout's."""
  c, p, d = setup
  L, R = source.stream_len, 64
  all_rows = np.arange(L // T) * T
  n_d = np.bincount(_docs_of_rows(source, all_rows), minlength=source.store.num_docs)
  N = len(all_rows)
  # C(N - n, R) / C(N, R) = prod_{i<R} (N - n - i) / (N - i)
  i = np.arange(R)
  miss = np.prod(np.clip((N - n_d[:, None] - i[None]) / (N - i[None]), 0, None), axis=1)
  expected = float(np.sum(1 - miss))
  measured = np.mean([len(np.unique(_docs_of_rows(source, source.row_starts(s))))
                      for s in range(20)])
  c2 = _config(c.data.cache_dir)
  c2.data.shuffle_rows = False
  contiguous = BatchSource(p.train, c2, d)
  measured_contiguous = np.mean([len(np.unique(_docs_of_rows(contiguous,
                                                              contiguous.row_starts(s))))
                                 for s in range(20)])
  print(f"distinct documents per step: expected {expected:.1f}, shuffled {measured:.1f}, "
        f"contiguous {measured_contiguous:.1f} ({source.store.num_docs} documents)")
  assert abs(measured - expected) < 0.05 * expected
  assert measured > 4 * measured_contiguous


def test_an_epoch_holds_every_token_once_and_the_next_is_reordered(source):
  L = source.stream_len
  tok, is_start, index = source.stream(0, L)
  assert is_start.sum() == source.store.num_docs
  assert (np.sort(index[index >= 0]) == np.arange(source.store.num_tokens)).all()
  assert (tok[index >= 0] == source.store.tokens[index[index >= 0]]).all()
  _, start2, index2 = source.stream(L, 2 * L)
  assert (np.sort(index2[index2 >= 0]) == np.arange(source.store.num_tokens)).all()
  assert not (index2 == index).all()  # documents land at new offsets: rows are cut anew


def test_words_at_is_exact(source, setup):
  _, p, _ = setup
  L = source.stream_len
  assert source.words_at(L) == p.train.num_words
  assert source.words_at(3 * L) == 3 * p.train.num_words
  positions = (0, 1, 12345, L - 1, L + 777)
  for pos in positions:
    _, _, index = source.stream(0, pos)
    flags = p.train.word_starts[index[index >= 0]]
    assert source.words_at(pos) == int(flags.sum())
  assert (source.words_at_many(np.array(positions)) == [source.words_at(x) for x in positions]
          ).all()


@pytest.mark.parametrize("shuffle", [True, False])
def test_words_before_counts_the_rows_read(setup, shuffle):
  """words_before(s) == word starts among the tokens read as targets by steps [0, s), including
  steps that end inside a shuffle block and after an epoch boundary."""
  c, p, d = setup
  c = _config(c.data.cache_dir)
  c.data.shuffle_rows = shuffle
  source = BatchSource(p.train, c, d)
  total, checked = 0, []
  boundary = source.stream_len // 8192 + 1  # the first step past epoch 0
  for s in range(boundary + 3):
    starts = source.row_starts(s)
    _, _, index = source.lookup(starts[:, None] + np.arange(1, T + 1)[None, :])
    total += int(p.train.word_starts[index[index >= 0]].sum())
    if s in (0, 1, 5, boundary - 1, boundary, boundary + 2):
      checked.append(s)
      assert source.words_before(s + 1) == total, s
  assert len(checked) == 6
  w = [source.words_before(s) for s in range(0, 200, 10)]
  assert all(a < b for a, b in zip(w, w[1:]))
  assert source.words_before(d.total_steps + 5) == source.words_before(d.total_steps)


def test_mask_rate_spans_and_special_tokens(source, setup):
  c, _, d = setup
  for steps, rate in ((range(0, 8), config_lib.mask_rate(c, 0, d.total_steps)),
                      (range(992, 1000), config_lib.mask_rate(c, 996, d.total_steps))):
    b = _many(source, steps)
    masked = ~b["is_causal"]
    orig, chosen = b["original"][masked], b["chosen"][masked]
    eligible = (orig >= NUM_SPECIAL_TOKENS)
    assert not (chosen & ~eligible).any()  # specials (<s> included) are never chosen
    measured = chosen.sum() / eligible.sum()
    assert abs(measured - rate) < 0.01, (measured, rate)
    # Span lengths lie in 1..3 and the chosen tokens are exactly the spans' union.
    lengths = b["span_lengths"][masked][b["span_starts"][masked]]
    assert lengths.min() == 1 and lengths.max() == 3
    assert (abs(np.bincount(lengths)[1:] / len(lengths) - 1 / 3) < 0.02).all()  # uniform
    union = np.zeros((chosen.shape[0], chosen.shape[1] + 4), bool)
    r, s = np.nonzero(b["span_starts"][masked])
    for row, start, n in zip(r, s, b["span_lengths"][masked][r, s]):
      union[row, start:start + n] = True
    assert (union[:, 2:2 + chosen.shape[1]] & eligible == chosen).all()
    # Inputs: <mask> 80%, random 10%, unchanged 10% of the chosen positions.
    inp = b["input_ids"][masked]
    ch = chosen[:, :-1]
    sel_in, sel_orig = inp[ch], orig[:, :-1][ch]
    frac_mask = (sel_in == MASK_ID).mean()
    frac_same = (sel_in == sel_orig).mean()
    frac_random = 1 - frac_mask - frac_same
    assert abs(frac_mask - 0.8) < 0.02 and abs(frac_same - 0.1) < 0.02
    assert abs(frac_random - 0.1) < 0.02
    assert (sel_in[(sel_in != MASK_ID) & (sel_in != sel_orig)] >= NUM_SPECIAL_TOKENS).all()
    assert (inp[~ch] == orig[:, :-1][~ch]).all()  # nothing else is corrupted
    # Loss: position k is scored exactly when token k+1 was chosen.
    assert (b["loss_mask"][masked] == chosen[:, 1:]).all()


def test_causal_rows_and_their_fraction(source, setup):
  c, p, d = setup
  b = _many(source, range(0, 120))
  frac = b["is_causal"].mean()
  assert abs(frac - c.objective.causal_fraction) < 0.012, frac
  causal = b["is_causal"]
  orig = b["original"][causal]
  # Every next token inside the same document is a target; the next document's <s> is not.
  assert (b["loss_mask"][causal] == (orig[:, 1:] != BOS_ID)).all()
  assert (b["input_ids"][causal] == orig[:, :-1]).all()
  half = BatchSource(p.train, c, d, causal_fraction=0.5, mask_rate=0.15, seed_offset=1)
  hb = _many(half, range(0, 20))
  assert abs(hb["is_causal"].mean() - 0.5) < 0.06
  m = ~hb["is_causal"]
  eligible = hb["original"][m] >= NUM_SPECIAL_TOKENS
  assert abs(hb["chosen"][m].sum() / eligible.sum() - 0.15) < 0.01


def test_same_step_same_batch_other_step_other_batch(setup, source):
  c, p, d = setup
  fresh = BatchSource(p.train, c, d)
  for step in (3, 600):
    a, b = source.batch(step), fresh.batch(step)
    assert all((a[k] == b[k]).all() for k in a)
  a, b = source.batch(3), source.batch(4)
  assert not (a["input_ids"] == b["input_ids"]).all()
  c2 = _config(c.data.cache_dir)
  c2.seed = 1
  other_seed = BatchSource(p.train, c2, d).batch(3)
  assert not (other_seed["input_ids"] == a["input_ids"]).all()


def test_process_slices_cover_the_global_batch_once(setup, source):
  c, p, d = setup
  for step in (5, 999):
    whole = source.batch(step)
    parts = [BatchSource(p.train, c, d, process_index=i, process_count=4).batch(step)
             for i in range(4)]
    for k in whole:
      assert (np.concatenate([q[k] for q in parts]) == whole[k]).all(), k
  with pytest.raises(ConfigError, match="train.tokens_per_step"):
    BatchSource(p.train, c, d, process_count=3)


def test_grain_iterator_yields_the_batches_in_order(source):
  got = list(source.iterator(10, 16))
  assert [s for s, _ in got] == list(range(10, 16))
  for s, b in got:
    ref = source.batch(s)
    assert all((b[k] == ref[k]).all() for k in ref)


# ----------------------------------------------------------------------------- batch-size ramp


def _ramp_config(cache, shuffle=True):
  c = _config(cache)
  c.train.batch_ramp_start, c.train.batch_ramp_fraction = 0.25, 0.5
  c.data.shuffle_rows = shuffle
  return c


def test_ramped_steps_read_their_phase_shape_from_tokens_before(setup):
  """Without shuffling, step s reads R rows of length T from derived.tokens_before(s) on, R
  rising 16 -> 32 -> 48 -> 64 at T=128 over the first half of the steps."""
  c, p, _ = setup
  c = _ramp_config(c.data.cache_dir, shuffle=False)
  d = config_lib.derive(c)
  source = BatchSource(p.train, c, d)
  assert [(q.seq_len, q.batch_rows) for q in d.phases] == [(T, 16), (T, 32), (T, 48), (T, 64),
                                                          (256, 32)]
  for q in d.phases:
    for step in (q.start, q.end - 1):
      b = source.batch(step)
      assert b["input_ids"].shape == (q.batch_rows, q.seq_len)
      starts = source.row_starts(step)
      assert (starts == d.tokens_before(step) + np.arange(q.batch_rows) * q.seq_len).all()


def test_ramped_shuffled_steps_read_every_stream_token_once(setup):
  """Over the ramp's phases, the targets of all rows read cover the stream positions
  [1, tokens_before(end) + 1) exactly once, and words_before counts exactly those rows."""
  c, p, _ = setup
  c = _ramp_config(c.data.cache_dir)
  d = config_lib.derive(c)
  source = BatchSource(p.train, c, d)
  end = d.phases[2].end  # a phase end: its shuffle blocks are read whole
  covered = np.zeros(d.tokens_before(end) + 1, np.int64)
  words = 0
  for step in range(end):
    T_s = d.phase_at(step).seq_len
    starts = source.row_starts(step)
    pos = starts[:, None] + np.arange(1, T_s + 1)[None, :]
    np.add.at(covered, pos.ravel(), 1)
    _, _, index = source.lookup(pos)
    words += int(p.train.word_starts[index[index >= 0]].sum())
    if step in (0, d.phases[0].end - 1, d.phases[0].end, end - 1):
      assert source.words_before(step + 1) == words, step
  assert covered[0] == 0 and (covered[1:] == 1).all()


# ----------------------------------------------------------------------------- mask history


def test_mask_history_is_what_the_batches_masked(tmp_path):
  """With ranked masking and anti-repeat, mask_history(e) equals the counts of the store tokens
  that the batches of two processes actually masked in the rows starting before epoch e; a
  fresh source (a resumed run) builds the same batches; and a token masked in epoch 0 is
  masked less often in epoch 1 than one that was not."""
  c = _config(tmp_path)
  c.data.path = str(data_path("babylm_text", "train_100k", "bnc_spoken_dev.train"))
  c.train.tokens_per_step = 2048
  c.objective.masking, c.objective.anti_repeat = "ranked", True
  p = prepare_data(c)
  d = config_lib.derive(c)
  parts = [BatchSource(p.train, c, d, process_index=i, process_count=2) for i in range(2)]
  L = parts[0].stream_len
  end = parts[0]._step_reading(2 * L) + 1
  masked = {0: [], 1: []}
  for step in range(end):
    for i, src in enumerate(parts):
      b = src.batch(step, with_spans=True)
      R = d.phase_at(step).batch_rows // 2
      row_epoch = src.row_starts(step, i * R, R) // L
      for e in (0, 1):
        sel = (row_epoch == e)[:, None] & b["chosen"]
        masked[e].append(b["store_index"][sel])
  counts = [np.bincount(np.concatenate(masked[e]), minlength=p.train.num_tokens)
            for e in (0, 1)]
  np.testing.assert_array_equal(parts[0].mask_history(1), counts[0])
  np.testing.assert_array_equal(parts[1].mask_history(2), counts[0] + counts[1])
  fresh = BatchSource(p.train, c, d, process_index=1, process_count=2)
  a, b = fresh.batch(end - 1), parts[1].batch(end - 1)
  assert all((a[k] == b[k]).all() for k in a)
  again = counts[1][counts[0] == 1].mean()
  first = counts[1][counts[0] == 0].mean()
  print(f"masked in epoch 1: {again:.3f} of the tokens masked in epoch 0, {first:.3f} of the "
        f"others")
  assert again < 0.7 * first
