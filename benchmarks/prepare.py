"""Cold and warm `prepare_data` on a real corpus against a plain `tokenizers` encode_batch.

  python benchmarks/prepare.py --data ../shared/data/babylm_text/train_600k

A first run trains the tokenizer and builds the stores (`first_run_s`,
`end_to_end_words_per_s`); then the token stores are built cold again from the raw files
with that tokenizer given (`cold_s`, `words_per_s`): reading, cleaning, encoding, word flags
and writing. `raw_words_per_s` is `Tokenizer.encode_batch` over the same cleaned
documents in the same run. The last line is one JSON object; `ratio` = words_per_s /
raw_words_per_s (target >= 0.75), `warm_s` is a rerun that hits the cache (target < 2 s).
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from babylm_jax.config import base_config  # noqa: E402
from babylm_jax.data import clean, sources  # noqa: E402
from babylm_jax.data.prepare import prepare_data  # noqa: E402


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--data", default="../shared/data/babylm_text/train_600k")
  ap.add_argument("--vocab", type=int, default=8192)
  args = ap.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    c = base_config()
    c.data.path = args.data
    c.data.cache_dir = os.path.join(tmp, "cache")
    c.model.vocab_size = args.vocab
    t = time.time()
    first = prepare_data(c)  # trains the tokenizer and builds the stores
    first_s = time.time() - t
    c.tokenizer.path = os.path.join(tmp, "tokenizer.json")
    with open(c.tokenizer.path, "w") as f:
      f.write(first.tokenizer.to_str())
    c.data.cache_dir = os.path.join(tmp, "cache2")  # cold stores, given tokenizer
    t = time.time()
    cold = prepare_data(c)
    cold_s = time.time() - t
    t = time.time()
    warm = prepare_data(c)
    warm_s = time.time() - t
    assert warm.stats["cache_hit"] and not cold.stats["cache_hit"]

    settings = clean.CleanSettings.from_config(c)
    docs = []
    for f in sources.resolve(c.data.path, c).files:
      docs += list(clean.documents(sources.read_blocks(f.path), f.domain, settings))
    tok = first.tokenizer
    t = time.time()
    tok.encode_batch(docs, add_special_tokens=False)
    raw_s = time.time() - t
  words = cold.stats["words"]
  out = dict(data=args.data, vocab=args.vocab, words=words, tokens=cold.stats["tokens"],
             tokens_per_word=round(cold.stats["tokens_per_word"], 4),
             first_run_s=round(first_s, 3), cold_s=round(cold_s, 3),
             warm_s=round(warm_s, 3), words_per_s=round(words / cold_s),
             raw_words_per_s=round(words / raw_s),
             end_to_end_words_per_s=round(words / first_s))
  out["ratio"] = round(out["words_per_s"] / out["raw_words_per_s"], 3)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
