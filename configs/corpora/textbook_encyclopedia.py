"""The same words as babylm_default, weighted toward written, explanatory text.

Simple Wikipedia (encyclopedic definitions and explanations) and Gutenberg books (edited,
complete prose) take 80% of the words; subtitles, BNC and Switchboard conversation and
CHILDES share the rest. The idea is Gunasekar et al. 2023 ("Textbooks Are All You Need"):
at a fixed, small word budget, text that explains and is edited carries more of what a model
can learn per word than conversational filler. See the README's "Corpus recipes".

  python launch.py --mode=corpus --config configs/corpora/textbook_encyclopedia.py --workdir W
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _local import recipe  # noqa: E402

WEIGHTS = dict(simple_wiki=0.45, gutenberg=0.35, open_subtitles=0.06, childes=0.06,
               bnc_spoken=0.05, switchboard=0.03)


def get_config():
  return recipe(WEIGHTS)
