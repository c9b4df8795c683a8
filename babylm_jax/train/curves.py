"""Learning curves: zero-shot accuracy of the EMA parameters while a run trains.

With `train.eval_suites` set, the loop calls `LearningCurves.at_step` after every step. At the
start, at each point of the word grid (the BabyLM milestones, or every
`train.eval_suites_every_words` words) and at the last step of the schedule, each suite,
cut once to a fixed subset (`eval.suites.subset`, about `train.eval_suites_max_items`
items), is scored with `train.eval_suites_backend` by the same `Scorer` as `--mode=eval`, on
the EMA parameters as they are in memory: no checkpoint is read, and every batch shape is
compiled once for the whole run. `--mode=eval --config.eval.max_items=N` at a checkpoint of
the same step gives the same numbers.

One record per point goes to metrics.jsonl and TensorBoard:
  {"step", "words_seen", "tokens_seen", "zero_shot": {"<suite>/<backend>": macro accuracy},
   "zero_shot_items": {"<suite>": items scored}, "zero_shot_s": seconds spent}
and plots/zero_shot.png (accuracy against words seen) is redrawn.
"""

from __future__ import annotations

import time

import jax

from babylm_jax.errors import ConfigError
from babylm_jax.train.checkpoint import milestones_crossed


def grid_crossed(words_before: int, words_after: int, every_words: int) -> bool:
  """Whether a step that took words seen from words_before to words_after reached a point of
  the grid: a BabyLM milestone (every_words 0) or a multiple of every_words."""
  if every_words <= 0:
    return bool(milestones_crossed(words_before, words_after))
  return words_before // every_words < words_after // every_words


class LearningCurves:
  """The suites, their fixed subsets and tokenized options, and one Scorer for the run."""

  def __init__(self, config, graphdef, tokenizer, writer, workdir):
    from babylm_jax.eval import run, scoring, suites
    t = config.train
    if t.eval_suites_every_words < 0 or t.eval_suites_max_items < 0:
      raise ConfigError("train.eval_suites_every_words and train.eval_suites_max_items must "
                        "not be negative; use 0 for the BabyLM milestones / whole suites.")
    self.every_words = int(t.eval_suites_every_words)
    self.backends = scoring.parse_backends(t.eval_suites_backend, "train.eval_suites_backend")
    self.suites = [suites.subset(suites.load_suite(name, config.eval.data[name]),
                                 t.eval_suites_max_items)
                   for name, _ in run.resolve_tasks(t.eval_suites, "train.eval_suites",
                                                   suites.SUITES, presets={})]
    self.chance = {}
    for suite in self.suites:
      per_paradigm = {it.paradigm: 1.0 / len(it.options) for it in suite.items}
      for backend in self.backends:
        self.chance[f"{suite.name}/{backend}"] = sum(per_paradigm.values()) / len(per_paradigm)
    self._config, self._graphdef, self._tokenizer = config, graphdef, tokenizer
    self._writer, self._workdir = writer, workdir
    self._scorer = None

  @classmethod
  def create(cls, config, graphdef, tokenizer, writer, workdir) -> LearningCurves | None:
    """The run's learning curves, or None when train.eval_suites is empty."""
    if not str(config.train.eval_suites).strip():
      return None
    return cls(config, graphdef, tokenizer, writer, workdir)

  def at_step(self, ema_params, step: int, *, words_before: int, words: int, tokens: int,
              last: bool):
    """Evaluates after `step` when it reached a point of the grid or is the last step."""
    if last or grid_crossed(words_before, words, self.every_words):
      self.evaluate(ema_params, step, words=words, tokens=tokens)

  def evaluate(self, ema_params, step: int, *, words: int, tokens: int) -> dict:
    """Scores every suite and backend with `ema_params`; writes and returns the record."""
    from babylm_jax.eval import report, run, scoring
    from babylm_jax.train.metrics import plot_zero_shot
    from babylm_jax.train.step import params_to_model
    start = time.perf_counter()
    model = params_to_model(self._graphdef, ema_params)
    if self._scorer is None:
      self._scorer = scoring.Scorer(model, max_len=self._config.model.max_position,
                                    tokens_per_batch=self._config.eval.tokens_per_batch)
    else:
      self._scorer.load(model)
    accuracy = {}
    for suite in self.suites:
      for backend in self.backends:
        scores = run.score_suite(self._scorer, self._tokenizer, suite, backend)
        accuracy[f"{suite.name}/{backend}"] = report.accuracy(suite.items,
                                                              scores)["macro_accuracy"]
    rec = dict(step=step, words_seen=words, tokens_seen=tokens, zero_shot=accuracy,
               zero_shot_items={s.name: len(s.items) for s in self.suites},
               zero_shot_s=time.perf_counter() - start)
    self._writer.write(rec, kind="zero_shot")
    if jax.process_index() == 0:
      plot_zero_shot(self._workdir, self._writer.records, self.chance, self._writer.unit)
    return rec
