"""From `config.data.path` to a tokenizer and two token stores (train, dev): `--mode=prepare`.

`prepare_data` reads and cleans the corpus, checks the track's word budget, trains (or loads)
the tokenizer and builds the token stores, all cached under keys that cover the source
contents, the cleaning settings and the tokenizer. A rerun with the same inputs only hashes
the source files and opens the cached stores.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time

import numpy as np
import tokenizers

from babylm_jax import config as config_lib
from babylm_jax import interrupts
from babylm_jax.data import clean, generated, sources
from babylm_jax.data import languages as languages_lib
from babylm_jax.data import corpus as corpus_lib
from babylm_jax.data import tokenizer as tok_lib
from babylm_jax.data.store import (TokenStore, cache_error, cache_root, digest, open_store,
                                   write_store)
from babylm_jax.errors import DataError


# A corpus with more bytes than sources.MAX_REPLACED_FRACTION replaced as invalid UTF-8, or
# more tokens per whitespace word than this, is not text (English runs at 1.3-2.5 tokens per
# word); data.allow_binary overrides.
MAX_TOKENS_PER_WORD = 5.0


@dataclasses.dataclass
class PreparedData:
  tokenizer: tokenizers.Tokenizer
  tokenizer_path: str
  train: TokenStore
  dev: TokenStore
  stats: dict
  # Track 'multilingual': each language's held-out documents, for a validation loss each.
  dev_languages: dict[str, TokenStore] = dataclasses.field(default_factory=dict)

  @property
  def data_key(self) -> str:
    """Names the training text exactly (corpus, cleaning, split, tokenizer): the store's key."""
    return os.path.basename(os.path.normpath(self.train.path))


@dataclasses.dataclass
class _Docs:
  """Cleaned documents of one corpus, with the domain of each and the raw word counts."""
  texts: list[str]
  domain_ids: list[int]
  domains: list[str]
  raw_words: dict[str, int]
  replaced_bytes: int
  raw_bytes: int = 0

  def subset(self, idx) -> "_Docs":
    return _Docs([self.texts[i] for i in idx], [self.domain_ids[i] for i in idx], self.domains,
                 {}, 0)


def _read(corpus: sources.Corpus, settings: clean.CleanSettings, field: str) -> _Docs:
  sources.take_replaced()
  sources.take_bytes_read()
  texts, domain_ids, domains, raw_words = [], [], [], {}

  def add(domain, docs):
    if domain not in domains:
      domains.append(domain)
    d = domains.index(domain)
    n = len(texts)
    texts.extend(docs)
    domain_ids.extend([d] * (len(texts) - n))

  if corpus.tfds_records is not None:
    for record in corpus.tfds_records():
      add(corpus.tfds_domain, clean.documents([record], corpus.tfds_domain, settings, raw_words))
  for f in corpus.files:
    add(f.domain, clean.documents(sources.read_blocks(f.path), f.domain, settings, raw_words))
    interrupts.check()
  if not texts:
    raise DataError(f"{field} '{corpus.spec}' has no documents after cleaning; check that its "
                    f"files hold text, or relax the data.clean settings.")
  return _Docs(texts, domain_ids, domains, raw_words, sources.take_replaced(),
               sources.take_bytes_read())


def check_text(config, spec: str, replaced: int, raw_bytes: int | None, tokens: int = 0,
               words: int = 0):
  """Refuses a corpus that is not text (see sources.MAX_REPLACED_FRACTION) unless data.allow_binary."""
  if config.data.allow_binary:
    return
  override = "or set --config.data.allow_binary=True to train on it anyway"
  if raw_bytes and replaced > sources.MAX_REPLACED_FRACTION * raw_bytes:
    raise DataError(f"data.path '{spec}' does not look like text: {replaced:,} of its "
                    f"{raw_bytes:,} bytes ({replaced / raw_bytes:.1%}) are not UTF-8; re-encode "
                    f"it as UTF-8 text, {override}.")
  if words and tokens > MAX_TOKENS_PER_WORD * words:
    raise DataError(f"data.path '{spec}' does not look like text: it encodes to "
                    f"{tokens / words:.1f} tokens per whitespace word (text has 1.3-2.5); check "
                    f"that the files hold natural-language text, {override}.")


def warn_replaced(stats: dict):
  """Tells the user that some of the corpus was not UTF-8 (prepare and training alike)."""
  if stats["replaced_bytes"]:
    print(f"warning: {stats['replaced_bytes']:,} bytes of data.path were not UTF-8 and were "
          f"replaced by U+FFFD; re-encode the files as UTF-8 to keep that text.",
          file=sys.stderr, flush=True)


def check_budget(config, raw_words: int, spec: str, corpus=None) -> list[tuple[str, int]]:
  """Refuses a corpus over the track's word budget unless the config allows it; returns the
  lines counted (generated folders in `corpus` add theirs, see data/generated.py)."""
  budget, _ = config_lib.track_limits(config)
  lines = (generated.budget_lines(config, corpus, raw_words) if corpus
           else [("corpus", raw_words)])
  counted = generated.counted_words(config, lines)
  if counted > budget and not (config.data.allow_over_budget or config.outside_rules):
    what = "" if len(lines) == 1 else " (" + ", ".join(f"{w} {n:,}" for w, n in lines) + ")"
    raise DataError(
        f"data.path '{spec}' counts {counted:,} words{what}, over the {config.track} budget "
        f"of {budget:,}; use a smaller corpus, another --config.track, or set "
        f"--config.data.allow_over_budget=True for a run outside the rules.")
  return lines


def _check_language_budget(config, words_per_language: dict[str, int], budget: int):
  """The multilingual budget: English-equivalent words of the languages' selected text."""
  counted = sum(words_per_language.values())
  if counted > budget and not (config.data.allow_over_budget or config.outside_rules):
    raise DataError(
        f"data.languages count {counted:,} English-equivalent words ("
        + ", ".join(f"{c} {n:,}" for c, n in words_per_language.items())
        + f"), over the multilingual budget of {budget:,}; lower --config.data.language_words "
        f"or set --config.data.allow_over_budget=True for a run outside the rules.")
  return list(words_per_language.items())


def _read_languages(config, langs, corpora, settings) -> _Docs:
  """Each language's documents (domain = its code) from its resolved corpus, cut to its share
  of the mixture: a fixed random pick of whole documents (languages.pick); their raw_words are
  the English-equivalent words taken of each language (of the documents' UTF-8 text)."""
  per = {}
  for lang, corpus in zip(langs, corpora):
    docs = _read(corpus, settings, f"data.languages ({lang.code})")
    units = np.asarray([languages_lib.english_words(len(t.encode("utf-8")), lang.code)
                        for t in docs.texts])
    per[lang.code] = (docs, units)
  budget, _ = config_lib.track_limits(config)
  cap = config.data.language_words or budget
  quota = languages_lib.quotas({c: float(u.sum()) for c, (_, u) in per.items()},
                               {lang.code: lang.share for lang in langs}, cap)
  texts, ids, taken, replaced, raw_bytes = [], [], {}, 0, 0
  for i, lang in enumerate(langs):
    docs, units = per[lang.code]
    keep = languages_lib.pick(units, quota[lang.code], seed=int(config.data.corpus.seed) + i)
    texts.extend(docs.texts[j] for j in keep)
    ids.extend([i] * len(keep))
    taken[lang.code] = float(units[keep].sum())
    replaced += docs.replaced_bytes
    raw_bytes += docs.raw_bytes
  words = {c: round(w) for c, w in taken.items()}
  return _Docs(texts, ids, [lang.code for lang in langs], words, replaced, raw_bytes)


def _language_dev(docs: _Docs, fraction: float, spec: str) -> np.ndarray:
  """Held-out documents of every language alike: evenly spaced within each."""
  ids = np.asarray(docs.domain_ids)
  held = [np.flatnonzero(ids == d)[_dev_indices(int((ids == d).sum()), fraction,
                                                 f"{spec} ({code})")]
          for d, code in enumerate(docs.domains)]
  return np.concatenate(held)


def _dev_indices(n: int, fraction: float, spec: str) -> np.ndarray:
  """Evenly spaced documents, so every domain of a file-ordered corpus gives some."""
  if n < 2:
    raise DataError(f"data.path '{spec}' has only {n} document, too few to hold out a dev "
                    f"set; set --config.data.dev_path to separate validation text.")
  k = min(n - 1, max(1, round(n * fraction)))
  return np.unique(((np.arange(k) + 0.5) * n / k).astype(np.int64))


def _build(path: str, docs: _Docs, tok, batch_docs: int, extra: dict,
           check=lambda tokens, words: None, english_equivalent: bool = False) -> TokenStore:
  """Encodes `docs` and writes the store; `check(tokens, words)` may refuse it first. Its
  word counts are whitespace words, or with `english_equivalent` the multilingual track's
  unit (languages.unit_ticks; the documents' domains are their languages)."""
  tokens, lengths = tok_lib.encode_documents(tok, docs.texts, batch_docs)
  interrupts.check()
  offsets = np.zeros(len(lengths) + 1, np.int64)
  np.cumsum(lengths, out=offsets[1:])
  if english_equivalent:
    doc_bytes = np.asarray([len(t.encode("utf-8")) for t in docs.texts], np.float64)
    starts = languages_lib.unit_ticks(tokens, offsets, doc_bytes,
                                      np.asarray(docs.domain_ids, np.int64), docs.domains,
                                      tok_lib.token_bytes(tok))
    extra = dict(extra, word_unit="english_equivalent")
  else:
    starts = tok_lib.word_starts(tokens, offsets, tok_lib.word_tables(tok))
  check(len(tokens), int(starts.sum()))
  interrupts.check()
  return write_store(path, tokens, lengths, starts, np.asarray(docs.domain_ids, np.int32),
                     docs.domains, tok.get_vocab_size(with_added_tokens=True), extra)


def _write_workdir_tokenizer(tok, workdir: str) -> str:
  from etils import epath
  path = epath.Path(workdir) / "tokenizer.json"
  import jax
  if jax.process_index() == 0:
    tok_lib.save_tokenizer_atomic(tok, str(path))
  return str(path)


def _given_or_cached_tokenizer(config, root: str, corpus_key: str, *key_parts):
  """(tokenizer or None, its path): tokenizer.path when set, else the cached tokenizer of this
  corpus and settings (None when not trained yet, to be saved at the path returned)."""
  vocab_size = int(config.model.vocab_size)
  if config.tokenizer.path:
    return tok_lib.load_tokenizer(config.tokenizer.path, vocab_size), config.tokenizer.path
  tok_key = digest("tokenizer", corpus_key, vocab_size, config.tokenizer.min_frequency,
                   tokenizers.__version__, *key_parts)
  tok_path = os.path.join(root, "tokenizers", tok_key, "tokenizer.json")
  tok = tok_lib.load_tokenizer(tok_path, vocab_size) if os.path.isfile(tok_path) else None
  return tok, tok_path


def _train_tokenizer(config, texts, tok_path: str):
  """A tokenizer trained on `texts`, saved into the cache at `tok_path`."""
  tok = tok_lib.train_tokenizer(texts, int(config.model.vocab_size),
                                config.tokenizer.min_frequency, config.tokenizer.split_cjk)
  interrupts.check()  # the tokenizer's trainer may have swallowed a Ctrl-C
  try:
    tok_lib.save_tokenizer_atomic(tok, tok_path)
  except OSError as e:
    raise cache_error(os.path.dirname(tok_path), e) from None
  return tok


def prepare_data(config, workdir: str | None = None) -> PreparedData:
  """The tokenizer and the train/dev token stores for `config` (see the module docstring)."""
  t0 = time.time()
  config_lib.validate(config)
  vocab_size = int(config.model.vocab_size)
  tok_lib.check_vocab_size(vocab_size)
  settings = clean.CleanSettings.from_config(config)
  data = config.data
  langs = languages_lib.languages(config)
  if langs:
    return _prepare_languages(config, workdir, langs, settings, t0)
  corpus = sources.resolve(data.path, config, "data.path")
  dev_corpus = sources.resolve(data.dev_path, config, "data.dev_path") if data.dev_path else None
  split = dev_corpus.key if dev_corpus else float(data.dev_fraction)
  corpus_key = digest("corpus", corpus.key, dataclasses.asdict(settings), split)
  root = cache_root(config)

  # split_cjk joins the key only when on, so that the tokenizers cached before it stay valid.
  tok, tok_path = _given_or_cached_tokenizer(
      config, root, corpus_key, *(["split_cjk"] if config.tokenizer.split_cjk else []))
  tok_trained = False

  def store_paths(tok):
    tok_hash = digest("tok", tok.to_str())
    return tuple(os.path.join(root, "stores", digest(corpus_key, tok_hash, role))
                 for role in ("train", "dev"))

  train = dev = None
  if tok is not None:
    train_path, dev_path = store_paths(tok)
    train, dev = open_store(train_path), open_store(dev_path)
  cache_hit = train is not None and dev is not None

  if cache_hit:
    budget_lines = check_budget(config, sum(train.meta["raw_words_per_domain"].values()),
                                data.path, corpus)
    check_text(config, data.path, int(train.meta["replaced_bytes"]), train.meta.get("raw_bytes"),
               train.num_tokens, train.num_words)
  else:
    docs = _read(corpus, settings, "data.path")
    budget_lines = check_budget(config, sum(docs.raw_words.values()), data.path, corpus)
    check_text(config, data.path, docs.replaced_bytes, docs.raw_bytes)
    if dev_corpus is not None:
      train_docs, dev_docs = docs, _read(dev_corpus, settings, "data.dev_path")
    else:
      held = _dev_indices(len(docs.texts), data.dev_fraction, data.path)
      keep = np.setdiff1d(np.arange(len(docs.texts)), held)
      train_docs, dev_docs = docs.subset(keep), docs.subset(held)
    if tok is None:
      tok, tok_trained = _train_tokenizer(config, train_docs.texts, tok_path), True
    train_path, dev_path = store_paths(tok)
    extra = dict(source=data.path, raw_words_per_domain=docs.raw_words,
                 replaced_bytes=docs.replaced_bytes, raw_bytes=docs.raw_bytes,
                 clean=dataclasses.asdict(settings))
    batch_docs = int(data.encode_batch_docs)
    check = functools.partial(check_text, config, data.path, docs.replaced_bytes, None)
    train = open_store(train_path) or _build(train_path, train_docs, tok, batch_docs, extra,
                                             check)
    dev = open_store(dev_path) or _build(
        dev_path, dev_docs, tok, batch_docs,
        dict(source=data.dev_path or data.path, raw_words_per_domain=dev_docs.raw_words,
             replaced_bytes=dev_docs.replaced_bytes, clean=dataclasses.asdict(settings)))

  if workdir:
    tok_path = _write_workdir_tokenizer(tok, workdir)
  seconds = time.time() - t0
  words = train.num_words + dev.num_words
  tokens = train.num_tokens + dev.num_tokens
  stats = dict(
      words_per_domain=train.words_per_domain(), dev_words_per_domain=dev.words_per_domain(),
      raw_words_per_domain=dict(train.meta["raw_words_per_domain"]),
      train_words=train.num_words, dev_words=dev.num_words, words=words,
      train_tokens=train.num_tokens, dev_tokens=dev.num_tokens, tokens=tokens,
      train_docs=train.num_docs, dev_docs=dev.num_docs,
      tokens_per_word=tokens / max(words, 1), seconds=seconds,
      words_per_s=words / max(seconds, 1e-9), replaced_bytes=int(train.meta["replaced_bytes"]),
      cache_hit=cache_hit, tokenizer_trained=tok_trained, budget_words=dict(budget_lines),
      vocab_size=tok.get_vocab_size(with_added_tokens=True),
      corpus_manifest_sha256=corpus_lib.manifest_sha256(data.path))
  return PreparedData(tok, tok_path, train, dev, stats)


def _prepare_languages(config, workdir, langs, settings, t0) -> PreparedData:
  """prepare_data for track 'multilingual': the languages' mixture (languages.py), a
  tokenizer trained on a sample balanced by tokenizer.language_shares, stores counted in
  English-equivalent words, and a dev store per language besides the joint one."""
  data = config.data
  corpora = [sources.resolve(lang.path, config, f"data.languages ({lang.code})")
             for lang in langs]
  budget, _ = config_lib.track_limits(config)
  corpus_key = digest("languages", [(lang.code, c.key, lang.share) for lang, c in
                                    zip(langs, corpora)],
                      data.language_words or budget, int(data.corpus.seed),
                      dataclasses.asdict(settings), float(data.dev_fraction))
  root = cache_root(config)
  codes = [lang.code for lang in langs]
  tok_shares = languages_lib.tokenizer_shares(config, codes)

  tok, tok_path = _given_or_cached_tokenizer(config, root, corpus_key,
                                             bool(config.tokenizer.split_cjk), tok_shares)
  tok_trained = False

  def store_paths(tok):
    tok_hash = digest("tok", tok.to_str(), "english_equivalent")
    roles = ["train", "dev"] + [f"dev_{c}" for c in codes]
    return {role: os.path.join(root, "stores", digest(corpus_key, tok_hash, role))
            for role in roles}

  stores = {}
  if tok is not None:
    stores = {role: open_store(p) for role, p in store_paths(tok).items()}
  cache_hit = bool(stores) and all(s is not None for s in stores.values())
  if cache_hit:
    words = dict(stores["train"].meta["raw_words_per_domain"])
  else:
    docs = _read_languages(config, langs, corpora, settings)
    words = docs.raw_words
    check_text(config, "data.languages", docs.replaced_bytes, docs.raw_bytes)
  budget_lines = _check_language_budget(config, words, budget)
  if not cache_hit:
    held = _language_dev(docs, data.dev_fraction, "data.languages")
    keep = np.setdiff1d(np.arange(len(docs.texts)), held)
    train_docs, dev_docs = docs.subset(keep), docs.subset(held)
    if tok is None:
      by_language = {c: [t for t, d in zip(train_docs.texts, train_docs.domain_ids) if d == i]
                     for i, c in enumerate(codes)}
      sample = languages_lib.balanced_sample(by_language, tok_shares)
      tok, tok_trained = _train_tokenizer(config, sample, tok_path), True
    paths = store_paths(tok)
    common = dict(source=data.languages, clean=dataclasses.asdict(settings),
                  replaced_bytes=docs.replaced_bytes)
    batch_docs = int(data.encode_batch_docs)
    build = functools.partial(_build, tok=tok, batch_docs=batch_docs, english_equivalent=True)
    stores["train"] = open_store(paths["train"]) or build(
        paths["train"], train_docs, extra=dict(common, raw_words_per_domain=words,
                                               raw_bytes=docs.raw_bytes))
    stores["dev"] = open_store(paths["dev"]) or build(
        paths["dev"], dev_docs, extra=dict(common, raw_words_per_domain={}))
    dev_ids = np.asarray(dev_docs.domain_ids)
    for i, c in enumerate(codes):
      sub = dev_docs.subset(np.flatnonzero(dev_ids == i))
      stores[f"dev_{c}"] = open_store(paths[f"dev_{c}"]) or build(
          paths[f"dev_{c}"], sub, extra=dict(common, raw_words_per_domain={}))

  if workdir:
    tok_path = _write_workdir_tokenizer(tok, workdir)
  train, dev = stores["train"], stores["dev"]
  seconds = time.time() - t0
  n_words = train.num_words + dev.num_words
  tokens = train.num_tokens + dev.num_tokens
  stats = dict(
      words_per_domain=train.words_per_domain(), dev_words_per_domain=dev.words_per_domain(),
      raw_words_per_domain=dict(words), train_words=train.num_words, dev_words=dev.num_words,
      words=n_words, train_tokens=train.num_tokens, dev_tokens=dev.num_tokens, tokens=tokens,
      train_docs=train.num_docs, dev_docs=dev.num_docs,
      tokens_per_word=tokens / max(n_words, 1), seconds=seconds,
      words_per_s=n_words / max(seconds, 1e-9), replaced_bytes=int(train.meta["replaced_bytes"]),
      cache_hit=cache_hit, tokenizer_trained=tok_trained, budget_words=dict(budget_lines),
      vocab_size=tok.get_vocab_size(with_added_tokens=True), corpus_manifest_sha256=None,
      word_unit="English-equivalent words")
  return PreparedData(tok, tok_path, train, dev, stats,
                      {c: stores[f"dev_{c}"] for c in codes})


def format_summary(stats: dict) -> str:
  unit = stats.get("word_unit", "words")
  lines = [f"{'domain':<24}{'words':>14}" + ("" if unit == "words" else f"  ({unit})")]
  for d, n in sorted(stats["words_per_domain"].items()):
    lines.append(f"{d:<24}{n:>14,}")
  lines += [
      f"{'train total':<24}{stats['train_words']:>14,}",
      f"{'dev total':<24}{stats['dev_words']:>14,}",
      f"tokens {stats['tokens']:,} (train {stats['train_tokens']:,}, dev "
      f"{stats['dev_tokens']:,}), {stats['tokens_per_word']:.3f} tokens/word",
      f"{stats['seconds']:.2f} s, {stats['words_per_s']:,.0f} words/s"
      f"{' (cache hit)' if stats['cache_hit'] else ''}",
  ]
  if stats.get("corpus_manifest_sha256"):
    lines.append(f"corpus manifest sha256 {stats['corpus_manifest_sha256']} "
                 f"(data.path holds a corpus built by --mode=corpus)")
  return "\n".join(lines)


def run_prepare(config, workdir) -> dict:
  """--mode=prepare: builds or reuses the tokenizer and token stores, prints a summary."""
  if workdir:
    from babylm_jax import workdir as workdir_lib
    with workdir_lib.lock(workdir_lib.prepare(workdir), "prepare"):
      prepared = prepare_data(config, workdir)
  else:
    prepared = prepare_data(config, workdir)
  print(format_summary(prepared.stats), flush=True)
  warn_replaced(prepared.stats)
  return prepared.stats
