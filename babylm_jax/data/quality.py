"""Per-document quality measures and the language identifier for corpus curation.

Each measure is a number per document that `curate.py` compares with a threshold. The
definitions are close to those of Gopher's quality rules (Rae et al. 2021, appendix A) and
RefinedWeb's (Penedo et al. 2023), restated here as this code computes them:

- words: whitespace words (`str.split`), the unit the BabyLM budget counts.
- symbol_ratio: occurrences of '#' plus occurrences of an ellipsis ('...' counted without
  overlap, or the single character U+2026) per word. Gopher drops a document above 0.1.
- repeated_lines: of the document's non-empty lines (stripped), the fraction that repeat
  a line seen earlier in the same document. Gopher drops a document above 0.3. A document
  of one line (the one-line BabyLM sample files) scores 0.
- repeated_ngrams: the fraction of the document's word characters (the lengths of its
  words, spaces not counted) that lie inside some word n-gram occurring at least twice in
  the document, n = `ngram_words`. Gopher computes this for n = 5..10 and drops a document
  above 0.15 (n=5) down to 0.10 (n=10); here one n is chosen. A document of fewer than n
  words scores 0.
- replacement_fraction: the fraction of the document's characters that are U+FFFD, which
  `sources.read_blocks` puts in place of bytes that are not UTF-8.

The language filter uses py3langid (a naive Bayes classifier over byte n-grams, trained on
text in 139 languages), loaded lazily since it is an optional dependency.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from babylm_jax.data import dedup
from babylm_jax.errors import UserError

LANG_FIELD = "data.corpus.curate.language"


def words(texts: Sequence[str], order: np.ndarray) -> np.ndarray:
  return np.fromiter((len(texts[i].split()) for i in order.tolist()), np.int64, len(order))


def symbol_ratio(texts: Sequence[str], order: np.ndarray, n_words: np.ndarray) -> np.ndarray:
  symbols = np.fromiter(
      (texts[i].count("#") + texts[i].count("...") + texts[i].count("\u2026")
       for i in order.tolist()), np.float64, len(order))
  return symbols / np.maximum(n_words, 1)


def _repeated_lines(text: str) -> float:
  lines = [line for line in (part.strip() for part in text.split("\n")) if line]
  return (len(lines) - len(set(lines))) / len(lines) if lines else 0.0


def repeated_lines(texts: Sequence[str], order: np.ndarray) -> np.ndarray:
  return np.fromiter((_repeated_lines(texts[i]) for i in order.tolist()), np.float64,
                     len(order))


def replacement_fraction(texts: Sequence[str], order: np.ndarray) -> np.ndarray:
  return np.fromiter((texts[i].count("\ufffd") / max(len(texts[i]), 1)
                      for i in order.tolist()), np.float64, len(order))


def repeated_ngrams(texts: Sequence[str], order: np.ndarray, n: int) -> np.ndarray:
  """repeated_ngrams of each document `order` lists (see the module docstring)."""
  out = np.zeros(len(order), np.float64)
  done = 0
  for docs, lengths, h, chars in dedup.word_batches(texts, order):
    grams, counts = dedup.gram_hashes(h, lengths, n, short_docs=False)
    # One key per (document, n-gram), so that only repeats inside a document count.
    doc_of_gram = np.repeat(np.arange(len(docs), dtype=np.uint64), counts)
    keys = dedup.mix64(grams ^ (doc_of_gram * np.uint64(0xD6E8FEB86659FD93)))
    _, inverse, freq = np.unique(keys, return_inverse=True, return_counts=True)
    repeated = freq[inverse] > 1
    # Mark the n words of every repeated gram: +1 at its first word, -1 after its last.
    starts = np.repeat(np.cumsum(lengths) - lengths, counts)
    first = starts + (np.arange(len(grams)) - np.repeat(np.cumsum(counts) - counts, counts))
    size = len(h) + n
    cover = (np.bincount(first[repeated], minlength=size)
             - np.bincount(first[repeated] + n, minlength=size))
    covered = np.cumsum(cover[:len(h)]) > 0
    doc_of_word = np.repeat(np.arange(len(docs)), lengths)
    total = np.bincount(doc_of_word, chars.astype(np.float64), minlength=len(docs))
    inside = np.bincount(doc_of_word, chars * covered, minlength=len(docs))
    out[done:done + len(docs)] = inside / np.maximum(total, 1)
    done += len(docs)
  return out


@functools.cache
def language_identifier():
  """py3langid's shipped model with normalised probabilities (loaded once, ~1 s)."""
  try:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
  except ImportError:
    raise UserError(f"{LANG_FIELD}.enabled needs py3langid, which is not installed; run "
                    f"pip install 'babylm_jax[lang]' or turn the language filter off.") from None
  return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def langid_version() -> str:
  from importlib import metadata
  try:
    return metadata.version("py3langid")
  except metadata.PackageNotFoundError:
    return "unknown"


def languages(texts: Sequence[str], order: np.ndarray, max_chars: int
              ) -> tuple[list[str], np.ndarray]:
  """(language code, probability) of each document `order` lists, from its first
  `max_chars` characters (all of it when 0): py3langid reads about 0.5 MB/s."""
  ident = language_identifier()
  langs, probs = [], np.empty(len(order), np.float64)
  for k, i in enumerate(order.tolist()):
    lang, prob = ident.classify(texts[i][:max_chars] if max_chars else texts[i])
    langs.append(lang)
    probs[k] = prob
  return langs, probs
