"""Next-token prediction only (GPT): every row causal, every next token of the document a
target; the logits at position k score token k + 1. Loss: the mean cross-entropy + the
z-loss (the hybrid loss with causal rows only). Scored by the `causal` backend alone.
"""

from __future__ import annotations

from babylm_jax.data import batches
from babylm_jax.train.objectives.hybrid import (SUM_KEYS, counts, init_teacher,  # noqa: F401
                                                loss, metrics, sums, update_teacher)

rows = batches.hybrid_rows  # with every row causal (batches.CAUSAL_FRACTIONS)
BACKENDS = ("causal",)
