"""Corpus recipes (`--mode=corpus`, babylm_jax/data/corpus.py) on the real BabyLM text.

What they check: quotas are met as documented (never more; short only by less than the
smallest unit not taken, exactly with cut_last), selection is a function of the seed, the
written folder reads back in training with the word counts of the manifest, Hub-format
dataset folders (parquet, jsonl) read through `datasets`, refusals leave nothing behind, and
a run trained on the folder records its manifest's hash.
"""

import hashlib
import json
import os
import pathlib
import textwrap

import ml_collections
import numpy as np
import pytest

from babylm_jax import config as config_lib
from babylm_jax.data import clean, corpus, sources
from babylm_jax.errors import DataError
from conftest import ROOT, data_path
from launch_helpers import error_lines, launch


def _recipe(**srcs) -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  for name, fields in srcs.items():
    c.data.corpus.sources[name] = ml_collections.ConfigDict(fields)
  return c


def _train_words(folder) -> dict[str, int]:
  """Words per domain as training counts them (prepare's raw count of data.path)."""
  settings = clean.CleanSettings()
  out = {}
  for f in sources.resolve(str(folder), None).files:
    docs = list(clean.documents(sources.read_blocks(f.path), f.domain, settings, out))
    assert all(docs)
  return out


def _sha(path) -> str:
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_quotas_are_met_as_documented_and_training_counts_the_same_words(tmp_path):
  c = _recipe(gutenberg=dict(path=str(data_path("babylm_text/train_100k/gutenberg.train")),
                             words=30_000),
              wiki=dict(path=str(data_path("babylm_text/train_100k/simple_wiki.train")),
                        words=20_000))
  m = corpus.build_corpus(c, tmp_path / "a")
  for s in m["sources"]:
    assert s["selected"]["words"] <= s["quota"]
    assert s["read"][0]["sha256"] == _sha(s["read"][0]["file"])
    assert m["files"][f"{s['name']}.train"] == _sha(tmp_path / "a" / f"{s['name']}.train")
    # Short only when every unit not taken is longer than what was left of the quota.
    text = sources.read_blocks(s["read"][0]["file"])
    units = [clean.count_words(d) for d in clean.documents(text, s["name"], clean.CleanSettings())]
    written = [clean.count_words(d) for d in clean.documents(
        sources.read_blocks(tmp_path / "a" / f"{s['name']}.train"), s["name"],
        clean.CleanSettings())]
    unused = list(units)
    for n in written:
      unused.remove(n)  # every written document is one of the source's, whole
    assert min(unused) > s["short_by"] >= 0
  assert _train_words(tmp_path / "a") == {
      s["name"]: s["selected"]["words"] for s in m["sources"]}
  assert m["totals"]["words"] == sum(_train_words(tmp_path / "a").values())

  # The same recipe gives the same bytes and manifest; another seed another selection.
  corpus.build_corpus(c, tmp_path / "b")
  assert _sha(tmp_path / "a" / "corpus.json") == _sha(tmp_path / "b" / "corpus.json")
  c.data.corpus.seed = 1
  corpus.build_corpus(c, tmp_path / "c")
  assert _sha(tmp_path / "a" / "wiki.train") != _sha(tmp_path / "c" / "wiki.train")
  wiki = m["sources"][1]["selected"]["words"]
  assert f"| wiki | 20,000 | " in (tmp_path / "a" / "corpus.md").read_text()
  assert f" | {wiki:,} | " in (tmp_path / "a" / "corpus.md").read_text()


def test_cut_last_and_paragraph_units_meet_the_quota_exactly(tmp_path):
  board = str(data_path("babylm_text/train_10M/switchboard.train"))
  c = _recipe(board=dict(path=board, words=12_345), subs=dict(
      path=str(data_path("babylm_text/train_100k/open_subtitles.train")), words=7_777))
  c.data.corpus.cut_last = True
  m = corpus.build_corpus(c, tmp_path / "cut")
  assert [s["selected"]["words"] for s in m["sources"]] == [12_345, 7_777]
  assert _train_words(tmp_path / "cut") == dict(board=12_345, subs=7_777)

  # Paragraphs (lines) of Switchboard: picked one by one, rejoined per document.
  c = _recipe(board=dict(path=board, words=5_000))
  c.data.corpus.unit = "paragraph"
  m = corpus.build_corpus(c, tmp_path / "para")
  s = m["sources"][0]
  assert s["selected"]["units"] > s["selected"]["documents"] >= 1
  lines = {line for d in clean.documents(sources.read_blocks(board), "board",
                                          clean.CleanSettings()) for line in d.split("\n")}
  written = (tmp_path / "para" / "board.train").read_text().split("\n")
  assert all(w in lines for w in written if w)
  # Lines are a few words long: whole lines fill all but a sliver of the quota.
  assert 0 <= s["short_by"] < 5


def test_weights_share_total_words_exactly_after_the_quotas():
  c = _recipe(a=dict(path="x", weight=1.0), b=dict(path="x", weight=1.0),
              c=dict(path="x", weight=1.0), d=dict(path="x", words=1_000))
  c.data.corpus.total_words = 11_000
  assert corpus.quotas(c, corpus.sources_of(c)) == dict(a=3_334, b=3_333, c=3_333, d=1_000)


def _records(n_words=150):
  """Records of the shared Gutenberg text, as a Hub dataset holds them (one per row)."""
  words = open(data_path("babylm_text/train_100k/gutenberg_dev.train"), encoding="utf-8").read(
  ).split()
  return [" ".join(words[i:i + n_words]) for i in range(0, len(words), n_words)]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "local_jsonl"])
def test_hub_format_folders_read_through_datasets(tmp_path, fmt):
  import pyarrow as pa
  import pyarrow.parquet as pq
  texts = _records()
  folder = tmp_path / "ds" / "data"
  folder.mkdir(parents=True)
  if fmt == "parquet":
    pq.write_table(pa.table({"text": texts, "id": list(range(len(texts)))}),
                   folder / "train-00000-of-00001.parquet")
  else:
    with open(folder / "train.jsonl", "w") as f:
      for i, t in enumerate(texts):
        f.write(json.dumps({"id": i, "text": t}) + "\n")
  path = str(folder / "train.jsonl") if fmt == "local_jsonl" else f"hf:{tmp_path / 'ds'}"
  c = _recipe(gutenberg=dict(path=path, words=5_000))
  m = corpus.build_corpus(c, tmp_path / "out")
  s = m["sources"][0]
  # A record is a document, cut further where it holds a heading (cleaned as training does).
  docs = [d for t in texts for d in clean.documents([t], "g", clean.CleanSettings())]
  assert len(docs) > len(texts) / 2
  assert s["before"] == dict(units=len(docs), words=sum(len(d.split()) for d in docs))
  assert s["selected"]["words"] == 5_000 - s["short_by"] and s["short_by"] < 150
  written = (tmp_path / "out" / "gutenberg.train").read_text().split("\n\n")
  assert set(w.strip() for w in written) <= set(docs)
  read = s["read"][0]
  if fmt == "local_jsonl":
    assert read["sha256"] == _sha(folder / "train.jsonl")
  else:
    h = hashlib.sha256()
    for t in texts:
      h.update(t.encode() + b"\0")
    assert read["sha256_of_records"] == h.hexdigest()
    assert read["revision"] == "local folder"
  with pytest.raises(DataError, match="no field 'body'"):
    corpus.build_corpus(_recipe(g=dict(path=path, words=10, text_field="body")),
                        tmp_path / "bad")
  assert not (tmp_path / "bad").exists()


def test_an_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
  c = _recipe(g=dict(path=str(data_path("babylm_text/train_100k/gutenberg_dev.train")),
                     words=1_000))

  def interrupted(manifest):
    raise KeyboardInterrupt
  monkeypatch.setattr(corpus, "format_report", interrupted)
  with pytest.raises(KeyboardInterrupt):
    corpus.build_corpus(c, tmp_path / "out")
  assert os.listdir(tmp_path) == []


def test_a_run_config_with_sources_reads_back():
  """eval/export rebuild a run's config from config.json over base_config()."""
  c = config_lib.base_config()
  c.data.corpus.sources.childes = ml_collections.ConfigDict(dict(path="x", words=5))
  filled = config_lib.base_config()
  config_lib._fill(filled, json.loads(json.dumps(config_lib.to_dict(c))), "config.json")
  assert filled.data.corpus.sources.childes.words == 5


def _recipe_file(tmp_path, body: str) -> pathlib.Path:
  path = tmp_path / "recipe.py"
  path.write_text("import ml_collections\nfrom babylm_jax.config import base_config\n\n"
                  "def get_config():\n  c = base_config()\n  S = c.data.corpus.sources\n"
                  + textwrap.indent(textwrap.dedent(body), "  ") + "  return c\n")
  return path


def _refusals(tmp_path):
  text = data_path("babylm_text/train_100k/gutenberg_dev.train")
  blank = tmp_path / "blank.train"
  blank.write_text("\n\n  \n= = = Only a heading = = =\n")
  binary = tmp_path / "blob.train"
  binary.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, np.uint8).tobytes())
  utf16 = tmp_path / "utf16.txt"
  utf16.write_bytes(open(text, encoding="utf-8").read()[:50_000].encode("utf-16"))
  return [
      (f"S.a = ml_collections.ConfigDict(dict(path='{text}', words=6_000_000))\n"
       f"S.b = ml_collections.ConfigDict(dict(path='{text}', words=5_000_000))\n",
       "source 'b' (5,000,000 words) takes it to 11,000,000"),
      (f"S.a = ml_collections.ConfigDict(dict(path='{text}', words=10))\n"
       f"S.gone = ml_collections.ConfigDict(dict(path='/no/such/file.train', words=10))\n",
       "source 'gone': '/no/such/file.train' does not exist"),
      (f"S.e = ml_collections.ConfigDict(dict(path='{blank}', words=10))\n",
       "source 'e' (" + str(blank) + ") is empty"),
      (f"S.x = ml_collections.ConfigDict(dict(path='{binary}', words=10))\n",
       "source 'x' (" + str(binary) + ") does not look like text"),
      (f"S.u = ml_collections.ConfigDict(dict(path='{utf16}', words=10))\n",
       "source 'u' (" + str(utf16) + ") does not look like text"),
      (f"S.h = ml_collections.ConfigDict(dict(path='hf:babylm/absent', words=10))\n",
       "data.corpus.sources.h.revision is empty"),
      (f"S.h = ml_collections.ConfigDict(dict(path='hf:babylm/absent', words=10, "
       f"revision='{'0' * 40}'))\n",
       f"dataset 'hf:babylm/absent' split 'train' at revision '{'0' * 40}' was not found in "
       f"the local cache"),
  ]


def test_refusals_are_one_sentence_exit_2_and_write_nothing(tmp_path, monkeypatch):
  monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # the launched runs look in the cache only
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  for i, (body, message) in enumerate(_refusals(tmp_path)):
    (tmp_path / f"r{i}").mkdir()
    recipe = _recipe_file(tmp_path / f"r{i}", body)
    out = tmp_path / f"r{i}" / "corpus"
    run = launch("--mode=corpus", "--config", recipe, "--workdir", out)
    lines = error_lines(run.stderr)
    assert run.returncode == 2 and len(lines) == 1 and message in lines[0], (message, run.stderr)
    assert sorted(os.listdir(tmp_path / f"r{i}")) == ["recipe.py"], message


@pytest.mark.slow
def test_preset_builds_offline_and_a_smoke_run_records_its_manifest(tmp_path, monkeypatch):
  w = tmp_path / "textbook"
  monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  # At 300k words (the preset's 1M less) the smoke run's tokenizer and store build in seconds.
  run = launch("--mode=corpus", "--config", ROOT / "configs/corpora/textbook_encyclopedia.py",
               "--workdir", w, "--config.data.corpus.total_words=300000")
  assert run.returncode == 0, run.stderr
  m = json.loads((w / "corpus.json").read_text())
  digest = _sha(w / "corpus.json")
  assert f"manifest sha256 {digest}" in run.stdout
  words = {s["name"]: s["selected"]["words"] for s in m["sources"]}
  # Written, explanatory text is most of it, within the budget the preset names.
  assert words["simple_wiki"] + words["gutenberg"] > 0.75 * m["totals"]["words"]
  # Whole documents of ~4,000 words (20,000 characters): short by at most one per source.
  assert 0.9 * m["totals"]["asked"] <= m["totals"]["words"] <= m["totals"]["asked"]
  assert (w / "corpus.md").read_text().startswith("# Corpus")

  common = ["--config", ROOT / "configs/smoke.py", f"--config.data.path={w}",
            f"--config.data.cache_dir={tmp_path / 'cache'}"]
  prep = launch("--mode=prepare", *common)
  assert prep.returncode == 0 and f"corpus manifest sha256 {digest}" in prep.stdout, prep.stderr
  for name, n in words.items():  # training counts the words the manifest promised
    assert any(line.split()[:1] == [name] for line in prep.stdout.splitlines()), name
  train = launch(*common, "--workdir", tmp_path / "run", "--config.train.steps=4",
                 "--config.train.log_every=2", "--config.train.eval_every=4",
                 "--config.checkpoint.every=4", "--config.train.eval_batches=1",
                 "--config.checkpoint.milestones=False")
  assert train.returncode == 0, train.stderr
  recorded = json.loads((tmp_path / "run" / "config.json").read_text())
  assert recorded["derived"]["corpus_manifest_sha256"] == digest
  assert f"manifest sha256 {digest}" in train.stdout


def test_curation_runs_before_selection_so_a_deduplicated_corpus_still_fills_its_quota(tmp_path):
  # The shared sample's simple_wiki_dev file repeats documents of simple_wiki.train: with
  # deduplication on, no two written documents are duplicates, and the quota (smaller than
  # what is left) is still met as documented.
  folder = str(data_path("babylm_text/train_600k"))
  c = _recipe(wiki=dict(path=folder, files="simple_wiki*.train", words=200_000),
              subs=dict(path=folder, files="open_subtitles*.train", words=40_000))
  c.data.corpus.curate.exact.enabled = True
  c.data.corpus.curate.near.enabled = True
  c.data.corpus.curate.quality.min_words = 20
  m = corpus.build_corpus(c, tmp_path / "dedup")
  steps = {s["step"]: s for s in m["curation"]["steps"]}
  assert set(steps) == {"exact", "quality", "near"}
  for s in m["sources"]:
    assert s["after_curation"]["words"] == m["curation"]["per_source"][s["name"]]["words_out"]
    assert s["after_curation"]["words"] < s["before"]["words"] or s["name"] == "subs"
    assert s["quota"] - s["short_by"] == s["selected"]["words"] <= s["quota"]
  from babylm_jax.data import dedup
  written = list(clean.documents(sources.read_blocks(tmp_path / "dedup" / "wiki.train"), "wiki",
                                 clean.CleanSettings()))
  keys = [dedup.exact_key(d) for d in written]
  assert len(set(keys)) == len(keys)
  assert min(clean.count_words(d) for d in written) >= 20
  report = (tmp_path / "dedup" / "corpus.md").read_text()
  assert "| exact | wiki |" in report and "| min_words | 20 |" in report
  assert "Near duplicates: MinHash of 5-word shingles" in report

  # Without curation the same recipe writes duplicates: the test above can fail.
  c.data.corpus.curate = config_lib.base_config().data.corpus.curate
  corpus.build_corpus(c, tmp_path / "raw")
  raw = [dedup.exact_key(d) for d in clean.documents(
      sources.read_blocks(tmp_path / "raw" / "wiki.train"), "wiki", clean.CleanSettings())]
  assert len(set(raw)) < len(raw)
