"""The multilingual track's data side: the budget unit, the language mixture, the Chinese
pre-tokenizer, per-language validation in a real run, and refusals of bad data.languages."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, data_path, load_config
from launch_helpers import env as _env

from babylm_jax import config as config_lib
from babylm_jax.data import languages as languages_lib
from babylm_jax.data import tokenizer as tok_lib
from babylm_jax.errors import ConfigError


def test_english_equivalent_words_worked_example():
  """By hand: 10,860 bytes of English are 10,860 / (5.43 x 1.0) = 2,000 words; 5,710.2 bytes
  of Dutch are 5,710.2 / (5.43 x 1.0516057206199363) = 5,710.2 / 5.710219 = 999.997 words;
  a Chinese text of 3 x 1,700 = 5,100 bytes (1,700 ideographs) is 5,100 / (5.43 x
  0.9359663917979646) = 5,100 / 5.082297 = 1,003.48 words."""
  assert languages_lib.english_words(10_860, "eng") == pytest.approx(2000.0)
  assert languages_lib.english_words(5_710.2, "nld") == pytest.approx(999.997, abs=1e-3)
  assert languages_lib.english_words(5_100, "zho") == pytest.approx(1003.48, abs=1e-2)


def test_byte_premiums_are_the_builders_rows():
  """The constants are the rows get_byte_premium_factor picks in the shared copy of the tsv."""
  path = data_path("multilingual", "byte_premium", "byte_coefs_20240233.tsv")
  rows = {}
  for line in path.read_text().splitlines()[1:]:
    cells = line.split("\t")
    rows[cells[2]] = float(cells[7]) if cells[7] else None
  for code, row in languages_lib.TSV_ROWS.items():
    assert languages_lib.BYTE_PREMIUM[code] == rows[row], code


def test_unit_ticks_sum_to_each_languages_units():
  """Per-token ticks: a language's ticks sum to floor(its bytes / (5.43 x premium)), and a
  whole Chinese store counts no whitespace words but its English-equivalent ones."""
  docs = ["the cat sat on the mat " * 20, "这是一个很长的中文句子没有空格" * 30, "de kat zat " * 40]
  codes = ["eng", "zho", "nld"]
  tok = tok_lib.train_tokenizer(docs, 400, 1, split_cjk=True)
  tokens, lengths = tok_lib.encode_documents(tok, docs)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  doc_bytes = np.asarray([len(d.encode()) for d in docs], np.float64)
  ticks = languages_lib.unit_ticks(tokens, offsets, doc_bytes, np.arange(3), codes, tok)
  for i, (doc, code) in enumerate(zip(docs, codes)):
    got = int(ticks[offsets[i]:offsets[i + 1]].sum())
    assert got == int(languages_lib.english_words(len(doc.encode()), code)), code
  whitespace = tok_lib.word_starts(tokens, offsets, tok_lib.word_tables(tok))
  assert whitespace[offsets[1]:offsets[2]].sum() == 1  # one "word": the whole Chinese text


def test_quotas_follow_the_shares_and_the_scarcest_language():
  q = languages_lib.quotas({"eng": 900.0, "nld": 300.0, "zho": 3000.0},
                           {"eng": 0.5, "nld": 0.25, "zho": 0.25}, 10_000)
  assert q == pytest.approx({"eng": 600.0, "nld": 300.0, "zho": 300.0})
  q = languages_lib.quotas({"eng": 900.0, "nld": 900.0}, {"eng": 0.5, "nld": 0.5}, 1000)
  assert q == pytest.approx({"eng": 500.0, "nld": 500.0})


def test_chinese_pre_tokenizer_isolates_characters():
  """GPT-2's byte-level split keeps a clause of Chinese as one piece; split_cjk gives one
  piece per character and leaves English as it was."""
  zh, en = "这些包括玩具、书籍和电视。", "Hello world, it's fine."
  plain, split = (tok_lib.train_tokenizer([zh, en], 300, 1, split_cjk=s) for s in (False, True))

  def pieces(tok, text):
    return tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))

  # Plain: six ideographs (with the prefix space), the comma, five ideographs, the stop.
  assert [o[1] - o[0] for _, o in pieces(plain, zh)] == [
      6, 1, 5, 1]
  assert len(pieces(split, zh)) == 1 + len(zh)  # the prefix space, then every character
  assert [p for p, _ in pieces(split, en)] == [p for p, _ in pieces(plain, en)]
  assert split.decode(split.encode(en).ids) == " " + en


@pytest.mark.parametrize("override, words", [
    ("--config.data.languages=eng=x,fra=y", "'fra', which the multilingual track does not"),
    ("--config.data.language_shares=eng=0.5,nld=0.2,zho=0.2", "must be positive and sum to 1"),
    ("--config.data.languages=eng=x,nld=,zho=y", "gives language 'nld' no source"),
    ("--config.data.language_shares=eng=0.5,nld=0.5", "gives no share to zho"),
])
def test_bad_languages_are_refused_in_one_line(tmp_path, override, words):
  r = subprocess.run([sys.executable, "launch.py", "--config", "configs/multilingual_smoke.py",
                      "--mode=prepare", f"--config.data.cache_dir={tmp_path}", override],
                     cwd=ROOT, capture_output=True, text=True, timeout=120, env=_env())
  assert r.returncode == 2, r.stderr[-2000:]
  assert words in r.stderr and "Traceback" not in r.stderr
  assert len(r.stderr.strip().splitlines()) == 1


def test_languages_outside_the_track_are_refused():
  c = config_lib.base_config()
  c.data.languages = "eng=x"
  with pytest.raises(ConfigError, match="track 'multilingual' only"):
    config_lib.validate(c)


def test_multilingual_smoke_run(tmp_path):
  """Prepare and train a few steps offline: per-language validation losses in metrics.jsonl,
  words seen and the summary in English-equivalent words, every language at its share."""
  wd = tmp_path / "run"
  args = [sys.executable, "launch.py", "--config", "configs/multilingual_smoke.py",
          "--workdir", str(wd), f"--config.data.cache_dir={tmp_path / 'cache'}",
          "--config.train.steps=8", "--config.train.eval_every=8", "--config.train.log_every=4",
          "--config.checkpoint.every=8", "--config.data.language_words=30000"]
  r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=_env())
  assert r.returncode == 0, r.stderr[-3000:]
  records = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
  val = [rec for rec in records if "val_loss" in rec]
  assert [rec["step"] for rec in val] == [0, 8]
  for code in ("eng", "nld", "zho"):
    assert all(np.isfinite(rec[f"val_loss_{code}"]) for rec in val)
  assert val[-1]["val_loss_zho"] < val[0]["val_loss_zho"]
  assert "English-equivalent words seen" in r.stdout

  from babylm_jax.data.prepare import prepare_data
  config = load_config("multilingual_smoke")
  config.data.cache_dir = str(tmp_path / "cache")
  config.data.language_words = 30000
  prepared = prepare_data(config)
  assert prepared.stats["cache_hit"]
  counted = prepared.stats["budget_words"]
  assert set(counted) == {"eng", "nld", "zho"}
  for n in counted.values():  # equal shares of 30,000, less at most a document each
    assert 9_000 < n <= 10_000
  # The stores count the same unit: train + dev ticks = the counted words, to rounding.
  stored = {c: prepared.train.words_per_domain()[c] + prepared.dev.words_per_domain()[c]
            for c in counted}
  for c in counted:
    assert abs(stored[c] - counted[c]) <= 2, c
  # Words seen by the run are the rows' ticks: 8 steps of 2,048 tokens at ~2.5 tokens per word.
  last = [rec for rec in records if "loss" in rec][-1]
  tokens_per_word = prepared.train.num_tokens / prepared.train.num_words
  assert last["words_seen"] == pytest.approx(last["tokens_seen"] / tokens_per_word, rel=0.15)
