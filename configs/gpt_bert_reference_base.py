"""GPT-BERT base trained the way the reference code trains it (Charpentier & Samuel 2024,
ltgoslo/gpt-bert pretraining/train_100m.py), strict track.

The switches of gpt_bert_reference_small.py on the strict network (119,454,808 parameters at
vocab 16,384): peak lr 1e-2, tokens per step rising from a quarter to 131,072 over the whole run;
ten epochs of 100M words (about 19,800 steps).
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
  c.model.head_dropout = 0.1
  c.objective.masking = "ranked"
  c.objective.anti_repeat = True
  c.objective.z_loss_pooling = "by_kind"
  c.train.tokens_per_step = 131_072
  c.train.batch_ramp_start = 0.25
  c.train.batch_ramp_fraction = 1.0
  c.train.batch_ramp_levels = 4
  c.train.seq_len_fractions = (0.7, 0.2, 0.1)
  c.train.optimizer = "gpt_bert_lamb"
  c.train.lr = 1e-2
  c.train.b1, c.train.b2, c.train.eps = 0.9, 0.98, 1e-8
  c.train.weight_decay = 0.1
  c.train.ema_decay = 0.999
  c.train.ema_warmup = False
  c.checkpoint.every = 500
  return c
