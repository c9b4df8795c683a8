"""LTG-BERT small on the strict-small track: masked-token prediction.

Samuel, Kutuzov, Øvrelid & Velldal 2023, "Trained on 100 million words and still in shape:
BERT meets British National Corpus" (the BabyLM 2023 strict-small baseline). Changes from
base_config() (GPT-BERT small): objective 'masked' (span masking at a fixed 15%, 80/10/10, a
masked token predicted at its own position, no z-loss), a plain residual stream, dropout
before the head's projection, and the paper's recipe: LAMB as the LTG code applies it
(train.optimizer 'gpt_bert_lamb'; LTG-BERT also exempts the embeddings from decay and trust
ratio) at 1e-2 with betas (0.9, 0.98) and eps 1e-6, sequence length 128 for 90% of the steps
then 512; LTG-BERT's attention (model.attention 'ltg': no value gate, an affine LayerNorm after
the output projection). Kept from GPT-BERT: relative positions, the feed-forward's NormFormer
LayerNorm, GEGLU; span lengths uniform in 1..3 (LTG-BERT draws geometric ones).
28,126,976 parameters at vocab 8192 (tests/test_objectives.py checks it). Scored by pll.
"""

from babylm_jax.config import base_config


def get_config():
  c = base_config()
  c.objective.kind = "masked"
  c.objective.mask_rate_start = c.objective.mask_rate_end = 0.15
  c.objective.z_loss = 0.0
  c.model.attention = "ltg"
  c.model.layer_weighting = "residual"
  c.model.head_dropout = 0.1
  c.train.optimizer = "gpt_bert_lamb"
  c.train.lr = 1e-2
  c.train.eps = 1e-6
  c.train.seq_lens, c.train.seq_len_fractions = (128, 512), (0.9, 0.1)
  c.eval.backend = "pll"
  return c
