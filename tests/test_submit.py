"""--mode=submit end to end: a smoke run with two milestones, one fine-tuned task, our own
--mode=eval on the same data, then the submission folder, read back file by file.

The data root is the official evaluation_data layout built of small cuts of ../shared/data
(not the official sets), without wug_past_tense and comps, as ../shared/data lacks them. The
predictions are checked against what --mode=eval reports for the same checkpoint: the
accuracy the pipeline's collate recomputes from them (the chosen sentence against the
correct one) equals ours with ties counted as the first option, the WUG probabilities and
the reading surprisals are ours. The milestones are shrunk to a few thousand words (named
words_<N>, where the challenge's are chck_<N>M).
"""

import json
import math

import numpy as np
import pytest

from babylm_jax.eval import glue, layout
from conftest import data_path, smoke_config
from launch_helpers import error_lines, launch
from test_eval_aoa import write_cdi

STEPS = 20
MILESTONES = (8_000, 16_000)
BACKENDS = ("causal", "mntp")


def _cut(src, dest, files, lines, names=None):
  dest.mkdir(parents=True)
  chosen = [src / n for n in names] if names else sorted(src.glob("*.jsonl"))[:files]
  for f in chosen:
    (dest / f.name).write_text("\n".join(f.read_text().splitlines()[:lines]) + "\n")


def _data_root(tmp):
  root = tmp / "evaluation_data"
  fast_src = data_path("babylm_eval/fast_eval")
  reading_rows = data_path("babylm_eval/reading/reading_data.csv").read_text().splitlines()
  for data_set in ("full_eval", "fast_eval"):
    d = root / data_set
    suffix = "filtered" if data_set == "full_eval" else "fast"
    _cut(fast_src / "blimp_fast", d / f"blimp_{suffix}", 2, 8)
    _cut(fast_src / "supplement_fast", d / f"supplement_{suffix}", 2, 8)
    _cut(fast_src / "ewok_fast", d / f"ewok_{suffix}", 2, 8)
    et = data_path("babylm_eval/entity_tracking")
    if data_set == "full_eval":
      _cut(et, d / "entity_tracking", 2, 8)
    else:
      _cut(et, d / "entity_tracking_fast", 1, 8, names=["regular.jsonl"])
    _cut(data_path("babylm_eval/wug_adj_nominalization"), d / "wug_adj_nominalization", 1, 24)
    (d / "reading").mkdir()
    (d / "reading" / "reading_data.csv").write_text("\n".join(reading_rows[:61]) + "\n")
  return root


def _config(tmp, data_root):
  c = smoke_config(steps=STEPS)
  c.eval.data_root = str(data_root)
  c.eval.backend = ",".join(BACKENDS)
  c.eval.data.aoa = write_cdi(tmp / "cdi" / "cdi_childes.json")
  c.finetune.task = "rte"
  c.finetune.epochs = 1
  c.finetune.max_train_examples = 16
  c.finetune.max_valid_examples = 24
  c.finetune.max_length = 64
  c.finetune.batch_size = 8
  return c


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
  from babylm_jax.eval import finetune, run
  from babylm_jax.train import checkpoint
  from babylm_jax.train.loop import train
  tmp = tmp_path_factory.mktemp("submit")
  data_root = _data_root(tmp)
  workdir = tmp / "run"
  c = _config(tmp, data_root)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(checkpoint, "MILESTONES", MILESTONES)
    train(c, str(workdir))
  finetune.run_finetune(c, str(workdir))
  c.eval.suites = "babylm"
  run.run_eval(c, str(workdir))  # our own reports, to compare the predictions with
  p = launch("--mode=submit", f"--workdir={workdir}", f"--config.eval.data_root={data_root}",
             f"--config.eval.data.aoa={c.eval.data.aoa}")
  assert p.returncode == 0, p.stderr[-3000:]
  return workdir, data_root, p.stdout


def _lines(path):
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _correct(task, record):
  if task == "ewok":
    return record["Target1"]
  if task == "entity_tracking":
    return record["options"][0]
  return record["sentence_good"]


def test_folder_has_export_milestones_and_manifest(submitted):
  workdir, data_root, stdout = submitted
  out = workdir / "submission"
  manifest = json.loads((out / "submission.json").read_text())
  assert manifest["model_name"] == "run" and manifest["step"] == STEPS
  assert manifest["revisions"] == ["words_8000", "words_16000"]
  assert manifest["backends"] == ["causal", "mntp"]
  for sub in ("", "words_8000", "words_16000"):
    folder = out / "run" / sub
    assert json.loads((folder / "config.json").read_text())["model_type"] == "babylm_gpt_bert"
    assert (folder / "model.safetensors").stat().st_size > 1000
    assert (folder / "tokenizer.json").is_file()
  info = json.loads((out / "run" / "words_8000" / "config.json").read_text())["babylm_jax"]
  assert info["path"].endswith("milestones/words_8000")
  # What ../shared/data lacks is named, and nothing else.
  missing = {(m["revision"], m["task"]) for m in manifest["missing"]}
  assert missing == {("main", "wug_past"), ("main", "comps"), ("chck_*", "wug_past"),
                     ("chck_*", "milestones")} | {
      ("main", t) for t in glue.TASKS if t != "rte"}
  assert "missing (collate_preds will name them)" in stdout
  assert "evaluation_pipeline.collate_preds --model_path_or_name run --backend causal" in stdout
  assert not [p for p in workdir.iterdir() if p.name.startswith(".submission")]


def test_zero_shot_predictions_match_our_reports(submitted):
  """Per UID, the accuracy recomputed from predictions.json as collate_preds does is our
  report's with ties counted for the first option; every item is there, numbered."""
  workdir, data_root, _ = submitted
  results = workdir / "submission" / "results" / "run"
  for backend in BACKENDS:
    for task in ("blimp", "supplement", "ewok", "entity_tracking"):
      folder = data_root / "full_eval" / layout.LAYOUT["full"][task]
      runner = "blimp" if task == "supplement" else task
      got = json.loads((results / "main" / "zero_shot" / backend / runner / folder.name
                        / "predictions.json").read_text())
      ours = json.loads((workdir / "eval" / f"{task}-{backend}.json").read_text())
      assert set(got) == set(ours["paradigms"])
      records: dict[str, list] = {}
      for f in sorted(folder.glob("*.jsonl")):
        for r in _lines(f):
          uid = (f"{f.stem}_{r['numops']}_ops" if task == "entity_tracking"
                 else r.get("Domain") or r.get("UID") or f.stem)
          records.setdefault(uid, []).append(r)
      for uid, p in ours["paradigms"].items():
        preds = got[uid]["predictions"]
        assert [x["id"] for x in preds] == [f"{uid}_{i}" for i in range(p["pairs"])]
        correct = np.mean([x["pred"].strip() == _correct(task, r).strip()
                           for x, r in zip(preds, records[uid])])
        if p["chance"] == 0.5:  # a tied pair: 0.5 for us, 1 for the first-highest rule
          assert correct == pytest.approx(p["accuracy"] + 0.5 * p["ties"] / p["pairs"])
        elif p["ties"] == 0:
          assert correct == pytest.approx(p["accuracy"])
    # The WUG: the runner's prob of the first sentence is our model's probability.
    wug = json.loads((results / "main" / "zero_shot" / backend / "wug_adj"
                      / "wug_adj_nominalization" / "predictions.json").read_text())
    ours = json.loads((workdir / "eval" / f"wug_adj-{backend}.json").read_text())
    probs = [x["prob"] for x in wug["wug_adj"]["predictions"]]
    np.testing.assert_allclose(probs, ours["probability"], rtol=1e-5)
    from scipy.stats import spearmanr
    ratios = [r["ratio"] for r in _lines(data_root / "full_eval" / "wug_adj_nominalization"
                                         / "wug_adj_nominalization.jsonl")]
    assert spearmanr(probs, ratios).statistic == pytest.approx(ours["spearman"])
    # Reading: each word's surprisal and the previous word's (NaN where there is none).
    rd = json.loads((results / "main" / "zero_shot" / backend / "reading"
                     / "predictions.json").read_text())["reading"]["predictions"]
    ours = json.loads((workdir / "eval" / f"reading-{backend}.json").read_text())
    assert [x["id"] for x in rd] == list(range(60))
    np.testing.assert_allclose([x["pred"] for x in rd], ours["surprisal"], atol=1e-6)
    for x, prev in zip(rd, ours["prev_surprisal"]):
      assert (math.isnan(x["prev_pred"]) if prev is None
              else x["prev_pred"] == pytest.approx(prev, abs=1e-6))
    # Each milestone has the fast set, every item of it.
    for rev in ("words_8000", "words_16000"):
      base = results / rev / "zero_shot" / backend
      et = json.loads((base / "entity_tracking" / "entity_tracking_fast"
                       / "predictions.json").read_text())
      assert set(et) <= {f"regular_{k}_ops" for k in range(6)}
      assert sum(len(v["predictions"]) for v in et.values()) == 8
      blimp = json.loads((base / "blimp" / "blimp_fast" / "predictions.json").read_text())
      assert sum(len(v["predictions"]) for v in blimp.values()) == 16
      assert (base / "reading" / "predictions.json").is_file()
      assert (base / "wug_adj" / "wug_adj_nominalization" / "predictions.json").is_file()


def test_aoa_and_finetune_files(submitted):
  workdir, _, _ = submitted
  results = workdir / "submission" / "results" / "run" / "main"
  for backend in BACKENDS:
    payload = json.loads((results / "zero_shot" / backend / "AoA_word"
                          / "surprisal.json").read_text())
    assert payload["metadata"]["completed_steps"] == 2
    assert payload["metadata"]["total_steps"] == 19
    steps = [r["step"] for r in payload["results"]]
    assert steps == ["words_8000"] * 6 + ["words_16000"] * 6
    assert all(r["surprisal"] > 0 for r in payload["results"])
  # Fine-tuning's own files, as --mode=finetune wrote them for this checkpoint.
  src = workdir / "results" / "run" / "main" / "finetune" / "rte"
  for f in ("predictions.json", "results.txt"):
    assert (results / "finetune" / "rte" / f).read_bytes() == (src / f).read_bytes()
  assert len(glue.read_predictions(str(results / "finetune" / "rte"), "rte")) == 24
  assert not (results / "finetune" / "boolq").exists()


def test_refusals_leave_nothing(submitted, tmp_path):
  workdir, data_root, _ = submitted
  empty = tmp_path / "empty"
  empty.mkdir()
  p = launch("--mode=submit", "--config", "configs/smoke.py", f"--workdir={empty}",
             f"--config.eval.data_root={data_root}")
  assert p.returncode == 2
  assert error_lines(p.stderr) == [f"error: workdir '{empty}' holds no checkpoints; train "
                                   f"first with --mode=train or pass the run's --workdir."]
  out = tmp_path / "sub"
  p = launch("--mode=submit", f"--workdir={workdir}", f"--config.submit.dir={out}",
             f"--config.eval.data_root={tmp_path / 'nowhere'}")
  assert p.returncode == 2, p.stderr[-2000:]
  lines = error_lines(p.stderr)
  assert len(lines) == 1 and "eval.data_root" in lines[0] and "does not exist" in lines[0]
  assert "Traceback" not in p.stderr
  p = launch("--mode=submit", f"--workdir={workdir}", f"--config.submit.dir={out}",
             f"--config.eval.data_root={data_root}", "--config.eval.backend=fused")
  assert p.returncode == 2 and "no counterpart in the official pipeline" in p.stderr
  assert not out.exists() and not list(tmp_path.glob(".sub*"))
  # An existing submission is replaced only when asked.
  p = launch("--mode=submit", f"--workdir={workdir}", f"--config.eval.data_root={data_root}")
  assert p.returncode == 2 and "submit.overwrite" in error_lines(p.stderr)[0]
