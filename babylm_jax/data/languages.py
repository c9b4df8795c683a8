"""The BabyLM 2026 multilingual track: languages, their budget unit and their mixture.

The unit. The track counts text in English-equivalent words, byte-premium adjusted, as the
BabyBabelLM builder does (babylm-org/multilingual-babylm @ 72783ce, src/pad_utils.py): a
tier of N English words is N x 5.43 bytes of UTF-8 English text (`eng_sizes_per_tier`:
1M words = 5.430 MB, MB = 10^6 bytes as `bytes_in_text` counts them), and a language L
reaches that tier with byte_premium(L) times as many bytes (`size * factor`). So a text of B
UTF-8 bytes in language L counts

    english_words = B / (5.43 x byte_premium(L))

The byte premiums are Arnett, Chang and Bergen (2024), "A Bit of a Problem: Measurement
Disparities in Dataset Sizes Across Languages" (SIGUL 2024), as the builder reads them from
resources/byte_coefs_20240233.tsv with `get_byte_premium_factor(lang, script)`: the row of
the language, or of language_script where the language has several (zho has zho_hans and
zho_hant; the builder's Chinese is Simplified, zho_hans from NLLB; cmn_hans is another
language code and is never read for zho).

How a count reaches the rest of the code. A token store keeps, per token, how many units
start there (word_starts.npy, uint8): whitespace words for the English tracks, and for a
multilingual store the English-equivalent words whose byte boundary falls inside the token
(floor of the running count of each language, in store order). Every count that sums those
ticks (words per document, words seen by a step, milestones, the ten-epoch cap, the learning
curves' x axis, the run summary) is then in the track's unit with no change of its own.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from babylm_jax.errors import ConfigError

# Bytes of UTF-8 English text per English word: the builder's 543.00 MB per 100M words.
BYTES_PER_ENGLISH_WORD = 5.43

# byte_coef of resources/byte_coefs_20240233.tsv, the rows get_byte_premium_factor picks for
# the track's languages (tests/test_multilingual.py checks them against the shared copy).
BYTE_PREMIUM = {
    "eng": 1.0,  # eng_latn (nllb)
    "nld": 1.0516057206199363,  # nld_latn (nllb)
    "zho": 0.9359663917979646,  # zho_hans (nllb)
}
TSV_ROWS = {"eng": "eng_latn", "nld": "nld_latn", "zho": "zho_hans"}

# Characters of scripts written without spaces between words (CJK ideographs, kana).
CJK_CHARS = ("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
             "\U00020000-\U0002fa1f]")


def english_words(num_bytes: float, language: str) -> float:
  """English-equivalent words of `num_bytes` UTF-8 bytes of text in `language`."""
  return num_bytes / (BYTES_PER_ENGLISH_WORD * BYTE_PREMIUM[language])


@dataclasses.dataclass(frozen=True)
class Language:
  code: str
  path: str
  share: float


def is_multilingual(config) -> bool:
  return config.track == "multilingual"


def _parse_shares(text: str, field: str) -> dict[str, float] | None:
  """'equal' -> None; 'eng=0.5,nld=0.25,zho=0.25' -> {code: share}."""
  text = str(text).strip()
  if text == "equal":
    return None
  shares = {}
  for part in text.split(","):
    code, _, value = part.partition("=")
    try:
      shares[code.strip()] = float(value)
    except ValueError:
      raise ConfigError(f"{field} '{text}' is neither 'equal' nor a list like "
                        f"'eng=0.5,nld=0.25,zho=0.25'; fix --config.{field}.") from None
  return shares


def _check_shares(shares: dict[str, float], codes: list[str], field: str):
  unknown = sorted(set(shares) - set(codes))
  if unknown:
    raise ConfigError(f"{field} gives a share to {', '.join(unknown)}, which data.languages "
                      f"does not list; name only the languages of data.languages.")
  missing = sorted(set(codes) - set(shares))
  if missing:
    raise ConfigError(f"{field} gives no share to {', '.join(missing)}; give every language "
                      f"of data.languages a share, or use 'equal'.")
  if any(v <= 0 for v in shares.values()) or not math.isclose(sum(shares.values()), 1.0,
                                                               abs_tol=1e-6):
    raise ConfigError(f"{field} shares ({', '.join(f'{k}={v:g}' for k, v in shares.items())}) "
                      f"must be positive and sum to 1 (they sum to {sum(shares.values()):g}); "
                      f"fix --config.{field}.")


def languages(config) -> list[Language]:
  """data.languages, checked: known codes, a source each, shares that sum to 1.

  data.languages is 'code=path,code=path,...' (a folder, file, glob or 'hf:ORG/NAME' each, as
  data.path) and data.language_shares 'equal' or 'code=share,...' (fractions of the budget).
  """
  d = config.data
  field = "data.languages"
  text = str(d.languages).strip()
  if not is_multilingual(config):
    if text:
      raise ConfigError(f"{field} is read by track 'multilingual' only; set "
                        f"--config.track=multilingual or leave {field} empty.")
    return []
  if not text:
    raise ConfigError(f"track 'multilingual' needs {field}, e.g. 'eng=PATH,nld=PATH,zho=PATH' "
                      f"(one source per language).")
  entries = []
  for part in text.split(","):
    code, _, path = (s.strip() for s in part.partition("="))
    if code not in BYTE_PREMIUM:
      raise ConfigError(f"{field} names '{code}', which the multilingual track does not have; "
                        f"use {', '.join(BYTE_PREMIUM)}.")
    if not path:
      raise ConfigError(f"{field} gives language '{code}' no source; write '{code}=PATH' "
                        f"(a folder, file, glob or hf:ORG/NAME).")
    if code in [c for c, _ in entries]:
      raise ConfigError(f"{field} names '{code}' twice; give each language one source.")
    entries.append((code, path))
  codes = [c for c, _ in entries]
  shares = _parse_shares(d.language_shares, "data.language_shares")
  if shares is None:
    shares = {c: 1 / len(codes) for c in codes}
  _check_shares(shares, codes, "data.language_shares")
  return [Language(c, p, shares[c]) for c, p in entries]


def mixture(config) -> str:
  """The languages of a run with their shares, 'eng=0.5,nld=0.25,zho=0.25' ('' off this
  track): what a resumed run must read the same way (the sources' paths may move)."""
  return ",".join(f"{lang.code}={lang.share:.6g}" for lang in languages(config))


def tokenizer_shares(config, codes: list[str]) -> dict[str, float]:
  """tokenizer.language_shares ('equal' or 'code=share,...') as {code: share}."""
  shares = _parse_shares(config.tokenizer.language_shares, "tokenizer.language_shares")
  if shares is None:
    return {c: 1 / len(codes) for c in codes}
  _check_shares(shares, codes, "tokenizer.language_shares")
  return shares


def quotas(available: dict[str, float], shares: dict[str, float],
           total_cap: float) -> dict[str, float]:
  """English-equivalent words to take of each language: share x the largest total that every
  language can supply (available / share) and that stays within `total_cap`."""
  total = min([total_cap] + [available[c] / shares[c] for c in shares])
  return {c: shares[c] * total for c in shares}


def pick(doc_units: np.ndarray, quota: float, seed: int) -> np.ndarray:
  """Indices (sorted) of documents drawn in a fixed random order while their units fit in
  `quota`; a document that does not fit is skipped, so the pick stays at most the quota."""
  order = np.random.default_rng(seed).permutation(len(doc_units))
  cum = np.cumsum(doc_units[order])
  if cum.size == 0 or cum[-1] <= quota * (1 + 1e-12):
    return np.arange(len(doc_units))
  return np.sort(order[cum <= quota])


def balanced_sample(texts_by_language: dict[str, list[str]],
                    shares: dict[str, float]) -> list[str]:
  """Documents of each language, in order, up to share x S bytes each, S the largest total
  every language can supply: the tokenizer's training sample."""
  sizes = {c: sum(len(t.encode("utf-8")) for t in texts) for c, texts in
           texts_by_language.items()}
  total = min(sizes[c] / shares[c] for c in shares)
  out = []
  for c, texts in texts_by_language.items():
    room = shares[c] * total
    for t in texts:
      n = len(t.encode("utf-8"))
      if n > room:
        break
      out.append(t)
      room -= n
  return out


def unit_ticks(tokens: np.ndarray, doc_offsets: np.ndarray, doc_bytes: np.ndarray,
               doc_language: np.ndarray, codes: list[str],
               token_bytes_V: np.ndarray) -> np.ndarray:
  """uint8 per token: the English-equivalent words whose end falls inside it (see the
  module docstring). Each document's units (its text's bytes / (5.43 x premium)) are spread
  over its tokens by their bytes; the running count runs on across a language's documents,
  so the ticks of a language sum to floor(its units). `token_bytes_V`: each token id's
  bytes of text (tokenizer.token_bytes)."""
  tb = token_bytes_V[tokens.astype(np.int64)].astype(np.float64)
  lengths = np.diff(doc_offsets)
  doc_of_token = np.repeat(np.arange(len(lengths)), lengths)
  # Each token's share of its document's bytes (the tokens' bytes include a prefix space the
  # text does not have: scale them to the text's bytes).
  tok_sum = np.zeros(len(lengths))
  np.add.at(tok_sum, doc_of_token, tb)
  premium = np.asarray([BYTE_PREMIUM[c] for c in codes])[doc_language]
  doc_units = doc_bytes / (BYTES_PER_ENGLISH_WORD * premium)
  per_token = tb * (doc_units / np.maximum(tok_sum, 1))[doc_of_token]
  ticks = np.zeros(len(tokens), np.int64)
  token_language = doc_language[doc_of_token]
  for li in range(len(codes)):
    sel = np.flatnonzero(token_language == li)
    running = np.floor(np.cumsum(per_token[sel]) + 1e-9).astype(np.int64)
    ticks[sel] = np.diff(running, prepend=0)
  if ticks.max(initial=0) > 255:
    raise ValueError("a token spans more than 255 English-equivalent words")
  return ticks.astype(np.uint8)
