"""The small pieces every block of the network is made of.

Parameters are float32 and carry logical axis names (`axes` metadata, see model/axes.py);
kernels are stored [in, out] and computed in the input's dtype. LayerNorm has no scale or
bias (its statistics in float32) except where a block says otherwise (AffineNorm). Dropout
masks hash each element's index (see dropout_bits).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

NEG = -1e30  # masked score; finite so that fully masked (padding) rows stay finite


def compute_dtype(cfg):
  return jnp.dtype(cfg.compute_dtype)


def init_std(cfg) -> float:
  return math.sqrt(2.0 / (5.0 * cfg.hidden_size))


def depth_scale(layer_index: int) -> float:
  """sqrt(1 / (2 (layer + 1))): how much some initial weights shrink with depth
  (`model.depth_scaling`)."""
  return math.sqrt(1.0 / (2.0 * (layer_index + 1)))


def trunc_normal(key, shape, std):
  # Cut at +-2 std, the std being that of the untruncated normal (as torch's trunc_normal_).
  return jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32) * std


def param(value, axes):
  return nnx.Param(value, axes=tuple(axes))


def layer_norm(x, eps):
  """LayerNorm without scale or bias; statistics in float32, result in x's dtype."""
  x32 = x.astype(jnp.float32)
  mean = x32.mean(-1, keepdims=True)
  var = jnp.square(x32 - mean).mean(-1, keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def no_norm(x, eps):
  """Stands where a NormFormer LayerNorm would be when `model.normformer` is off."""
  del eps
  return x


def inner_norm(cfg):
  """The LayerNorm inside attention and feed-forward blocks (NormFormer), or nothing."""
  return layer_norm if cfg.normformer else no_norm


class AffineNorm(nnx.Module):
  """LayerNorm with a learned scale and bias (BootBERT's encoder and decoder end in one)."""

  def __init__(self, cfg):
    D = cfg.hidden_size
    self.scale = param(jnp.ones((D,), jnp.float32), ("embed",))
    self.bias = param(jnp.zeros((D,), jnp.float32), ("embed",))
    self.eps = cfg.layer_norm_eps

  def __call__(self, x_xD):
    y_xD = layer_norm(x_xD.astype(jnp.float32), self.eps) * self.scale[...] + self.bias[...]
    return y_xD.astype(x_xD.dtype)


class NoNorm(nnx.Module):
  """Stands where an AffineNorm would be when `model.final_norm` is off."""

  def __call__(self, x_xD):
    return x_xD


def final_norm(cfg):
  """The affine LayerNorm that ends the encoder and the decoder (`model.final_norm`), or
  nothing."""
  return AffineNorm(cfg) if cfg.final_norm else NoNorm()


def _fmix32(h):
  # MurmurHash3's 32-bit finaliser: every input bit flips each output bit with p ~ 1/2.
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def dropout_bits(key, shape, rows=None):
  """uint32 bits for a dropout mask: a hash of each element's flat index under two seed words.

  jax.random's threefry costs ~0.03 s per million elements on a 2-core CPU (~0.9 s of a
  strict_small step); dropout needs independent-looking bits, not a cryptographic stream, so
  only the two seed words come from `key` and each element hashes (index, seeds) in a few
  integer ops. The index is global, so a sharded array draws the same mask as on one device.
  `rows` (shape[:-1]) gives each row's index in a larger [M, shape[-1]] array, so that a
  gathered subset of rows draws exactly the mask those rows have in the full array.
  """
  seed = jax.random.bits(key, (2,), jnp.uint32)
  if rows is None:
    idx = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
      idx = idx + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
      stride *= shape[axis]
  else:
    idx = (rows.astype(jnp.uint32)[..., None] * jnp.uint32(shape[-1])
           + jax.lax.broadcasted_iota(jnp.uint32, shape, len(shape) - 1))
  h = _fmix32(idx * jnp.uint32(0x9E3779B9) + seed[0])
  return _fmix32(h ^ seed[1])


def dropout(x, rate, deterministic, rngs, rows=None):
  if deterministic or rate == 0.0:
    return x
  # keep with probability (1 - rate), exact to 2^-32
  threshold = min(round((1.0 - rate) * 2.0 ** 32), 2 ** 32 - 1)
  keep = dropout_bits(rngs.dropout(), x.shape, rows) < jnp.uint32(threshold)
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


class Dense(nnx.Module):
  """x @ kernel (+ bias), kernel [in, out] in float32, computed in x's dtype."""

  def __init__(self, d_in, d_out, axes, *, bias, std, rngs, scale=1.0):
    self.kernel = param(trunc_normal(rngs.params(), (d_in, d_out), std) * scale, axes)
    self.bias = param(jnp.zeros((d_out,), jnp.float32), axes[1:]) if bias else None

  def __call__(self, x):
    y = jnp.dot(x, self.kernel[...].astype(x.dtype))
    if self.bias is not None:
      y = y + self.bias[...].astype(x.dtype)
    return y
