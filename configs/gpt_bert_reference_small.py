"""GPT-BERT small trained the way the reference code trains it (Charpentier & Samuel 2024,
"GPT or BERT: why not both?", ltgoslo/gpt-bert pretraining/train_10m.py), strict-small track.

Every reference switch (`reference_recipe`) on top of configs/strict_small.py (29,892,440
parameters at vocab 8192, tests/test_objectives.py checks it): LAMB as the reference applies it
(no decay and no trust ratio for biases and norms) at peak lr 1.41e-2, betas (0.9, 0.98), eps
1e-8, weight decay 0.1; ranked span masking (the lowest int(n * rate + U) spans of each
segment) with anti-repeat weighting; tokens per step rising linearly from a quarter to 16,384
over the whole run (4 levels); lengths 128 / 256 / 512 for 70% / 20% / 10% of the steps;
dropout before the head's vocabulary projection; the z-loss pooled by row kind like the loss;
a fixed EMA decay of 0.999. The amount of text stays the BabyLM rule, ten epochs of 10M words
(about 15,800 steps at the ramp's mean of 5/8 of 16,384 tokens); the reference's 7,812 steps
of up to 32,768 x 128 tokens would show the model about 2,000 epochs. README: "GPT-BERT's
reference recipe".
"""

from configs import strict_small


def reference_recipe(c, lr: float):
  """The reference's training switches, on a GPT-BERT config."""
  c.model.head_dropout = 0.1
  c.objective.masking = "ranked"
  c.objective.anti_repeat = True
  c.objective.z_loss_pooling = "by_kind"
  c.train.batch_ramp_start = 0.25
  c.train.batch_ramp_fraction = 1.0
  c.train.batch_ramp_levels = 4
  c.train.seq_len_fractions = (0.7, 0.2, 0.1)
  c.train.optimizer = "gpt_bert_lamb"
  c.train.lr = lr
  c.train.b1, c.train.b2, c.train.eps = 0.9, 0.98, 1e-8
  c.train.weight_decay = 0.1
  c.train.ema_decay = 0.999
  c.train.ema_warmup = False
  return c


def get_config():
  return reference_recipe(strict_small.get_config(), lr=1.41e-2)
