"""GPT-BERT small on the BabyLM strict-small track (10M words, ten epochs).

BabyLM 2025 recipe: 16,384 tokens per step (about 9,900 steps for 10 epochs of 10M words),
peak learning rate 7e-3 with 1.6% warmup and 1.6% cooldown, mask rate 0.30 -> 0.15,
sequence length 128 / 256 / 512 for 60% / 20% / 20% of the steps, masked:causal rows 15:1.
"""

from babylm_jax.config import base_config


def get_config():
  c = base_config()
  c.track = "strict_small"
  c.model.vocab_size = 8192
  c.model.hidden_size = 384
  c.model.num_layers = 12
  c.model.num_heads = 6
  c.model.intermediate_size = 1280
  c.train.tokens_per_step = 16_384
  c.train.lr = 7e-3
  return c
