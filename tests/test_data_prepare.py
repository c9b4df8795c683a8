"""Tokenizer, token store and --mode=prepare on the real BabyLM text: words, cache, errors."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from babylm_jax import config as config_lib
from babylm_jax.config import BOS_ID, SPECIAL_TOKENS, base_config
from babylm_jax.data import clean, sources, store as store_lib
from babylm_jax.data.prepare import prepare_data
from babylm_jax.errors import ConfigError, DataError
from conftest import ROOT, data_path, not_shared

VOCAB = 512


def small_config(path, cache, **data):
  c = base_config()
  c.data.path = str(path)
  c.data.cache_dir = str(cache)
  c.model.vocab_size = VOCAB
  for k, v in data.items():
    c.data[k] = v
  return c


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  cache = tmp_path_factory.mktemp("cache")
  c = small_config(data_path("babylm_text", "train_100k"), cache)
  return c, prepare_data(c, str(tmp_path_factory.mktemp("workdir")))


def _clean_docs(config):
  settings = clean.CleanSettings.from_config(config)
  docs = []
  for f in sources.resolve(config.data.path, config).files:
    docs += list(clean.documents(sources.read_blocks(f.path), f.domain, settings))
  return docs


def test_tokenizer_layout_and_workdir_copy(prepared):
  _, p = prepared
  for i, name in enumerate(SPECIAL_TOKENS):
    assert p.tokenizer.token_to_id(name) == i
  assert p.tokenizer.get_vocab_size() == VOCAB
  assert os.path.basename(p.tokenizer_path) == "tokenizer.json"
  assert open(p.tokenizer_path).read().count("<special_10>") >= 1
  assert p.train.tokens.dtype == np.uint16 and p.train.num_docs > 100 and p.dev.num_docs >= 1


def test_word_counts_are_exact_and_tokens_decode_to_the_text(prepared):
  c, p = prepared
  docs = _clean_docs(c)
  assert p.train.num_words + p.dev.num_words == sum(len(d.split()) for d in docs)
  assert p.stats["words"] == p.train.num_words + p.dev.num_words
  assert sum(p.stats["raw_words_per_domain"].values()) == sum(
      len(open(f.path, encoding="utf-8").read().split())
      for f in sources.resolve(c.data.path, c).files)
  # Held-out documents are evenly spaced; every stored document decodes to its text and its
  # word flags count its whitespace words.
  texts = {p.tokenizer.decode(p.train.doc(i).tolist()).strip() for i in range(p.train.num_docs)}
  texts |= {p.tokenizer.decode(p.dev.doc(i).tolist()).strip() for i in range(p.dev.num_docs)}
  assert texts == set(docs)
  for i in range(0, p.train.num_docs, 37):
    a, b = p.train.doc_offsets[i], p.train.doc_offsets[i + 1]
    text = p.tokenizer.decode(p.train.tokens[a:b].tolist())
    assert int(p.train.word_starts[a:b].sum()) == len(text.split()) == p.train.doc_words[i]
  assert BOS_ID not in set(np.unique(p.train.tokens).tolist())  # <s> is the pipeline's job


def test_cache_is_reused_and_rebuilt_when_one_byte_changes(tmp_path):
  src = tmp_path / "corpus"
  src.mkdir()
  for name in ("gutenberg_dev.train", "simple_wiki_dev.train"):
    shutil.copy(data_path("babylm_text", "train_100k", name), src / name)
  c = small_config(src, tmp_path / "cache")
  first = prepare_data(c)
  assert not first.stats["cache_hit"] and first.stats["tokenizer_trained"]
  again = prepare_data(c)
  assert again.stats["cache_hit"] and not again.stats["tokenizer_trained"]
  assert again.train.path == first.train.path and again.stats["seconds"] < 2.0
  # One byte of one file changes: new tokenizer, new stores.
  data = bytearray((src / "gutenberg_dev.train").read_bytes())
  data[500] = ord("Q") if data[500] != ord("Q") else ord("Z")
  (src / "gutenberg_dev.train").write_bytes(bytes(data))
  changed = prepare_data(c)
  assert not changed.stats["cache_hit"] and changed.train.path != first.train.path
  # A cleaning setting changes: new stores too.
  c.data.clean.strip_speaker_tags = True
  assert prepare_data(c).train.path != changed.train.path
  leftovers = [n for n in os.listdir(tmp_path / "cache" / "stores") if ".tmp-" in n]
  assert not leftovers
  assert not_shared(tmp_path / "cache" / "stores") == []  # the stores were mkdtemp's 0700


def test_a_build_killed_midway_leaves_nothing_that_looks_valid(tmp_path, monkeypatch):
  src = data_path("babylm_text", "train_100k", "simple_wiki_dev.train")
  c = small_config(src, tmp_path / "cache", dev_fraction=0.1)
  real_save = np.save
  calls = []

  def dying_save(path, arr, *a, **k):
    calls.append(path)
    if len(calls) == 3:
      raise KeyboardInterrupt("killed")
    return real_save(path, arr, *a, **k)

  monkeypatch.setattr(store_lib.np, "save", dying_save)
  with pytest.raises(KeyboardInterrupt):
    prepare_data(c)
  stores = tmp_path / "cache" / "stores"
  assert not [n for n in os.listdir(stores) if store_lib.open_store(str(stores / n))]
  assert not [n for n in os.listdir(stores) if ".tmp-" in n]
  monkeypatch.setattr(store_lib.np, "save", real_save)
  p = prepare_data(c)
  assert not p.stats["cache_hit"] and p.train.num_words > 0


def test_dev_path_and_a_given_tokenizer(prepared, tmp_path):
  _, p = prepared
  c = small_config(data_path("babylm_text", "train_100k", "gutenberg_dev.train"),
                   tmp_path / "cache",
                   dev_path=str(data_path("babylm_text", "dev_bb25_small", "bb25_small.dev")))
  c.tokenizer.path = p.tokenizer_path
  q = prepare_data(c)
  assert q.tokenizer.to_str() == p.tokenizer.to_str() and not q.stats["tokenizer_trained"]
  assert q.dev.domains == ["bb25_small"] and q.train.domains == ["gutenberg_dev"]
  c.model.vocab_size = VOCAB - 1
  with pytest.raises(ConfigError, match="model.vocab_size"):
    prepare_data(c)


def test_over_budget_corpus_is_refused(tmp_path, monkeypatch):
  monkeypatch.setitem(config_lib.TRACKS, "strict_small",
                      dict(word_budget=150_000, exposure_cap=1_500_000))
  c = small_config(data_path("babylm_text", "train_100k"), tmp_path / "cache")
  with pytest.raises(DataError, match="over the strict_small budget of 150,000"):
    prepare_data(c)
  assert not (tmp_path / "cache" / "stores").exists()
  c.data.allow_over_budget = True
  assert prepare_data(c).stats["words"] > 150_000


def test_hub_dataset_from_an_offline_cache(tmp_path):
  """A cache laid out as huggingface_hub lays it out: blobs/, snapshots/<rev>/, refs/."""
  cache = tmp_path / "hub"
  repo = cache / "datasets--babylm--tiny"
  commit = "0123456789abcdef0123456789abcdef01234567"
  for sub in ("blobs", f"snapshots/{commit}/data", "refs"):
    (repo / sub).mkdir(parents=True)
  (repo / "refs" / "main").write_text(commit)
  for name in ("gutenberg_dev.train", "simple_wiki_dev.train"):
    blob = f"{abs(hash(name)):040x}"[:40]
    shutil.copy(data_path("babylm_text", "train_100k", name), repo / "blobs" / blob)
    os.symlink(f"../../../blobs/{blob}", repo / "snapshots" / commit / "data" / name)
  env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), JAX_PLATFORMS="cpu")
  run = subprocess.run(
      [sys.executable, "launch.py", "--config", "configs/smoke.py", "--mode=prepare",
       "--config.data.path=hf:babylm/tiny", "--config.data.hf_glob=data/*.train",
       f"--config.model.vocab_size={VOCAB}", f"--config.data.cache_dir={tmp_path / 'cache'}",
       f"--workdir={tmp_path / 'wd'}"], cwd=ROOT, env=env, capture_output=True, text=True)
  assert run.returncode == 0, run.stderr
  assert "gutenberg_dev" in run.stdout and "simple_wiki_dev" in run.stdout
  assert (tmp_path / "wd" / "tokenizer.json").is_file()
  missing = subprocess.run(
      [sys.executable, "launch.py", "--config", "configs/smoke.py", "--mode=prepare",
       "--config.data.path=hf:babylm/absent", f"--config.data.cache_dir={tmp_path / 'c2'}"],
      cwd=ROOT, env=env, capture_output=True, text=True)
  assert missing.returncode == 2 and "not found in the local cache" in missing.stderr


def _launch(tmp_path, *args):
  cmd = [sys.executable, "launch.py", "--config", "configs/smoke.py", "--mode=prepare",
         f"--config.data.cache_dir={tmp_path / 'cache'}", *args]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


def _bad_inputs(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "notes.md").write_text("not a corpus")
  blank = tmp_path / "blank"
  blank.mkdir()
  (blank / "a.train").write_text("\n\n   \n= = = Only a heading = = =\n\n")
  return [
      (("--config.data.path=/no/such/folder",), "does not exist"),
      ((f"--config.data.path={empty}",), "holds no .train/.dev/.test/.txt files"),
      ((f"--config.data.path={blank}",), "has no documents after cleaning"),
      (("--config.model.vocab_size=8",), "(16 special + 256 bytes)"),
      (("--config.model.vocab_size=100",), "smaller than the 272 tokens"),
      (("--config.data.pathh=x",), "did you mean --config.data.path"),
      (("--config.data.path=tfds:",), "not a TFDS spec"),
  ]


def test_bad_inputs_give_one_sentence_and_exit_2(tmp_path):
  for args, message in _bad_inputs(tmp_path):
    run = _launch(tmp_path, *args)
    assert run.returncode == 2, (args, run.stderr)
    errors = [l for l in run.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], (args, run.stderr)
    assert "Traceback" not in run.stderr
    stores = tmp_path / "cache" / "stores"
    assert not stores.exists() or not os.listdir(stores)


def test_non_utf8_bytes_are_reported(tmp_path):
  src = tmp_path / "corpus"
  src.mkdir()
  good = data_path("babylm_text", "train_100k", "gutenberg_dev.train").read_bytes()
  (src / "gutenberg.train").write_bytes(good[:2000] + b"\xff\xfe\xfd" + good[2000:])
  run = _launch(tmp_path, f"--config.data.path={src}", f"--config.model.vocab_size={VOCAB}")
  assert run.returncode == 0, run.stderr
  assert "warning: 3 bytes of data.path were not UTF-8" in run.stderr
  assert "words/s" in run.stdout and "tokens/word" in run.stdout
