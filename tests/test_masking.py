"""The maskers of data/masking.py on synthetic rows: GPT-BERT's reference (ranked) masking
against a plain transcription of its algorithm, its nearly exact masked fraction, and its
anti-repeat weighting."""

import numpy as np
import pytest

from babylm_jax.config import MASK_ID, NUM_SPECIAL_TOKENS, base_config
from babylm_jax.data import masking
import reference_recipe

V = 1000


def _masker(kind):
  o = base_config().objective
  o.masking = kind
  return masking.make_masker(o, V)


def _rows(rng, b, n, doc_p=0.05, special_p=0.02):
  """Rows like the batches': <s> first and at document starts, a few special tokens inside."""
  tokens = rng.integers(NUM_SPECIAL_TOKENS, V, (b, n))
  starts = rng.random((b, n)) < doc_p
  starts[:, 0] = True
  tokens[starts] = 1
  special = ~starts & (rng.random((b, n)) < special_p)
  tokens[special] = 0
  eligible = ~starts & ~special
  return tokens, starts, eligible


def test_ranked_masking_is_the_reference_algorithm():
  rng = np.random.default_rng(0)
  m = _masker("ranked")
  for n, rate in ((33, 0.3), (129, 0.15), (257, 0.5)):
    tokens, starts, eligible = _rows(rng, 24, n)
    starts[:4, 0] = False  # a row that does not open with <s> is one segment from position 0
    eligible[:4, 0] = True
    history = rng.integers(0, 3, (24, n)).astype(np.uint8)
    u = rng.random((24, m.uniforms_per_row(n)))
    got = m(u, tokens, eligible, starts, rate, history)
    for r in range(24):
      chosen, inputs = reference_recipe.masked_row(u[r], tokens[r], starts[r], eligible[r], rate,
                                                   history[r], V)
      np.testing.assert_array_equal(got.chosen[r], chosen, err_msg=f"row {r}, n={n}")
      np.testing.assert_array_equal(got.tokens[r], inputs, err_msg=f"row {r}, n={n}")
    assert not (got.chosen & ~eligible).any()


def test_ranked_masked_fraction_is_nearly_exact_per_row():
  """One 128-token segment per row at rate 0.3: the masked fraction has sd ~0.007 (k varies by
  one and the k-th token's span is completed) where the Bernoulli spans' is ~0.06."""
  rng = np.random.default_rng(1)
  b, n = 4000, 129
  tokens = rng.integers(NUM_SPECIAL_TOKENS, V, (b, n))
  starts = np.zeros((b, n), bool)
  starts[:, 0] = True
  sd = {}
  for kind in ("ranked", "bernoulli"):
    m = _masker(kind)
    got = m(rng.random((b, m.uniforms_per_row(n))), tokens, ~starts, starts, 0.3)
    frac = got.chosen[:, 1:].mean(axis=1)
    sd[kind] = frac.std()
    assert abs(frac.mean() - 0.3) < 0.01, (kind, frac.mean())
  print(f"sd of the masked fraction per row at rate 0.3: {sd}")
  assert sd["ranked"] < 0.01 and sd["bernoulli"] > 0.04


def test_anti_repeat_masks_often_masked_tokens_less():
  """Tokens masked once before have their span keys multiplied by e: at rate 0.3 they are
  masked far less often than fresh tokens of the same rows, and the row's total stays."""
  rng = np.random.default_rng(2)
  b, n = 2000, 129
  tokens = rng.integers(NUM_SPECIAL_TOKENS, V, (b, n))
  starts = np.zeros((b, n), bool)
  starts[:, 0] = True
  history = (rng.random((b, n)) < 0.5).astype(np.uint8)
  m = _masker("ranked")
  u = rng.random((b, m.uniforms_per_row(n)))
  plain = m(u, tokens, ~starts, starts, 0.3)
  weighted = m(u, tokens, ~starts, starts, 0.3, history)
  old, new = history == 1, (history == 0) & ~starts
  assert abs(plain.chosen[old].mean() - plain.chosen[new].mean()) < 0.01
  assert weighted.chosen[old].mean() < 0.5 * weighted.chosen[new].mean()
  assert abs(weighted.chosen.mean() - plain.chosen.mean()) < 0.005


@pytest.mark.parametrize("kind", ["bernoulli", "ranked"])
def test_corruption_split_and_specials(kind):
  rng = np.random.default_rng(3)
  m = _masker(kind)
  tokens, starts, eligible = _rows(rng, 3000, 129)
  got = m(rng.random((3000, m.uniforms_per_row(129))), tokens, eligible, starts, 0.3)
  assert not (got.chosen & ~eligible).any()
  assert (got.tokens[~got.chosen] == tokens[~got.chosen]).all()
  sel_in, sel_orig = got.tokens[got.chosen], tokens[got.chosen]
  frac_mask = (sel_in == MASK_ID).mean()
  frac_same = (sel_in == sel_orig).mean()
  assert abs(frac_mask - 0.8) < 0.02 and abs(frac_same - 0.1) < 0.02
  assert (sel_in >= NUM_SPECIAL_TOKENS).sum() + (sel_in == MASK_ID).sum() == len(sel_in)
