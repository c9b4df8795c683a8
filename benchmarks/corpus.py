"""Building a corpus from a recipe (`--mode=corpus`) on the shared 3.5M words, by stage.

  python benchmarks/corpus.py [--text ../shared/data/babylm_text]

The recipe takes each train_600k domain (its .train and _dev.train files, 700k words) and
train_10M/switchboard.train, with a quota of 80% of each source's words, whole documents.
Curation: exact and near-duplicate removal and the quality filters at Gopher's thresholds
(`--language` adds py3langid's language filter, an ancillary model); each step's words/s is in
`curate_steps`.
Words/s per stage are of the words read (read, curate), kept by curation (select) or written
(write), per wall second and per CPU second of this process (the machine may be shared).
`plain_read` is `str.split` over the same files read whole in the same run: `read_ratio` says
how much of reading is cleaning (normalisation, boundaries) rather than I/O.

The projection to 100M words scales each stage linearly from the words it handled. That holds
for reading, cleaning, exact deduplication (hashing), the per-document filters, selection
(one pass over a permutation) and writing; near-duplicate removal with MinHash LSH is linear
in the signatures but its candidate pairs can grow faster than linearly in a corpus with many
near-copies, so its projection is a lower bound.
The last line is one JSON object.
"""

import argparse
import fnmatch
import json
import os
import sys
import tempfile
import time

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from babylm_jax.config import base_config  # noqa: E402
from babylm_jax.data import corpus  # noqa: E402

DOMAINS = ("bnc_spoken", "childes", "gutenberg", "open_subtitles", "simple_wiki")
TARGET_WORDS = 100_000_000


def _curation(c, language: bool):
  """Deduplication (exact, near) and the quality filters at Gopher's thresholds; with
  `language`, py3langid too (an ancillary model: outside the strict rules)."""
  cur = c.data.corpus.curate
  cur.exact.enabled = True
  cur.near.enabled = True
  cur.quality.min_words = 5
  cur.quality.max_symbol_ratio = 0.1
  cur.quality.max_repeated_lines = 0.3
  cur.quality.max_repeated_ngrams = 0.15
  cur.quality.max_replacement_fraction = 0.01
  if language:
    cur.language.enabled = True
    cur.outside_rules = True


def recipe(text: str, language: bool = False) -> ml_collections.ConfigDict:
  c = base_config()
  files = {d: [os.path.join(text, "train_600k", n) for n in (f"{d}.train", f"{d}_dev.train")]
           for d in DOMAINS}
  files["switchboard"] = [os.path.join(text, "train_10M", "switchboard.train")]
  for name, paths in files.items():
    words = sum(len(open(p, encoding="utf-8").read().split()) for p in paths)
    folder = os.path.dirname(paths[0])
    c.data.corpus.sources[name] = ml_collections.ConfigDict(dict(
        path=folder, files=f"{name}*.train" if name != "switchboard" else "switchboard.train",
        words=int(0.8 * words)))
  _curation(c, language)
  return c


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--text", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "..", "..", "shared", "data", "babylm_text"))
  ap.add_argument("--language", action="store_true",
                  help="also the language filter (py3langid, an ancillary model)")
  args = ap.parse_args()
  c = recipe(args.text, args.language)
  paths = sorted({os.path.join(s.path, n) for s in corpus.sources_of(c)
                  for n in os.listdir(s.path) if fnmatch.fnmatch(n, s.files)})
  t = time.perf_counter()
  plain_words = sum(len(open(p, encoding="utf-8").read().split()) for p in paths)
  plain_s = time.perf_counter() - t
  with tempfile.TemporaryDirectory() as tmp:
    m = corpus.build_corpus(c, os.path.join(tmp, "corpus"))
  sec, cpu = m["seconds"], m["cpu_seconds"]
  read_words = m["totals"]["words_read"]
  written = m["totals"]["words"]
  handled = dict(read=read_words, curate=read_words, select=m["totals"]["words_after_curation"],
                 write=written)
  per_s = {k: round(handled[k] / sec[k]) for k in sec}
  per_cpu_s = {k: round(handled[k] / max(cpu[k], 1e-9)) for k in cpu}
  projected = {k: round(sec[k] * TARGET_WORDS / handled[k], 1) for k in sec}
  out = dict(
      sources=len(m["sources"]), files=len(paths), words_read=read_words,
      words_after_curation=m["totals"]["words_after_curation"], words_written=written,
      curate_steps={st["step"]: dict(seconds=st["seconds"], words_in=st["words_in"],
                                     words_per_s=st["words_per_s"],
                                     words_dropped=st["words_dropped"])
                    for st in m["curation"]["steps"]},
      seconds={k: round(v, 3) for k, v in sec.items()},
      cpu_seconds={k: round(v, 3) for k, v in cpu.items()}, words_per_s=per_s,
      words_per_cpu_s=per_cpu_s, plain_read_words_per_s=round(plain_words / plain_s),
      read_ratio=round(per_s["read"] / (plain_words / plain_s), 3),
      projected_100M_s=dict(projected, total=round(sum(projected.values()), 1)),
      projection="linear in words per stage; near-dedup LSH candidate pairs may grow faster "
                 "(lower bound)")
  print(json.dumps(out))


if __name__ == "__main__":
  main()
