"""Self-attention blocks, one per `model.attention`, and the mask they share.

- 'disentangled' (GPT-BERT, LTG-BERT, DeBERTa): scores are content-content + content-position
  + position-content over log-spaced relative-position buckets, scaled by 1/sqrt(3 * head_dim);
  values gated by GELU(gate). Reads the 'relative' embedding's bucket vectors.
- 'ltg' (LTG-BERT, ELC-BERT, BootBERT): the same scores, values without a gate, and an affine
  LayerNorm after the output projection (in place of the NormFormer one before it, which
  `model.normformer` then leaves out of the attention).
- 'standard' (BERT, RoBERTa, GPT): softmax(q k^T / sqrt(head_dim)) v, with queries and keys
  rotated by RoPE when `model.position` is 'rotary' (the rotation is chosen here, once).

All: LayerNorm before the block (pre-LN), the NormFormer LayerNorm before the output
projection when `model.normformer` is on ('disentangled', 'standard'), dropout on the probabilities and the output.
Scores and softmax are float32. Heads go ahead of length ([B, H, T, K]) so that the score and
context matmuls batch over (B, H).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from babylm_jax.model.layers import (NEG, Dense, depth_scale, dropout, init_std, inner_norm,
                                     layer_norm, param)
from babylm_jax.model.positions import relative_buckets, rotate, spread


def attention_mask(segment_ids_BT, is_causal_B):
  """[B, 1, T, T] bool: same non-padding document, and key <= query in causal rows."""
  T = segment_ids_BT.shape[1]
  seg_q = segment_ids_BT[:, :, None]
  seg_k = segment_ids_BT[:, None, :]
  same_doc_BTT = (seg_q == seg_k) & (seg_k > 0)
  lower_TT = jnp.tril(jnp.ones((T, T), bool))
  allowed_BTT = same_doc_BTT & (~is_causal_B[:, None, None] | lower_TT[None])
  return allowed_BTT[:, None]


def _context(scores_BHTT, mask_B1TT, v_BHTK, dtype, rate, deterministic, rngs):
  """Masked float32 softmax, dropout, and the probabilities' weighted values [B, T, H * K]."""
  scores_BHTT = jnp.where(mask_B1TT, scores_BHTT.astype(jnp.float32), NEG)
  probs_BHTT = jax.nn.softmax(scores_BHTT, axis=-1).astype(dtype)
  probs_BHTT = dropout(probs_BHTT, rate, deterministic, rngs)
  B, H, T, K = probs_BHTT.shape[:3] + v_BHTK.shape[3:]  # T queries (a cached step: fewer keys)
  return jnp.einsum("bhqs,bhsk->bqhk", probs_BHTT, v_BHTK).reshape(B, T, H * K)


def _heads(x_BTD, H):
  B, T, D = x_BTD.shape
  return x_BTD.reshape(B, T, H, D // H).transpose(0, 2, 1, 3)


def _disentangled_scores(qk, h_BTD, rel_RD, cfg, deterministic, rngs):
  """[B, H, T, T] content-content + content-position + position-content scores, each scaled
  by 1/sqrt(3 * head_dim); `qk` projects both the states and the bucket vectors."""
  B, T, D = h_BTD.shape
  H = cfg.num_heads
  K = D // H
  qk_BT2HK = qk(h_BTD).reshape(B, T, 2, H, K)
  q_BHTK = qk_BT2HK[:, :, 0].transpose(0, 2, 1, 3)
  k_BHTK = qk_BT2HK[:, :, 1].transpose(0, 2, 1, 3)
  rel_RD = dropout(rel_RD, cfg.dropout, deterministic, rngs)
  R = rel_RD.shape[0]
  pos_R2HK = qk(rel_RD).reshape(R, 2, H, K)
  qpos_HKR = pos_R2HK[:, 0].transpose(1, 2, 0)
  kpos_HKR = pos_R2HK[:, 1].transpose(1, 2, 0)

  scale = 1.0 / math.sqrt(3 * K)
  q_BHTK = q_BHTK * jnp.asarray(scale, q_BHTK.dtype)
  c2c_BHTT = jnp.einsum("bhqk,bhsk->bhqs", q_BHTK, k_BHTK)
  # Position terms against the R bucket vectors only, then spread to the (query, key)
  # pairs: never a [T, T, D] tensor of per-pair embeddings.
  c2p_BHTR = jnp.einsum("bhqk,hkr->bhqr", q_BHTK, kpos_HKR)
  p2c_BHTR = jnp.einsum("bhsk,hkr->bhsr", k_BHTK * jnp.asarray(scale, k_BHTK.dtype),
                        qpos_HKR)
  c2p_BHTT = spread(c2p_BHTR, cfg.position_bucket_size, cfg.max_position)
  # p2c[q, s] scores key s against the query-side vector of bucket(q - s).
  p2c_BHTT = spread(p2c_BHTR, cfg.position_bucket_size, cfg.max_position, key_side=True)
  return c2c_BHTT + c2p_BHTT + p2c_BHTT


def _cached_scores(qk, h_BtD, rel_RD, cache, start, cfg):
  """Scores [B, H, t, S] of t new tokens at slots start..start+t-1 against the S slots of a
  key/value cache, equal to the rows of `_disentangled_scores` that a full forward over the
  slots would give them, and the cache's keys and key-side position scores with the new ones
  written in. Slots are positions in one document (left padding is masked, and relative
  positions need no origin), so the pair (query q, key s) reads bucket(q - s) of the same
  table as the full forward: its rows q = start..start+t-1.

  The key-side term p2c[q, s] = k_s . qpos[bucket(q - s)] depends on the key only through
  k_s, so each key's scores against the R bucket vectors are computed once, when it enters the
  cache ([B, H, S, R]), and a step gathers them; the query-side term is the new queries'
  scores against the R vectors, gathered in the same way. No [t, S, D] tensor is formed.
  """
  B, t, D = h_BtD.shape
  H = cfg.num_heads
  K = D // H
  qk_Bt2HK = qk(h_BtD).reshape(B, t, 2, H, K)
  q_BHtK = qk_Bt2HK[:, :, 0].transpose(0, 2, 1, 3)
  k_BHtK = qk_Bt2HK[:, :, 1].transpose(0, 2, 1, 3)
  R = rel_RD.shape[0]
  pos_R2HK = qk(rel_RD).reshape(R, 2, H, K)
  qpos_HKR = pos_R2HK[:, 0].transpose(1, 2, 0)
  kpos_HKR = pos_R2HK[:, 1].transpose(1, 2, 0)

  scale = 1.0 / math.sqrt(3 * K)
  q_BHtK = q_BHtK * jnp.asarray(scale, q_BHtK.dtype)
  p2c_BHtR = jnp.einsum("bhsk,hkr->bhsr", k_BHtK * jnp.asarray(scale, k_BHtK.dtype), qpos_HKR)
  k_BHSK = jax.lax.dynamic_update_slice_in_dim(cache["k"], k_BHtK, start, axis=2)
  p2c_BHSR = jax.lax.dynamic_update_slice_in_dim(cache["p2c"], p2c_BHtR, start, axis=2)
  S = k_BHSK.shape[2]
  table_SS = jnp.asarray(relative_buckets(S, cfg.position_bucket_size, cfg.max_position))
  bucket_tS = jax.lax.dynamic_slice_in_dim(table_SS, start, t, axis=0)

  c2c_BHtS = jnp.einsum("bhqk,bhsk->bhqs", q_BHtK, k_BHSK)
  # Gathers from the flattened [.., rows * R] scores: row q's bucket b is at q * R + b.
  c2p_BHtR = jnp.einsum("bhqk,hkr->bhqr", q_BHtK, kpos_HKR)
  c2p_BHtS = jnp.take(c2p_BHtR.reshape(B, H, t * R),
                      jnp.arange(t)[:, None] * R + bucket_tS, axis=-1)
  p2c_BHtS = jnp.take(p2c_BHSR.reshape(B, H, S * R),
                      jnp.arange(S)[None, :] * R + bucket_tS, axis=-1)
  return c2c_BHtS + c2p_BHtS + p2c_BHtS, dict(cache, k=k_BHSK, p2c=p2c_BHSR)


def cache_shapes(cfg, batch: int, slots: int) -> dict:
  """The shapes of one layer's key/value cache for `_cached_scores` (values in `v`)."""
  H = cfg.num_heads
  K = cfg.hidden_size // H
  R = 2 * cfg.position_bucket_size - 1
  return dict(k=(batch, H, slots, K), v=(batch, H, slots, K), p2c=(batch, H, slots, R))


def _with_values(cache, v_BtD, start, H):
  """The cache with the new tokens' values [B, t, D] written at slots start.."""
  return dict(cache, v=jax.lax.dynamic_update_slice_in_dim(cache["v"], _heads(v_BtD, H), start,
                                                            axis=2))


class DisentangledAttention(nnx.Module):
  """GPT-BERT's attention: content and relative-position terms, GELU-gated values."""

  def __init__(self, cfg, layer_index, *, rngs):
    del layer_index  # nothing here is scaled with depth
    D, std = cfg.hidden_size, init_std(cfg)
    self.qk = Dense(D, 2 * D, ("embed", "qkv"), bias=True, std=std, rngs=rngs)
    self.vg = Dense(D, 2 * D, ("embed", "qkv"), bias=True, std=std, rngs=rngs)
    self.out = Dense(D, D, ("qkv", "embed"), bias=True, std=std, rngs=rngs)
    self.norm = inner_norm(cfg)
    self.cfg = cfg

  def __call__(self, x_BTD, rel_RD, mask_B1TT, deterministic, rngs):
    cfg = self.cfg
    h_BTD = layer_norm(x_BTD, cfg.layer_norm_eps)
    scores_BHTT = _disentangled_scores(self.qk, h_BTD, rel_RD, cfg, deterministic, rngs)
    v_BTD, gate_BTD = jnp.split(self.vg(h_BTD), 2, axis=-1)
    ctx_BTD = _context(scores_BHTT, mask_B1TT, _heads(v_BTD, cfg.num_heads), x_BTD.dtype,
                       cfg.dropout, deterministic, rngs)
    return dropout(self._output(ctx_BTD, gate_BTD), cfg.dropout, deterministic, rngs)

  def _output(self, ctx_BTD, gate_BTD):
    ctx_BTD = ctx_BTD * jax.nn.gelu(gate_BTD, approximate=False)
    return self.out(self.norm(ctx_BTD, self.cfg.layer_norm_eps))

  def cached(self, x_BtD, rel_RD, mask_B1tS, cache, start):
    """(output [B, t, D], updated cache) of t new tokens at slots start.. (no dropout): the
    rows of __call__ over all slots that belong to the new tokens (see _cached_scores)."""
    cfg = self.cfg
    h_BtD = layer_norm(x_BtD, cfg.layer_norm_eps)
    scores_BHtS, cache = _cached_scores(self.qk, h_BtD, rel_RD, cache, start, cfg)
    v_BtD, gate_BtD = jnp.split(self.vg(h_BtD), 2, axis=-1)
    cache = _with_values(cache, v_BtD, start, cfg.num_heads)
    ctx_BtD = _context(scores_BHtS, mask_B1tS, cache["v"], x_BtD.dtype, 0.0, True, None)
    return self._output(ctx_BtD, gate_BtD), cache


class LTGAttention(nnx.Module):
  """LTG-BERT's attention (also ELC-BERT's and BootBERT's): GPT-BERT's scores, plain values,
  and an affine LayerNorm after the output projection."""

  def __init__(self, cfg, layer_index, *, rngs):
    D, std = cfg.hidden_size, init_std(cfg)
    self.qk = Dense(D, 2 * D, ("embed", "qkv"), bias=True, std=std, rngs=rngs)
    self.v = Dense(D, D, ("embed", "qkv"), bias=True, std=std, rngs=rngs)
    self.out = Dense(D, D, ("qkv", "embed"), bias=True, std=std, rngs=rngs)
    # BootBERT starts the gain smaller with depth (model.depth_scaling 'boot_bert').
    gain = depth_scale(layer_index) if cfg.depth_scaling == "boot_bert" else 1.0
    self.post_norm_scale = param(jnp.full((D,), gain, jnp.float32), ("embed",))
    self.post_norm_bias = param(jnp.zeros((D,), jnp.float32), ("embed",))
    self.cfg = cfg

  def __call__(self, x_BTD, rel_RD, mask_B1TT, deterministic, rngs):
    cfg = self.cfg
    h_BTD = layer_norm(x_BTD, cfg.layer_norm_eps)
    scores_BHTT = _disentangled_scores(self.qk, h_BTD, rel_RD, cfg, deterministic, rngs)
    ctx_BTD = _context(scores_BHTT, mask_B1TT, _heads(self.v(h_BTD), cfg.num_heads),
                       x_BTD.dtype, cfg.dropout, deterministic, rngs)
    return dropout(self._output(ctx_BTD), cfg.dropout, deterministic, rngs)

  def _output(self, ctx_BTD):
    ctx_BTD = layer_norm(self.out(ctx_BTD), self.cfg.layer_norm_eps)
    return (ctx_BTD * self.post_norm_scale[...].astype(ctx_BTD.dtype)
            + self.post_norm_bias[...].astype(ctx_BTD.dtype))

  def cached(self, x_BtD, rel_RD, mask_B1tS, cache, start):
    """As DisentangledAttention.cached."""
    cfg = self.cfg
    h_BtD = layer_norm(x_BtD, cfg.layer_norm_eps)
    scores_BHtS, cache = _cached_scores(self.qk, h_BtD, rel_RD, cache, start, cfg)
    cache = _with_values(cache, self.v(h_BtD), start, cfg.num_heads)
    ctx_BtD = _context(scores_BHtS, mask_B1tS, cache["v"], x_BtD.dtype, 0.0, True, None)
    return self._output(ctx_BtD), cache


def _no_rotation(x_BHTK, pos):
  del pos
  return x_BHTK


def _rotation(x_BHTK, cos_sin):
  return rotate(x_BHTK, *cos_sin)


class StandardAttention(nnx.Module):
  """Scaled dot-product attention; RoPE on queries and keys with rotary positions."""

  def __init__(self, cfg, layer_index, *, rngs):
    del layer_index  # nothing here is scaled with depth
    D, std = cfg.hidden_size, init_std(cfg)
    self.qkv = Dense(D, 3 * D, ("embed", "qkv"), bias=True, std=std, rngs=rngs)
    self.out = Dense(D, D, ("qkv", "embed"), bias=True, std=std, rngs=rngs)
    self.norm = inner_norm(cfg)
    self.rotate = _rotation if cfg.position == "rotary" else _no_rotation
    self.cfg = cfg

  def __call__(self, x_BTD, pos, mask_B1TT, deterministic, rngs):
    """`pos`: the embedding's positional input, (cos, sin) for rotary, else None."""
    cfg = self.cfg
    B, T, D = x_BTD.shape
    H = cfg.num_heads
    K = D // H
    h_BTD = layer_norm(x_BTD, cfg.layer_norm_eps)
    qkv_BT3HK = self.qkv(h_BTD).reshape(B, T, 3, H, K)
    q_BHTK, k_BHTK, v_BHTK = (qkv_BT3HK[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    q_BHTK = self.rotate(q_BHTK, pos) * jnp.asarray(1.0 / math.sqrt(K), q_BHTK.dtype)
    k_BHTK = self.rotate(k_BHTK, pos)
    scores_BHTT = jnp.einsum("bhqk,bhsk->bhqs", q_BHTK, k_BHTK)
    ctx_BTD = _context(scores_BHTT, mask_B1TT, v_BHTK, x_BTD.dtype, cfg.dropout,
                       deterministic, rngs)
    ctx_BTD = self.out(self.norm(ctx_BTD, cfg.layer_norm_eps))
    return dropout(ctx_BTD, cfg.dropout, deterministic, rngs)


ATTENTIONS = {"disentangled": DisentangledAttention, "ltg": LTGAttention,
              "standard": StandardAttention}
