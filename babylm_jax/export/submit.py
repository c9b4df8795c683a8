"""`--mode=submit`: a BabyLM 2025 submission folder that the official `collate_preds` reads.

The official pipeline (babylm/evaluation-pipeline-2025) has the participant run its scripts on
the exported model and its `chck_*` revisions, then `collate_preds.py` gathers what they wrote
under `results/<model>/<revision>/`. This module writes the same files from the run's own
checkpoints, scored by babylm_jax, into one folder:

  OUT/<model>/                         the Hugging Face export (export/hf.py) of the submitted
                                       checkpoint, and OUT/<model>/chck_<N>M/ per milestone
  OUT/results/<model>/main/zero_shot/<backend>/<task>/<set>/predictions.json
                                       the full zero-shot set (eval_zero_shot.sh), and its
                                       best_temperature_report.txt
  OUT/results/<model>/main/zero_shot/<backend>/reading/predictions.json
  OUT/results/<model>/main/zero_shot/<backend>/AoA_word/surprisal.json   every milestone
  OUT/results/<model>/main/finetune/<task>/{predictions.json,results.txt}
                                       copied from --mode=finetune's results (not recomputed:
                                       fine-tuning is the long part and has its own settings)
  OUT/results/<model>/chck_<N>M/zero_shot/<backend>/...   the fast set (eval_zero_shot_fast.sh)
                                       per milestone
  OUT/submission.json                  what was written, what is missing and why, the command
                                       that collates it

The zero-shot predictions and the AoA surprisals are computed here, from the very weights the
export holds (export.use_ema; export.step or export.words for the submitted checkpoint, the
newest by default), on whole files of `eval.data_root` (eval.max_items is not applied): per
item the option with the highest summed log-probability, the first on a tie (as the runner's
torch.max picks it), named as the runner names it (the sentence; EWoK's " " + target; COMPS'
whole sentence; the WUGs' sentence with `prob`, the softmax share of the first one). `<model>`
is finetune.model_name (default the workdir's name, the folder the pipeline's scripts would
name the export by), `<backend>` the pipeline's name of each eval.backend (pll is its `mlm`).

A task whose data is absent under eval.data_root (or the AoA words file, or a fine-tuning task
--mode=finetune did not run on this checkpoint) is listed as missing in submission.json and on
stdout, and the rest is written: the official collate_preds then names exactly those. The
folder is written under a temporary name and renamed at the end, so a failure never leaves one
that looks finished.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import time

import numpy as np

from babylm_jax import checkpoint_params
from babylm_jax.errors import ConfigError, DataError, UserError
from babylm_jax.eval import aoa, glue, layout, reading
from babylm_jax.eval import suites as suites_lib
from babylm_jax.eval.report import write_json

MANIFEST = "submission.json"
# Our task -> the runner's --task (the second level of its results folder).
RUNNER_TASKS = {"blimp": "blimp", "blimp_fast": "blimp", "supplement": "blimp", "ewok": "ewok",
                "entity_tracking": "entity_tracking", "wug_adj": "wug_adj",
                "wug_past": "wug_past", "comps": "comps"}


# ---------------------------------------------------------------------------------------
# The runners' files.


def predictions(task: str, suite: suites_lib.Suite, option_scores) -> dict:
  """predictions.json of sentence_zero_shot.run --save_predictions for one suite.

  {uid: {"predictions": [{"id": "<uid>_<k>", "pred": chosen completion}, ...]}}, items in
  file order within a UID; the WUGs' entries also carry "prob" and their UID is the task.
  """
  out: dict[str, dict] = {}
  for item, scores in zip(suite.items, option_scores):
    scores = np.asarray(scores, np.float64)
    uid = RUNNER_TASKS[task] if task in suites_lib.CORRELATION_SUITES else item.paradigm
    preds = out.setdefault(uid, {"predictions": []})["predictions"]
    k = int(np.argmax(scores))  # the first highest, as the runner's torch.max
    if task == "ewok":
      pred = " " + item.options[k]
    elif task == "comps":  # both options are the same phrase: the runner names the sentence
      pred = f"{item.contexts()[k]} {item.options[k]}"
    else:
      pred = item.options[k]
    entry = {"id": f"{uid}_{len(preds)}", "pred": pred}
    if task in suites_lib.CORRELATION_SUITES:
      e = np.exp(scores - scores.max())
      entry["prob"] = float(e[0] / e.sum())
    preds.append(entry)
  return out


def report_text(task: str, suite: suites_lib.Suite, option_scores) -> str:
  """best_temperature_report.txt: per UID the runner's accuracy in percent (a tie counts for
  the first option), or the WUGs' Spearman rho as a fraction, and the average (temperature 1)."""
  if task in suites_lib.CORRELATION_SUITES:
    from babylm_jax.eval.report import correlation
    rho = correlation(suite.items, option_scores)["spearman"]
    value = float("nan") if rho is None else rho
    return (f"TEMPERATURE: 1.00\n\n### UID SPEARMAN'S RHO\navg: {value:.2f}\n\n"
            f"### AVERAGE SPEARMAN'S RHO\n{value:.2f}\n\n")
  per: dict[str, list[int]] = {}
  for item, scores in zip(suite.items, option_scores):
    p = per.setdefault(item.paradigm, [0, 0])
    p[0] += int(np.argmax(np.asarray(scores)) == 0)
    p[1] += 1
  acc = {uid: 100.0 * c / n for uid, (c, n) in per.items()}
  if task == "entity_tracking":  # the runner averages per split, then over splits
    splits = {}
    for uid, a in acc.items():
      splits.setdefault(uid.rsplit("_", 2)[0], []).append(a)
    average = float(np.mean([np.mean(v) for v in splits.values()]))
  else:
    average = float(np.mean(list(acc.values())))
  lines = "".join(f"{uid}: {a:.2f}\n" for uid, a in acc.items())
  return (f"TEMPERATURE: 1.00\n\n### UID ACCURACY\n{lines}\n### AVERAGE ACCURACY\n"
          f"{average:.2f}\n\n")


def reading_predictions(pred: np.ndarray, prev_pred: np.ndarray) -> dict:
  """The reading runner's predictions.json: per row of reading_data.csv its index, the word's
  surprisal and the previous word's (NaN where it has none), in nats."""
  return {"reading": {"predictions": [
      {"id": i, "pred": float(p), "prev_pred": float(q)}
      for i, (p, q) in enumerate(zip(pred, prev_pred))]}}


# ---------------------------------------------------------------------------------------
# What to score.


def official_backend(backend: str) -> str:
  if backend not in aoa.OFFICIAL_BACKENDS:
    raise ConfigError(f"eval.backend '{backend}' has no counterpart in the official pipeline; "
                      f"use some of {', '.join(aoa.OFFICIAL_BACKENDS)} for --mode=submit.")
  return aoa.OFFICIAL_BACKENDS[backend]


def zero_shot_folder(results: pathlib.Path, model: str, revision: str, backend: str,
                     task: str, data_set: str) -> pathlib.Path:
  """Where the runner puts a task: <task>/<data folder> (reading: reading/, no data folder)."""
  base = results / model / revision / "zero_shot" / official_backend(backend)
  if task == "reading":
    return base / "reading"
  return base / RUNNER_TASKS[task] / layout.LAYOUT[data_set][task]


def load_set(data_root: str, data_set: str) -> tuple[dict, dict[str, str]]:
  """({task: its data} of every task of the official set found, {task: absent path})."""
  found, absent = {}, {}
  for task in layout.LAYOUT[data_set]:
    folder, files = layout.place(data_root, data_set, task)
    paths = [folder] + ([os.path.join(folder, reading.FILE_NAME)] if task == "reading" else [])
    paths += [os.path.join(folder, f) for f in files or ()]
    missing = next((p for p in paths if not os.path.exists(p)), None)
    if missing:
      absent[task] = missing
    elif task == "reading":
      found[task] = reading.load(folder)
    else:
      found[task] = suites_lib.load_suite(task, folder, files)
  return found, absent


def model_name(config, workdir: str) -> str:
  name = config.finetune.model_name or os.path.basename(os.path.abspath(workdir))
  # The pipeline names results by the model path's stem: a name with a dot or a slash would
  # be filed under another name than the one written here.
  if not name or pathlib.PurePath(name).stem != name or "/" in name:
    raise ConfigError(f"finetune.model_name '{name}' cannot name the submission: the pipeline "
                      f"files results under the model folder's stem; pass a name without "
                      f"dots or slashes.")
  return name


def _out_dir(config, workdir: str) -> pathlib.Path:
  s = config.submit
  out = pathlib.Path(s.dir or os.path.join(workdir, "submission")).expanduser().resolve()
  if str(s.dir).startswith("gs://"):
    raise ConfigError("submit.dir must be a local folder; write the submission there, then "
                      "copy it.")
  if out.exists() and not out.is_dir():
    raise UserError(f"submit.dir '{out}' is a file; pass a folder path to --config.submit.dir.")
  if out.is_dir() and any(out.iterdir()):
    if not s.overwrite:
      raise UserError(f"submit.dir '{out}' is not empty; pass --config.submit.overwrite=True "
                      f"to replace it or choose another folder.")
    if not (out / MANIFEST).is_file():  # overwriting deletes: only an earlier submission
      raise UserError(f"submit.dir '{out}' holds files that are not a babylm_jax submission "
                      f"(no {MANIFEST}), so it is not replaced even with submit.overwrite; "
                      f"choose another folder.")
  return out


def _finetuned(config, workdir: str, name: str, step: int) -> tuple[dict, dict]:
  """({task: folder of its predictions} fine-tuned from `step`, {task: why it is missing})."""
  results = config.finetune.results_dir or os.path.join(workdir, "results")
  found, missing = {}, {}
  for task in glue.TASKS:
    folder = glue.official_dir(results, name, "main", task)
    report = os.path.join(workdir, "eval", f"finetune-{task}.json")
    if not os.path.isfile(os.path.join(folder, "predictions.json")):
      missing[task] = f"no '{folder}/predictions.json'; run --mode=finetune on it"
      continue
    tuned_step = None
    if os.path.isfile(report):
      with open(report) as f:
        tuned_step = json.load(f).get("step")
    if tuned_step != step:
      missing[task] = (f"its predictions were fine-tuned from step {tuned_step}, not the "
                       f"submitted step {step}; run --mode=finetune again")
      continue
    found[task] = folder
  return found, missing


# ---------------------------------------------------------------------------------------
# --mode=submit.


def run_submit(config, workdir: str) -> str:
  """Writes the submission folder (submit.dir, default workdir/submission); returns it."""
  from babylm_jax.eval import run as eval_run
  from babylm_jax.eval import scoring
  from babylm_jax.export import hf
  from babylm_jax.checkpoint_params import load_model
  t0 = time.perf_counter()
  e = config.export
  backends = scoring.parse_backends(config.eval.backend)
  for b in backends:
    official_backend(b)
  eval_run.check_backends_fit(config, backends)
  eval_run.check_reading_subwords(config)
  data_root = os.path.expanduser(str(config.eval.data_root))
  if not os.path.isdir(data_root):
    raise DataError(f"eval.data_root '{data_root}' does not exist; point "
                    f"--config.eval.data_root at the official pipeline's evaluation_data "
                    f"folder (full_eval/, fast_eval/).")
  name = model_name(config, workdir)
  out = _out_dir(config, workdir)
  model, info = load_model(config, workdir, step=e.step, words=e.words, use_ema=e.use_ema)
  tokenizer = eval_run.load_tokenizer(workdir)
  milestones = checkpoint_params.saved_keys(workdir, milestone=True)
  full, full_absent = load_set(data_root, layout.FULL)
  fast, fast_absent = load_set(data_root, layout.FAST) if milestones else ({}, {})
  words_file = pathlib.Path(str(config.eval.data.aoa)).expanduser()
  cdi = aoa.load(str(words_file)) if words_file.exists() else None
  tuned, untuned = _finetuned(config, workdir, name, info.get("step"))

  tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    results = tmp / "results"
    scorer = scoring.Scorer(model, max_len=config.model.max_position,
                            tokens_per_batch=config.eval.tokens_per_batch)
    subwords = config.eval.reading_subwords
    kind = config.objective.kind

    def score_set(revision, tasks, data_set):
      for task, data in tasks.items():
        for b in backends:
          folder = zero_shot_folder(results, name, revision, b, task, data_set)
          if task == "reading":
            pred, prev = reading.surprisals(scorer, tokenizer, data, b, subwords)
            write_json(str(folder / "predictions.json"), reading_predictions(pred, prev))
            continue
          scores = eval_run.score_suite(scorer, tokenizer, data, b)
          write_json(str(folder / "predictions.json"), predictions(task, data, scores))
          (folder / "best_temperature_report.txt").write_text(report_text(task, data, scores))

    (tmp / name).mkdir()
    hf.write_folder(tmp / name, hf._params_of(model), config.model, tokenizer_path(workdir),
                    hf._info(info), kind)
    score_set("main", full, layout.FULL)
    surprisal = {b: [] for b in backends}
    seqs = aoa.sequences(tokenizer, cdi, scorer.max_len)[0] if cdi else None
    revisions = []
    for words in milestones:
      revision = hf.milestone_folder(words)
      m_model, m_info = load_model(config, workdir, words=words, use_ema=e.use_ema)
      (tmp / name / revision).mkdir()
      hf.write_folder(tmp / name / revision, hf._params_of(m_model), config.model,
                      tokenizer_path(workdir), hf._info(m_info), kind)
      scorer.load(m_model)  # the same shapes: nothing compiles again
      score_set(revision, fast, layout.FAST)
      for b in backends if cdi else ():
        surprisal[b] += aoa.entries(cdi, revision, words,
                                    aoa.surprisals(scorer, seqs, b, f"aoa {revision}"))
      revisions.append(revision)
    if cdi and milestones:
      for b in backends:
        path = (results / name / "main" / "zero_shot" / official_backend(b) / "AoA_word"
                / "surprisal.json")
        write_json(str(path), aoa.surprisal_file(name, surprisal[b],
                                                 len(aoa.official_steps(config.track))))
    for task, folder in tuned.items():
      dest = pathlib.Path(glue.official_dir(str(results), name, "main", task))
      dest.mkdir(parents=True)
      for f in ("predictions.json", "results.txt"):
        if os.path.isfile(os.path.join(folder, f)):
          shutil.copyfile(os.path.join(folder, f), dest / f)

    missing = _missing(config, backends, full_absent, fast_absent, revisions, milestones,
                       cdi, words_file, untuned)
    manifest = dict(
        model_name=name, track=config.track, backends=[official_backend(b) for b in backends],
        step=info.get("step"), words_seen=info.get("words_seen"), use_ema=e.use_ema,
        checkpoint=info.get("path"), revisions=revisions, data_root=os.path.abspath(data_root),
        zero_shot={"main": sorted(full), **{r: sorted(fast) for r in revisions}},
        finetune=sorted(tuned), aoa=bool(cdi and milestones), missing=missing,
        collate=[collate_command(name, b, config.track, data_root)
                 for b in (official_backend(b) for b in backends)],
        seconds=round(time.perf_counter() - t0, 1))
    write_json(str(tmp / MANIFEST), manifest)
    from babylm_jax import file_modes
    file_modes.share(tmp)
    hf._swap_into_place(tmp, out)
  except BaseException as err:
    shutil.rmtree(tmp, ignore_errors=True)
    from babylm_jax.workdir import is_disk_full
    if isinstance(err, OSError) or is_disk_full(err):
      reason = getattr(err, "strerror", None) or str(err).splitlines()[0][:120]
      raise UserError(f"submit.dir '{out}' could not be written ({reason}) and nothing was "
                      f"left there; free space or make it writable, or choose another "
                      f"--config.submit.dir.") from None
    raise
  tasks = sorted({m["task"] for m in missing})
  print(f"submission written to {out}: model '{name}', step {info.get('step')}, "
        f"{len(revisions)} milestones, backends {', '.join(manifest['backends'])}"
        + (f"; missing (collate_preds will name them): {', '.join(tasks)}" if tasks else
           "; nothing missing") + ".", flush=True)
  print("collate it from that folder with the pipeline checkout on PYTHONPATH:\n  "
        + "\n  ".join(manifest["collate"]), flush=True)
  logging.info("submit took %.1fs", time.perf_counter() - t0)
  return str(out)


def tokenizer_path(workdir: str) -> pathlib.Path:
  path = pathlib.Path(workdir) / "tokenizer.json"
  if not path.is_file():
    raise DataError(f"workdir '{workdir}' holds no tokenizer.json; submit the run's own "
                    f"--workdir (training writes it there).")
  return path


def collate_command(name: str, backend: str, track: str, data_root: str) -> str:
  return (f"python -m evaluation_pipeline.collate_preds --model_path_or_name {name} "
          f"--backend {backend} --results_dir results --fast --track {track.replace('_', '-')} "
          f"--fast_eval_dir {os.path.join(os.path.abspath(data_root), 'fast_eval')}")


def _missing(config, backends, full_absent, fast_absent, revisions, milestones, cdi,
             words_file, untuned) -> list[dict]:
  """Every file collate_preds looks for that this submission lacks, with why."""
  out = []
  for task, path in full_absent.items():
    out.append(dict(revision="main", task=task, why=f"no '{path}' under eval.data_root"))
  for task, path in fast_absent.items():
    out.append(dict(revision="chck_*", task=task, why=f"no '{path}' under eval.data_root"))
  expected = [n for n, _ in aoa.official_steps(config.track)]
  absent_steps = [n for n in expected if n not in revisions]
  if absent_steps:
    out.append(dict(revision="chck_*", task="milestones",
                    why=f"the run has no milestone for {', '.join(absent_steps)}"))
  if not cdi:
    out.append(dict(revision="main", task="aoa",
                    why=f"no AoA words file '{words_file}' (eval.data.aoa)"))
  elif not milestones:
    out.append(dict(revision="main", task="aoa", why="the run has no milestone checkpoints"))
  for task, why in untuned.items():
    out.append(dict(revision="main", task=task, why=why))
  return out
