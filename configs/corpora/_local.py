"""Shared by the corpus presets: the BabyLM domains as they lie in ../shared/data, offline.

train_600k holds 600,000 words of each of five domains (random 10,000-word snippets of
BabyLM's train_100M, one line per file); Switchboard comes from train_10M (147k words).
"""

import ml_collections

from babylm_jax.config import base_config, repo_path

TEXT = "../shared/data/babylm_text"
LOCAL = dict(
    bnc_spoken=f"{TEXT}/train_600k/bnc_spoken.train",
    childes=f"{TEXT}/train_600k/childes.train",
    gutenberg=f"{TEXT}/train_600k/gutenberg.train",
    open_subtitles=f"{TEXT}/train_600k/open_subtitles.train",
    simple_wiki=f"{TEXT}/train_600k/simple_wiki.train",
    switchboard=f"{TEXT}/train_10M/switchboard.train",
)
# What a user with network access would read instead (pin a revision). The BabyLM 2025
# corpora themselves are distributed on OSF (osf.io/ryjfm, per the evaluation pipeline's
# README); the Hub copies below are the ones we could confirm by reading, not by loading:
# GPT-BERT's README links ltg's BabyLM 2024 mixes, and cambridge-climb/BabyLM holds the
# 2023 10M/100M files by domain (a loading script; its data_files are per-domain .txt).
HUB = dict(
    strict_small="hf:ltg/babylm-2024-baby-cosmo-fine-10m",
    strict="hf:ltg/babylm-2024-baby-cosmo-fine-100m",
    by_domain="hf:cambridge-climb/BabyLM (10M/<domain>.txt, 100M/<domain>.txt)",
)
# Words the presets build offline: small enough for a CPU, large enough to hold every
# domain (the smallest local source, Switchboard, has 146,789).
SMALL_BUDGET = 1_000_000


def recipe(weights: dict, total_words: int = SMALL_BUDGET) -> ml_collections.ConfigDict:
  """base_config() with a corpus recipe of the local domains at these weights."""
  c = base_config()
  c.data.corpus.total_words = total_words
  for name, weight in weights.items():
    c.data.corpus.sources[name] = ml_collections.ConfigDict(
        dict(path=repo_path(LOCAL[name]), weight=float(weight)))
  for name, spec in HUB.items():
    c.data.corpus.hub_sources[name] = spec
  return c
