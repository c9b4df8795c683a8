"""BootBERT's latent bootstrapping ("Mean BERTs make erratic language teachers", Samuel 2023).

Batch: span masking picks tokens, each becomes a `<mask>` hole, predicted at its own position.
Network (model/decoder.py): the encoder does not see the holes; BootBERT's shallow decoder
(`model.decoder_layers`, no dropout) fills them from the encoder's states plus a learned mask
embedding. The teacher, an exponential moving average of the encoder (embedding, layers,
layer weights) whose decay rises linearly from `teacher_decay_start` to `teacher_decay_end`
over the run, encodes the full input without dropout. At the holes:
  loss = mlm_weight x cross-entropy of the LM head on the decoder's states
         + smooth-L1 (beta 1, mean over holes and features) between the latent head's
           prediction from the decoder's states and the teacher's last states (after its
           final_norm, if any) LayerNorm-ed once more without affine (eps 1e-5)
         + the z-loss.
The teacher lives in the train state (checkpointed, sharded like the parameters it follows,
outside the optimizer). BootBERT raises the weight decay on a cosine (train.weight_decay_end).
Scored by `pll` through encoder and decoder: the hole read at its own position, as trained.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from babylm_jax.data import batches
from babylm_jax.model.gpt_bert import ENCODER_PARTS
from babylm_jax.model.layers import layer_norm
from babylm_jax.train import loss as loss_lib
from babylm_jax.train.objectives.hybrid import counts  # noqa: F401
from babylm_jax.train.objectives.targets import (capacity, head_fn, over_targets, take,
                                                 take_states)

rows = batches.hole_rows
BACKENDS = ("pll",)
SUM_KEYS = loss_lib.SUM_KEYS + ("latent",)
# The teacher's states are normalised with PyTorch's default LayerNorm epsilon, as BootBERT's
# code does (F.layer_norm without eps), whatever model.layer_norm_eps is.
TEACHER_NORM_EPS = 1e-5


def init_teacher(params) -> dict:
  """The teacher starts as a copy of the encoder."""
  return jax.tree.map(jnp.copy, {k: params[k] for k in ENCODER_PARTS if k in params})


def teacher_decay(config, derived, step):
  """The decay of the update that completes `step` + 1 steps: linear in the steps done."""
  b = config.objective.bootstrap
  frac = jnp.minimum((jnp.asarray(step, jnp.float32) + 1.0) / max(derived.total_steps, 1), 1.0)
  return b.teacher_decay_start + (b.teacher_decay_end - b.teacher_decay_start) * frac


def update_teacher(teacher, params, step, config, derived) -> dict:
  decay = teacher_decay(config, derived, step)
  return jax.tree.map(lambda t, p: decay * t + (1.0 - decay) * p, teacher,
                      {k: params[k] for k in teacher})


def _smooth_l1(diff_xD):
  a = jnp.abs(diff_xD)
  return jnp.where(a < 1.0, 0.5 * jnp.square(diff_xD), a - 0.5)


def sums(model, batch, config, teacher, *, deterministic, rngs, divisor):
  ids_BT, seg_BT = batch["input_ids"], batch["segment_ids"]
  B, T = ids_BT.shape
  bidirectional_B = jnp.zeros((B,), bool)
  states_BTD = model.states(ids_BT, seg_BT, bidirectional_B, deterministic=deterministic,
                            rngs=rngs)
  graphdef, state = nnx.split(model)
  teacher_model = nnx.merge(graphdef, {**nnx.to_pure_dict(state), **teacher})
  # The full input: the targets hold every position's own token.
  taught_BTD = jax.lax.stop_gradient(
      teacher_model.encode(batch["targets"], seg_BT, bidirectional_B, deterministic=True))
  D = states_BTD.shape[-1]
  h_ND, t_ND = states_BTD.reshape(B * T, D), taught_BTD.reshape(B * T, D)
  targets_N = batch["targets"].reshape(-1)
  mask_N = batch["loss_mask"].reshape(-1)
  head = head_fn(model, config, deterministic, rngs)

  def per_target(idx_C, weight_C):
    h_CD = take_states(h_ND, idx_C)
    out = loss_lib.target_sums(head(h_CD, idx_C), take(targets_N, idx_C), weight_C,
                               jnp.zeros(weight_C.shape, bool))
    guess_CD = model.decoder.latent_head(h_CD).astype(jnp.float32)
    goal_CD = layer_norm(take_states(t_ND, idx_C).astype(jnp.float32), TEACHER_NORM_EPS)
    latent_C = _smooth_l1(guess_CD - goal_CD).sum(-1)
    out["latent"] = jnp.sum(latent_C * weight_C.astype(jnp.float32))
    return out

  return over_targets(per_target, mask_N, capacity(config, B, T, divisor))


def loss(sums, totals, config):
  o = config.objective
  n = jnp.maximum(totals["masked_targets"], 1.0)
  z = loss_lib.z_term(sums, totals, 1.0, o.z_loss_pooling)
  return (o.bootstrap.mlm_weight * sums["masked_ce"] / n
          + sums["latent"] / (n * config.model.hidden_size) + o.z_loss * z)


def metrics(sums, config) -> dict:
  o = config.objective
  out = loss_lib.metrics(sums, 1.0, o.z_loss, o.z_loss_pooling)
  out["latent_loss"] = sums["latent"] / (jnp.maximum(sums["masked_targets"], 1.0)
                                         * config.model.hidden_size)
  out["loss"] = loss(sums, sums, config)
  return out
