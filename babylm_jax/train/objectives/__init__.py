"""The training objectives, one module per `objective.kind`, behind one narrow interface.

Each module holds:
  rows                    the data rule that turns a step's drawn rows into its batch
                          (babylm_jax/data/batches.py; every batch has the same keys)
  BACKENDS                the zero-shot scoring backends that fit a model trained this way
  SUM_KEYS                the sums that `sums` returns
  sums(model, batch, config, teacher, *, deterministic, rngs, divisor)
                          loss and metric sums of (part of) a batch from the model's outputs
  counts(batch)           the whole batch's denominators for `loss`
  loss(sums, totals, config), metrics(sums, config)
                          the scalar optimised (sums of a micro-batch over the whole batch's
                          totals, so micro-batch gradients add up exactly) and the logged values
  init_teacher(params), update_teacher(teacher, params, step, config, derived)
                          the network the objective keeps beside the trained one (the
                          bootstrap teacher; an empty dict for the others)
The training step calls these and nothing else; see hybrid.py, masked.py, causal.py and
bootstrap.py for what each does.
"""

from __future__ import annotations

from babylm_jax.errors import ConfigError
from babylm_jax.train.objectives import bootstrap, causal, hybrid, masked

KINDS = {"hybrid": hybrid, "masked": masked, "causal": causal, "bootstrap": bootstrap}


def get(config):
  """The module of `config.objective.kind`."""
  kind = config.objective.kind
  if kind not in KINDS:
    raise ConfigError(f"objective.kind '{kind}' is unknown; use {', '.join(KINDS)}.")
  return KINDS[kind]
