"""`--mode=eval`: score a run's checkpoint on the zero-shot tasks and write the reports.

Tasks (`eval.suites`, a comma list; `babylm` and `babylm_fast` stand for the official full and
fast zero-shot sets):
  blimp, blimp_fast, supplement, ewok, entity_tracking, comps   accuracy over option sets
  wug_adj, wug_past                                            correlation with people
  reading                                                      surprisal vs reading times
  aoa            every milestone: age of acquisition (aoa.py), its surprisal.json
  zhoblimp, blimp_nl, multiblimp_eng, multiblimp_nld, xcomps_nl, xcomps_zh
                 the 2026 multilingual track's minimal pairs; the preset `babylm_multilingual`
                 runs its zeroshot_{eng,nld,zho} tasks from eval.data.<task>, lists the others
                 (no data, no reader) as missing, and the summary adds the per-language rows
                 (multilingual.py)
A task named on its own reads `eval.data.<task>` and must have it. A preset reads the official
layout under `eval.data_root` (full_eval/... or fast_eval/..., see layout.py); a task of it
whose folder or file is absent is listed as missing, with the path, and the others go on (no
fallback to other data). Every report says whether its data is the official set (layout.check,
by the counts the pipeline's collate checks). For each task and backend in eval.backend:
  workdir/eval/<task>-<backend>.json   the task's numbers, its `headline` as the leaderboard
                                       shows it, `data_set` (official or not), the checkpoint,
                                       data files with their hashes
  workdir/eval/<task>-<backend>.png    its chart
then workdir/eval/summary.{json,md} and the same table on stdout (summary.py). With
eval.words=all every milestone checkpoint is evaluated into eval/words_<N>/, and
eval/learning_curve.png draws each task's number against words seen. The library versions are
recorded in workdir/versions.json (versions.py) and shown in the summary.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np

from babylm_jax import checkpoint_params
from babylm_jax import versions
from babylm_jax.errors import ConfigError, DataError, UserError
from babylm_jax.eval import layout, multilingual, reading, report, scoring, suites as suites_lib
from babylm_jax.eval import summary as summary_lib

TASKS = suites_lib.SUITES + ("reading", "aoa")
PRESETS = {name: tuple(layout.LAYOUT[s]) for name, s in layout.PRESETS.items()}
# The multilingual track's tasks, those without a reader included (listed as missing).
PRESETS[multilingual.PRESET] = multilingual.TASKS
MULTILINGUAL = "multilingual"  # Source.sets of a task checked by multilingual.check


def resolve_tasks(spec: str, field: str = "eval.suites", tasks=TASKS,
                  presets=PRESETS) -> list[tuple[str, str | None]]:
  """(task, the preset that brings it in or None when named itself) in order, presets
  expanded; a task named itself must have data."""
  names = [s.strip() for s in str(spec).split(",") if s.strip()]
  if not names:
    raise ConfigError(f"{field} is empty; set it to some of {', '.join(tasks)}"
                      + (f" or a preset ({', '.join(presets)})." if presets else "."))
  both = [s for s in dict.fromkeys(names) if s in presets]
  if len(both) > 1:
    raise ConfigError(f"{field} names the presets {' and '.join(both)}; name one (they score "
                      f"the same columns on different sets).")
  out: dict[str, str | None] = {}
  for s in names:
    if s in presets:
      for t in presets[s]:
        out.setdefault(t, s)
    elif s in tasks:
      out[s] = None
    else:
      raise ConfigError(f"{field} entry '{s}' is unknown; use a comma list of "
                        f"{', '.join(tasks)}"
                        + (f" or a preset ({', '.join(presets)})." if presets else "."))
  return list(out.items())


def parse_suites(spec: str, field: str = "eval.suites") -> list[str]:
  return [t for t, _ in resolve_tasks(spec, field)]


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a task's data is read, and the official sets its column may stand for."""
  task: str
  folder: str
  files: tuple[str, ...] | None  # only these files of the folder; None: every .jsonl
  sets: tuple[str, ...]
  preset: str | None  # None: named on its own, read from eval.data.<task>


def sources(config) -> list[Source]:
  out = []
  for name, preset in resolve_tasks(config.eval.suites):
    if name == "aoa":  # every milestone at once: run_eval hands it to aoa.py
      continue
    if preset is None:
      out.append(Source(name, config.eval.data[name], None,
                        layout.sets_of(name) or (MULTILINGUAL,), None))
    elif preset == multilingual.PRESET:
      out.append(Source(name, config.eval.data.get(name) or "", None, (MULTILINGUAL,), preset))
    else:
      data_set = layout.PRESETS[preset]
      folder, files = layout.place(config.eval.data_root, data_set, name)
      out.append(Source(name, folder, files, (data_set,), preset))
  return out


def _absent(source: Source) -> str | None:
  """The first path of a preset task's layout that does not exist, or None."""
  paths = [source.folder]
  if source.task == "reading":
    paths.append(os.path.join(source.folder, reading.FILE_NAME))
  paths += [os.path.join(source.folder, f) for f in source.files or ()]
  return next((p for p in paths if not os.path.exists(p)), None)


def load_tasks(config) -> tuple[list[tuple[object, Source]], list[dict]]:
  """([(data, source)] of every task to run, [{'task', 'folder', 'hint'}] of preset tasks
  whose data is absent)."""
  loaded, missing = [], []
  for src in sources(config):
    if src.preset == multilingual.PRESET and (why := multilingual.missing_reason(src.task)):
      missing.append(dict(task=src.task, folder="", hint=why))
      continue
    if src.preset == multilingual.PRESET and (absent := _absent(src)):
      missing.append(dict(
          task=src.task, folder=absent,
          hint=f"no '{absent}'; put {multilingual.SOURCES[src.task]} there as .jsonl files "
               f"or point --config.eval.data.{src.task} at them"))
      continue
    if src.preset is not None and (absent := _absent(src)):
      data_set = src.sets[0]
      missing.append(dict(
          task=src.task, folder=absent,
          hint=f"no '{absent}'; put the official pipeline's evaluation_data under "
               f"--config.eval.data_root (it reads {data_set}_eval/"
               f"{layout.LAYOUT[data_set][src.task]}), or name the task on its own with "
               f"--config.eval.data.{src.task} (its column then says whether the data is "
               f"the official set)"))
      continue
    data = (reading.load(src.folder) if src.task == "reading" else
            suites_lib.subset(suites_lib.load_suite(src.task, src.folder, src.files),
                              config.eval.max_items))
    loaded.append((data, src))
  if not loaded and "aoa" not in parse_suites(config.eval.suites):
    raise DataError(f"no task of eval.suites '{config.eval.suites}' has its data; "
                    + "; ".join(m["hint"] for m in missing[:1]) + ".")
  return loaded, missing


def load_tokenizer(workdir: str):
  from tokenizers import Tokenizer
  path = os.path.join(workdir, "tokenizer.json")
  if not os.path.isfile(path):
    raise DataError(f"'{path}' does not exist; evaluate a workdir that training has written "
                    f"its tokenizer to.")
  return Tokenizer.from_file(path)


def suite_sequences(tokenizer, suite: suites_lib.Suite, max_len: int) -> list[scoring.Seq]:
  """One scored sequence per option of every item, in order."""
  contexts, targets = [], []
  for item in suite.items:
    contexts += item.contexts()
    targets += list(item.options)
  return scoring.tokenize(tokenizer, contexts, targets, max_len)


def score_suite(scorer: scoring.Scorer, tokenizer, suite: suites_lib.Suite,
                backend: str) -> list[np.ndarray]:
  """Per item, the scores of its options (option 0 is the correct one)."""
  counts = [len(item.options) for item in suite.items]
  unit = "pair" if set(counts) == {2} else "item"
  flat = scorer.score(suite_sequences(tokenizer, suite, scorer.max_len), backend,
                      progress=(f"{suite.name} {backend}", len(counts), unit))
  return np.split(flat, np.cumsum(counts)[:-1])


def check_reading_subwords(config) -> str:
  value = config.eval.reading_subwords
  if value not in reading.SUBWORDS:
    raise ConfigError(f"eval.reading_subwords '{value}' is unknown; use "
                      f"{' or '.join(reading.SUBWORDS)}.")
  return value


def score_task(scorer: scoring.Scorer, tokenizer, task, backend: str,
               subwords: str = "official") -> dict:
  """The task's numbers with `headline`: {leaderboard column: number as it shows it}.

  `subwords` is how the reading task scores words of several tokens (see reading.py).
  """
  if task.name == "reading":
    return reading.evaluate(scorer, tokenizer, task, backend, subwords)
  scores = score_suite(scorer, tokenizer, task, backend)
  if task.name in suites_lib.CORRELATION_SUITES:
    result = report.correlation(task.items, scores)
    rho = result["spearman"]
    return dict(result, headline={task.name: None if rho is None else 100.0 * rho})
  result = report.accuracy(task.items, scores)
  if task.name in multilingual.READ:  # lm-eval's aggregation (English BLiMP: the macro)
    return dict(result, headline={task.name: multilingual.headline(task.name, result)})
  return dict(result, headline={task.name: 100.0 * result["macro_accuracy"]})


def _plot(path: str, task_name: str, result: dict, title: str):
  if task_name == "reading":
    reading.plot(path, result, title)
  elif task_name in suites_lib.CORRELATION_SUITES:
    report.plot_correlation(path, result, title)
  else:
    report.plot(path, result, title)


def headlines(model, tokenizer, config, names, backend: str = "causal") -> dict[str, float]:
  """{leaderboard column: number} for `names` scored with `model`; writes nothing.

  For hooks that follow a few tasks during training: accuracies are macro averages in percent
  (as in the reports' `headline`).
  """
  subwords = check_reading_subwords(config)
  scorer = scoring.Scorer(model, max_len=config.model.max_position,
                          tokens_per_batch=config.eval.tokens_per_batch)
  out = {}
  for name in names:
    task = (reading.load(config.eval.data[name]) if name == "reading"
            else suites_lib.load_suite(name, config.eval.data[name]))
    out.update(score_task(scorer, tokenizer, task, backend, subwords)["headline"])
  return out


def evaluate(model, tokenizer, config, workdir: str, info: dict, *, tasks=None,
             out_dir: str | None = None, also=()) -> list[dict]:
  """Scores every configured task and backend with `model`; writes and returns the reports.

  `tasks` is load_tasks(config) when already read; `out_dir` defaults to workdir/eval; `also`
  are reports already written there that the summary shows too (AoA's).
  """
  backends = scoring.parse_backends(config.eval.backend)
  subwords = check_reading_subwords(config)
  loaded, missing = tasks if tasks is not None else load_tasks(config)  # fail early
  scorer = scoring.Scorer(model, max_len=config.model.max_position,
                          tokens_per_batch=config.eval.tokens_per_batch)
  out_dir = out_dir or os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  rows = []
  for task, src in loaded:
    data_set = (multilingual.check(task.name, task) if src.sets == (MULTILINGUAL,)
                else layout.check(task.name, src.sets, task))
    for backend in backends:
      t0 = time.perf_counter()
      result = score_task(scorer, tokenizer, task, backend, subwords)
      result = dict(
          suite=task.name, backend=backend, **result,
          step=info.get("step"), words_seen=info.get("words_seen"),
          tokens_seen=info.get("tokens_seen"), use_ema=info.get("use_ema"),
          checkpoint=str(info.get("path", "")),
          data_dir=os.path.abspath(src.folder), files=list(task.files), preset=src.preset,
          data_set=data_set, max_items=config.eval.max_items,
          seconds=round(time.perf_counter() - t0, 2))
      stem = os.path.join(out_dir, f"{task.name}-{backend}")
      report.write_json(stem + ".json", result)
      _plot(stem + ".png", task.name, result, f"{task.name} ({backend}, step {info.get('step')})")
      logging.info("%s/%s: %s in %.1fs", task.name, backend,
                   ", ".join(f"{k} {v if v is None else round(v, 2)}"
                             for k, v in result["headline"].items()), result["seconds"])
      rows.append(result)
  names = [f"{r['suite']}-{r['backend']}.json" for r in rows + list(also)]
  print(summary_lib.table(summary_lib.write(out_dir, info, missing, names,
                                            versions.read(workdir))), flush=True)
  return rows


def check_backends_fit(config, backends: list[str]):
  """Refuses a backend that reads what the objective never trained (e.g. causal scoring of a
  masked-only model)."""
  from babylm_jax.train import objectives
  kind = config.objective.kind
  fit = objectives.get(config).BACKENDS
  for b in backends:
    if b not in fit:
      raise ConfigError(f"eval.backend '{b}' does not fit a model trained with objective.kind "
                        f"'{kind}', which was never trained to predict what {b} reads; use "
                        f"--config.eval.backend={','.join(fit)}.")


def run_eval(config, workdir: str) -> list[dict]:
  """Loads the checkpoint the config names (newest, eval.step or eval.words) and evaluates.

  eval.words=all evaluates every milestone, each into eval/words_<N>/, and draws the curves.
  """
  from babylm_jax.checkpoint_params import load_model
  from babylm_jax.workdir import check_writable
  resolve_tasks(config.eval.suites)
  check_backends_fit(config, scoring.parse_backends(config.eval.backend))
  check_reading_subwords(config)
  check_writable(os.path.join(workdir, "eval"), "the report folder")
  words = config.eval.words
  if words is not None and words != "all" and not isinstance(words, int):
    raise ConfigError(f"eval.words '{words}' is neither a number of words nor 'all'.")
  tokenizer = load_tokenizer(workdir)
  tasks = load_tasks(config)
  aoa_rows = []
  if "aoa" in parse_suites(config.eval.suites):  # all milestones, whatever eval.words says
    from babylm_jax.eval import aoa
    aoa_rows = aoa.run_aoa(config, workdir, tokenizer, checkpoint_params.saved_keys(workdir, milestone=True))
    versions.record(workdir, "eval")
    if not tasks[0]:
      print(summary_lib.table(summary_lib.write(
          os.path.join(workdir, "eval"), None, tasks[1],
          [f"aoa-{r['backend']}.json" for r in aoa_rows], versions.read(workdir))), flush=True)
      return aoa_rows
  if words != "all":
    model, info = load_model(config, workdir, step=config.eval.step, words=words,
                             use_ema=config.eval.use_ema)
    versions.record(workdir, "eval")  # once the checkpoint is known to load
    return aoa_rows + evaluate(model, tokenizer, config, workdir, info, tasks=tasks,
                               also=aoa_rows)
  milestones = checkpoint_params.saved_keys(workdir, milestone=True)
  if not milestones:
    raise UserError(f"workdir '{workdir}' holds no milestone checkpoints; train with "
                    f"checkpoint.milestones=True past 1M words, or drop eval.words=all.")
  versions.record(workdir, "eval")
  rows, summaries = list(aoa_rows), []
  eval_dir = os.path.join(workdir, "eval")
  for n in milestones:
    model, info = load_model(config, workdir, words=n, use_ema=config.eval.use_ema)
    out_dir = os.path.join(eval_dir, f"words_{n}")
    rows += evaluate(model, tokenizer, config, workdir, info, tasks=tasks, out_dir=out_dir)
    summaries.append(summary_lib.build(out_dir, info, versions=versions.read(workdir)))
  report.write_json(os.path.join(eval_dir, "learning_curve.json"),
                    dict(milestones=summaries))
  summary_lib.plot_learning_curve(os.path.join(eval_dir, "learning_curve.png"), summaries)
  return rows
