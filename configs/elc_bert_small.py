"""ELC-BERT small on the strict-small track: LTG-BERT with ELC layer weighting.

Charpentier & Samuel 2023, "Not all layers are equally as important: Every Layer Counts BERT"
(BabyLM 2023). Changes from configs/ltg_bert_small.py: each layer's input is a learned
softmax-weighted mix of the embedding and every earlier layer's output
(model.layer_weighting 'elc'); the recipe is LTG-BERT's. 28,127,145 parameters at vocab 8192
(tests/test_objectives.py checks it). Scored by pll.
"""

from configs import ltg_bert_small


def get_config():
  c = ltg_bert_small.get_config()
  c.model.layer_weighting = "elc"
  return c
