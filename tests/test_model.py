"""The GPT-BERT network: parameter counts, attention masks, relative positions, dtypes."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from babylm_jax.config import base_config
from babylm_jax.model.attention import attention_mask
from babylm_jax.model.gpt_bert import GPTBert, count_params
from babylm_jax.model.layers import layer_norm
from babylm_jax.model.positions import relative_buckets
from tests.conftest import load_config


def tiny_cfg(**overrides):
  m = base_config().model
  m.vocab_size = 97
  m.hidden_size = 32
  m.num_layers = 2
  m.num_heads = 2
  m.intermediate_size = 48
  m.dropout = 0.0
  for k, v in overrides.items():
    m[k] = v
  return m


@pytest.mark.parametrize("name,expected", [("strict_small", 29.9e6), ("strict", 119.5e6)])
def test_parameter_counts(name, expected):
  n = count_params(load_config(name).model)
  assert abs(n - expected) / expected < 0.01, n


def test_relative_buckets_exact_near_and_logarithmic_far():
  b = relative_buckets(512, 32, 512).astype(int) - 31  # signed bucket of q - k
  rel = np.arange(512)[:, None] - np.arange(512)[None, :]
  near = np.abs(rel) <= 16
  np.testing.assert_array_equal(b[near], rel[near])
  assert b.min() == -31 and b.max() == 31  # 2 * 32 - 1 vectors
  # Monotone in the distance, and far distances share buckets.
  row = b[511]
  assert np.all(np.diff(row) <= 0)
  assert len(np.unique(row)) == 32


def _batch(rng, B=3, T=24, V=97):
  ids = rng.integers(16, V, (B, T)).astype(np.int32)
  seg = np.zeros((B, T), np.int32)
  seg[0, :10], seg[0, 10:20] = 1, 2  # two documents, then padding
  seg[1, :] = 1
  seg[2, :7], seg[2, 7:15], seg[2, 15:22] = 1, 2, 3
  return ids, seg


@pytest.mark.parametrize("weighting", ["gpt_bert", "elc", "elc_weighted_output", "residual"])
def test_future_tokens_only_reach_masked_rows(weighting):
  model = GPTBert(tiny_cfg(layer_weighting=weighting), rngs=nnx.Rngs(0))
  ids, seg = _batch(np.random.default_rng(0))
  for causal in (True, False):
    is_causal = np.array([causal] * 3)
    base = model(ids, seg, is_causal)
    changed = ids.copy()
    changed[1, 12] = (changed[1, 12] + 5) % 97  # row 1 is one document
    out = model(changed, seg, is_causal)
    earlier = np.abs(np.asarray(out - base))[1, :12].max()
    if causal:
      assert earlier == 0.0
    else:
      assert earlier > 1e-4
    # Position 12 and later see the change in both modes.
    assert np.abs(np.asarray(out - base))[1, 12:].max() > 1e-4


@pytest.mark.parametrize("causal", [True, False])
def test_documents_in_a_row_do_not_see_each_other(causal):
  model = GPTBert(tiny_cfg(), rngs=nnx.Rngs(1))
  ids, seg = _batch(np.random.default_rng(1))
  is_causal = np.array([causal] * 3)
  base = np.asarray(model(ids, seg, is_causal))
  changed = ids.copy()
  changed[2, 9] += 1  # document 2 of row 2
  changed[0, 16] += 1  # document 2 of row 0
  changed[0, 22] += 1  # padding of row 0
  out = np.asarray(model(changed, seg, is_causal))
  diff = np.abs(out - base)
  assert diff[2, :7].max() == 0.0 and diff[2, 15:22].max() == 0.0  # 22: padding
  assert diff[2, 7:15].max() > 1e-4
  assert diff[0, :10].max() == 0.0 and diff[1].max() == 0.0
  assert np.isfinite(out).all()


def test_rows_are_independent_and_mixed_modes_match_single_mode():
  model = GPTBert(tiny_cfg(), rngs=nnx.Rngs(2))
  ids, seg = _batch(np.random.default_rng(2))
  mixed = np.asarray(model(ids, seg, np.array([True, False, True])))
  all_causal = np.asarray(model(ids, seg, np.array([True] * 3)))
  all_masked = np.asarray(model(ids, seg, np.array([False] * 3)))
  np.testing.assert_allclose(mixed[[0, 2]], all_causal[[0, 2]], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(mixed[1], all_masked[1], rtol=1e-5, atol=1e-5)


def _reference_attention(attn, x_BTD, rel_RD, mask_B1TT, cfg):
  """The textbook formulation: per-pair position embeddings [T, T, H, K] materialised."""
  B, T, D = x_BTD.shape
  H, K = cfg.num_heads, D // cfg.num_heads
  h = layer_norm(x_BTD, cfg.layer_norm_eps)
  q, k = jnp.split(attn.qk(h), 2, -1)
  v, g = jnp.split(attn.vg(h), 2, -1)
  pos = attn.qk(rel_RD)[relative_buckets(T, cfg.position_bucket_size, cfg.max_position)]
  qpos, kpos = jnp.split(pos, 2, -1)
  q, k, v = (a.reshape(B, T, H, K) for a in (q, k, v))
  qpos, kpos = qpos.reshape(T, T, H, K), kpos.reshape(T, T, H, K)
  s = (jnp.einsum("bqhd,bkhd->bhqk", q, k) + jnp.einsum("bqhd,qkhd->bhqk", q, kpos)
       + jnp.einsum("bkhd,qkhd->bhqk", k, qpos)) / math.sqrt(3 * K)
  p = jax.nn.softmax(jnp.where(mask_B1TT, s, -1e30), -1)
  ctx = jnp.einsum("bhqk,bkhd->bqhd", p, v).reshape(B, T, D) * jax.nn.gelu(g, False)
  return attn.out(layer_norm(ctx, cfg.layer_norm_eps))


def test_bucketed_attention_matches_materialised_positions():
  cfg = tiny_cfg(position_bucket_size=8, max_position=64)
  model = GPTBert(cfg, rngs=nnx.Rngs(3))
  ids, seg = _batch(np.random.default_rng(3), T=40)
  x, rel = model.embedding(jnp.asarray(ids), jnp.asarray(seg), True, None)
  mask = attention_mask(jnp.asarray(seg), jnp.array([True, False, False]))
  got = model.attention[0](x, rel, mask, True, None)
  want = _reference_attention(model.attention[0], x, rel, mask, cfg)
  valid = np.asarray(seg) > 0
  np.testing.assert_allclose(np.asarray(got)[valid], np.asarray(want)[valid],
                             rtol=1e-4, atol=1e-5)


def test_initialisation():
  cfg = tiny_cfg(hidden_size=64, intermediate_size=96, num_layers=3)
  model = GPTBert(cfg, rngs=nnx.Rngs(4))
  std = math.sqrt(2 / (5 * 64))
  w = np.asarray(model.embedding.word[...])
  assert np.abs(w).max() <= 2 * std + 1e-7
  assert abs(w.std() / (std * 0.88) - 1) < 0.1  # truncation at 2 std shrinks the std to 0.88x
  for i, ffn in enumerate(model.ffn):
    s = np.asarray(ffn.up.kernel[...]).std()
    assert abs(s / (std * 0.88 * math.sqrt(1 / (2 * (i + 1)))) - 1) < 0.1
  assert np.all(np.asarray(model.attention[1].qk.bias[...]) == 0)
  lw = model.layer_weights()
  assert lw.shape == (6, 7)
  np.testing.assert_array_equal(np.nan_to_num(lw, nan=0.0), np.eye(6, 7, 1))
  assert np.isnan(lw[0, 2:]).all()


def test_dropout_is_random_in_training_and_off_in_evaluation():
  model = GPTBert(tiny_cfg(dropout=0.1), rngs=nnx.Rngs(5))
  ids, seg = _batch(np.random.default_rng(5))
  c = np.array([False, True, False])
  a = model(ids, seg, c)
  np.testing.assert_array_equal(a, model(ids, seg, c))
  t1 = model(ids, seg, c, deterministic=False, rngs=nnx.Rngs(dropout=1))
  t2 = model(ids, seg, c, deterministic=False, rngs=nnx.Rngs(dropout=2))
  assert np.abs(np.asarray(t1 - t2)).max() > 1e-3


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model = GPTBert(tiny_cfg(compute_dtype="bfloat16"), rngs=nnx.Rngs(6))
  ids, seg = _batch(np.random.default_rng(6))
  hidden = model.encode(ids, seg, np.array([True, False, True]))
  assert hidden.dtype == jnp.bfloat16
  logits = model.head(hidden)
  assert logits.dtype == jnp.float32
  leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
  assert all(x.dtype == jnp.float32 for x in leaves)
  ref = GPTBert(tiny_cfg(), rngs=nnx.Rngs(6))(ids, seg, np.array([True, False, True]))
  assert np.abs(np.asarray(logits - ref)).max() < 0.1
  # head works on gathered positions [N, D] as on [B, T, D].
  np.testing.assert_allclose(model.head(hidden[seg > 0]), logits[seg > 0], rtol=1e-5)


def test_elc_weights_start_on_the_previous_layer_and_the_ablation_uniform():
  """ELC-BERT's code starts layer l's weights at (0, ..., 0, 1): after the softmax e / (e + l)
  on the previous layer's output; its weighted_output ablation starts uniform, with one more
  row for the encoder's output."""
  L = 3
  lw = GPTBert(tiny_cfg(num_layers=L, layer_weighting="elc"),
               rngs=nnx.Rngs(0)).layer_weights()
  assert lw.shape == (L, L) and np.isnan(lw[0, 1:]).all()
  for l in range(L):
    np.testing.assert_allclose(lw[l, l], np.e / (np.e + l), rtol=1e-6)
    np.testing.assert_allclose(lw[l, :l], 1 / (np.e + l), rtol=1e-6)
  lw = GPTBert(tiny_cfg(num_layers=L, layer_weighting="elc_weighted_output"),
               rngs=nnx.Rngs(0)).layer_weights()
  assert lw.shape == (L + 1, L + 1)
  for l in range(L + 1):
    np.testing.assert_allclose(lw[l, :l + 1], 1 / (l + 1), rtol=1e-6)
