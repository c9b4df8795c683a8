"""The vocabulary head at a batch's target positions, shared by every objective.

The vocabulary projection, the largest matmul of the head, runs only at target positions:
the positions with `loss_mask` are gathered into a buffer of `train.target_capacity` x B x T
rows. A batch with more targets than that takes the (compiled, equally exact) branch that
projects every position, so the capacity changes speed, never results. When every row is
causal (nearly every position a target) there is no gather: the head projects every position.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from babylm_jax.data.batches import CAUSAL_FRACTIONS
from babylm_jax.model.axes import constrain
from babylm_jax.train import loss as loss_lib


def capacity(config, rows: int, length: int, divisor: int) -> int:
  n = rows * length
  o = config.objective
  if CAUSAL_FRACTIONS.get(o.kind, o.causal_fraction) == 1.0:
    # Causal rows make every position but a document's last a target: more than any useful
    # capacity, so the gather's branch would never be taken, and the fallback's
    # rematerialisation would run the head's forward pass twice every step.
    return n
  cap = math.ceil(config.train.target_capacity * n)
  unit = 8 * divisor  # keeps the gathered rows evenly shardable
  return min(n, -(-cap // unit) * unit)


def over_targets(per_target, mask_N, cap: int):
  """per_target(idx_C, weight_C) -> sums, on the gathered targets when they fit `cap`, else on
  every position (idx_C None, weight_N the mask): the same sums either way."""
  every_position = lambda: per_target(None, mask_N)  # noqa: E731
  if cap >= mask_N.shape[0]:
    return every_position()
  # Under jax.grad both branches of the cond hand their residuals to the backward pass, the
  # branch not taken as zeros: the fallback's [B*T, V] logits would be a zero-filled buffer
  # written every step (~30 ms of a strict_small CPU step). Rematerialised, its residuals
  # are only its [B*T, D] inputs; the rare batch that takes it recomputes its head.
  every_position = jax.checkpoint(every_position)

  def gathered():
    (idx_C,) = jnp.nonzero(mask_N, size=cap, fill_value=0)
    return per_target(idx_C, jnp.arange(cap) < jnp.sum(mask_N))

  return jax.lax.cond(jnp.sum(mask_N) <= cap, gathered, every_position)


def take(x_N, idx_C):
  """x at the gathered positions, or all of it when idx_C is None."""
  return x_N if idx_C is None else x_N[idx_C]


def take_states(h_ND, idx_C):
  """Hidden states at the gathered positions, sharded by rows like the batch."""
  return h_ND if idx_C is None else constrain(h_ND[idx_C], ("batch", "embed"))


def head_fn(model, config, deterministic, rngs):
  """head(h_xD, rows_x) -> logits, with the head's dropout when training.

  The dropout key is drawn out here (a cond's branches cannot advance `rngs`); every position
  draws its mask from its flat index, so the gathered and the full branch agree.
  """
  if deterministic or config.model.head_dropout == 0:
    return lambda h_xD, rows_x=None: model.head(h_xD)
  key = rngs.dropout()
  return lambda h_xD, rows_x=None: model.head(h_xD, deterministic=False,
                                              rngs=nnx.Rngs(dropout=key), rows_x=rows_x)


def token_sums(model, states_BTD, batch, config, *, deterministic, rngs, divisor, extra=None):
  """Loss sums (see loss.target_sums) of the head's predictions from `states_BTD` at the
  batch's targets. `extra(idx_C, weight_C, causal_C, logits_CV)` may add sums over the same
  targets (distillation's KL, train/distill.py)."""
  B, T, D = states_BTD.shape
  h_ND = states_BTD.reshape(B * T, D)
  targets_N = batch["targets"].reshape(-1)
  mask_N = batch["loss_mask"].reshape(-1)
  causal_N = jnp.broadcast_to(batch["is_causal"][:, None], (B, T)).reshape(-1)
  head = head_fn(model, config, deterministic, rngs)

  def per_target(idx_C, weight_C):
    logits_CV, causal_C = head(take_states(h_ND, idx_C), idx_C), take(causal_N, idx_C)
    out = loss_lib.target_sums(logits_CV, take(targets_N, idx_C), weight_C, causal_C)
    if extra is not None:
      out.update(extra(idx_C, weight_C, causal_C, logits_CV))
    return out

  return over_targets(per_target, mask_N, capacity(config, B, T, divisor))
