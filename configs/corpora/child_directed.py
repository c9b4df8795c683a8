"""The same words as babylm_default, weighted toward CHILDES and the spoken domains.

CHILDES (speech to and by children) takes half of the words; BNC spoken, Switchboard and
OpenSubtitles (scripted dialogue) most of the rest; Wikipedia and Gutenberg a little. Closer
to what a child hears than BabyLM's mix is.

  python launch.py --mode=corpus --config configs/corpora/child_directed.py --workdir W
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _local import recipe  # noqa: E402

WEIGHTS = dict(childes=0.50, bnc_spoken=0.17, switchboard=0.10, open_subtitles=0.13,
               simple_wiki=0.05, gutenberg=0.05)


def get_config():
  return recipe(WEIGHTS)
