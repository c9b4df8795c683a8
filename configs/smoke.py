"""A tiny GPT-BERT that trains for a few hundred steps on one CPU in a few minutes.

Used by the tests and the README's first command. 2 layers, hidden 64, vocab 1024,
2,048 tokens per step at lengths 64 then 128.
"""

from babylm_jax.config import base_config, repo_path


def get_config():
  c = base_config()
  c.data.path = repo_path("../shared/data/babylm_text/train_100k")
  c.model.vocab_size = 1024
  c.model.hidden_size = 64
  c.model.num_layers = 2
  c.model.num_heads = 2
  c.model.intermediate_size = 128
  c.model.dropout = 0.0
  c.train.steps = 300
  c.train.tokens_per_step = 2048
  c.train.seq_lens = (64, 128)
  c.train.seq_len_fractions = (0.7, 0.3)
  c.train.lr = 3e-3
  c.train.warmup_fraction = 0.05
  c.train.cooldown_fraction = 0.05
  c.train.ema_decay = 0.99
  c.train.log_every = 20
  c.train.eval_every = 100
  c.train.eval_batches = 4
  c.checkpoint.every = 100
  return c
