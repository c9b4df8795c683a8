"""LTG-BERT small on the strict-small track: masked-token prediction.

Samuel, Kutuzov, Øvrelid & Velldal 2023, "Trained on 100 million words and still in shape:
BERT meets British National Corpus" (the BabyLM 2023 strict-small baseline). The model is the
reference code's small one (ltgoslo/ltg-bert babylm/configs/small.json and train/model.py):
hidden 384, 12 layers, 6 heads, FFN 1,024, vocabulary 16,384, LayerNorm eps 1e-7, relative
positions in 32 buckets out to 512, GEGLU with its inner LayerNorm, LTG-BERT's attention
(model.attention 'ltg': no value gate, an affine LayerNorm after the output projection), a
plain residual stream, dropout 0.1 also before the head's projection. 27,741,952 parameters
(tests/test_objectives.py checks it); the reference counts the same.

The recipe is babylm/train/train.py's: objective 'masked' (15%, 80/10/10, a masked token
predicted at its own position, no z-loss); LAMB as its code applies it (train.optimizer
'gpt_bert_lamb' with train.no_decay ('bias', 'norm', 'embedding'): biases, LayerNorms and the
word and relative-position embeddings take a plain Adam step, the rest weight decay 0.1 and
the trust ratio) at peak 1e-2 with betas (0.9, 0.98) and eps 1e-6; clipping at 2.0; linear
warmup over 1.6% of the steps, then a cosine to 0.1 x peak and no cooldown; sequence length
128 for 90% of the steps, then 512 at the same tokens per step; the raw weights, not an EMA,
are evaluated and exported.

Our choices: 16,384 tokens per step and the step count from ten epochs of the 10M-word corpus
(the reference's batch and 15,625 steps depend on its GPU count); span lengths uniform in 1..3
and a per-token masking draw (LTG-BERT draws geometric lengths and a binomial count); packed
documents instead of its 10% of shortened segments. Scored by pll.
"""

from babylm_jax.config import base_config


def ltg_model(c, vocab_size: int):
  """The LTG group's small encoder (LTG-BERT, ELC-BERT) on a base config."""
  c.model.vocab_size = vocab_size
  c.model.intermediate_size = 1024
  c.model.layer_norm_eps = 1e-7
  c.model.attention = "ltg"
  c.model.layer_weighting = "residual"
  c.model.head_dropout = 0.1
  return c


def ltg_recipe(c, no_decay: tuple[str, ...]):
  """The LTG group's 2023 training recipe (see the module docstring)."""
  c.objective.kind = "masked"
  c.objective.mask_rate_start = c.objective.mask_rate_end = 0.15
  c.objective.z_loss = 0.0
  c.train.optimizer = "gpt_bert_lamb"
  c.train.no_decay = no_decay
  c.train.lr = 1e-2
  c.train.b1, c.train.b2, c.train.eps = 0.9, 0.98, 1e-6
  c.train.weight_decay = 0.1
  c.train.grad_clip = 2.0
  c.train.warmup_fraction, c.train.cooldown_fraction, c.train.min_lr_ratio = 0.016, 0.0, 0.1
  c.train.seq_lens, c.train.seq_len_fractions = (128, 512), (0.9, 0.1)
  c.eval.use_ema = c.export.use_ema = False
  c.eval.backend = "pll"
  return c


def get_config():
  c = ltg_model(base_config(), vocab_size=16_384)
  return ltg_recipe(c, no_decay=("bias", "norm", "embedding"))
