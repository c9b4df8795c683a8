"""Corpus curation (babylm_jax/data/curate.py): duplicates planted in real BabyLM text are
removed and their originals kept, every quality filter drops what it must and keeps what it
must, the language filter is refused as an ancillary model on a strict track, and the
report's counts add up."""

import json
import sys

import numpy as np
import pytest
from conftest import data_path

from babylm_jax.data import curate, dedup, quality
from babylm_jax.errors import ConfigError, UserError

DOC_WORDS = 400


def _words(*parts) -> list[str]:
  return data_path(*parts).read_text(encoding="utf-8").split()


@pytest.fixture(scope="module")
def base():
  """Forty 400-word documents of real text, twenty Simple Wikipedia, twenty Gutenberg."""
  texts, sources = [], []
  for name in ("simple_wiki", "gutenberg"):
    w = _words("babylm_text", "train_100k", f"{name}.train")
    for k in range(20):
      texts.append(" ".join(w[k * DOC_WORDS:(k + 1) * DOC_WORDS]))
      sources.append(name)
  return texts, sources


def _settings(**changes):
  """Settings from default_config() with dotted-path changes, e.g. near__enabled=True."""
  cfg = curate.default_config()
  for path, value in changes.items():
    *parents, leaf = path.split("__")
    node = cfg
    for p in parents:
      node = node[p]
    node[leaf] = value
  return curate.settings_from_config(cfg)


def _jaccard(a: str, b: str, n: int = 5) -> float:
  def grams(t):
    w = t.split()
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}
  ga, gb = grams(a), grams(b)
  return len(ga & gb) / len(ga | gb)


def _planted(base):
  """The base documents followed by planted copies: (texts, sources, what each copy is)."""
  texts, sources = list(base[0]), list(base[1])
  other = _words("babylm_text", "train_100k", "open_subtitles.train")[:DOC_WORDS]
  # An exact duplicate after normalisation: case, spacing and punctuation differ.
  exact = "  " + texts[3].upper().replace(" ", " \n ").replace(".", " !") + " ..."
  # A near duplicate: two words changed and the last three dropped.
  w = texts[25].split()
  w[100], w[300] = "zebra", "quokka"
  near = " ".join(w[:-3])
  # Similar but below the threshold: a quarter of the words replaced by other real text.
  w = texts[8].split()
  below = " ".join(w[:300] + other[:100])
  planted = {"exact": (exact, 3), "near": (near, 25), "below": (below, 8)}
  index = {}
  for name, (text, original) in planted.items():
    index[name] = len(texts)
    texts.append(text)
    sources.append(sources[original])
  return texts, sources, {k: (index[k], planted[k][1]) for k in planted}


def test_planted_duplicates_are_removed_and_originals_kept(base):
  texts, sources, planted = _planted(base)
  exact_i, exact_of = planted["exact"]
  near_i, near_of = planted["near"]
  below_i, below_of = planted["below"]
  assert _jaccard(texts[near_i], texts[near_of]) > 0.9
  assert 0.5 < _jaccard(texts[below_i], texts[below_of]) < 0.7

  s = _settings(exact__enabled=True, near__enabled=True)
  result = curate.curate(texts, sources, s, strict=True)
  dropped = set(np.flatnonzero(~result.keep).tolist())
  assert dropped == {exact_i, near_i}  # the real documents and the one below threshold stay
  exact_step, near_step = result.report["steps"]
  assert [e["duplicate_of"] for e in exact_step["examples"]] == [exact_of]
  assert [(e["removed"], e["duplicate_of"]) for e in near_step["examples"]] == [(near_i, near_of)]
  assert near_step["examples"][0]["estimated_jaccard"] >= 0.8
  assert (near_step["threshold"], near_step["shingle_words"], near_step["num_perm"]) == (
      0.8, 5, 128)
  assert near_step["per_source"]["gutenberg"]["documents_dropped"] == 1
  assert near_step["per_source"]["simple_wiki"]["documents_dropped"] == 0
  assert result.report["ancillary_models"] == []

  # MinHash compares words as written: the exact copy's case and punctuation differ, so
  # without the exact step only the near copy goes.
  only_near = curate.curate(texts, sources, _settings(near__enabled=True), strict=True)
  assert set(np.flatnonzero(~only_near.keep).tolist()) == {near_i}


def test_the_first_of_a_group_is_kept_whatever_the_order(base):
  texts, sources, planted = _planted(base)
  near_i, near_of = planted["near"]
  order = list(range(len(texts)))
  order[near_i], order[near_of] = order[near_of], order[near_i]  # the copy comes first now
  swapped = [texts[i] for i in order]
  result = curate.curate(swapped, [sources[i] for i in order],
                         _settings(near__enabled=True), strict=False)
  assert set(np.flatnonzero(~result.keep).tolist()) == {near_i}  # the original, now later
  # Deterministic: the same input gives the same report, examples included.
  again = curate.curate(swapped, [sources[i] for i in order], _settings(near__enabled=True),
                        strict=False)
  assert again.report["steps"][0]["examples"] == result.report["steps"][0]["examples"]


def test_signatures_match_datasketch_minhash(base):
  from datasketch import MinHash
  texts = base[0][:5] + ["one two three"]
  (batch,) = dedup.word_batches(texts, np.arange(len(texts)))
  assert batch.lengths.tolist() == [len(t.split()) for t in texts]
  grams, counts = dedup.gram_hashes(batch.hashes, batch.lengths, 5, short_docs=True)
  shingles = (grams >> np.uint64(32)).astype(np.uint32)
  assert counts.tolist() == [DOC_WORDS - 4] * 5 + [1]
  perms = MinHash(num_perm=64, seed=7).permutations
  sig = dedup.signatures(shingles, counts, perms)
  ends = np.cumsum(counts)
  for d in range(len(texts)):
    m = MinHash(num_perm=64, seed=7, hashfunc=int)
    m.update_batch(shingles[ends[d] - counts[d]:ends[d]].tolist())
    np.testing.assert_array_equal(sig[d], m.hashvalues)


def test_exact_key_normalisation():
  assert dedup.exact_key("Don't -- STOP!\n now") == dedup.exact_key("don t stop now")
  assert dedup.exact_key("ﬁne") == dedup.exact_key("FINE")  # NFKC ligature, case
  assert dedup.exact_key("do not stop") != dedup.exact_key("don't stop")


def test_measures_follow_their_definitions():
  order = np.arange(1)
  # Words 0-9 are covered by the 5-gram "a b c d e" occurring twice; "xyz" is not.
  got = quality.repeated_ngrams(["a b c d e a b c d e xyz"], order, 5)
  np.testing.assert_allclose(got, [10 / 13])
  # Overlapping repeats inside one document, and no repeat across documents.
  got = quality.repeated_ngrams(["p q r s t", "p q r s t", "a a a a a a"], np.arange(3), 5)
  np.testing.assert_allclose(got, [0, 0, 1])
  assert quality.repeated_lines(["x\ny\n\nx \nx"], order).tolist() == [0.5]
  n = quality.words(["a # b ... c \u2026"], order)
  assert quality.symbol_ratio(["a # b ... c \u2026"], order, n).tolist() == [3 / 6]
  assert quality.replacement_fraction(["ab\ufffd\ufffd"], order).tolist() == [0.5]


def _corrupted(text: str) -> str:
  """`text` with a byte that is not UTF-8 every 40 bytes, decoded as the reader does."""
  raw = text.encode()
  raw = b"".join(raw[i:i + 40] + b"\xff" for i in range(0, len(raw), 40))
  return raw.decode("utf-8", "replace")


@pytest.mark.parametrize("field,value,make_bad", [
    ("min_words", 50, lambda t: " ".join(t.split()[:10])),
    ("max_words", 300, lambda t: t),
    ("max_symbol_ratio", 0.1,
     lambda t: " ".join(w + (" #" if i % 5 == 0 else "") for i, w in enumerate(t.split()))),
    ("max_repeated_lines", 0.3,
     lambda t: "\n".join([" ".join(t.split()[i:i + 8]) for i in range(0, 32, 8)] * 3)),
    ("max_repeated_ngrams", 0.15, lambda t: " ".join(t.split()[:150] * 2)),
    ("max_replacement_fraction", 0.01, _corrupted),
])
def test_each_quality_filter_drops_and_keeps(base, field, value, make_bad):
  texts, sources = base
  good = texts[1] if field != "max_words" else " ".join(texts[1].split()[:200])
  if field == "max_repeated_lines":  # real text in lines, none repeated
    good = "\n".join(" ".join(texts[1].split()[i:i + 8]) for i in range(0, 96, 8))
  bad = make_bad(texts[2])
  s = _settings(**{f"quality__{field}": value})
  result = curate.curate([good, bad], ["simple_wiki", "gutenberg"], s, strict=True)
  assert result.keep.tolist() == [True, False]
  (step,) = result.report["steps"]
  (only,) = step["filters"]
  assert only == field and step["filters"][field]["threshold"] == value
  assert step["filters"][field]["dropped"]["gutenberg"]["documents"] == 1


def test_language_filter_and_the_ancillary_model_rule(base):
  english = base[0][0]
  dutch = " ".join(_words("multilingual", "text", "nld.train")[:DOC_WORDS])
  texts = [english, dutch, dutch]
  sources = ["mixed", "mixed", "dutch_only"]
  s = _settings(language__enabled=True, language__sources="mixed")
  with pytest.raises(UserError, match="ancillary model") as e:
    curate.curate(texts, sources, s, strict=True)
  assert "outside_rules=True" in str(e.value)

  allowed = _settings(language__enabled=True, language__sources="mixed", outside_rules=True)
  for settings, strict in ((allowed, True), (s, False)):
    result = curate.curate(texts, sources, settings, strict=strict)
    assert result.keep.tolist() == [True, False, True]  # 'dutch_only' is not filtered
    assert [m["name"] for m in result.report["ancillary_models"]] == ["py3langid"]
    (step,) = result.report["steps"]
    assert step["detected"] == {"mixed": {"en": 1, "nl": 1}}


def test_missing_langid_names_the_extra(monkeypatch):
  quality.language_identifier.cache_clear()
  for name in ("py3langid", "py3langid.langid"):  # as if not installed
    monkeypatch.setitem(sys.modules, name, None)
  try:
    with pytest.raises(UserError, match=r"pip install 'babylm_jax\[lang\]'"):
      curate.curate(["some text"], ["x"], _settings(language__enabled=True), strict=False)
  finally:
    quality.language_identifier.cache_clear()


def test_report_counts_add_up(base):
  texts, sources, planted = _planted(base)
  texts = texts + ["too short", _corrupted(texts[0])]
  sources = sources + ["simple_wiki", "gutenberg"]
  s = _settings(exact__enabled=True, near__enabled=True, quality__min_words=20,
                quality__max_replacement_fraction=0.01, quality__max_repeated_ngrams=0.15,
                language__enabled=True)
  result = curate.curate(texts, sources, s, strict=False)
  report = json.loads(json.dumps(result.report))  # JSON-able
  assert [st["step"] for st in report["steps"]] == ["exact", "quality", "language", "near"]
  prev = {src: (v["documents_in"], v["words_in"]) for src, v in report["per_source"].items()}
  for step in report["steps"]:
    for src, v in step["per_source"].items():
      assert (v["documents_in"], v["words_in"]) == prev[src]
      assert v["documents_in"] - v["documents_dropped"] == v["documents_out"]
      assert v["words_in"] - v["words_dropped"] == v["words_out"]
      prev[src] = (v["documents_out"], v["words_out"])
    for k in ("documents_in", "documents_dropped", "words_dropped"):
      assert step[k] == sum(v[k] for v in step["per_source"].values())
    assert step["words_per_s"] > 0
  quality_step = report["steps"][1]
  charged = sum(f["dropped"][src]["documents"] for f in quality_step["filters"].values()
                for src in f["dropped"])
  assert charged == quality_step["documents_dropped"] == 2
  keep = result.keep
  for src, v in report["per_source"].items():
    mine = [i for i, x in enumerate(sources) if x == src]
    assert v["documents_out"] == prev[src][0] == int(keep[mine].sum())
    assert v["words_out"] == sum(len(texts[i].split()) for i in mine if keep[i])
  assert report["documents_out"] == int(keep.sum()) == len(texts) - 4


def test_defaults_keep_everything_and_bad_settings_are_named(base):
  texts, sources = base
  result = curate.curate(texts, sources, curate.settings_from_config(curate.default_config()),
                         strict=True)
  assert result.keep.all() and result.report["steps"] == []
  with pytest.raises(ConfigError, match=r"data\.corpus\.curate\.near\.threshold"):
    _settings(near__threshold=1.5)
  with pytest.raises(ConfigError, match=r"did you mean 'data\.corpus\.curate\.near\.threshold'"):
    cfg = curate.default_config()
    cfg.near.unlock()
    cfg.near.treshold = 0.5
    curate.settings_from_config(cfg)
  with pytest.raises(ConfigError, match=r"quality\.max_words"):
    _settings(quality__min_words=10, quality__max_words=5)
  with pytest.raises(ConfigError, match="py3langid does not know"):
    curate.curate(texts, sources, _settings(language__enabled=True, language__languages="xx"),
                  strict=False)


def test_word_hashes_depend_on_the_word_alone():
  texts = ["the cat\tsat  on\nthe mat", "", "mat cat the café", "x" * 3 + " ."]
  batches = list(dedup.word_batches(texts, np.arange(4)))
  assert len(batches) == 1
  b = batches[0]
  words = [w for t in texts for w in t.split()]
  assert b.lengths.tolist() == [len(t.split()) for t in texts]
  assert b.chars.tolist() == [len(w) for w in words]
  by_word = {}
  for w, h in zip(words, b.hashes.tolist()):
    assert by_word.setdefault(w, h) == h
  assert len(set(by_word.values())) == len(by_word)  # distinct words, distinct hashes


def test_empty_and_wordless_documents():
  s = _settings(exact__enabled=True, near__enabled=True, quality__max_repeated_ngrams=0.5)
  assert curate.curate([], [], s, strict=True).keep.tolist() == []
  # Wordless documents are exact duplicates of each other, never near duplicates.
  result = curate.curate(["", " \n ", "a b"], ["x", "x", "y"], s, strict=True)
  assert result.keep.tolist() == [True, False, True]
  only_near = curate.curate(["", " \n ", "a b"], ["x", "x", "y"], _settings(near__enabled=True),
                            strict=True)
  assert only_near.keep.all()
