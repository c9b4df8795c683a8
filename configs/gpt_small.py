"""A GPT small on the strict-small track: next-token prediction only.

Radford et al. 2019 (GPT-2), with rotary positions (Su et al. 2021, "RoFormer") as in
GPT-NeoX. Changes from base_config() (GPT-BERT small): objective 'causal' (every row causal,
no z-loss), standard scaled dot-product attention with rotary positions, no NormFormer
LayerNorms, a GELU feed-forward of 2048 (so that the count matches GPT-BERT small's), a plain
residual stream, AdamW at 1e-3 with betas (0.9, 0.95). 29,272,448 parameters at vocab 8192
(tests/test_objectives.py checks it). Scored by the causal backend only.
"""

from babylm_jax.config import base_config


def get_config():
  c = base_config()
  c.model.attention, c.model.position = "standard", "rotary"
  c.model.normformer, c.model.ffn, c.model.layer_weighting = False, "gelu", "residual"
  c.model.intermediate_size = 2048
  c.objective.kind = "causal"
  c.objective.z_loss = 0.0
  c.train.lr, c.train.b2 = 1e-3, 0.95
  c.eval.backend = "causal"
  return c
