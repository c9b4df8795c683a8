"""Corpus curation: which documents of a corpus recipe to keep, and a report of why.

`curate(texts, sources, settings, strict=...)` runs the switched-on steps in this order,
each on the documents the earlier steps kept, and counts documents and words per source
before and after each:

1. `exact`: exact-duplicate removal by a normalised text hash (`dedup.py`).
2. `quality`: length, symbol ratio, repeated lines, repeated n-grams and the share of
   U+FFFD characters, each with its own threshold (definitions in `quality.py`); every
   filter's flags are counted on their own, and each dropped document is charged to the
   first filter it fails, in that order.
3. `language`: py3langid's language, kept when it is one of `languages` with probability at
   least `min_prob`, on the documents of `sources` only (all when empty). py3langid is a
   trained model, an *ancillary model* under the BabyLM rules: its training text counts
   toward the budget, so a strict track refuses it unless `outside_rules` is set.
4. `near`: near-duplicate removal with MinHash LSH (`dedup.py`).

The cheap steps run first so that MinHash only signs text that survives them. Every step
is off in `default_config()`; a step that is off costs nothing and has no entry in the
report. The config lives at `config.data.corpus.curate`.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from typing import Sequence

import ml_collections
import numpy as np
from ml_collections import config_dict

from babylm_jax.data import dedup, quality
from babylm_jax.errors import ConfigError, UserError

FIELD = "data.corpus.curate"
EXAMPLE_CHARS = 200  # of each text in the report's examples


def default_config() -> ml_collections.ConfigDict:
  """`config.data.corpus.curate`: every step off, thresholds unset."""
  c = ml_collections.ConfigDict()
  # A run outside the BabyLM rules: allows ancillary models (the language filter) on a
  # strict track.
  c.outside_rules = False
  c.exact = ml_collections.ConfigDict()
  c.exact.enabled = False
  c.near = ml_collections.ConfigDict()
  c.near.enabled = False
  c.near.threshold = 0.8  # estimated Jaccard similarity of shingle sets at which to drop
  c.near.shingle_words = 5  # words per shingle (word n-grams)
  c.near.num_perm = 128  # MinHash permutations (signature length)
  c.near.seed = 1  # of the MinHash permutations
  c.near.examples = 5  # removed pairs shown in the report
  # Quality filters: each is off while its threshold is None.
  c.quality = ml_collections.ConfigDict()
  c.quality.min_words = config_dict.placeholder(int)  # drop documents of fewer words
  c.quality.max_words = config_dict.placeholder(int)  # drop documents of more words
  c.quality.max_symbol_ratio = config_dict.placeholder(float)  # Gopher: 0.1
  c.quality.max_repeated_lines = config_dict.placeholder(float)  # Gopher: 0.3
  c.quality.max_repeated_ngrams = config_dict.placeholder(float)  # Gopher: 0.15 at n=5
  c.quality.ngram_words = 5  # n of max_repeated_ngrams
  c.quality.max_replacement_fraction = config_dict.placeholder(float)  # e.g. 0.01
  c.language = ml_collections.ConfigDict()
  c.language.enabled = False
  c.language.languages = "en"  # comma-separated ISO 639 codes to keep
  c.language.min_prob = 0.0  # py3langid's normalised probability of that language
  c.language.sources = ""  # comma-separated sources to filter; '' filters every source
  c.language.max_chars = 2000  # classify this prefix of each document (0: all of it)
  return c


@dataclasses.dataclass(frozen=True)
class NearSettings:
  enabled: bool = False
  threshold: float = 0.8
  shingle_words: int = 5
  num_perm: int = 128
  seed: int = 1
  examples: int = 5


@dataclasses.dataclass(frozen=True)
class QualitySettings:
  min_words: int | None = None
  max_words: int | None = None
  max_symbol_ratio: float | None = None
  max_repeated_lines: float | None = None
  max_repeated_ngrams: float | None = None
  ngram_words: int = 5
  max_replacement_fraction: float | None = None

  @property
  def enabled(self) -> bool:
    return any(v is not None for k, v in dataclasses.asdict(self).items() if k != "ngram_words")


@dataclasses.dataclass(frozen=True)
class LanguageSettings:
  enabled: bool = False
  languages: tuple[str, ...] = ("en",)
  min_prob: float = 0.0
  sources: tuple[str, ...] = ()
  max_chars: int = 2000


@dataclasses.dataclass(frozen=True)
class CurateSettings:
  exact: bool = False
  near: NearSettings = NearSettings()
  quality: QualitySettings = QualitySettings()
  language: LanguageSettings = LanguageSettings()
  outside_rules: bool = False

  @property
  def any_on(self) -> bool:
    """True when some step is switched on (a quality filter is on when its threshold is set)."""
    return self.exact or self.near.enabled or self.quality.enabled or self.language.enabled

  @property
  def ancillary_models(self) -> list[str]:
    return ["py3langid"] if self.language.enabled else []


@dataclasses.dataclass
class CurateResult:
  keep: np.ndarray  # bool, one per document
  report: dict  # JSON-able


def _check_keys(cfg, defaults, path: str):
  for key in cfg.keys():
    if key not in defaults:
      near = difflib.get_close_matches(key, list(defaults.keys()), 1)
      hint = f"; did you mean '{path}.{near[0]}'" if near else ""
      raise ConfigError(f"{path} has no field '{key}'{hint}.")
    if isinstance(defaults[key], ml_collections.ConfigDict):
      _check_keys(cfg[key], defaults[key], f"{path}.{key}")


def _require(cond: bool, field: str, what: str, value):
  if not cond:
    raise ConfigError(f"{FIELD}.{field} must be {what}, not {value!r}; fix "
                      f"--config.{FIELD}.{field}.")


def _codes(value) -> tuple[str, ...]:
  parts = value.split(",") if isinstance(value, str) else list(value)
  return tuple(p.strip() for p in parts if p.strip())


def settings_from_config(cfg: ml_collections.ConfigDict) -> CurateSettings:
  """Validated, frozen settings from `config.data.corpus.curate`; ConfigError names the field."""
  _check_keys(cfg, default_config(), FIELD)
  n, q, lang = cfg.near, cfg.quality, cfg.language
  _require(0 < n.threshold <= 1, "near.threshold", "in (0, 1]", n.threshold)
  _require(n.shingle_words >= 1, "near.shingle_words", "at least 1", n.shingle_words)
  # MinHashLSH needs at least two bands.
  _require(n.num_perm >= 2, "near.num_perm", "at least 2", n.num_perm)
  _require(n.examples >= 0, "near.examples", "at least 0", n.examples)
  for f in ("min_words", "max_words"):
    _require(q[f] is None or q[f] >= 0, f"quality.{f}", "None or at least 0", q[f])
  if q.min_words is not None and q.max_words is not None:
    _require(q.max_words >= q.min_words, "quality.max_words", "at least quality.min_words",
             q.max_words)
  for f in ("max_symbol_ratio", "max_repeated_lines", "max_repeated_ngrams",
            "max_replacement_fraction"):
    _require(q[f] is None or q[f] >= 0, f"quality.{f}", "None or at least 0", q[f])
  _require(q.ngram_words >= 1, "quality.ngram_words", "at least 1", q.ngram_words)
  languages = _codes(lang.languages)
  if lang.enabled:
    _require(bool(languages), "language.languages", "one or more language codes",
             lang.languages)
  _require(0 <= lang.min_prob <= 1, "language.min_prob", "in [0, 1]", lang.min_prob)
  _require(lang.max_chars >= 0, "language.max_chars", "at least 0", lang.max_chars)
  return CurateSettings(
      exact=bool(cfg.exact.enabled),
      near=NearSettings(bool(n.enabled), float(n.threshold), int(n.shingle_words),
                        int(n.num_perm), int(n.seed), int(n.examples)),
      quality=QualitySettings(
          *(None if q[f] is None else t(q[f]) for f, t in (
              ("min_words", int), ("max_words", int), ("max_symbol_ratio", float),
              ("max_repeated_lines", float), ("max_repeated_ngrams", float))),
          ngram_words=int(q.ngram_words),
          max_replacement_fraction=(None if q.max_replacement_fraction is None
                                    else float(q.max_replacement_fraction))),
      language=LanguageSettings(bool(lang.enabled), languages, float(lang.min_prob),
                                _codes(lang.sources), int(lang.max_chars)),
      outside_rules=bool(cfg.outside_rules))


class _Ledger:
  """Documents and words per source, before and after each step, from the keep mask."""

  def __init__(self, sources: Sequence[str], n_words: np.ndarray):
    self.names = list(dict.fromkeys(sources))
    index = {s: k for k, s in enumerate(self.names)}
    self.source_id = np.fromiter((index[s] for s in sources), np.int64, len(sources))
    self.n_words = n_words

  def mask(self, docs: np.ndarray) -> np.ndarray:
    out = np.zeros(len(self.source_id), bool)
    out[docs] = True
    return out

  def count(self, mask: np.ndarray) -> dict[str, dict[str, int]]:
    k = len(self.names)
    docs = np.bincount(self.source_id[mask], minlength=k)
    words = np.bincount(self.source_id[mask], self.n_words[mask], minlength=k)
    return {s: dict(documents=int(docs[j]), words=int(words[j]))
            for j, s in enumerate(self.names)}

  def step(self, before: np.ndarray, after: np.ndarray) -> dict:
    b, a, d = self.count(before), self.count(after), self.count(before & ~after)
    per_source = {s: dict(documents_in=b[s]["documents"], words_in=b[s]["words"],
                          documents_out=a[s]["documents"], words_out=a[s]["words"],
                          documents_dropped=d[s]["documents"], words_dropped=d[s]["words"])
                  for s in self.names}
    keys = ("documents_in", "words_in", "documents_out", "words_out", "documents_dropped",
            "words_dropped")
    totals = {k: sum(v[k] for v in per_source.values()) for k in keys}
    return dict(totals, per_source=per_source)


def _example(texts, sources, i: int, j: int, **extra) -> dict:
  return dict(removed=i, removed_source=sources[i], removed_text=texts[i][:EXAMPLE_CHARS],
              duplicate_of=j, duplicate_source=sources[j], kept_text=texts[j][:EXAMPLE_CHARS],
              **extra)


# Each step: (texts, sources, the documents still kept, settings, ledger) -> (the documents
# it drops, what the report says about it beyond the counts).


def _exact(texts, sources, alive, s: CurateSettings, ledger):
  dups = dedup.exact_duplicates(texts, alive)
  examples = [_example(texts, sources, i, j) for i, j in list(dups.items())[:5]]
  return (np.fromiter(dups, np.int64, len(dups)),
          dict(normalisation=dedup.EXACT_NORMALISATION, hash="blake2b-128", examples=examples))


def _quality(texts, sources, alive, s: CurateSettings, ledger):
  q = s.quality
  n_words = quality.words(texts, alive)
  # (name, threshold, which documents fail it), in the order drops are charged; a measure
  # is computed only when its threshold is set.
  checks = [
      ("min_words", q.min_words, lambda t: n_words < t),
      ("max_words", q.max_words, lambda t: n_words > t),
      ("max_replacement_fraction", q.max_replacement_fraction,
       lambda t: quality.replacement_fraction(texts, alive) > t),
      ("max_symbol_ratio", q.max_symbol_ratio,
       lambda t: quality.symbol_ratio(texts, alive, n_words) > t),
      ("max_repeated_lines", q.max_repeated_lines,
       lambda t: quality.repeated_lines(texts, alive) > t),
      ("max_repeated_ngrams", q.max_repeated_ngrams,
       lambda t: quality.repeated_ngrams(texts, alive, q.ngram_words) > t),
  ]
  failed = np.zeros(len(alive), bool)
  filters = {}
  for name, threshold, failing in checks:
    if threshold is None:
      continue
    fails = failing(threshold)
    filters[name] = dict(threshold=threshold,
                         flagged=ledger.count(ledger.mask(alive[fails])),
                         dropped=ledger.count(ledger.mask(alive[fails & ~failed])))
    failed |= fails
  if "max_repeated_ngrams" in filters:
    filters["max_repeated_ngrams"]["ngram_words"] = q.ngram_words
  return alive[failed], dict(filters=filters)


def _language(texts, sources, alive, s: CurateSettings, ledger):
  lang = s.language
  if lang.sources:
    alive = alive[np.isin(np.asarray(sources, object)[alive], lang.sources)]
  codes, probs = quality.languages(texts, alive, lang.max_chars)
  keep = np.isin(np.asarray(codes, object), lang.languages) & (probs >= lang.min_prob)
  detected: dict[str, dict[str, int]] = {}
  for i, code in zip(alive.tolist(), codes):
    per = detected.setdefault(sources[i], {})
    per[code] = per.get(code, 0) + 1
  detected = {src: dict(sorted(c.items(), key=lambda kv: -kv[1])[:10])
              for src, c in detected.items()}
  return alive[~keep], dict(model=f"py3langid {quality.langid_version()}",
                            languages=list(lang.languages), min_prob=lang.min_prob,
                            sources=list(lang.sources) or "all", max_chars=lang.max_chars,
                            detected=detected)


def _near(texts, sources, alive, s: CurateSettings, ledger):
  n = s.near
  dups, facts = dedup.near_duplicates(texts, alive, threshold=n.threshold,
                                      shingle_words=n.shingle_words, num_perm=n.num_perm,
                                      seed=n.seed)
  examples = [_example(texts, sources, i, j, estimated_jaccard=round(est, 4))
              for i, (j, est) in list(dups.items())[:n.examples]]
  return (np.fromiter(dups, np.int64, len(dups)),
          dict(threshold=n.threshold, shingle_words=n.shingle_words, num_perm=n.num_perm,
               seed=n.seed, **facts, examples=examples))


def _check_ancillary(settings: CurateSettings, strict: bool):
  if settings.language.enabled and strict and not settings.outside_rules:
    raise UserError(
        f"{FIELD}.language uses py3langid, a trained model whose training text counts toward "
        f"a strict track's word budget (an ancillary model under the BabyLM rules); turn "
        f"{FIELD}.language.enabled off, or set {FIELD}.outside_rules=True for a run outside "
        f"the rules.")
  if settings.language.enabled:
    known = set(quality.language_identifier().labels)
    unknown = sorted(set(settings.language.languages) - known)
    if unknown:
      raise ConfigError(f"{FIELD}.language.languages names {', '.join(unknown)}, which "
                        f"py3langid does not know; use ISO 639 codes such as en, nl, zh.")


def curate(texts: list[str], sources: list[str], settings: CurateSettings, *,
           strict: bool) -> CurateResult:
  """Which documents to keep (see the module docstring) and a JSON-able report."""
  if len(texts) != len(sources):
    raise ValueError(f"{len(texts)} texts but {len(sources)} sources")
  _check_ancillary(settings, strict)
  t_all = time.perf_counter()
  n_words = quality.words(texts, np.arange(len(texts)))
  ledger = _Ledger(sources, n_words)
  keep = np.ones(len(texts), bool)
  steps = []
  plan = [("exact", settings.exact, _exact), ("quality", settings.quality.enabled, _quality),
          ("language", settings.language.enabled, _language),
          ("near", settings.near.enabled, _near)]
  for name, enabled, step in plan:
    if not enabled:
      continue
    before = keep.copy()
    t0 = time.perf_counter()
    dropped, extra = step(texts, sources, np.flatnonzero(keep), settings, ledger)
    keep[dropped] = False
    seconds = time.perf_counter() - t0
    entry = dict(step=name, **ledger.step(before, keep), seconds=round(seconds, 4))
    entry["words_per_s"] = round(entry["words_in"] / max(seconds, 1e-9))
    steps.append(dict(entry, **extra))
  total = ledger.step(np.ones(len(texts), bool), keep)
  report = dict(
      steps=steps,
      documents_in=total["documents_in"], words_in=total["words_in"],
      documents_out=total["documents_out"], words_out=total["words_out"],
      per_source=total["per_source"],
      ancillary_models=[dict(name="py3langid", version=quality.langid_version(),
                             used_by="language filter",
                             why=("a trained language identifier: its training text counts "
                                  "toward the BabyLM word budget"))
                        for _ in settings.ancillary_models],
      strict=strict, settings=dataclasses.asdict(settings),
      seconds=round(time.perf_counter() - t_all, 4))
  return CurateResult(keep, report)


def format_report(report: dict) -> list[str]:
  """The curation report as Markdown lines for a person: per step and source, what went in,
  what was dropped; each quality filter's thresholds and drops; example removed duplicates."""
  lines = ["| step | source | documents in | words in | documents dropped | words dropped |",
           "| --- | --- | ---: | ---: | ---: | ---: |"]
  for s in report["steps"]:
    for name, c in s["per_source"].items():
      lines.append(f"| {s['step']} | {name} | {c['documents_in']:,} | {c['words_in']:,} | "
                   f"{c['documents_dropped']:,} | {c['words_dropped']:,} |")
  lines.append(f"| all | all | {report['documents_in']:,} | {report['words_in']:,} | "
               f"{report['documents_in'] - report['documents_out']:,} | "
               f"{report['words_in'] - report['words_out']:,} |")
  models = report.get("ancillary_models") or []
  lines += ["", "Ancillary models (their training data count toward the budget under the BabyLM "
            f"rules): {', '.join(models) if models else 'none'}."]
  for s in report["steps"]:
    if s["step"] == "exact":
      lines += ["", f"Exact duplicates: {s['normalisation']}; {s['hash']} of the normalised text, "
                "the first occurrence kept."]
    elif s["step"] == "near":
      lines += ["", f"Near duplicates: MinHash of {s['shingle_words']}-word shingles, "
                f"{s['num_perm']} permutations (seed {s['seed']}), LSH {s['lsh_bands']} bands x "
                f"{s['lsh_rows']} rows, dropped at an estimated Jaccard similarity >= "
                f"{s['threshold']} to an earlier document."]
    elif s["step"] == "quality":
      lines += ["", "| quality filter | threshold | flagged (documents) | dropped (documents) |",
                "| --- | --- | ---: | ---: |"]
      for name, f in s["filters"].items():
        flagged = sum(c["documents"] for c in f["flagged"].values())
        dropped = sum(c["documents"] for c in f["dropped"].values())
        extra = f" ({f['ngram_words']}-grams)" if "ngram_words" in f else ""
        lines.append(f"| {name} | {f['threshold']}{extra} | {flagged:,} | {dropped:,} |")
    elif s["step"] == "language":
      lines += ["", f"Language filter: {s.get('model', 'py3langid')}."]
    for e in s.get("examples") or []:
      sim = (f" (estimated Jaccard {e['estimated_jaccard']:.2f})"
             if "estimated_jaccard" in e else "")
      lines.append(f"- {s['step']}: removed {e['removed_source']} #{e['removed']} "
                   f"\"{e['removed_text'][:120]}...\" as a duplicate of "
                   f"{e['duplicate_source']} #{e['duplicate_of']}{sim}")
  return lines
