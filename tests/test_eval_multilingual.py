"""The multilingual track's zero-shot tasks: the readers of its minimal-pair formats on real
sentences, and the per-language summary (lm-eval's zeroshot_<lang>) against a hand computation.

Only ZhoBLiMP is in ../shared/data; MultiBLiMP (`sen`/`wrong_sen`) and XCOMPS
(`acceptable_sent`/`unacceptable_sent`) files are written here from real BLiMP and ZhoBLiMP
pairs in the field names the pipeline's task yamls read.
"""

import json

import numpy as np
import pytest

from babylm_jax.errors import ConfigError, DataError
from babylm_jax.eval import multilingual, run, summary, suites
from conftest import data_path
from eval_helpers import small_tokenizer, tiny_gpt_bert

ZHO = data_path("multilingual", "zhoblimp")


def _records(path, n):
  return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines()[:n]]


def _zhoblimp_slice(folder, files=("BA_deletion", "you_yige", "ya_insertion"), lines=6):
  folder.mkdir()
  for stem in files:
    text = (ZHO / f"{stem}.jsonl").read_text(encoding="utf-8").splitlines()[:lines]
    (folder / f"{stem}.jsonl").write_text("\n".join(text) + "\n", encoding="utf-8")
  return folder


def _multiblimp(folder, n=8):
  """A MultiBLiMP-format file (its field names) of real BLiMP pairs."""
  folder.mkdir(parents=True)
  pairs = _records(data_path("blimp", "regular_plural_subject_verb_agreement_1.jsonl"), n)
  rows = [dict(sen=p["sentence_good"], wrong_sen=p["sentence_bad"], phenomenon="SV-#",
               lang="eng") for p in pairs]
  (folder / "eng.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  return folder, pairs


def test_zhoblimp_reader_keeps_uids_and_sentences(tmp_path):
  folder = _zhoblimp_slice(tmp_path / "zho")
  suite = suites.load_suite("zhoblimp", str(folder))
  assert suite.paradigms == ["BA_deletion", "ya_insertion", "you_yige"]
  assert len(suite.items) == 18
  first = _records(ZHO / "BA_deletion.jsonl", 1)[0]
  assert suite.items[0].options == (first["sentence_good"], first["sentence_bad"])
  assert suite.items[0].context == ""


def test_the_whole_zhoblimp_is_the_pipelines_set():
  suite = suites.load_suite("zhoblimp", str(ZHO))
  assert (len(suite.paradigms), len(suite.items)) == (118, 35_400)
  assert multilingual.check("zhoblimp", suite)["official"]
  cut = suites.subset(suite, 236)
  assert len(cut.items) == 236 and not multilingual.check("zhoblimp", cut)["official"]


def test_multiblimp_and_xcomps_readers(tmp_path):
  folder, pairs = _multiblimp(tmp_path / "multiblimp" / "eng")
  suite = suites.load_suite("multiblimp_eng", str(folder))
  assert [it.options for it in suite.items] == [(p["sentence_good"], p["sentence_bad"])
                                                for p in pairs]
  assert suite.paradigms == ["SV-#"]
  xc = tmp_path / "xcomps"
  xc.mkdir()
  zho = _records(ZHO / "you_yige.jsonl", 4)
  (xc / "comps_zh.jsonl").write_text("".join(json.dumps(
      dict(acceptable_sent=r["sentence_good"], unacceptable_sent=r["sentence_bad"]),
      ensure_ascii=False) + "\n" for r in zho), encoding="utf-8")
  items = suites.load_suite("xcomps_zh", str(xc)).items
  assert [it.options[0] for it in items] == [r["sentence_good"] for r in zho]
  # The 2025 field names are not MultiBLiMP's: the reader says which field is missing where.
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "nld.jsonl").write_text(json.dumps(dict(sen="Hij loopt.")) + "\n")
  with pytest.raises(DataError, match=r"nld.jsonl' line 1 has no non-empty string field "
                                      r"'wrong_sen'"):
    suites.load_suite("multiblimp_nld", str(bad))


def test_preset_scores_what_exists_lists_the_rest_and_aggregates_per_language(tmp_path):
  """--config.eval.suites=babylm_multilingual on a tiny model: the three readable tasks with
  data are scored, every other task of zeroshot_{eng,nld,zho} is listed with its reason, and
  the language rows are lm-eval's weighted mean and the README's plain mean of the reports."""
  model, c = tiny_gpt_bert()
  blimp = tmp_path / "blimp"
  blimp.mkdir()
  for stem in ("anaphor_gender_agreement", "regular_plural_subject_verb_agreement_1"):
    (blimp / f"{stem}.jsonl").write_text(
        "\n".join(data_path("blimp", f"{stem}.jsonl").read_text().splitlines()[:7]) + "\n")
  c.eval.suites = "babylm_multilingual"
  c.eval.backend = "causal"
  c.eval.data.blimp = str(blimp)
  c.eval.data.zhoblimp = str(_zhoblimp_slice(tmp_path / "zho", lines=5))
  c.eval.data.multiblimp_eng = str(_multiblimp(tmp_path / "mb" / "eng", n=9)[0])
  for task in ("multiblimp_nld", "blimp_nl", "xcomps_nl", "xcomps_zh"):
    c.eval.data[task] = str(tmp_path / "absent" / task)
  rows = run.evaluate(model, small_tokenizer(), c, str(tmp_path), dict(step=0, words_seen=0))
  assert sorted(r["suite"] for r in rows) == ["blimp", "multiblimp_eng", "zhoblimp"]
  s = json.loads((tmp_path / "eval" / "summary.json").read_text())
  assert sorted(m["task"] for m in s["missing"]) == sorted(
      t for t in multilingual.TASKS if t not in ("blimp", "multiblimp_eng", "zhoblimp"))
  hints = {m["task"]: m["hint"] for m in s["missing"]}
  assert "no reader" in hints["hellaswag_zh_mubench"] and "juletxara/blimp-nl" in hints["blimp_nl"]
  by = {r["suite"]: r for r in rows}

  def paradigm_acc(r):
    return {k: (v["accuracy"], v["pairs"]) for k, v in r["paradigms"].items()}

  # By hand: a task's accuracy over its items (English BLiMP: over its paradigms), then each
  # language weighted by items (lm-eval) and plainly averaged (the README table).
  acc = {}
  for name, r in by.items():
    per = paradigm_acc(r)
    acc[name] = 100 * (np.mean([a for a, _ in per.values()]) if name == "blimp"
                       else sum(a * n for a, n in per.values()) / sum(n for _, n in per.values()))
    assert r["headline"][name] == pytest.approx(acc[name])
  n = {"blimp": 14, "multiblimp_eng": 9, "zhoblimp": 15}
  assert {k: r["items"] for k, r in by.items()} == n
  eng = s["languages"]["zeroshot_eng"]
  assert eng["tasks"] == ["multiblimp_eng", "blimp"] and not eng["complete"]
  assert eng["values"]["causal"]["weighted"] == pytest.approx(
      (acc["multiblimp_eng"] * 9 + acc["blimp"] * 14) / 23)
  assert eng["values"]["causal"]["avg"] == pytest.approx(
      (acc["multiblimp_eng"] + acc["blimp"]) / 2)
  zho = s["languages"]["zeroshot_zho"]["values"]["causal"]
  assert zho["weighted"] == pytest.approx(acc["zhoblimp"]) == pytest.approx(zho["avg"])
  assert s["languages"]["zeroshot_nld"]["values"]["causal"] == dict(weighted=None, avg=None)
  # The 2025 leaderboard's macro average leaves the track's tasks out.
  assert s["macro_columns"] == []
  table = summary.table(s)
  assert "zeroshot_eng (by items)" in table and "2 of 5 tasks" in table
  assert "| zeroshot_zho |" in (tmp_path / "eval" / "summary.md").read_text()


# ---------------------------------------------------------------------------------------
# Fine-tuning on the track's SIB-200 copies.

SIB = data_path("multilingual", "sib200")


def test_sib200_recipe_is_the_tracks_and_labels_are_sorted_names():
  from babylm_jax.config import base_config
  from babylm_jax.eval import finetune, glue
  c = base_config()
  for task in ("sib200_en", "sib200_nl", "sib200_zh"):
    r = finetune.recipe(c, task)
    # finetune_model.sh: lr 5e-5, batch 64, 10 epochs, patience 3, seed 12, 128 tokens;
    # the Trainer's defaults: no warmup, no weight decay, linear decay to 0.
    assert (r.lr, r.batch_size, r.epochs, r.patience, r.seed, r.max_length) == (
        5e-5, 64, 10, 3, 12, 128)
    assert (r.warmup_fraction, r.weight_decay, r.min_lr_ratio, r.schedule) == (
        0.0, 0.0, 0.0, "linear")
    split = glue.load_split(str(SIB), task, "train")
    records = _records(SIB / f"{task}.train.jsonl", 803)
    # The track's script numbers the labels in sorted order of the training file's names.
    names = sorted({rec["label"] for rec in records})
    assert list(split.labels) == [names.index(rec["label"]) for rec in records]
    assert split.pairs[0] == records[0]["sentence"]  # one text, no pair
  schedule = finetune.lr_schedule(finetune.recipe(c, "sib200_en"), 120)
  assert [schedule(s) for s in (0, 60, 120)] == pytest.approx([5e-5, 2.5e-5, 0.0])
  c.finetune.method = "warp"
  with pytest.raises(ConfigError, match="fine-tuned in full only"):
    finetune.recipe(c, "sib200_zh")


def test_sib200_stops_early_and_keeps_the_last_epoch(tmp_path):
  """With an lr too small to change a prediction, accuracy never gains: the run stops after
  the first epoch and `patience` more, and reports that last epoch, as the track's Trainer
  (no checkpoint saved, so none loaded at the end) does."""
  from babylm_jax.eval import finetune
  model, c = tiny_gpt_bert()
  c.finetune.update(dict(data_dir=str(SIB), max_train_examples=64, max_valid_examples=32,
                         lr=1e-12))
  c.finetune.multilingual.max_length = 48
  report, pred, _ = finetune.finetune(model, small_tokenizer(512), c, "sib200_zh")
  assert report["epochs_run"] == 1 + 3 and report["best_epoch"] == 4
  assert report["kept"] == "last" and len(pred) == 32
  assert report["headline"] == pytest.approx(100 * report["history"][-1]["valid_accuracy"])
  assert not report["official_data"]


@pytest.mark.parametrize("split_cjk", [False, True])
def test_lm_eval_conditions_on_our_bos_then_the_same_ids(tmp_path, split_cjk):
  """What lm-eval 0.4.13 scores for an empty context (api/model.py loglikelihood, HFLM's
  prefix_token_id): [tokenizer.bos_token_id] + tokenizer(sentence, add_special_tokens=False),
  every token of the sentence scored. Through AutoTokenizer on our export's tokenizer files,
  for Chinese, Dutch and English sentences, that is exactly our causal backend's sequence:
  `<s>` + the sentence's ids, scored from position 1 (the full harness runs in
  benchmarks/lm_eval_parity.py; building its environment takes minutes, too long for here)."""
  from transformers import AutoTokenizer
  from babylm_jax.config import BOS_ID
  from babylm_jax.data.tokenizer import train_tokenizer
  from babylm_jax.eval import scoring
  from babylm_jax.export import hf
  text = [l for lang in ("eng", "nld", "zho") for l in data_path(
      "multilingual", "text", f"{lang}.train").read_text(encoding="utf-8").splitlines()[:3000]]
  raw = train_tokenizer(text, 2048, split_cjk=split_cjk)
  (tmp_path / "tokenizer.json").write_text(raw.to_str())
  export = tmp_path / "export"
  export.mkdir()
  hf._write_tokenizer(tmp_path / "tokenizer.json", export, 512)
  tok = AutoTokenizer.from_pretrained(str(export))
  assert tok.bos_token_id == BOS_ID  # lm-eval's prefix_token_id: the BOS when there is one
  zho = suites.subset(suites.load_suite("zhoblimp", str(ZHO)), 236).items
  sentences = [o for it in zho for o in it.options]
  sentences += [json.loads(l)["sentence"] for l in (SIB / "sib200_nl.valid.jsonl")
                .read_text(encoding="utf-8").splitlines()[:100]]
  sentences += [o for it in suites.load_suite("blimp", str(data_path("blimp")), [
      "anaphor_gender_agreement.jsonl"]).items[:100] for o in it.options]
  ours = scoring.tokenize(raw, [""] * len(sentences), sentences, 1 << 20)
  for s, (ids, start) in zip(sentences, ours):
    theirs = tok(s, add_special_tokens=False)["input_ids"]
    assert theirs[0] != tok.bos_token_id  # else lm-eval would take the sentence's own first
    assert (list(ids), start) == ([tok.bos_token_id] + theirs, 1), s
    # lm-eval's multiple_choice scores target_delimiter + sentence, " " + s: the same ids (the
    # split_cjk tokenizer's unconditional prefix space once made it a lone space token first).
    assert tok(" " + s, add_special_tokens=False)["input_ids"] == theirs, s
