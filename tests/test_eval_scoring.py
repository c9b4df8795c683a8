"""The scoring engine against an unbatched reference, ties, and honest accuracy."""

import numpy as np
import pytest

from babylm_jax.config import MASK_ID
from babylm_jax.eval import report, scoring, suites
from babylm_jax.errors import ConfigError
from conftest import data_path
from eval_helpers import logits_fn_of, small_tokenizer, tiny_gpt_bert


@pytest.fixture(scope="module")
def setup():
  tok = small_tokenizer(512)
  model, _ = tiny_gpt_bert(512)
  blimp = suites.load_suite("blimp_fast", str(data_path("babylm_eval/fast_eval/blimp_fast")))
  ewok = suites.load_suite("ewok", str(data_path("babylm_eval/fast_eval/ewok_fast")))
  items = list(blimp.items[::2000]) + list(ewok.items[:2])
  seqs = []
  for it in items:
    seqs += scoring.tokenize(tok, [it.context] * len(it.options), list(it.options), 128)
  return tok, model, seqs, logits_fn_of(model)  # one reference jit, compiled once per length


@pytest.mark.parametrize("backend", ["causal", "mntp", "pll", "fused"])
def test_backend_matches_unbatched_reference(setup, backend):
  tok, model, seqs, ref_fn = setup
  # A small token budget splits the sequences over several batches; rows of 32 tokens hold
  # several packed sentences, and the longer EWoK sequences get length-bucketed rows.
  scorer = scoring.Scorer(model, max_len=128, tokens_per_batch=128, pack_len=32)
  got = scorer.score(seqs, backend)
  assert max(len(s[0]) for s in seqs) > 32 and scorer.stats["rows"] > 4
  want = np.array([scoring.reference_score(ref_fn, s, backend) for s in seqs])
  assert np.all(np.isfinite(got)) and np.all(got < 0)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
  # Different sentences really get different scores (the model is not degenerate).
  assert len(set(np.round(got, 3))) > len(seqs) // 2


def test_context_is_not_scored(setup):
  tok, model, _, _ = setup
  (ids, start), = scoring.tokenize(tok, ["Chao lied to Yan."], ["Yan believes it."], 128)
  (alone_ids, alone_start), = scoring.tokenize(tok, [""], ["Yan believes it."], 128)
  assert alone_start == 1 and start > 1
  assert tok.decode(list(ids[start:])).strip() == "Yan believes it."
  assert tok.decode(list(alone_ids[1:])) == "Yan believes it."


def test_identical_sentences_tie(setup):
  tok, model, _, _ = setup
  scorer = scoring.Scorer(model, max_len=128, tokens_per_batch=64)
  item = suites.Item("p", "", ("The cat sleeps.", "The cat sleeps."))
  other = suites.Item("p", "", ("The cat sleeps.", "Cat the sleeps."))
  for backend in ("causal", "mntp", "pll", "fused"):
    scores = [scorer.score(scoring.tokenize(tok, ["", ""], list(it.options), 128), backend)
              for it in (item, other)]
    assert scores[0][0] == scores[0][1]
    acc = report.accuracy([item, other], scores)
    assert acc["ties"] == 1
    p = acc["paradigms"]["p"]
    assert p["pairs"] == 2 and p["ties"] == 1
    assert p["accuracy"] == (0.5 + float(scores[1][0] > scores[1][1])) / 2


def test_accuracy_macro_and_micro():
  items = [suites.Item("a", "", ("x", "y"))] * 3 + [suites.Item("b", "", ("x", "y", "z"))]
  scores = [[-1, -2], [-2, -1], [-1, -1], [-1, -1, -5]]
  acc = report.accuracy(items, scores)
  assert acc["paradigms"]["a"] == dict(accuracy=0.5, pairs=3, ties=1, chance=0.5)
  assert acc["paradigms"]["b"]["accuracy"] == 0.5 and acc["paradigms"]["b"]["ties"] == 1
  assert acc["macro_accuracy"] == 0.5
  assert acc["micro_accuracy"] == pytest.approx(2.0 / 4)
  assert acc["ties"] == 2


def test_uniform_model_scores_chance_not_perfect(setup):
  """Every sentence the same score: 0.5 everywhere (other pipelines report 100% here)."""
  blimp = suites.load_suite("blimp_fast", str(data_path("babylm_eval/fast_eval/blimp_fast")))
  acc = report.accuracy(blimp.items, [np.zeros(2)] * len(blimp.items))
  assert acc["macro_accuracy"] == 0.5 and acc["ties"] == len(blimp.items)


def test_bad_backend_is_refused():
  with pytest.raises(ConfigError, match="eval.backend 'mlm'"):
    scoring.parse_backends("causal,mlm")


def test_long_context_keeps_target():
  ids, start = scoring.to_sequence(list(range(20, 220)), 190, 64)
  assert len(ids) == 64 and ids[0] == 1 and ids[start:] == tuple(range(210, 220))


@pytest.mark.parametrize("backend", ["mntp", "pll"])
def test_mask_ending_matches_unbatched_reference(setup, backend):
  """ending=k: the text is cut before each scored token and k masks appended, read at the
  last real token (mntp) or the first mask (pll), one model call per token here."""
  tok, model, seqs, ref_fn = setup
  seqs = seqs[:6]
  scorer = scoring.Scorer(model, max_len=128, tokens_per_batch=128, pack_len=32)
  got = scorer.score(seqs, backend, ending=3)
  want = []
  for ids, start in seqs:
    total = 0.0
    for i in range(start, len(ids)):
      x = list(ids[:i]) + [MASK_ID] * 3
      logits = np.asarray(ref_fn(np.array([x]), np.ones((1, len(x)), np.int32),
                                 np.array([False])), np.float64)[0]
      row = logits[-4 if backend == "mntp" else -3]
      total += row[ids[i]] - row.max() - np.log(np.sum(np.exp(row - row.max())))
    want.append(total)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
  # The ending changes what the model sees: not the plain masked score.
  assert np.max(np.abs(got - scorer.score(seqs, backend))) > 1e-3


@pytest.mark.parametrize("attention", ["disentangled", "ltg"])
def test_shared_context_matches_plain_path(attention):
  """Entity tracking, causal: the options of an item run their ~160-token context once and
  read its key/value cache; per option the log-probability equals the plain path's (every
  sequence whole in its own packed row) to 1e-5."""
  from flax import nnx
  from babylm_jax.eval import run
  from babylm_jax.model.gpt_bert import GPTBert
  tok = small_tokenizer(512)
  _, c = tiny_gpt_bert(512)
  c.model.max_position = 512
  c.model.attention = attention
  model = GPTBert(c.model, rngs=nnx.Rngs(1))
  suite = suites.load_suite("entity_tracking", str(data_path("babylm_eval/entity_tracking")))
  items = suite.items[::3200]  # one item of each file
  suite = suites.Suite(suite.name, items, suite.files)
  seqs = run.suite_sequences(tok, suite, 512)
  fast = scoring.Scorer(model, max_len=512, tokens_per_batch=1024)
  got = fast.score(seqs, "causal")
  # Contexts no longer than pack_len are never shared: the plain path.
  plain = scoring.Scorer(model, max_len=512, tokens_per_batch=1024, pack_len=512)
  want = plain.score(seqs, "causal")
  assert plain.stats["shared_contexts"] == 0
  assert fast.stats["shared_contexts"] == len(items)
  assert min(s for _, s in seqs) > 100 and np.all(np.isfinite(got))
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  # The options differ in score, so a wrong continuation would show.
  assert len(set(np.round(got, 2))) == len(seqs)
