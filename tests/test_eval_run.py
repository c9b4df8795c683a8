"""End to end: train the smoke config briefly, then --mode=eval and --mode=finetune on it.

The training passes two milestones (shrunk from the challenge's 1M, 2M, ... words to a few
thousand so that a 20-step run reaches them) for eval.words=all.

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

from babylm_jax.errors import DataError, UserError
from babylm_jax.eval import finetune, glue, layout, run, summary
from conftest import ROOT, data_path, load_config, not_shared
from eval_helpers import small_tokenizer
from test_eval_tasks import write_comps, write_wug_past

STEPS = 20
MILESTONES = (8_000, 16_000)


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


def _reading_subset(tmp, rows):
  out = tmp / "reading"
  out.mkdir()
  lines = data_path("babylm_eval/reading/reading_data.csv").read_text().splitlines()
  (out / "reading_data.csv").write_text("\n".join(lines[:rows + 1]) + "\n")
  return str(out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  from babylm_jax.train import checkpoint
  from babylm_jax.train.loop import train
  tmp = tmp_path_factory.mktemp("evalrun")
  data = dict(
      blimp_fast=_subset(tmp, "blimp_fast", "babylm_eval/fast_eval/blimp_fast", 3, 40),
      supplement=_subset(tmp, "supplement", "babylm_eval/fast_eval/supplement_fast", 2, 20),
      ewok=_subset(tmp, "ewok", "babylm_eval/fast_eval/ewok_fast", 2, 20),
      entity_tracking=_subset(tmp, "entity", "babylm_eval/entity_tracking", 1, 10),
      wug_adj=_subset(tmp, "wug_adj", "babylm_eval/wug_adj_nominalization", 1, 24),
      wug_past=write_wug_past(tmp / "wug_past"),
      comps=write_comps(tmp / "comps"),
      reading=_reading_subset(tmp, 90))
  workdir = tmp / "run"
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(checkpoint, "MILESTONES", MILESTONES)
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
  assert "BLiMP (fast)" in table and "Entity tracking" in table and "macro average" in table
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
  assert by[("entity_tracking", "fused")]["paradigms"]["ambiref_0_ops"]["chance"] == 0.2


def _official_layout(tmp, data) -> str:
  """evaluation_data/full_eval as the official scripts name its folders, built of the test's
  small subsets (not the official sets) and the whole WUG adjective file (the official one)."""
  full = tmp / "evaluation_data" / "full_eval"
  full.mkdir(parents=True)
  for task, folder in layout.LAYOUT[layout.FULL].items():
    source = (data_path("babylm_eval/wug_adj_nominalization") if task == "wug_adj"
              else data["blimp_fast" if task == "blimp" else task])
    (full / folder).symlink_to(source)
  return str(full.parent)


def test_babylm_preset_from_one_command(trained, tmp_path):
  """Every zero-shot task of the official layout, one command, one table, each column marked
  official or not by its counts; then fine-tuning rows join the summary, GLUE as accuracy."""
  import jax
  workdir, data = trained
  cmd = [sys.executable, "launch.py", "--mode=eval", "--config", "configs/smoke.py",
         f"--workdir={workdir}", "--config.eval.suites=babylm",
         f"--config.eval.data_root={_official_layout(tmp_path, data)}"]
  p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
  assert p.returncode == 0, p.stderr[-3000:]
  assert "macro average (9 columns)" in p.stdout and "Reading: eye tracking" in p.stdout
  lines = {line.split("  ")[0]: line for line in p.stdout.splitlines()}
  assert "NOT official" in lines["BLiMP"] and "official full" in lines[
      "WUG adjective nominalization"]
  assert ("not official: BLiMP: not the official full set: 3 subsets, 120 items where "
          "blimp_filtered has 67, 59,875") in p.stdout
  assert "macro average: NOT comparable with the leaderboard's (full set): no glue" in p.stdout
  assert f"versions (eval): jax {jax.__version__}, flax " in p.stdout
  eval_dir = workdir / "eval"
  s = json.loads((eval_dir / "summary.json").read_text())
  columns = ["blimp", "supplement", "ewok", "entity_tracking", "wug_adj", "wug_past", "comps",
             "reading_eye_tracking", "reading_self_paced"]
  assert [r["column"] for r in s["rows"]] == columns and s["missing"] == []
  assert {r["column"]: r["official"] for r in s["rows"]} == {c: c == "wug_adj" for c in columns}
  assert all(r["data_dir"].startswith(str(tmp_path)) for r in s["rows"])
  assert s["leaderboard"]["comparable"] is False and s["leaderboard"]["set"] == "full"
  assert s["versions"]["eval"]["jax"] == jax.__version__ and "train" in s["versions"]
  assert s["versions"]["eval"]["device_kind"] == jax.devices()[0].device_kind
  assert s["backends"] == ["causal", "mntp"] and s["checkpoint"]["step"] == STEPS
  for backend in ("causal", "mntp"):
    heads = {}
    for task in ("blimp", "supplement", "ewok", "entity_tracking", "wug_adj", "wug_past",
                 "comps", "reading"):
      r = json.loads((eval_dir / f"{task}-{backend}.json").read_text())
      assert (eval_dir / f"{task}-{backend}.png").stat().st_size > 1000
      assert r["step"] == STEPS and all(len(f["sha256"]) == 64 for f in r["files"])
      assert r["preset"] == "babylm" and r["data_set"]["set"] == "full"
      heads.update(r["headline"])
    assert heads["comps"] == 100 * r_macro(eval_dir / f"comps-{backend}.json")
    values = [r["values"][backend] for r in s["rows"]]
    assert values == [pytest.approx(heads[c]) for c in columns]
    assert s["macro_average"][backend]["value"] == pytest.approx(np.mean(values))
  reading = json.loads((eval_dir / "reading-mntp.json").read_text())
  assert reading["words"] == 90 and reading["mask_ending"] == 3
  assert reading["eye_tracking"] == pytest.approx(np.mean(
      [reading["measures"][m]["no_spillover"]["percent_of_possible"]
       for m in ("RTfirstfix", "RTfirstpass", "RTgopast", "RTrightbound")]))
  md = (eval_dir / "summary.md").read_text()
  assert "| **macro average** |" in md and r["files"][0]["sha256"] in md
  assert "| WUG adjective nominalization | Spearman x100 | official full |" in md
  assert "Macro average: NOT comparable" in md and "| eval | jax " in md

  # Fine-tuning reports in the agreed layout: full fine-tuning makes the GLUE column, the mean
  # of the tasks' accuracies (not of mrpc's F1), official only with all seven on their splits.
  def tuned(task, accuracy, official=True, **extra):
    rep = dict(task=task, headline=100 * accuracy, accuracy=accuracy, f1=0.9, mcc=0.1,
               step=STEPS, official_data=official, **extra)
    name = task + ("-" + extra["method"] if extra.get("method") == "warp" else "")
    (eval_dir / f"finetune-{name}.json").write_text(json.dumps(rep))

  tuned("rte", 0.6)
  tuned("mrpc", 0.7, method="full")
  tuned("rte", 0.55, method="warp", trained_parameters=4096)
  s = summary.refresh(str(workdir))
  cols = {r["column"]: r for r in s["rows"]}
  assert cols["glue"]["values"]["causal"] == pytest.approx(65.0)
  assert cols["glue_warp"]["values"]["mntp"] == pytest.approx(55.0)
  assert not cols["glue"]["official"] and "2 of 7 tasks" in cols["glue"]["note"]
  assert s["macro_columns"][-1] == "glue" and s["macro_average"]["causal"]["columns"] == 10
  assert s["versions"]["eval"]["jax"] == jax.__version__  # kept from the evaluation
  md = (eval_dir / "summary.md").read_text()
  assert "| rte | warp | 55.00 | 90.00 | 10.00 | yes | 4096 |" in md
  for task in ("boolq", "mnli", "multirc", "qqp", "wsc"):
    tuned(task, 0.5)
  s = summary.refresh(str(workdir))
  cols = {r["column"]: r for r in s["rows"]}
  assert cols["glue"]["official"] and cols["glue"]["tasks"] == 7
  assert not cols["glue_warp"]["official"]
  assert s["leaderboard"]["why"][0].startswith("BLiMP: not the official full set")
  assert not any(w.startswith("(Super)GLUE fine-tuning (") for w in s["leaderboard"]["why"])
  tuned("wsc", 0.5, official=False)
  cols = {r["column"]: r for r in summary.refresh(str(workdir))["rows"]}
  assert not cols["glue"]["official"] and "wsc" in cols["glue"]["note"]
  for f in eval_dir.glob("finetune-*.json"):
    f.unlink()


def r_macro(path):
  return json.loads(path.read_text())["macro_accuracy"]


def test_preset_lists_missing_tasks_and_named_ones_are_required(trained, tmp_path, capsys):
  workdir, data = trained
  c = _config(**data)
  fast = tmp_path / "evaluation_data" / "fast_eval"
  fast.mkdir(parents=True)
  for task, folder in layout.LAYOUT[layout.FAST].items():
    if task not in ("reading", "entity_tracking"):
      (fast / folder).symlink_to(data[task])
  (fast / "entity_tracking_fast").mkdir()  # without its regular.jsonl
  c.eval.data_root = str(fast.parent)
  c.eval.suites = "babylm_fast"
  c.eval.backend = "causal"
  loaded, missing = run.load_tasks(c)
  assert [src.task for _, src in loaded] == ["blimp_fast", "supplement", "ewok", "wug_adj",
                                             "wug_past"]
  assert [(m["task"], m["folder"]) for m in missing] == [
      ("entity_tracking", str(fast / "entity_tracking_fast" / "regular.jsonl")),
      ("reading", str(fast / "reading"))]
  c.eval.suites = "wug_adj,reading"
  c.eval.data.reading = str(tmp_path / "none")
  with pytest.raises(DataError, match="--config.eval.data.reading"):
    run.run_eval(c, str(workdir))
  c.eval.suites = "babylm_fast"
  c.eval.data_root = str(tmp_path / "none")
  with pytest.raises(DataError, match="no task of eval.suites 'babylm_fast' has its data"):
    run.run_eval(c, str(workdir))


def test_every_milestone_and_learning_curve(trained):
  workdir, data = trained
  c = _config(**data)
  c.eval.suites = "blimp_fast,wug_adj"
  c.eval.backend = "causal"
  c.eval.words = "all"
  rows = run.run_eval(c, str(workdir))
  assert [(r["suite"], r["words_seen"] >= MILESTONES[0]) for r in rows] == [
      ("blimp_fast", True), ("wug_adj", True)] * 2
  curve = json.loads((workdir / "eval" / "learning_curve.json").read_text())["milestones"]
  words = [m["checkpoint"]["words_seen"] for m in curve]
  assert len(words) == 2 and words[0] < words[1]
  for m, n in zip(curve, MILESTONES):
    assert (workdir / "eval" / f"words_{n}" / "summary.md").exists()
    assert m["checkpoint"]["path"].endswith(f"milestones/words_{n}")
    assert [r["column"] for r in m["rows"]] == ["blimp_fast", "wug_adj"]
  assert (workdir / "eval" / "learning_curve.png").stat().st_size > 5000


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

  saved_full_rte = json.loads((workdir / "eval" / "finetune-rte.json").read_text())["headline"]
  c.finetune.method = "warp"
  c.finetune.task = "rte"
  c.finetune.epochs = 2
  (row,) = finetune.run_finetune(c, str(workdir))
  table = capsys.readouterr().out.splitlines()
  assert [line.split()[:2] for line in table[2:]] == [["rte", "warp"], ["rte", "full"]]
  saved = json.loads((workdir / "eval" / "warp-rte.json").read_text())
  # WARP-20: twenty prompts, a verbalizer and a bias per class.
  assert saved["trained_params"] == row["trained_params"] == 22 * c.model.hidden_size + 2
  # Both methods join the evaluation summary, WARP with its trained parameters.
  s = json.loads((workdir / "eval" / "summary.json").read_text())
  by = {(f["task"], f["method"]): f for f in s["finetune"]}
  assert by[("rte", "warp")]["trained_parameters"] == row["trained_params"]
  assert by[("rte", "full")]["headline"] == saved_full_rte
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


def test_headlines_for_training_hooks(trained):
  """run.headlines scores a few tasks in memory with the numbers the reports carry."""
  from babylm_jax.train.checkpoint import load_model
  workdir, data = trained
  c = _config(**data)
  c.eval.suites, c.eval.backend = "blimp_fast,wug_adj", "causal"
  rows = run.run_eval(c, str(workdir))
  model, _ = load_model(c, str(workdir))
  got = run.headlines(model, run.load_tokenizer(str(workdir)), c, ["blimp_fast", "wug_adj"])
  assert got == {k: pytest.approx(v, abs=1e-9) for r in rows for k, v in r["headline"].items()}


def test_aoa_reads_every_milestone_into_the_official_surprisal_file(trained, tmp_path, capsys):
  """eval.suites=aoa: each milestone's surprisal of every (word, context), in the pipeline's
  results layout, scored from the checkpoint of that milestone; the summary shows the score
  outside the macro average."""
  from babylm_jax.errors import ConfigError
  from babylm_jax.eval import aoa, scoring
  from babylm_jax.train.checkpoint import load_model
  from test_eval_aoa import write_cdi, write_human
  workdir, data = trained
  c = _config(**data)
  c.eval.suites, c.eval.backend = "aoa,wug_adj", "causal,mntp"
  c.eval.data.aoa = write_cdi(tmp_path / "full_eval" / "cdi_childes" / "cdi_childes.json")
  # The pipeline's full_eval layout: the children's file in ../aoa/, found there.
  write_human(tmp_path / "full_eval" / "aoa" / "cdi_human.csv", {"dog": 19.0, "ball": 22.0})
  c.finetune.results_dir = str(tmp_path / "results")
  rows = run.run_eval(c, str(workdir))
  assert [(r["suite"], r["backend"]) for r in rows] == [
      ("aoa", "causal"), ("aoa", "mntp"), ("wug_adj", "causal"), ("wug_adj", "mntp")]
  steps = [f"words_{n}" for n in MILESTONES]
  tok = run.load_tokenizer(str(workdir))
  cdi = aoa.load(c.eval.data.aoa)
  seqs, _ = aoa.sequences(tok, cdi, c.model.max_position)
  first, _ = load_model(c, str(workdir), words=MILESTONES[0])
  for backend in ("causal", "mntp"):
    path = (tmp_path / "results" / workdir.name / "main" / "zero_shot" / backend / "AoA_word"
            / "surprisal.json")
    payload = json.loads(path.read_text())
    assert payload["metadata"] == dict(model_name=workdir.name, use_bos_only=False,
                                       total_steps=19, completed_steps=2)
    got = payload["results"]
    assert [r["step"] for r in got] == [s for s in steps for _ in range(6)]
    assert [r["word_count"] for r in got] == [n for n in MILESTONES for _ in range(6)]
    assert [(r["target_word"], r["context_id"], r["context"]) for r in got] == cdi.pairs() * 2
    s = np.array([r["surprisal"] for r in got])
    assert np.all(np.isfinite(s)) and np.all(s > 0)
    # Each step is scored with its own milestone's weights.
    want = aoa.surprisals(scoring.Scorer(first, max_len=c.model.max_position), seqs, backend)
    np.testing.assert_allclose(s[:6], want, rtol=1e-6)
    assert np.abs(s[6:] - want).max() > 1e-3
    report = json.loads((workdir / "eval" / f"aoa-{backend}.json").read_text())
    assert report["surprisal_json"] == str(path) and report["steps"] == steps
    assert len(report["missing_steps"]) == 19 and report["entries_per_step"] == 6
    assert report["human_file"].endswith("full_eval/aoa/cdi_human.csv")
    assert report["headline"] == {"aoa": report["fit"]["curve_fitness"]}
    assert report["fit"]["words_in_cdi"] == 2
  summary_json = json.loads((workdir / "eval" / "summary.json").read_text())
  row = next(r for r in summary_json["rows"] if r["column"] == "aoa")
  assert set(row["values"]) == {"causal", "mntp"}
  assert "wug_adj" in summary_json["macro_columns"]
  assert "aoa" not in summary_json["macro_columns"]  # a correlation, not a percentage
  assert "Age of acquisition" in capsys.readouterr().out
  # AoA alone: its own table; a backend the pipeline has no AoA scorer for; no words file.
  c.eval.suites, c.eval.backend = "aoa", "causal"
  assert [r["suite"] for r in run.run_eval(c, str(workdir))] == ["aoa"]
  assert "Age of acquisition" in capsys.readouterr().out
  c.eval.backend = "fused"
  with pytest.raises(ConfigError, match="no counterpart in the official AoA task"):
    run.run_eval(c, str(workdir))
  c.eval.backend, c.eval.data.aoa = "causal", str(tmp_path / "none.json")
  with pytest.raises(DataError, match=r"osf\.io/ryjfm.*--config\.eval\.data\.aoa"):
    run.run_eval(c, str(workdir))
