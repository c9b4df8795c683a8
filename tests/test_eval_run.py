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

import pytest

from babylm_jax.errors import UserError
from babylm_jax.eval import finetune, run
from conftest import ROOT, data_path, load_config, not_shared
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
  assert not_shared(workdir) == []  # reports and checkpoints are readable by others
  by = {(r["suite"], r["backend"]): r for r in rows}
  assert len(by[("blimp_fast", "causal")]["paradigms"]) == 3
  assert by[("entity_tracking", "fused")]["paradigms"]["ambiref"]["chance"] == 0.2


def test_finetune_fits_small_rte_subset(trained, tmp_path):
  workdir, _ = trained
  lines = data_path("babylm_eval/glue_filtered/rte.train.jsonl").read_text().splitlines()[:48]
  for split in ("train", "valid"):  # validation on the training pairs measures the fit
    (tmp_path / f"rte.{split}.jsonl").write_text("\n".join(lines) + "\n")
  c = _config()
  c.finetune.task = "rte"
  c.finetune.data_dir = str(tmp_path)
  c.finetune.lr = 3e-3
  c.finetune.epochs = 12
  c.finetune.batch_size = 16
  c.finetune.max_length = 64
  result = finetune.run_finetune(c, str(workdir))
  saved = json.loads((workdir / "finetune" / "rte.json").read_text())
  assert saved["accuracy"] == result["accuracy"] >= 0.9, saved["history"]
  assert saved["seed"] == 0 and saved["step"] == STEPS


def test_finetune_without_train_split_is_refused(trained):
  workdir, _ = trained
  c = _config()
  c.finetune.task = "boolq"
  c.finetune.data_dir = str(data_path("babylm_eval/glue_filtered"))
  with pytest.raises(UserError, match=r"boolq\.train\.jsonl' is missing"):
    finetune.run_finetune(c, str(workdir))


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
  shutil.copytree(workdir, other, ignore=shutil.ignore_patterns("eval", "finetune"))
  small_tokenizer(1024).save(str(other / "tokenizer.json"))
  c = _config()
  with pytest.raises(UserError, match="tokenizer"):
    run.run_eval(c, str(other))
  assert not (other / "eval").exists()
