"""RoBERTa small on the strict-small track: BERT's architecture, RoBERTa's pretraining recipe.

Liu et al. 2019, "RoBERTa: A Robustly Optimized BERT Pretraining Approach". Changes from
base_config() (GPT-BERT small): standard scaled dot-product attention with learned absolute
positions, no NormFormer LayerNorms, a GELU feed-forward, a plain residual stream; objective
'masked' with token-level dynamic masking (max_span 1: each token drawn anew every time its
row is read) at 15%, 80/10/10, no next-sentence prediction, no z-loss; AdamW with betas
(0.9, 0.98), eps 1e-6, weight decay 0.01, peak 1e-3 after 5% warmup. Departures: pre-LN
blocks (RoBERTa is post-LN; pre-LN is what the switches offer), our length phases, and a
feed-forward of 2048 (5.3 x hidden, RoBERTa has 4 x) so that the count matches GPT-BERT
small's: 29,469,056 parameters at vocab 8192 (tests/test_objectives.py checks it).
Scored by pll.
"""

from babylm_jax.config import base_config


def get_config():
  c = base_config()
  c.model.attention, c.model.position = "standard", "learned_absolute"
  c.model.normformer, c.model.ffn, c.model.layer_weighting = False, "gelu", "residual"
  c.model.intermediate_size = 2048
  c.objective.kind = "masked"
  c.objective.max_span = 1
  c.objective.mask_rate_start = c.objective.mask_rate_end = 0.15
  c.objective.z_loss = 0.0
  c.train.lr, c.train.warmup_fraction = 1e-3, 0.05
  c.train.b1, c.train.b2, c.train.eps, c.train.weight_decay = 0.9, 0.98, 1e-6, 0.01
  c.eval.backend = "pll"
  return c
