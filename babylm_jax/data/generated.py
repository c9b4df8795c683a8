"""Generated text in a corpus, and how it counts toward the BabyLM word budget.

`--mode=generate` writes a domain folder: `synthetic.train` (one sampled document per
blank-line-separated block, the layout data.path reads) and `generation.json`, the manifest
(which run and checkpoint wrote it, how, and how many words). When a later run's data.path
takes in such a file, `budget_lines` counts, beside the corpus's own words:
- the generated words, unless `data.count_generated` is False;
- the words of the generating run's training corpus, unless that corpus is the same text as
  this run's own (non-generated) files, compared by content hash: a model trained on other
  text brings that text's words with it.
"""

from __future__ import annotations

import json
import os

from babylm_jax.errors import DataError

MANIFEST = "generation.json"
TEXT_FILE = "synthetic.train"


def manifest_of(path: str) -> dict | None:
  """The manifest of the generated folder holding text file `path`, or None."""
  folder = os.path.dirname(os.path.abspath(path))
  where = os.path.join(folder, MANIFEST)
  if not os.path.isfile(where):
    return None
  try:
    with open(where) as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise DataError(f"'{where}' cannot be read as a generation manifest ({type(e).__name__}); "
                    f"restore it or remove the generated folder from data.path.") from None
  return manifest if manifest.get("file") == os.path.basename(path) else None


def budget_lines(config, corpus, raw_words: int) -> list[tuple[str, int]]:
  """[(what, words)] that count toward the word budget; their sum is checked against it.

  One line, the corpus's words, when it holds no generated file; else the own words, the
  generated words and the generating runs' training words (see the module docstring).
  """
  from babylm_jax.data import sources
  found = [(f, m) for f in corpus.files if (m := manifest_of(f.path)) is not None]
  if not found:
    return [("corpus", raw_words)]
  generated = sum(int(m["words_generated"]) for _, m in found)
  own_files = [f for f in corpus.files if f not in {g for g, _ in found}]
  own_key = sources.files_key(own_files) if own_files else None
  teachers = {m["training_corpus_key"]: int(m["training_words"]) for _, m in found
              if m["training_corpus_key"] != own_key}
  lines = [("corpus", raw_words - generated)]
  lines.append(("generated" if config.data.count_generated else "generated (not counted)",
                generated))
  lines.append(("generating runs' training", sum(teachers.values())))
  return lines


def counted_words(config, lines) -> int:
  return sum(n for what, n in lines if not what.endswith("(not counted)"))
