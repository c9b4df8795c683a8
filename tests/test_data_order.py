"""data.order on a real token store: each order holds and keeps the batches' guarantees.

For shuffled, domains and difficulty: every row of an epoch once, the same batch for the same
step, process slices that make up the global batch, exact words; and the curriculum itself:
domains in the given sequence each epoch, difficulty buckets easiest first, with the score
recomputed here from its definition. (Exact resume after SIGKILL: tests/test_train_resume_kinds.py.)
"""

import numpy as np
import pytest

from babylm_jax import config as config_lib
from babylm_jax.config import base_config
from babylm_jax.data import order as order_lib
from babylm_jax.data.batches import BatchSource
from babylm_jax.data.prepare import prepare_data
from babylm_jax.errors import ConfigError, UserError
from babylm_jax.train import checkpoint as ckpt_lib
from conftest import data_path

T, R = 128, 64
ORDERS = ("shuffled", "domains", "difficulty")
# train_100k's domains, speech first and encyclopedia last (the developmental curriculum).
DOMAINS = ("bnc_spoken_dev,bnc_spoken,open_subtitles_dev,open_subtitles,gutenberg_dev,gutenberg,"
           "simple_wiki_dev,simple_wiki")


def _config(cache, order="shuffled", **data):
  c = base_config()
  c.data.path = str(data_path("babylm_text", "train_100k"))
  c.data.cache_dir = str(cache)
  c.model.vocab_size = 512
  c.train.tokens_per_step = R * T
  c.train.seq_lens = (T, 256)
  c.train.seq_len_fractions = (0.5, 0.5)
  c.train.steps = 1000
  c.data.order, c.data.order_domains, c.data.order_buckets = order, DOMAINS, 4
  for k, v in data.items():
    c.data[k] = v
  return c


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def store(cache):
  return prepare_data(_config(cache)).train


def _source(store, cache, order, **kw):
  c = _config(cache, order, **{k: kw.pop(k) for k in list(kw) if k.startswith("order_")})
  return BatchSource(store, c, config_lib.derive(c), **kw)


def _read_order(source, steps):
  """(row start positions, the stage of each row's first segment) in the order read."""
  starts = np.concatenate([source.row_starts(s) for s in steps])
  return starts, source.doc_stage[source.documents_at(starts)]


def _epoch_steps(source, epochs):
  """The steps of the first phase that read the rows starting in the first `epochs` epochs."""
  return range(-(-epochs * source.stream_len // (R * T)) + 1)


@pytest.mark.parametrize("order", ORDERS)
def test_every_row_of_an_epoch_is_read_once(store, cache, order):
  source = _source(store, cache, order)
  L = source.stream_len
  starts, _ = _read_order(source, _epoch_steps(source, 1))
  first_epoch = np.sort(starts[starts < L])
  assert (first_epoch == np.arange(-(-L // T)) * T).all()
  assert not (starts[:R] == np.arange(R) * T).all()  # not the stream's own order


@pytest.mark.parametrize("order", ORDERS)
def test_same_step_same_batch_across_sources_and_seeds(store, cache, order):
  a, fresh = _source(store, cache, order), _source(store, cache, order)
  for step in (3, 600):
    x, y = a.batch(step), fresh.batch(step)
    assert all((x[k] == y[k]).all() for k in x)
  assert not (a.batch(3)["input_ids"] == a.batch(4)["input_ids"]).all()
  c = _config(cache, order)
  c.seed = 1
  other = BatchSource(store, c, config_lib.derive(c)).batch(3)
  assert not (other["input_ids"] == a.batch(3)["input_ids"]).all()


@pytest.mark.parametrize("order", ORDERS)
def test_process_slices_make_up_the_global_batch(store, cache, order):
  whole = _source(store, cache, order)
  parts = [_source(store, cache, order, process_index=i, process_count=4) for i in range(4)]
  for step in (5, 999):
    w = whole.batch(step)
    got = [q.batch(step) for q in parts]
    for k in w:
      assert (np.concatenate([g[k] for g in got]) == w[k]).all(), k


@pytest.mark.parametrize("order", ORDERS)
def test_words_before_counts_the_rows_read(store, cache, order):
  """words_before(s + 1) == the word starts among the targets read by steps [0, s], at every
  step of the first epoch and a half (every stage boundary and the epoch boundary)."""
  source = _source(store, cache, order)
  total = 0
  for s in range(int(1.5 * source.stream_len) // (R * T)):
    starts = source.row_starts(s)
    _, _, index = source.lookup(starts[:, None] + np.arange(1, T + 1)[None, :])
    total += int(store.word_starts[index[index >= 0]].sum())
    assert source.words_before(s + 1) == total, s


@pytest.mark.parametrize("order", ["domains", "difficulty"])
def test_ramped_phases_read_every_stream_token_once(store, cache, order):
  """Under a batch-size ramp (phases that end inside a stage), the targets of the rows read
  cover stream positions [1, tokens_before(end) + 1) once and words_before counts them."""
  c = _config(cache, order)
  c.train.batch_ramp_start, c.train.batch_ramp_fraction = 0.25, 0.5
  d = config_lib.derive(c)
  source = BatchSource(store, c, d)
  end = d.phases[2].end
  covered = np.zeros(d.tokens_before(end) + 1, np.int64)
  words = 0
  for step in range(end):
    T_s = d.phase_at(step).seq_len
    pos = source.row_starts(step)[:, None] + np.arange(1, T_s + 1)[None, :]
    np.add.at(covered, pos.ravel(), 1)
    _, _, index = source.lookup(pos)
    words += int(store.word_starts[index[index >= 0]].sum())
    if step in (0, d.phases[0].end - 1, d.phases[0].end, end - 1):
      assert source.words_before(step + 1) == words, step
  assert covered[0] == 0 and (covered[1:] == 1).all()


def _check_stage_sequence(source, epochs=2):
  """In every epoch the stages are read in sequence, rows shuffled within each; returns the
  (starts, stages) read."""
  L = source.stream_len
  starts, stage = _read_order(source, _epoch_steps(source, epochs))
  epoch = starts // L
  for e in range(epochs):
    seq = stage[epoch == e]
    assert (np.diff(seq) >= 0).all(), e
    assert set(seq) == set(np.unique(source.doc_stage)), e
    in_first = starts[(epoch == e) & (stage == seq[0])]
    assert not (np.diff(in_first) > 0).all()  # shuffled within the stage
  return starts, stage


def test_domains_are_read_in_the_given_sequence_every_epoch(store, cache):
  source = _source(store, cache, "domains")
  names = DOMAINS.split(",")
  starts, stage = _check_stage_sequence(source)
  # The stage is the place of the row's domain in data.order_domains.
  domains = [store.domains[i] for i in store.doc_domains[source.documents_at(starts)]]
  assert [names.index(d) for d in domains] == stage.tolist()
  # Every document of an epoch lies inside its domain's span of the stream.
  order, epoch_starts, _ = source._epoch(1)
  doc_stage = source.doc_stage[order]
  assert (source.stage_bounds[doc_stage] <= epoch_starts[:-1]).all()
  assert (epoch_starts[1:] <= source.stage_bounds[doc_stage + 1]).all()


def test_difficulty_is_mean_unigram_surprisal_and_buckets_rise(store, cache):
  source = _source(store, cache, "difficulty", order_buckets=5)
  # The score from its definition, in floating point: mean -log p(token) over a document.
  tokens = np.asarray(store.tokens, np.int64)
  counts = np.bincount(tokens, minlength=store.vocab_size)
  surprisal = np.log(len(tokens)) - np.log(np.maximum(counts, 1))
  lengths = np.diff(store.doc_offsets)
  expected = np.add.reduceat(surprisal[tokens], store.doc_offsets[:-1]) / lengths
  scores = order_lib.unigram_surprisal(store)
  assert np.abs(scores - expected).max() < 1e-5
  assert source.num_stages == 5
  lo = [scores[source.doc_stage == k].min() for k in range(5)]
  hi = [scores[source.doc_stage == k].max() for k in range(5)]
  assert all(hi[k] <= lo[k + 1] for k in range(4)), (lo, hi)
  # Buckets of about equal stream tokens: each within a document's length of L / 5.
  sizes = np.diff(source.stage_bounds)
  assert np.abs(sizes - source.stream_len / 5).max() <= lengths.max() + 1
  starts, stage = _check_stage_sequence(source)
  # The text gets harder through the epoch.
  first = starts < source.stream_len
  row_scores = scores[source.documents_at(starts[first])]
  quarter = len(row_scores) // 4
  assert row_scores[:quarter].mean() < row_scores[-quarter:].mean()


def test_one_stage_orders_are_the_shuffled_order(store, cache):
  """One bucket is the shuffled order itself, draw for draw."""
  a = _source(store, cache, "shuffled")
  b = _source(store, cache, "difficulty", order_buckets=1)
  for step in (0, 400, 700):
    x, y = a.batch(step), b.batch(step)
    assert all((x[k] == y[k]).all() for k in x)


@pytest.mark.parametrize("data,fragment", [
    (dict(order="random"), "data.order 'random' is unknown; use one of shuffled, domains, "
                           "difficulty."),
    (dict(order="domains", order_domains=" , "), "data.order 'domains' needs "
                                                 "data.order_domains"),
    (dict(order="domains", order_domains="a,b,a"), "names a more than once"),
    (dict(order="difficulty", order_buckets=0), "data.order_buckets (0) must be a whole number"),
])
def test_bad_order_settings_are_refused_before_any_data(data, fragment):
  c = base_config()
  for k, v in data.items():
    c.data[k] = v
  with pytest.raises(ConfigError) as e:
    config_lib.validate(c)
  assert fragment in str(e.value)


def test_domains_must_be_named_all_and_only(store, cache):
  names = DOMAINS.split(",")
  with pytest.raises(ConfigError, match=r"does not name the store's domain\(s\) gutenberg, "
                                        r"simple_wiki_dev;"):
    _source(store, cache, "domains",
            order_domains=",".join(n for n in names if n not in ("gutenberg", "simple_wiki_dev")))
  with pytest.raises(ConfigError, match="names childes, which the store does not hold"):
    _source(store, cache, "domains", order_domains="childes," + DOMAINS)


def test_a_run_resumes_only_in_its_own_order():
  shuffled, domains = base_config(), base_config()
  domains.data.order, domains.data.order_domains = "domains", "a, b"
  meta = ckpt_lib.make_meta(domains, 4, 10, 20, "sha")
  assert meta["data_order"] == "domains:a,b"
  ckpt_lib.check_resume_order(meta, domains, "here")
  with pytest.raises(UserError, match="data.order 'domains:a,b' but the config says 'shuffled'"):
    ckpt_lib.check_resume_order(meta, shuffled, "here")
  domains.data.order_domains = "b,a"
  with pytest.raises(UserError, match="the config says 'domains:b,a'"):
    ckpt_lib.check_resume_order(meta, domains, "here")
  old = dict(meta)
  del old["data_order"]  # a checkpoint from before data.order was read in the shuffled order
  ckpt_lib.check_resume_order(old, shuffled, "here")
  with pytest.raises(UserError, match="data.order 'shuffled'"):
    ckpt_lib.check_resume_order(old, domains, "here")
