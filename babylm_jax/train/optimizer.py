"""The optimizer: AdamW or LAMB with a decay mask, global-norm clipping and the LR schedule.

Schedule: linear warmup from 0 to the peak, cosine decay to min_lr_ratio x peak, then a linear
cooldown to 0 over the last cooldown_steps (steps from `config.derive()`).

`train.optimizer`:
- `adamw` and `lamb` (optax's): weight decay on matrices only, the dense kernels and the
  (tied) word embedding; never on biases, LayerNorm parameters, relative-position embeddings or
  layer weights. optax's LAMB scales every parameter's update by its trust ratio.
- `gpt_bert_lamb`: LAMB as the LTG group's reference code applies it. Parameters whose
  '/'-joined path holds one of the fragments in `train.no_decay` take a plain Adam step (no
  decay, no trust ratio), as the reference's `no_decay` group; every other parameter takes
  decay and the trust ratio ||p|| / ||adam + wd p||, computed per tensor as the reference's
  per-tensor parameters are: each row of the layer-weight matrix is one of the reference's
  per-layer vectors. `no_decay` ('bias', 'norm') is GPT-BERT's (pretraining/train_10m.py:
  the word and relative-position embeddings and the layer weights take decay and the trust
  ratio); LTG-BERT's adds 'embedding', ELC-BERT's also 'layer_weight'.
Weight decay is train.weight_decay throughout, or with train.weight_decay_end a cosine from the
one to the other over the run (BootBERT's rising decay).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

# Leaf names (the last key of a parameter's path) that weight decay applies to.
DECAYED = ("kernel", "word")


def decay_mask(params):
  """A tree of bools like `params`: True where weight decay applies."""
  def decide(path, _):
    return _key_name(path[-1]) in DECAYED
  return jax.tree_util.tree_map_with_path(decide, params)


def _key_name(key) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def lamb_trust_mask(no_decay):
  """A function of the params: True where gpt_bert_lamb decays and applies the trust ratio,
  i.e. where the parameter's path holds none of the `no_decay` fragments."""
  def mask(params):
    def decide(path, _):
      name = "/".join(_key_name(k) for k in path)
      return not any(fragment in name for fragment in no_decay)
    return jax.tree_util.tree_map_with_path(decide, params)
  return mask


def _is_row_wise(path) -> bool:
  return _key_name(path[-1]) == "layer_weight"


def scale_by_trust_ratio_per_tensor(mask) -> optax.GradientTransformation:
  """Updates u of the parameters p that `mask` selects become u * ||p|| / ||u|| (1 when either
  norm is 0), per tensor, and per row for the layer-weight matrix; the others are unchanged."""
  def scale(path, u, p, on):
    if not on:
      return u
    axes = tuple(range(1, u.ndim)) if _is_row_wise(path) else None
    p_norm = jnp.sqrt(jnp.sum(jnp.square(p), axis=axes, keepdims=axes is not None))
    u_norm = jnp.sqrt(jnp.sum(jnp.square(u), axis=axes, keepdims=axes is not None))
    ok = (p_norm > 0) & (u_norm > 0)
    return u * jnp.where(ok, p_norm / jnp.where(ok, u_norm, 1.0), 1.0)

  def update(updates, params):
    return jax.tree_util.tree_map_with_path(scale, updates, params, mask(params))
  return optax.stateless(update)


# GPT-BERT's reference `no_decay` list (the default of train.no_decay).
GPT_BERT_NO_DECAY = ("bias", "norm")


def gpt_bert_lamb(learning_rate, *, b1, b2, eps, weight_decay,
                  no_decay=GPT_BERT_NO_DECAY) -> optax.GradientTransformation:
  mask = lamb_trust_mask(tuple(no_decay))
  return optax.chain(
      optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
      optax.add_decayed_weights(weight_decay, mask=mask),
      scale_by_trust_ratio_per_tensor(mask),
      optax.scale_by_learning_rate(learning_rate))


def learning_rate_schedule(config, derived) -> optax.Schedule:
  t = config.train
  total, warmup, cooldown = derived.total_steps, derived.warmup_steps, derived.cooldown_steps
  peak, floor = t.lr, t.lr * t.min_lr_ratio
  decay = max(total - warmup - cooldown, 1)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, max(warmup, 1)),
       optax.cosine_decay_schedule(peak, decay, alpha=t.min_lr_ratio),
       optax.linear_schedule(floor, 0.0, max(cooldown, 1))],
      boundaries=[warmup, warmup + decay])


def weight_decay_schedule(config, derived):
  """train.weight_decay, or a cosine from it (update 0) to train.weight_decay_end (the end)."""
  t = config.train
  if t.weight_decay_end is None:
    return t.weight_decay
  start, end, total = float(t.weight_decay), float(t.weight_decay_end), derived.total_steps

  def decay(count):
    frac = jnp.minimum(jnp.asarray(count, jnp.float32) / max(total, 1), 1.0)
    return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
  return decay


def make_optimizer(config, derived) -> tuple[optax.GradientTransformation, optax.Schedule]:
  t = config.train
  schedule = learning_rate_schedule(config, derived)
  wd = weight_decay_schedule(config, derived)
  kind = {"adamw": optax.adamw, "lamb": optax.lamb}.get(t.optimizer)
  if kind is None:
    opt = gpt_bert_lamb(schedule, b1=t.b1, b2=t.b2, eps=t.eps, weight_decay=wd,
                        no_decay=t.no_decay)
  else:
    opt = kind(schedule, b1=t.b1, b2=t.b2, eps=t.eps, weight_decay=wd, mask=decay_mask)
  return optax.chain(optax.clip_by_global_norm(t.grad_clip), opt), schedule


def ema_decay_at(config, step):
  """The EMA decay used by the update that completes `step` + 1 steps.

  With `train.ema_warmup` the decay is min(ema_decay, (1 + step) / (10 + step)): the EMA then
  averages over about the last tenth of the steps so far until it reaches ema_decay, so that a
  short run's EMA does not still hold the random initial weights (with a fixed 0.999, 45% of
  them remain after 800 steps).
  """
  t = config.train
  if not t.ema_warmup:
    return jnp.asarray(t.ema_decay, jnp.float32)
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(jnp.float32(t.ema_decay), (1.0 + step) / (10.0 + step))


def ema_update(ema, params, decay):
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
