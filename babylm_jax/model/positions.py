"""How a token's position reaches the network: one embedding module per `model.position`.

Each module turns token ids into the first hidden states [B, T, D] and hands the attention
what it reads about positions:
- 'relative' (GPT-BERT, DeBERTa-style; with disentangled attention): 2 * bucket_size - 1
  relative-position vectors with an affine LayerNorm, shared by every layer, scored against
  log-spaced buckets of q - k (relative_buckets, spread);
- 'learned_absolute' (BERT, RoBERTa; with standard attention): a learned vector per position,
  added to the word embedding before its LayerNorm; nothing for the attention;
- 'rotary' (RoPE, GPT-NeoX's rotate-half layout; with standard attention): no parameters; the
  cosines and sines of each position's angles, with which the attention rotates queries and
  keys so that their scores depend on q - k only.

Rows are packed documents: absolute and rotary positions count from 0 at each document's
first token (document_positions), so a document gets the same positions wherever it sits in
a row, as it does alone in a Hugging Face batch. Relative positions need no such care: no
score crosses a document boundary.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from babylm_jax.model.layers import (compute_dtype, dropout, init_std, layer_norm, param,
                                     trunc_normal)

ROTARY_BASE = 10_000.0


def document_positions(segment_ids_BT):
  """[B, T] int32: each token's index within its document (a run of equal segment ids)."""
  B, T = segment_ids_BT.shape
  idx_BT = jax.lax.broadcasted_iota(jnp.int32, (B, T), 1)
  starts_BT = jnp.concatenate([jnp.ones((B, 1), bool),
                               segment_ids_BT[:, 1:] != segment_ids_BT[:, :-1]], axis=1)
  first_BT = jax.lax.cummax(jnp.where(starts_BT, idx_BT, 0), axis=1)
  return idx_BT - first_BT


@functools.lru_cache(maxsize=None)
def relative_buckets(length: int, bucket_size: int, max_position: int) -> np.ndarray:
  """Bucket index [q, k] in [0, 2 * bucket_size - 2] of the relative position q - k.

  Exact within +-bucket_size / 2, log-spaced beyond, saturating at max_position.
  """
  rel = np.arange(length)[:, None] - np.arange(length)[None, :]
  mid = bucket_size // 2
  sign = np.sign(rel)
  abs_pos = np.where(np.abs(rel) < mid, mid - 1, np.minimum(np.abs(rel), max_position - 1))
  log_pos = np.ceil(np.log(abs_pos / mid) / np.log((max_position - 1) / mid)
                    * (mid - 1)).astype(np.int64) + mid
  bucket = np.where(abs_pos <= mid, rel, log_pos * sign)
  return (bucket + bucket_size - 1).astype(np.int32)


@functools.lru_cache(maxsize=None)
def _spreader(length: int, bucket_size: int, max_position: int, key_side: bool):
  """A function [B, H, T, R] -> [B, H, T, T] placing each pair's bucket score (see spread)."""
  bucket_TT = relative_buckets(length, bucket_size, max_position)
  R = 2 * bucket_size - 1
  # Rows of the source: the query's (content-to-position) or the key's (position-to-content).
  index_TT = bucket_TT.T.copy() if key_side else bucket_TT

  @jax.custom_vjp
  def spread(x_BHTR):
    y_BHTT = jnp.take_along_axis(x_BHTR, jnp.asarray(index_TT)[None, None], axis=-1)
    return y_BHTT.swapaxes(-1, -2) if key_side else y_BHTT

  def fwd(x_BHTR):
    return spread(x_BHTR), None

  def bwd(_, g_BHTT):
    # A one-hot matmul sums each row's scores per bucket (a scatter-add is slow on CPU).
    onehot_TTR = jax.nn.one_hot(jnp.asarray(bucket_TT), R, dtype=g_BHTT.dtype)
    spec = "bhqs,qsr->bhsr" if key_side else "bhqs,qsr->bhqr"
    return (jnp.einsum(spec, g_BHTT, onehot_TTR),)

  spread.defvjp(fwd, bwd)
  return spread


def spread(x_BHTR, bucket_size: int, max_position: int, key_side: bool = False):
  """Scores against the R relative-position buckets, placed at each (query, key) pair.

  out[b, h, q, s] = x[b, h, q, bucket(q - s)], or with `key_side` x[b, h, s, bucket(q - s)].
  Forward is a gather (about ten times faster than a one-hot matmul on CPU); its gradient is
  the one-hot matmul, since the gather's own gradient, a scatter-add, is slower still.
  """
  return _spreader(x_BHTR.shape[2], bucket_size, max_position, key_side)(x_BHTR)


def rotary_angles(positions_BT, head_dim: int):
  """(cos, sin), each [B, T, head_dim / 2] float32, of RoPE's angles position x frequency."""
  inv_freq_k = ROTARY_BASE ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
  angles_BTk = positions_BT.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq_k,
                                                                         jnp.float32)
  return jnp.cos(angles_BTk), jnp.sin(angles_BTk)


def rotate(x_BHTK, cos_BTk, sin_BTk):
  """RoPE in the rotate-half layout: feature i pairs with feature i + K / 2."""
  x1_BHTk, x2_BHTk = jnp.split(x_BHTK, 2, axis=-1)
  cos_B1Tk = cos_BTk[:, None].astype(x_BHTK.dtype)
  sin_B1Tk = sin_BTk[:, None].astype(x_BHTK.dtype)
  return jnp.concatenate([x1_BHTk * cos_B1Tk - x2_BHTk * sin_B1Tk,
                          x2_BHTk * cos_B1Tk + x1_BHTk * sin_B1Tk], axis=-1)


def _word_param(cfg, rngs):
  return param(trunc_normal(rngs.params(), (cfg.vocab_size, cfg.hidden_size), init_std(cfg)),
               ("vocab", "embed"))


def _words(word_VD, input_ids_BT, cfg, word_BTD=None):
  """The word vectors of `input_ids_BT`, or `word_BTD` where the caller gives its own (prompt
  tuning inserts learned vectors this way)."""
  if word_BTD is None:
    word_BTD = jnp.take(word_VD, input_ids_BT, axis=0)
  return word_BTD.astype(compute_dtype(cfg))


class RelativeEmbedding(nnx.Module):
  """Word embedding -> LayerNorm -> dropout; the relative-position bucket vectors."""

  def __init__(self, cfg, *, rngs):
    D = cfg.hidden_size
    self.word = _word_param(cfg, rngs)
    R = 2 * cfg.position_bucket_size - 1
    self.relative = param(trunc_normal(rngs.params(), (R, D), init_std(cfg)),
                          ("positions", "embed"))
    self.relative_norm_scale = param(jnp.ones((D,), jnp.float32), ("embed",))
    self.relative_norm_bias = param(jnp.zeros((D,), jnp.float32), ("embed",))
    self.cfg = cfg

  def __call__(self, input_ids_BT, segment_ids_BT, deterministic, rngs, word_BTD=None):
    """(x_BTD, rel_RD): the first hidden states and the bucket vectors."""
    del segment_ids_BT
    cfg = self.cfg
    x_BTD = _words(self.word[...], input_ids_BT, cfg, word_BTD)
    x_BTD = dropout(layer_norm(x_BTD, cfg.layer_norm_eps), cfg.dropout, deterministic, rngs)
    rel_RD = layer_norm(self.relative[...], cfg.layer_norm_eps)
    rel_RD = rel_RD * self.relative_norm_scale[...] + self.relative_norm_bias[...]
    return x_BTD, rel_RD.astype(compute_dtype(cfg))


class AbsoluteEmbedding(nnx.Module):
  """(Word embedding + the learned vector of each position) -> LayerNorm -> dropout."""

  def __init__(self, cfg, *, rngs):
    self.word = _word_param(cfg, rngs)
    self.absolute = param(
        trunc_normal(rngs.params(), (cfg.max_position, cfg.hidden_size), init_std(cfg)),
        ("positions", "embed"))
    self.cfg = cfg

  def __call__(self, input_ids_BT, segment_ids_BT, deterministic, rngs, word_BTD=None):
    """(x_BTD, None): the positions are in the hidden states already."""
    cfg = self.cfg
    pos_BTD = jnp.take(self.absolute[...], document_positions(segment_ids_BT), axis=0)
    x_BTD = _words(self.word[...], input_ids_BT, cfg, word_BTD) + pos_BTD.astype(compute_dtype(cfg))
    x_BTD = dropout(layer_norm(x_BTD, cfg.layer_norm_eps), cfg.dropout, deterministic, rngs)
    return x_BTD, None


class RotaryEmbedding(nnx.Module):
  """Word embedding -> LayerNorm -> dropout; RoPE's cosines and sines for the attention."""

  def __init__(self, cfg, *, rngs):
    self.word = _word_param(cfg, rngs)
    self.cfg = cfg

  def __call__(self, input_ids_BT, segment_ids_BT, deterministic, rngs, word_BTD=None):
    """(x_BTD, (cos_BTk, sin_BTk)) with k = head_dim / 2."""
    cfg = self.cfg
    x_BTD = _words(self.word[...], input_ids_BT, cfg, word_BTD)
    x_BTD = dropout(layer_norm(x_BTD, cfg.layer_norm_eps), cfg.dropout, deterministic, rngs)
    head_dim = cfg.hidden_size // cfg.num_heads
    return x_BTD, rotary_angles(document_positions(segment_ids_BT), head_dim)


EMBEDDINGS = {"relative": RelativeEmbedding, "learned_absolute": AbsoluteEmbedding,
              "rotary": RotaryEmbedding}
