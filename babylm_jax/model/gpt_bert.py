"""GPT-BERT (LTG-BERT lineage) as Flax NNX modules.

One network serves both halves of the hybrid objective: rows marked causal attend to earlier
tokens of their own document only, the other (masked) rows attend to their whole document.
In both modes the logits at position i score token i + 1 (masked-next-token prediction), so
the model never shifts anything; the batch's `targets` already hold the next token.

Pieces, as in GPT-BERT:
- embedding: word embedding -> LayerNorm (no scale/bias) -> dropout; 2 * bucket_size - 1
  relative-position vectors with an affine LayerNorm, shared by every layer;
- attention: disentangled scores (content-content + content-position + position-content over
  log-spaced relative-position buckets) scaled by 1/sqrt(3 * head_dim), values gated by
  GELU(gate), LayerNorm before the output projection;
- feed-forward: GEGLU with LayerNorms before and inside;
- layer weighting: every sublayer's new state is a learned weighted sum of all earlier states
  ('gpt_bert'), ELC-BERT's per-layer softmax mix ('elc') or a plain residual ('residual');
- head: LayerNorm -> dense -> GELU -> LayerNorm -> projection tied to the word embedding.

Parameters are float32 and carry logical axis names (`axes` metadata, see model/axes.py);
activations run in `cfg.compute_dtype`; logits come out in float32.
Kernels are stored [in, out]; fused projections keep PyTorch's chunk order (query | key,
value | gate, value | gate for the feed-forward).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from babylm_jax.model.axes import constrain

_NEG = -1e30  # masked score; finite so that fully masked (padding) rows stay finite


def _dtype(cfg):
  return jnp.dtype(cfg.compute_dtype)


def _init_std(cfg) -> float:
  return math.sqrt(2.0 / (5.0 * cfg.hidden_size))


def _trunc_normal(key, shape, std):
  # Cut at +-2 std, the std being that of the untruncated normal (as torch's trunc_normal_).
  return jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32) * std


def _param(value, axes):
  return nnx.Param(value, axes=tuple(axes))


def layer_norm(x, eps):
  """LayerNorm without scale or bias; statistics in float32, result in x's dtype."""
  x32 = x.astype(jnp.float32)
  mean = x32.mean(-1, keepdims=True)
  var = jnp.square(x32 - mean).mean(-1, keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def _fmix32(h):
  # MurmurHash3's 32-bit finaliser: every input bit flips each output bit with p ~ 1/2.
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def dropout_bits(key, shape):
  """uint32 bits for a dropout mask: a hash of each element's flat index under two seed words.

  jax.random's threefry costs ~0.03 s per million elements on a 2-core CPU (~0.9 s of a
  strict_small step); dropout needs independent-looking bits, not a cryptographic stream, so
  only the two seed words come from `key` and each element hashes (index, seeds) in a few
  integer ops. The index is global, so a sharded array draws the same mask as on one device.
  """
  seed = jax.random.bits(key, (2,), jnp.uint32)
  idx = jnp.zeros(shape, jnp.uint32)
  stride = 1
  for axis in reversed(range(len(shape))):
    idx = idx + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
    stride *= shape[axis]
  h = _fmix32(idx * jnp.uint32(0x9E3779B9) + seed[0])
  return _fmix32(h ^ seed[1])


def dropout(x, rate, deterministic, rngs):
  if deterministic or rate == 0.0:
    return x
  # keep with probability (1 - rate), exact to 2^-32
  threshold = min(round((1.0 - rate) * 2.0 ** 32), 2 ** 32 - 1)
  keep = dropout_bits(rngs.dropout(), x.shape) < jnp.uint32(threshold)
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


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


def attention_mask(segment_ids_BT, is_causal_B):
  """[B, 1, T, T] bool: same non-padding document, and key <= query in causal rows."""
  T = segment_ids_BT.shape[1]
  seg_q = segment_ids_BT[:, :, None]
  seg_k = segment_ids_BT[:, None, :]
  same_doc_BTT = (seg_q == seg_k) & (seg_k > 0)
  lower_TT = jnp.tril(jnp.ones((T, T), bool))
  allowed_BTT = same_doc_BTT & (~is_causal_B[:, None, None] | lower_TT[None])
  return allowed_BTT[:, None]


class Dense(nnx.Module):
  """x @ kernel (+ bias), kernel [in, out] in float32, computed in x's dtype."""

  def __init__(self, d_in, d_out, axes, *, bias, std, rngs, scale=1.0):
    self.kernel = _param(_trunc_normal(rngs.params(), (d_in, d_out), std) * scale, axes)
    self.bias = _param(jnp.zeros((d_out,), jnp.float32), axes[1:]) if bias else None

  def __call__(self, x):
    y = jnp.dot(x, self.kernel[...].astype(x.dtype))
    if self.bias is not None:
      y = y + self.bias[...].astype(x.dtype)
    return y


class Embedding(nnx.Module):

  def __init__(self, cfg, *, rngs):
    D, std = cfg.hidden_size, _init_std(cfg)
    self.word = _param(_trunc_normal(rngs.params(), (cfg.vocab_size, D), std),
                       ("vocab", "embed"))
    R = 2 * cfg.position_bucket_size - 1
    self.relative = _param(_trunc_normal(rngs.params(), (R, D), std), ("positions", "embed"))
    self.relative_norm_scale = _param(jnp.ones((D,), jnp.float32), ("embed",))
    self.relative_norm_bias = _param(jnp.zeros((D,), jnp.float32), ("embed",))
    self.cfg = cfg

  def __call__(self, input_ids_BT, deterministic, rngs, word_BTD=None):
    cfg, dtype = self.cfg, _dtype(self.cfg)
    if word_BTD is None:
      word_BTD = jnp.take(self.word[...], input_ids_BT, axis=0)
    x_BTD = word_BTD.astype(dtype)
    x_BTD = dropout(layer_norm(x_BTD, cfg.layer_norm_eps), cfg.dropout, deterministic, rngs)
    rel_RD = layer_norm(self.relative[...], cfg.layer_norm_eps)
    rel_RD = rel_RD * self.relative_norm_scale[...] + self.relative_norm_bias[...]
    return x_BTD, rel_RD.astype(dtype)


class Attention(nnx.Module):

  def __init__(self, cfg, *, rngs):
    D, std = cfg.hidden_size, _init_std(cfg)
    self.qk = Dense(D, 2 * D, ("embed", "qkv"), bias=True, std=std, rngs=rngs)
    self.vg = Dense(D, 2 * D, ("embed", "qkv"), bias=True, std=std, rngs=rngs)
    self.out = Dense(D, D, ("qkv", "embed"), bias=True, std=std, rngs=rngs)
    self.cfg = cfg

  def __call__(self, x_BTD, rel_RD, mask_B1TT, deterministic, rngs):
    cfg = self.cfg
    B, T, D = x_BTD.shape
    H = cfg.num_heads
    K = D // H
    h_BTD = layer_norm(x_BTD, cfg.layer_norm_eps)
    # Heads ahead of length ([B, H, T, K]): the score and context matmuls batch over (B, H).
    qk_BT2HK = self.qk(h_BTD).reshape(B, T, 2, H, K)
    q_BHTK = qk_BT2HK[:, :, 0].transpose(0, 2, 1, 3)
    k_BHTK = qk_BT2HK[:, :, 1].transpose(0, 2, 1, 3)
    v_BTD, gate_BTD = jnp.split(self.vg(h_BTD), 2, axis=-1)
    v_BHTK = v_BTD.reshape(B, T, H, K).transpose(0, 2, 1, 3)
    rel_RD = dropout(rel_RD, cfg.dropout, deterministic, rngs)
    R = rel_RD.shape[0]
    pos_R2HK = self.qk(rel_RD).reshape(R, 2, H, K)
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
    scores_BHTT = (c2c_BHTT + c2p_BHTT + p2c_BHTT).astype(jnp.float32)
    scores_BHTT = jnp.where(mask_B1TT, scores_BHTT, _NEG)
    probs_BHTT = jax.nn.softmax(scores_BHTT, axis=-1).astype(x_BTD.dtype)
    probs_BHTT = dropout(probs_BHTT, cfg.dropout, deterministic, rngs)
    ctx_BTD = jnp.einsum("bhqs,bhsk->bqhk", probs_BHTT, v_BHTK).reshape(B, T, D)
    ctx_BTD = ctx_BTD * jax.nn.gelu(gate_BTD, approximate=False)
    ctx_BTD = self.out(layer_norm(ctx_BTD, cfg.layer_norm_eps))
    return dropout(ctx_BTD, cfg.dropout, deterministic, rngs)


class FeedForward(nnx.Module):

  def __init__(self, cfg, layer_index, *, rngs):
    D, F, std = cfg.hidden_size, cfg.intermediate_size, _init_std(cfg)
    scale = math.sqrt(1.0 / (2.0 * (layer_index + 1)))
    self.up = Dense(D, 2 * F, ("embed", "mlp"), bias=False, std=std, rngs=rngs, scale=scale)
    self.down = Dense(F, D, ("mlp", "embed"), bias=False, std=std, rngs=rngs, scale=scale)
    self.cfg = cfg

  def __call__(self, x_BTD, deterministic, rngs):
    eps = self.cfg.layer_norm_eps
    value_BTF, gate_BTF = jnp.split(self.up(layer_norm(x_BTD, eps)), 2, axis=-1)
    h_BTF = value_BTF * jax.nn.gelu(gate_BTF, approximate=True)
    y_BTD = self.down(layer_norm(h_BTF, eps))
    return dropout(y_BTD, self.cfg.dropout, deterministic, rngs)


class Head(nnx.Module):

  def __init__(self, cfg, *, rngs):
    D = cfg.hidden_size
    self.dense = Dense(D, D, ("embed", "embed_out"), bias=True, std=_init_std(cfg), rngs=rngs)
    self.bias = _param(jnp.zeros((cfg.vocab_size,), jnp.float32), ("vocab",))
    self.cfg = cfg

  def transform(self, x_xD):
    """The head before its projection onto the vocabulary: [..., D] -> [..., D]."""
    eps = self.cfg.layer_norm_eps
    h_xD = self.dense(layer_norm(x_xD, eps))
    return layer_norm(jax.nn.gelu(h_xD, approximate=False), eps)

  def __call__(self, x_xD, word_VD):
    h_xD = self.transform(x_xD)
    logits_xV = jnp.einsum("...d,vd->...v", h_xD, word_VD.astype(h_xD.dtype),
                           preferred_element_type=jnp.float32)
    return logits_xV + self.bias[...]


def _weighting_shape(cfg) -> tuple[int, int] | None:
  L = cfg.num_layers
  if cfg.layer_weighting == "gpt_bert":
    return (2 * L, 2 * L + 1)  # row i mixes the embedding and sublayers 0..i
  if cfg.layer_weighting == "elc":
    return (L + 1, L + 1)  # row l mixes the embedding and layers 0..l-1 (row L: output)
  return None


def _weighting_mask(cfg) -> np.ndarray:
  rows, cols = _weighting_shape(cfg)
  offset = 1 if cfg.layer_weighting == "gpt_bert" else 0
  return np.arange(cols)[None, :] <= np.arange(rows)[:, None] + offset


class GPTBert(nnx.Module):
  """The network. See the module docstring; `cfg` is `config.model`."""

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.embedding = Embedding(cfg, rngs=rngs)
    self.attention = nnx.List([Attention(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    self.ffn = nnx.List([FeedForward(cfg, i, rngs=rngs) for i in range(cfg.num_layers)])
    self.head_module = Head(cfg, rngs=rngs)
    shape = _weighting_shape(cfg)
    if shape is None:
      self.layer_weight = None
    elif cfg.layer_weighting == "gpt_bert":
      # Row i starts as the identity on its latest input, i.e. a plain residual stream.
      w = np.zeros(shape, np.float32)
      w[np.arange(shape[0]), np.arange(shape[0]) + 1] = 1.0
      self.layer_weight = _param(jnp.asarray(w), ("layers", "layers"))
    else:
      self.layer_weight = _param(jnp.zeros(shape, jnp.float32), ("layers", "layers"))

  def encode(self, input_ids_BT, segment_ids_BT, is_causal_B, *, deterministic=True,
             rngs: nnx.Rngs | None = None, word_BTD=None):
    """Final hidden states [B, T, D] in the compute dtype.

    `word_BTD`, when given, replaces the word-embedding lookup of `input_ids_BT` (prompt
    tuning inserts learned vectors this way); everything after the lookup is unchanged.
    """
    cfg = self.cfg
    if not deterministic and cfg.dropout > 0 and rngs is None:
      raise ValueError("encode(deterministic=False) needs rngs with a 'dropout' stream.")
    names = ("batch", "length", "embed")
    mask_B1TT = attention_mask(segment_ids_BT, is_causal_B)
    x_BTD, rel_RD = self.embedding(input_ids_BT, deterministic, rngs, word_BTD)
    x_BTD = constrain(x_BTD, names)
    sublayers = []
    for attn, ffn in zip(self.attention, self.ffn):
      sublayers.append(functools.partial(attn, rel_RD=rel_RD, mask_B1TT=mask_B1TT,
                                         deterministic=deterministic, rngs=rngs))
      sublayers.append(functools.partial(ffn, deterministic=deterministic, rngs=rngs))

    if cfg.layer_weighting == "residual":
      for f in sublayers:
        x_BTD = constrain(x_BTD + f(x_BTD), names)
      return x_BTD

    w = jnp.where(_weighting_mask(cfg), self.layer_weight[...], 0.0)
    if cfg.layer_weighting == "gpt_bert":
      states = [x_BTD]
      for i, f in enumerate(sublayers):
        states.append(x_BTD + f(x_BTD))
        x_BTD = _mix(w[i, :i + 2], states, names)
      return x_BTD

    # elc: layer l's input is a softmax-weighted mix of the embedding and the contributions
    # (output minus input) of layers 0..l-1; row L gives the encoder output.
    w = jnp.where(_weighting_mask(cfg), self.layer_weight[...], -jnp.inf)
    outputs = [x_BTD]
    for l in range(cfg.num_layers):
      h_BTD = _mix(jax.nn.softmax(w[l, :l + 1]), outputs, names)
      y_BTD = h_BTD + sublayers[2 * l](h_BTD)
      y_BTD = y_BTD + sublayers[2 * l + 1](y_BTD)
      outputs.append(y_BTD - h_BTD)
    return _mix(jax.nn.softmax(w[-1]), outputs, names)

  def head(self, hidden_xD):
    """float32 logits [..., V] for hidden states of any leading shape."""
    return self.head_module(hidden_xD, self.embedding.word[...])

  def __call__(self, input_ids_BT, segment_ids_BT, is_causal_B, *, deterministic=True,
               rngs: nnx.Rngs | None = None):
    return self.head(self.encode(input_ids_BT, segment_ids_BT, is_causal_B,
                                 deterministic=deterministic, rngs=rngs))

  def layer_weights(self) -> np.ndarray:
    """The learned layer-weighting matrix for a heatmap; unused entries are NaN.

    gpt_bert: [2L, 2L + 1], row i = weights of (embedding, sublayer 0, ..., sublayer i).
    elc: [L + 1, L + 1], softmax-normalised rows. residual: an empty [0, 0] array.
    """
    if self.layer_weight is None:
      return np.zeros((0, 0), np.float32)
    mask = _weighting_mask(self.cfg)
    w = np.asarray(jax.device_get(self.layer_weight[...]), np.float32)
    if self.cfg.layer_weighting == "elc":
      w = np.where(mask, w, -np.inf)
      w = np.exp(w - w.max(-1, keepdims=True))
      w = w / w.sum(-1, keepdims=True)
    return np.where(mask, w, np.nan)


def _mix(weights_N, states, names):
  out = weights_N[0].astype(states[0].dtype) * states[0]
  for i in range(1, len(states)):
    out = out + weights_N[i].astype(states[i].dtype) * states[i]
  return constrain(out, names)


def count_params(cfg) -> int:
  """Parameter count without allocating (jax.eval_shape)."""
  abstract = nnx.eval_shape(lambda: GPTBert(cfg, rngs=nnx.Rngs(0)))
  state = nnx.state(abstract, nnx.Param)
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))
