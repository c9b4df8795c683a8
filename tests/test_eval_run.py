"""End to end: train the smoke config briefly, then --mode=eval and --mode=finetune on it.

Which section-6 criterion this file checks for a trained smoke model: fine-tuning on a small
RTE subset fits its training split. A few dozen smoke steps (all a test can afford on two
cores) leave the model near unigram statistics, so beating 0.5 on a BLiMP paradigm family by
a clear margin is not reliable at this size; fitting 48 RTE pairs is, and it exercises the
whole path from the checkpoint through the encoder to the classifier.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from babylm_jax.errors import UserError
from babylm_jax.eval import finetune, glue, run
from conftest import ROOT, data_path, load_config
from eval_helpers import small_tokenizer

STEPS = 20


def _config(**eval_data):
  c = load_config("smoke")
  c.data.path = str(data_path("babylm_text", "train_100k"))
  c.train.steps = STEPS
  c.checkpoint.every = STEPS
  for k, v in eval_data.items():
    c.eval.data[k] = v
  return c


def _subset(tmp, name, folder, files, lines):
  out = tmp / name
  out.mkdir()
  for f in sorted(data_path(folder).glob("*.jsonl"))[:files]:
    (out / f.name).write_text("\n".join(f.read_text().splitlines()[:lines]) + "\n")
  return str(out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  from babylm_jax.train.loop import train
  tmp = tmp_path_factory.mktemp("evalrun")
  data = dict(
      blimp_fast=_subset(tmp, "blimp_fast", "babylm_eval/fast_eval/blimp_fast", 3, 40),
      supplement=_subset(tmp, "supplement", "babylm_eval/fast_eval/supplement_fast", 2, 20),
      ewok=_subset(tmp, "ewok", "babylm_eval/fast_eval/ewok_fast", 2, 20),
      entity_tracking=_subset(tmp, "entity", "babylm_eval/entity_tracking", 1, 10))
  workdir = tmp / "run"
  train(_config(**data), str(workdir))
  return workdir, data


def test_eval_writes_reports(trained, capsys):
  workdir, data = trained
  c = _config(**data)
  c.eval.suites = "blimp_fast,supplement,ewok,entity_tracking"
  c.eval.backend = "causal,fused"  # fused runs mntp too; pll is checked in test_eval_scoring
  rows = run.run_eval(c, str(workdir))
  assert len(rows) == 8
  table = capsys.readouterr().out
  assert "blimp_fast" in table and "entity_tracking" in table
  for suite in ("blimp_fast", "supplement", "ewok", "entity_tracking"):
    for backend in ("causal", "fused"):
      stem = workdir / "eval" / f"{suite}-{backend}"
      r = json.loads(stem.with_suffix(".json").read_text())
      assert stem.with_suffix(".png").stat().st_size > 1000
      assert r["step"] == STEPS and r["words_seen"] > 0 and r["use_ema"] is True
      assert 0.0 <= r["macro_accuracy"] <= 1.0 and 0.0 <= r["micro_accuracy"] <= 1.0
      assert sum(p["pairs"] for p in r["paradigms"].values()) == r["items"]
      assert r["ties"] == sum(p["ties"] for p in r["paradigms"].values())
      assert [f["name"] for f in r["files"]] == sorted(
          p.name for p in (workdir.parent / data[suite].split("/")[-1]).glob("*.jsonl"))
  assert not list((workdir / "eval").glob(".tmp-*"))
  by = {(r["suite"], r["backend"]): r for r in rows}
  assert len(by[("blimp_fast", "causal")]["paradigms"]) == 3
  assert by[("entity_tracking", "fused")]["paradigms"]["ambiref"]["chance"] == 0.2


def _glue_subset(tmp_path, lines=48):
  """rte and wsc with both splits (validation = the training pairs, to measure the fit),
  boolq with its validation split only, as in ../shared/data."""
  src = data_path("babylm_eval/glue_filtered")
  for task, splits in (("rte", ("train", "valid")), ("wsc", ("train", "valid")),
                       ("boolq", ("valid",))):
    head = (src / f"{task}.{'valid' if splits == ('valid',) else 'train'}.jsonl")
    text = "\n".join(head.read_text().splitlines()[:lines]) + "\n"
    for split in splits:
      (tmp_path / f"{task}.{split}.jsonl").write_text(text)
  return str(tmp_path)


def test_finetune_all_fits_writes_official_outputs_and_warp_beside(trained, tmp_path,
                                                                   capsys):
  """task=all runs the tasks with both splits and lists the one without; each fits its 48
  pairs, writes eval/finetune-<task>.json with the headline and the pipeline's
  predictions.json / results.txt, which read back to the reported metrics. WARP then writes
  its own files, and its table shows both methods."""
  workdir, _ = trained
  c = _config()
  c.finetune.task = "all"
  c.finetune.data_dir = _glue_subset(tmp_path)
  c.finetune.lr = 3e-3
  c.finetune.epochs = 12
  c.finetune.batch_size = 16
  c.finetune.max_length = 64
  rows = finetune.run_finetune(c, str(workdir))
  out = capsys.readouterr().out
  assert "skipped boolq, mnli, mrpc, multirc, qqp (no train or valid file" in out
  assert [r["task"] for r in rows] == ["rte", "wsc"]
  for task in ("rte", "wsc"):
    saved = json.loads((workdir / "eval" / f"finetune-{task}.json").read_text())
    assert saved["accuracy"] >= 0.9, saved["history"]
    assert saved["headline"] == pytest.approx(100 * saved["accuracy"])
    assert saved["method"] == "full" and saved["step"] == STEPS and saved["recipe"]["seed"] == 42
    folder = workdir / "results" / "run" / "main" / "finetune" / task
    assert saved["predictions"] == str(folder / "predictions.json")
    pred = glue.read_predictions(str(folder), task)
    labels = glue.load_split(c.finetune.data_dir, task, "valid").labels
    assert len(pred) == 48 and np.mean(pred == labels) == saved["accuracy"]
    text = (folder / "results.txt").read_text().splitlines()
    assert [line.split(": ")[0] for line in text] == ["accuracy", "f1", "mcc"]
    assert {k: float(v) for k, v in (line.split(": ") for line in text)} == {
        k: saved[k] for k in ("accuracy", "f1", "mcc")}
  assert not (workdir / "results" / "run" / "main" / "finetune" / "boolq").exists()

  c.finetune.method = "warp"
  c.finetune.task = "rte"
  c.finetune.epochs = 2
  (row,) = finetune.run_finetune(c, str(workdir))
  table = capsys.readouterr().out.splitlines()
  assert [line.split()[:2] for line in table[2:]] == [["rte", "warp"], ["rte", "full"]]
  saved = json.loads((workdir / "eval" / "warp-rte.json").read_text())
  assert saved["trained_params"] == row["trained_params"] == 10 * c.model.hidden_size
  assert len(glue.read_predictions(str(workdir / "results" / "run-warp" / "main" / "finetune"
                                       / "rte"), "rte")) == 48


def test_finetune_without_train_split_is_refused(trained):
  workdir, _ = trained
  c = _config()
  c.finetune.task = "boolq"
  c.finetune.data_dir = str(data_path("babylm_eval/glue_filtered"))
  with pytest.raises(UserError, match=r"boolq\.train\.jsonl' is missing"):
    finetune.run_finetune(c, str(workdir))
  c.finetune.task = "rte,boolq"  # named explicitly, so its missing split is an error
  with pytest.raises(UserError, match=r"boolq\.train\.jsonl' is missing"):
    finetune.run_finetune(c, str(workdir))
  assert not (workdir / "results" / "run" / "main" / "finetune" / "boolq").exists()
  cmd = [sys.executable, "launch.py", "--mode=finetune", "--config", "configs/smoke.py",
         f"--workdir={workdir}", "--config.finetune.method=lora"]
  p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
  assert p.returncode == 2 and "Traceback" not in p.stderr
  assert "error: finetune.method 'lora' is unknown; use full or warp." in p.stderr


def test_eval_of_other_shape_or_tokenizer_is_refused(trained, tmp_path):
  workdir, _ = trained
  cmd = [sys.executable, "launch.py", "--mode=eval", "--config", "configs/smoke.py",
         f"--workdir={workdir}", "--config.eval.suites=blimp_fast",
         f"--config.eval.data.blimp_fast={data_path('babylm_eval/fast_eval/blimp_fast')}"]
  p = subprocess.run(cmd + ["--config.model.hidden_size=96"], cwd=ROOT, capture_output=True,
                     text=True)
  assert p.returncode == 2, p.stderr
  assert "hidden_size" in p.stderr and "Traceback" not in p.stderr
  other = tmp_path / "run"
  shutil.copytree(workdir, other, ignore=shutil.ignore_patterns("eval", "results"))
  small_tokenizer(1024).save(str(other / "tokenizer.json"))
  c = _config()
  with pytest.raises(UserError, match="tokenizer"):
    run.run_eval(c, str(other))
  assert not (other / "eval").exists()
