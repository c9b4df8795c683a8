"""ELC-BERT small on the strict-small track: LTG-BERT with every layer choosing its input.

Charpentier & Samuel 2023, "Not all layers are equally as important: Every Layer Counts BERT"
(BabyLM 2023), as its code computes it (ltgoslo/elc-bert models/model_elc_bert_base.py,
train_elc_bert_base.py, configs/small.json). Changes from configs/ltg_bert_small.py:
model.layer_weighting 'elc' (layer l reads a softmax-weighted mix of the embedding and the
outputs of layers 0..l-1, its weights starting at (0, ..., 0, 1), i.e. leaning on the previous
layer; no residual around the attention; the last layer's output is the encoder's; the
repository's `weighted_output` ablation is 'elc_weighted_output'), vocabulary 6,144, and the
layer weights also exempt from weight decay and the trust ratio (train.no_decay adds
'layer_weight', the reference's `prev_layer_weights`). The rest of the model and recipe is
LTG-BERT's small, with the same choices of ours (tokens per step, step count, span lengths,
packed documents). 23,799,696 parameters (tests/test_objectives.py checks it); the reference
counts 66 fewer (23,799,630): our layer weights are one [12, 12] matrix of which the 78 entries
the reference has are used. Scored by pll.
"""

from babylm_jax.config import base_config
from configs.ltg_bert_small import ltg_model, ltg_recipe


def get_config():
  c = ltg_model(base_config(), vocab_size=6_144)
  c.model.layer_weighting = "elc"
  return ltg_recipe(c, no_decay=("bias", "norm", "embedding", "layer_weight"))
