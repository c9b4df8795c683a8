"""Words per second of each corpus-curation step on real text, against a plain `str.split`.

  python benchmarks/curate.py --data ../shared/data/babylm_text/train_600k

Reads and cleans the corpus as `--mode=prepare` does, then runs each step of
`babylm_jax/data/curate.py` alone on all of it (quality: every filter at Gopher's
thresholds, min_words 5; language: py3langid on every source; near: the defaults), and all
steps together. `split_words_per_s` is `str.split` over the same documents in the same run;
each step's `ratio` is its words/s over that. The last line is one JSON object.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from babylm_jax.data import clean, curate, sources  # noqa: E402


def _config(step: str):
  c = curate.default_config()
  if step in ("exact", "all"):
    c.exact.enabled = True
  if step in ("near", "all"):
    c.near.enabled = True
  if step in ("quality", "all"):
    c.quality.min_words = 5
    c.quality.max_symbol_ratio = 0.1
    c.quality.max_repeated_lines = 0.3
    c.quality.max_repeated_ngrams = 0.15
    c.quality.max_replacement_fraction = 0.01
  if step in ("language", "all"):
    c.language.enabled = True
  return curate.settings_from_config(c)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--data", default="../shared/data/babylm_text/train_600k")
  args = ap.parse_args()
  texts, names = [], []
  settings = clean.CleanSettings()
  for f in sources.resolve(args.data, None).files:
    for doc in clean.documents(sources.read_blocks(f.path), f.domain, settings):
      texts.append(doc)
      names.append(f.domain)
  t = time.perf_counter()
  words = sum(len(x.split()) for x in texts)
  split_s = time.perf_counter() - t
  out = dict(data=args.data, documents=len(texts), words=words,
             split_words_per_s=round(words / split_s))
  for step in ("exact", "quality", "language", "near", "all"):
    t = time.perf_counter()
    report = curate.curate(texts, names, _config(step), strict=False).report
    seconds = time.perf_counter() - t
    for s in report["steps"] if step != "all" else []:
      out[step] = dict(seconds=s["seconds"], words_per_s=s["words_per_s"],
                       ratio=round(s["words_per_s"] * split_s / words, 4),
                       documents_dropped=s["documents_dropped"],
                       words_dropped=s["words_dropped"])
    if step == "all":
      out["all"] = dict(seconds=round(seconds, 3), words_per_s=round(words / seconds),
                        documents_out=report["documents_out"], words_out=report["words_out"])
  print(json.dumps(out))


if __name__ == "__main__":
  main()
