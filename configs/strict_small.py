"""GPT-BERT small on the BabyLM strict-small track (10M words, ten epochs).

BabyLM 2025 recipe: 16,384 tokens per step (about 9,900 steps for 10 epochs of 10M words),
GPT-BERT's LAMB (`gpt_bert_lamb`) at its 10M-word peak learning rate 1.41e-2 with 1.6% warmup
and 1.6% cooldown, mask rate 0.30 -> 0.15, sequence length 128 / 256 / 512 for 60% / 20% / 20%
of the steps, masked:causal rows 15:1.

The optimizer was AdamW at 7e-3 (LAMB's rate without LAMB's trust ratio) until the learning-rate
sweep (configs/sweeps/learning_rate.py, README "What works at small scale") measured, at the
CPU proxy's size: AdamW at 7e-3 0.47 nats behind AdamW at 2e-3 on the validation masked loss,
five times the seed noise, and LAMB at 1.41e-2 0.07 ahead of it (inside the noise). LAMB's trust
ratio makes each tensor's step a fraction of its norm, so its rate depends less on the width
than AdamW's; 1.41e-2 and 1e-2 are the rates the reference tuned at these two sizes.
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
  c.train.optimizer = "gpt_bert_lamb"
  c.train.lr = 1.41e-2
  return c
