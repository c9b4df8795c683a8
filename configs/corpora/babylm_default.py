"""BabyLM's own mix, as distributed: each domain's share of the strict-small (10M) corpus.

Shares of the BabyLM 2024/2025 train_10M files (words): CHILDES 2.84M, Project Gutenberg
2.54M, OpenSubtitles 2.04M, Simple Wikipedia 1.45M, BNC spoken 0.93M, Switchboard 0.15M.
Built offline from ../shared/data at configs/corpora/_local.SMALL_BUDGET words; at 10M or
100M words, point the sources at the full BabyLM files (or data.corpus.hub_sources) and set
--config.data.corpus.total_words.

  python launch.py --mode=corpus --config configs/corpora/babylm_default.py --workdir W
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _local import recipe  # noqa: E402

WEIGHTS = dict(childes=2.84, gutenberg=2.54, open_subtitles=2.04, simple_wiki=1.45,
               bnc_spoken=0.93, switchboard=0.15)


def get_config():
  return recipe(WEIGHTS)
