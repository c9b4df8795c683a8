"""GPT-BERT base trained the way the reference code trains it (Charpentier & Samuel 2024,
ltgoslo/gpt-bert pretraining/train_100m.py), strict track.

The switches of gpt_bert_reference_small.py on configs/strict.py (119,454,808 parameters at
vocab 16,384): peak lr 1e-2, tokens per step rising from a quarter to 131,072 over the whole
run; ten epochs of 100M words (about 19,800 steps).
"""

from configs import gpt_bert_reference_small, strict


def get_config():
  return gpt_bert_reference_small.reference_recipe(strict.get_config(), lr=1e-2)
