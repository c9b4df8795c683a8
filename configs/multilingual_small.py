"""GPT-BERT on the BabyLM 2026 multilingual track: English, Dutch and Chinese at equal shares.

The recipe of the official GPT-BERT multilingual baselines as far as it can be told offline:
babylm-org/babylm-eval's multilingual/scripts/zeroshot_gptbert.sh evaluates
BabyLM-community/GPT-BERT-baseline-babylm-eng-nld-zho-equal (and its bi- and monolingual
siblings), trained on BabyBabelLM's babylm-eng, babylm-nld and babylm-zho at equal shares of
100M English-equivalent words, at most ten epochs. Their model cards and training configs are
on the Hub, which this checkout cannot reach: the network and schedules here are configs/strict.py's
(GPT-BERT base, hybrid objective, LAMB at 1e-2), unconfirmed against the baselines', and so is
the vocabulary size (a shared 16,384-token BPE, CJK characters isolated).

Data: the Hub datasets by name; point data.languages at local copies (one folder or file of
text per language) to train offline. The Hub's layout (parquet with a text field) is read
by --mode=corpus (data/readers.py, with sources.hub_records) into such folders first.
"""

from configs import strict

HUB = {"eng": "BabyLM-community/babylm-eng", "nld": "BabyLM-community/babylm-nld",
       "zho": "BabyLM-community/babylm-zho"}


def get_config():
  c = strict.get_config()
  c.track = "multilingual"
  c.data.languages = ",".join(f"{code}=hf:{name}" for code, name in HUB.items())
  c.data.language_shares = "equal"
  c.data.language_words = 100_000_000
  c.tokenizer.split_cjk = True
  c.tokenizer.language_shares = "equal"
  c.train.epochs = 10.0
  return c
