"""BERT-style masked-token prediction (LTG-BERT, ELC-BERT, RoBERTa).

Batch: span masking picks tokens (max_span = 1: token-level, RoBERTa's dynamic masking);
each is replaced by <mask> / a random token / itself (80/10/10 by default) and predicted at
its own position: the logits at position k score token k. Loss: the mean cross-entropy over
those targets + the z-loss (the hybrid loss with masked rows only). Scored by
pseudo-log-likelihood (`pll`: each token masked and read at its own position), which the
export offers to the BabyLM pipeline as its `mlm` backend.
"""

from __future__ import annotations

from babylm_jax.data import batches
from babylm_jax.train.objectives.hybrid import (SUM_KEYS, counts, init_teacher,  # noqa: F401
                                                loss, metrics, sums, update_teacher)

rows = batches.masked_rows
BACKENDS = ("pll",)
