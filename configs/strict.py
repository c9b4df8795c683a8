"""GPT-BERT base on the BabyLM strict track (100M words, ten epochs).

Same schedules as strict_small, with 131,072 tokens per step (about 12,300 steps), and
GPT-BERT's LAMB at its 100M-word peak learning rate 1e-2 (strict_small says why LAMB).
"""

from babylm_jax.config import base_config


def get_config():
  c = base_config()
  c.track = "strict"
  c.model.vocab_size = 16_384
  c.model.hidden_size = 768
  c.model.num_layers = 12
  c.model.num_heads = 12
  c.model.intermediate_size = 2560
  c.train.tokens_per_step = 131_072
  c.train.optimizer = "gpt_bert_lamb"
  c.train.lr = 1e-2
  c.checkpoint.every = 500
  return c
