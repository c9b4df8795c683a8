"""BootBERT small on the strict-small track: latent bootstrapping.

Samuel 2023, "Mean BERTs make erratic language teachers: the effectiveness of latent
bootstrapping in low-resource settings" (BabyLM 2023). Changes from base_config() (GPT-BERT
small): objective 'bootstrap' (span masking at 15%, every masked token a hole the encoder does
not see; a 4-layer decoder without dropout fills the holes; loss 0.1 x masked-token
cross-entropy + smooth-L1 to the LayerNorm-ed states of a teacher that is an EMA of the
encoder with decay rising from 0.996 to 1.0; no z-loss), LTG-BERT's residual stream, dropout
before the head's projection, LAMB as the LTG code applies it (train.optimizer
'gpt_bert_lamb') at 5e-3 with betas (0.9, 0.98), eps 1e-6 and weight decay rising on a cosine
from 0.02 to 0.2, sequence length 128 throughout. Kept from
GPT-BERT: disentangled attention (with its value gate), relative positions, NormFormer
LayerNorms, GEGLU. 29,891,840 parameters in the encoder (what fine-tuning reads) and
39,042,944 with the decoder and latent head, at vocab 8192 (tests/test_objectives.py checks
both). Scored by pll through encoder and decoder.
"""

from babylm_jax.config import base_config


def get_config():
  c = base_config()
  c.objective.kind = "bootstrap"
  c.objective.mask_rate_start = c.objective.mask_rate_end = 0.15
  c.objective.z_loss = 0.0
  c.model.decoder_layers = 4
  c.model.layer_weighting = "residual"
  c.model.head_dropout = 0.1
  c.train.optimizer = "gpt_bert_lamb"
  c.train.lr, c.train.eps = 5e-3, 1e-6
  c.train.weight_decay, c.train.weight_decay_end = 0.02, 0.2
  c.train.seq_lens, c.train.seq_len_fractions = (128,), (1.0,)
  c.eval.backend = "pll"
  return c
