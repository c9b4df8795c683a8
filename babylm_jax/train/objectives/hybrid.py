"""GPT-BERT's hybrid objective (Charpentier & Samuel 2024): masked-next-token and causal rows.

Batch: `causal_fraction` of the rows are causal (every next token of the document is a
target), the others masked-next-token rows (the logits at position k score token k + 1, which
span masking hid). Loss (train/loss.py): r x the masked rows' mean cross-entropy + (1 - r) x
the causal rows' + the z-loss, r = objective.masked_weight. Scored by every backend that reads
the next token: causal, mntp, and their sum fused.

The token objectives (masked.py, causal.py) share this module's loss and differ in their rows.
"""

from __future__ import annotations

from babylm_jax.data import batches
from babylm_jax.train import loss as loss_lib
from babylm_jax.train.objectives.targets import token_sums

rows = batches.hybrid_rows
BACKENDS = ("causal", "mntp", "fused")
SUM_KEYS = loss_lib.SUM_KEYS


def sums(model, batch, config, teacher, *, deterministic, rngs, divisor):
  del teacher
  states_BTD = model.states(batch["input_ids"], batch["segment_ids"], batch["is_causal"],
                            deterministic=deterministic, rngs=rngs)
  return token_sums(model, states_BTD, batch, config, deterministic=deterministic, rngs=rngs,
                    divisor=divisor)


def counts(batch) -> dict:
  return loss_lib.counts(batch["loss_mask"], batch["is_causal"])


def loss(sums, totals, config):
  o = config.objective
  return loss_lib.objective(sums, totals, o.masked_weight, o.z_loss, o.z_loss_pooling)


def metrics(sums, config) -> dict:
  o = config.objective
  return loss_lib.metrics(sums, o.masked_weight, o.z_loss, o.z_loss_pooling)


def init_teacher(params) -> dict:
  del params
  return {}


def update_teacher(teacher, params, step, config, derived) -> dict:
  del params, step, config, derived
  return teacher