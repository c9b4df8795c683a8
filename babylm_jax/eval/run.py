"""`--mode=eval`: score a run's checkpoint on the zero-shot suites and write the reports.

For each suite in `eval.suites` and each backend in `eval.backend`:
  workdir/eval/<suite>-<backend>.json   per-paradigm accuracy, macro/micro, ties, checkpoint,
                                        data files with their hashes
  workdir/eval/<suite>-<backend>.png    per-paradigm bars with the chance line
and a summary table on stdout.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from babylm_jax.errors import ConfigError, DataError
from babylm_jax.eval import report, scoring, suites as suites_lib


def parse_suites(spec: str) -> list[str]:
  names = [s.strip() for s in str(spec).split(",") if s.strip()]
  for s in names:
    if s not in suites_lib.SUITES:
      raise ConfigError(f"eval.suites entry '{s}' is unknown; use a comma list of "
                        f"{', '.join(suites_lib.SUITES)}.")
  if not names:
    raise ConfigError(f"eval.suites is empty; set it to some of "
                      f"{', '.join(suites_lib.SUITES)}.")
  return names


def load_tokenizer(workdir: str):
  from tokenizers import Tokenizer
  path = os.path.join(workdir, "tokenizer.json")
  if not os.path.isfile(path):
    raise DataError(f"'{path}' does not exist; evaluate a workdir that training has written "
                    f"its tokenizer to.")
  return Tokenizer.from_file(path)


def score_suite(scorer: scoring.Scorer, tokenizer, suite: suites_lib.Suite,
                backend: str) -> list[np.ndarray]:
  """Per item, the scores of its options (option 0 is the correct one)."""
  contexts, targets, counts = [], [], []
  for item in suite.items:
    contexts += [item.context] * len(item.options)
    targets += list(item.options)
    counts.append(len(item.options))
  seqs = scoring.tokenize(tokenizer, contexts, targets, scorer.max_len)
  unit = "pair" if set(counts) == {2} else "item"
  flat = scorer.score(seqs, backend, progress=(f"{suite.name} {backend}", len(counts), unit))
  return np.split(flat, np.cumsum(counts)[:-1])


def evaluate(model, tokenizer, config, workdir: str, info: dict) -> list[dict]:
  """Scores every configured suite and backend with `model`; writes and returns the reports."""
  names = parse_suites(config.eval.suites)
  backends = scoring.parse_backends(config.eval.backend)
  loaded = [suites_lib.load_suite(n, config.eval.data[n]) for n in names]  # fail early
  scorer = scoring.Scorer(model, max_len=config.model.max_position,
                          tokens_per_batch=config.eval.tokens_per_batch)
  out_dir = os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  rows = []
  for suite in loaded:
    for backend in backends:
      t0 = time.perf_counter()
      scores = score_suite(scorer, tokenizer, suite, backend)
      result = report.accuracy(suite.items, scores)
      result = dict(
          suite=suite.name, backend=backend, **result,
          step=info.get("step"), words_seen=info.get("words_seen"),
          tokens_seen=info.get("tokens_seen"), use_ema=info.get("use_ema"),
          checkpoint=str(info.get("path", "")),
          data_dir=os.path.abspath(config.eval.data[suite.name]), files=list(suite.files),
          seconds=round(time.perf_counter() - t0, 2))
      stem = os.path.join(out_dir, f"{suite.name}-{backend}")
      report.write_json(stem + ".json", result)
      report.plot(stem + ".png", result, f"{suite.name} ({backend}, step {info.get('step')})")
      logging.info("%s/%s: macro %.4f micro %.4f ties %d in %.1fs", suite.name, backend,
                   result["macro_accuracy"], result["micro_accuracy"], result["ties"],
                   result["seconds"])
      rows.append(result)
  print(report.summary_table(rows), flush=True)
  return rows


def run_eval(config, workdir: str) -> list[dict]:
  """Loads the checkpoint the config names (newest, eval.step or eval.words) and evaluates."""
  from babylm_jax.train.checkpoint import load_model
  from babylm_jax.workdir import check_writable
  parse_suites(config.eval.suites)
  scoring.parse_backends(config.eval.backend)
  check_writable(os.path.join(workdir, "eval"), "the report folder")
  tokenizer = load_tokenizer(workdir)
  model, info = load_model(config, workdir, step=config.eval.step, words=config.eval.words,
                           use_ema=config.eval.use_ema)
  return evaluate(model, tokenizer, config, workdir, info)
