"""`--mode=finetune`: the BabyLM (Super)GLUE tasks on a run's checkpoint, fine-tuned as the
official BabyLM 2025 pipeline does it (`finetune.method=full`) or prompt-tuned with WARP
(`finetune.method=warp`, see eval/warp.py) as the WARP reference trains it.

The official recipe (the pipeline's eval_finetuning.sh and its trainer): the pair framed as
the exported tokenizer frames it (`<s> a </s> b`, the longer text cut first to 512 tokens);
the encoder in training mode (its dropout is the model's `model.dropout`, as the exported
model's `hidden_dropout_prob`), and a new head on the first token: LayerNorm -> dense -> GELU
-> LayerNorm -> dropout 0.1 -> dense. The encoder attends as the pipeline's AutoModel of our
export does: bidirectionally, except for a causal-only model (objective.kind='causal'), whose
export attends causally (the pipeline passes only a padding mask and neither --causal nor
--take_final). Its first token `<s>` then sees nothing but itself, so the head reads the same
state for every example and can learn only the label prior: that is what the leaderboard
measures of such a model, and what this reproduces. AdamW (betas 0.9,
0.999, eps 1e-8, weight decay 0.01 on every trained parameter), lr 3e-5 rising linearly over
the first 6% of the steps and falling along a cosine to 0.1 x lr; batches of 32 (16 for boolq
and multirc), shuffled, the last partial batch dropped; 10 epochs (30 for wsc); seed 42.
After every epoch the validation split is scored, and the epoch with the best selection metric
(accuracy, F1 for mrpc and qqp) is kept; its validation metrics and predictions are the result.

WARP's recipe (the reference's README command for WARP and its configs/warp.jsonnet, with
the code they run): lr 1e-3, AdamW without weight decay, the gradients' global norm clipped
to 1, a slanted-triangular schedule (linear from lr/32 up to lr over the first 6% of the
steps, then linear down to lr/32), batches of 8, 30 epochs; the same selection by epoch.

Writes workdir/eval/finetune-<task>.json (WARP: warp-<task>.json) with the leaderboard's
`headline` number (validation accuracy, x100; F1 and MCC beside it) and `official_data`
(whether the splits are the official ones, whole), and the pipeline's results layout
(eval/glue.py) under finetune.results_dir.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from babylm_jax import versions
from babylm_jax.config import BOS_ID, PAD_ID
from babylm_jax.data.tokenizer import PAIR_TEMPLATE, framed
from babylm_jax.errors import ConfigError, DataError
from babylm_jax.eval import glue, layout
from babylm_jax.eval.report import write_json
from babylm_jax.eval.warp import PROMPT_INITS, VERBALIZER_INITS, Warp, num_prompts
from babylm_jax.model.gpt_bert import dropout, layer_norm

METHOD_NAMES = ("full", "warp")
REPORT_PREFIX = {"full": "finetune", "warp": "warp"}


@dataclasses.dataclass(frozen=True)
class Recipe:
  """The hyperparameters of one task's run, after the per-task defaults are filled in."""
  method: str
  batch_size: int
  lr: float
  epochs: int
  seed: int
  max_length: int
  warmup_fraction: float
  weight_decay: float
  min_lr_ratio: float
  classifier_dropout: float
  eval_batch_size: int
  causal: bool  # the encoder attends causally (a causal-only model, as its export does)
  schedule: str  # 'cosine' (the pipeline's) or 'slanted_triangular' (WARP's)
  grad_norm: float  # clip the gradients' global norm to this; 0: no clipping
  objective: str  # what the model was trained with; WARP reads the mask accordingly
  # Stop after this many epochs without a gain of more than 0.001 in the selection metric
  # (transformers' EarlyStoppingCallback, the multilingual track's --patience); None: never.
  patience: int | None = None
  prompts_per_gap: int | None = None  # WARP only, as the three below
  prompt_init: str | None = None
  verbalizer_init: str | None = None


def recipe(config, task: str) -> Recipe:
  """`config.finetune` for `task`: unset batch size, epochs and lr take the method's value
  (full: the official per-task ones; warp: `finetune.warp`'s; the multilingual track's
  tasks: `finetune.multilingual`'s)."""
  fc = config.finetune
  if glue.get(task) is None:
    raise ConfigError(f"finetune.task '{task}' is unknown; use all or some of "
                      f"{', '.join(glue.TASKS)} or the multilingual track's "
                      f"{', '.join(glue.TRACK_TASKS)}.")
  if fc.method not in METHOD_NAMES:
    raise ConfigError(f"finetune.method '{fc.method}' is unknown; use full or warp.")
  seed, max_length = fc.seed, fc.max_length
  if task in glue.TRACK_TASKS:
    if fc.method != "full":
      raise ConfigError(f"finetune.task '{task}' is a single-text task of the multilingual "
                        f"track, fine-tuned in full only; use finetune.method=full.")
    # babylm-org/babylm-eval multilingual/scripts/finetune_model.sh and the transformers
    # Trainer defaults it runs with: AdamW without weight decay, linear decay to 0 from
    # the first step, no warmup, early stopping, 128 tokens.
    mc = fc.multilingual
    defaults = dict(batch_size=mc.batch_size, lr=mc.lr, epochs=mc.epochs)
    rest = dict(warmup_fraction=0.0, weight_decay=0.0, min_lr_ratio=0.0, schedule="linear",
                grad_norm=0.0, patience=mc.patience)
    seed, max_length = mc.seed, mc.max_length
  elif fc.method == "full":
    defaults = dict(batch_size=16 if task in ("boolq", "multirc") else 32, lr=3e-5,
                    epochs=30 if task == "wsc" else 10)
    rest = dict(warmup_fraction=fc.warmup_fraction, weight_decay=fc.weight_decay,
                min_lr_ratio=fc.min_lr_ratio, schedule="cosine", grad_norm=0.0)
  else:
    wc = fc.warp
    defaults = dict(batch_size=wc.batch_size, lr=wc.lr, epochs=wc.epochs)
    rest = dict(warmup_fraction=wc.warmup_fraction, weight_decay=wc.weight_decay,
                min_lr_ratio=wc.min_lr_ratio, schedule="slanted_triangular",
                grad_norm=wc.grad_norm, prompts_per_gap=wc.prompts_per_gap,
                prompt_init=wc.prompt_init, verbalizer_init=wc.verbalizer_init)
  r = Recipe(
      method=fc.method,
      **{k: v if fc[k] is None else fc[k] for k, v in defaults.items()},
      seed=seed, max_length=max_length, classifier_dropout=fc.classifier_dropout,
      eval_batch_size=fc.eval_batch_size, objective=config.objective.kind,
      causal=config.objective.kind == "causal", **rest)
  where = "finetune." if fc.method == "full" else "finetune.warp."
  for name in ("batch_size", "lr", "epochs", "max_length", "eval_batch_size"):
    if getattr(r, name) <= 0:
      raise ConfigError(f"finetune.{name} ({getattr(r, name)}) must be positive; leave it "
                        f"unset for the method's value.")
  for name in ("warmup_fraction", "min_lr_ratio", "classifier_dropout"):
    if not 0 <= getattr(r, name) < 1:
      prefix = "finetune." if name == "classifier_dropout" else where
      raise ConfigError(f"{prefix}{name} ({getattr(r, name)}) must lie in [0, 1).")
  for name in ("weight_decay", "grad_norm"):
    if getattr(r, name) < 0:
      raise ConfigError(f"{where}{name} ({getattr(r, name)}) must not be negative.")
  needed = 16
  if fc.method == "warp":
    if not (isinstance(r.prompts_per_gap, int) and r.prompts_per_gap >= 1):
      raise ConfigError(f"finetune.warp.prompts_per_gap ({r.prompts_per_gap}) must be a "
                        f"positive whole number (5 in the reference's WARP-20).")
    if r.prompt_init not in PROMPT_INITS:
      raise ConfigError(f"finetune.warp.prompt_init '{r.prompt_init}' is unknown; use "
                        f"{' or '.join(PROMPT_INITS)}.")
    if r.verbalizer_init not in VERBALIZER_INITS:
      raise ConfigError(f"finetune.warp.verbalizer_init '{r.verbalizer_init}' is unknown; "
                        f"use {' or '.join(VERBALIZER_INITS)}.")
    needed += num_prompts(r.prompts_per_gap) + 2
  if r.max_length < needed:
    raise ConfigError(f"finetune.max_length ({r.max_length}) leaves no room for the pair; "
                      f"raise it to {needed} or more (the official value is 512).")
  return r


def lr_schedule(r: Recipe, total_steps: int):
  """step -> lr. 'cosine': a linear rise from 0 over int(warmup_fraction x steps), then a
  cosine down to min_lr_ratio x lr (the pipeline's cosine_schedule_with_warmup).
  'slanted_triangular' (AllenNLP's, which the WARP reference runs with cut_frac 0.06 and
  ratio 32): linear from min_lr_ratio x lr up to lr over int(warmup_fraction x steps), then
  linear down to min_lr_ratio x lr at the last step."""
  warmup = int(r.warmup_fraction * total_steps)

  def slanted(step: int) -> float:
    step = min(step, total_steps)
    if step < warmup:
      rise = step / warmup
    else:
      rise = 1 - (step - warmup) / max(1, total_steps - warmup)
    return r.lr * (r.min_lr_ratio + (1 - r.min_lr_ratio) * rise)

  if r.schedule == "slanted_triangular":
    return slanted
  if r.schedule == "linear":  # transformers' linear schedule without warmup
    return lambda step: r.lr * max(0.0, 1 - step / max(1, total_steps))

  def schedule(step: int) -> float:
    if step < warmup:
      return r.lr * step / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return r.lr * max(r.min_lr_ratio, r.min_lr_ratio + (1 - r.min_lr_ratio) * 0.5
                      * (1 + math.cos(math.pi * progress)))

  return schedule


def _torch_linear(d_in: int, d_out: int, rngs: nnx.Rngs) -> nnx.Linear:
  # PyTorch's nn.Linear initialisation, as the pipeline's head starts: U(+-1/sqrt(d_in)).
  bound = d_in ** -0.5
  return nnx.Linear(d_in, d_out, rngs=rngs,
                    kernel_init=nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
                    bias_init=lambda key, shape, dtype: jax.random.uniform(
                        key, shape, dtype, -bound, bound))


class Classifier(nnx.Module):
  """Full fine-tuning: the encoder and the pipeline's classification head on `<s>`.

  The LM head is not part of it (the pipeline loads the bare encoder), so it is not trained.
  The encoder attends causally when `recipe.causal` (see the module's docstring).
  """

  template = PAIR_TEMPLATE
  trainable = nnx.All(nnx.Param, nnx.Not(nnx.PathContains("head_module")))

  def __init__(self, encoder, task, recipe, tokenizer, *, rngs: nnx.Rngs):
    del tokenizer
    D = encoder.cfg.hidden_size
    self.encoder = encoder
    self.dense = _torch_linear(D, D, rngs)
    self.out = _torch_linear(D, task.num_labels, rngs)
    self.dropout = recipe.classifier_dropout
    self.causal = recipe.causal

  @staticmethod
  def frame(encoding) -> tuple[list[int], int]:
    """(token ids, read position): the head reads `<s>`."""
    return encoding.ids, 0

  def features(self, ids_BT, seg_BT, read_B, *, deterministic, rngs=None):
    """[B, D] float32: the encoder's state the head reads."""
    is_causal_B = jnp.full((ids_BT.shape[0],), self.causal)
    hidden_BTD = self.encoder.encode(ids_BT, seg_BT, is_causal_B, deterministic=deterministic,
                                     rngs=rngs)
    return hidden_BTD[jnp.arange(ids_BT.shape[0]), read_B].astype(jnp.float32)

  def __call__(self, ids_BT, seg_BT, read_B, *, deterministic, rngs=None):
    x_BD = self.features(ids_BT, seg_BT, read_B, deterministic=deterministic, rngs=rngs)
    h_BD = jax.nn.gelu(self.dense(layer_norm(x_BD, 1e-5)), approximate=False)
    h_BD = dropout(layer_norm(h_BD, 1e-5), self.dropout, deterministic, rngs)
    return self.out(h_BD)


METHODS = {"full": Classifier, "warp": Warp}


@dataclasses.dataclass(frozen=True)
class Encoded:
  seqs: list  # token ids per example
  reads: np.ndarray  # int32 [N]: the position the method reads
  truncated: int  # examples whose pair was cut to fit


def encode(tokenizer, method, pairs, max_length: int) -> Encoded:
  """The framed, truncated token ids of text pairs, as the method (a model, or the
  Classifier class) frames them: its `template` and `frame`."""
  tok = framed(tokenizer, method.template, max_length)
  encs = tok.encode_batch(list(pairs))
  framed_ = [method.frame(e) for e in encs]
  reads = np.asarray([read for _, read in framed_], np.int32)
  return Encoded([ids for ids, _ in framed_], reads, sum(bool(e.overflowing) for e in encs))


def _length_bucket(n: int, max_length: int) -> int:
  # Powers of two from 32: a handful of compiled shapes per run.
  T = 32
  while T < n:
    T *= 2
  return min(T, max_length)


def _batch(data: Encoded, idx, rows: int, max_length: int):
  seqs = [data.seqs[i] for i in idx]
  T = _length_bucket(max(len(s) for s in seqs), max_length)
  ids = np.full((rows, T), PAD_ID, np.int32)
  seg = np.zeros((rows, T), np.int32)
  read = np.zeros(rows, np.int32)
  ids[:, 0], seg[:, 0] = BOS_ID, 1  # filler rows of an eval batch: one token, ignored
  for r, s in enumerate(seqs):
    ids[r, :len(s)], seg[r, :len(s)] = s, 1
  read[:len(idx)] = data.reads[idx]
  return ids, seg, read


def _make_steps(graphdef, weight_decay: float, grad_norm: float = 0.0):
  """(optimizer, train_step, predict), jitted. The learning rate is an argument, so tasks
  whose models have one structure share the compiled steps; the frozen state is an argument
  too, never a constant. AdamW as PyTorch's: decay of lr x weight_decay x p on every trained
  parameter, decoupled from the Adam step; with grad_norm > 0 the gradients' global norm is
  clipped to it first (WARP's trainer)."""
  clip = [optax.clip_by_global_norm(grad_norm)] if grad_norm > 0 else []
  tx = optax.chain(*clip, optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
                   optax.add_decayed_weights(weight_decay))

  @jax.jit
  def train_step(trained, frozen, opt_state, ids, seg, read, labels, lr, key):
    def loss_fn(t):
      model = nnx.merge(graphdef, t, frozen)
      logits = model(ids, seg, read, deterministic=False, rngs=nnx.Rngs(dropout=key))
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    loss, grads = jax.value_and_grad(loss_fn)(trained)
    updates, opt_state = tx.update(grads, opt_state, trained)
    return jax.tree.map(lambda p, u: p - lr * u, trained, updates), opt_state, loss

  @jax.jit
  def predict(trained, frozen, ids, seg, read):
    logits = nnx.merge(graphdef, trained, frozen)(ids, seg, read, deterministic=True)
    return jnp.argmax(logits, axis=-1)

  return tx, train_step, predict


def count_params(state) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))


def finetune(encoder, tokenizer, config, task_name: str, info: dict | None = None,
             compiled: dict | None = None):
  """Trains on `task_name` with the configured method: (report, predictions, best model).

  The predictions are the best epoch's labels for the validation split, in file order.
  `encoder` itself is never changed. `compiled` keeps the jitted steps for the next task
  with the same encoder.
  """
  r = recipe(config, task_name)
  task, fc = glue.get(task_name), config.finetune
  train = glue.load_split(fc.data_dir, task_name, "train", fc.max_train_examples)
  valid = glue.load_split(fc.data_dir, task_name, "valid", fc.max_valid_examples)
  method = METHODS[r.method]
  model = method(encoder, task, r, tokenizer, rngs=nnx.Rngs(r.seed))
  train_x = encode(tokenizer, model, train.pairs, r.max_length)
  valid_x = encode(tokenizer, model, valid.pairs, r.max_length)
  B = r.batch_size
  steps_per_epoch = len(train_x.seqs) // B
  if steps_per_epoch == 0:
    raise ConfigError(f"{task_name} has {len(train_x.seqs)} training examples, fewer than "
                      f"one batch of {B}; lower finetune.batch_size or use more examples.")
  total = steps_per_epoch * r.epochs

  graphdef, trained, frozen = nnx.split(model, method.trainable, ...)
  compiled = {} if compiled is None else compiled
  key = (r.method, task.num_labels, r.weight_decay, r.grad_norm, r.classifier_dropout,
         r.prompts_per_gap, r.causal)
  if key not in compiled:
    compiled[key] = _make_steps(graphdef, r.weight_decay, r.grad_norm)
  tx, train_step, predict = compiled[key]
  opt_state = tx.init(trained)
  schedule = lr_schedule(r, total)

  def predict_split(trained, data: Encoded) -> np.ndarray:
    order = np.argsort([len(s) for s in data.seqs], kind="stable")  # little padding
    pred = np.zeros(len(data.seqs), np.int32)
    for lo in range(0, len(order), r.eval_batch_size):
      idx = order[lo:lo + r.eval_batch_size]
      batch = _batch(data, idx, r.eval_batch_size, r.max_length)
      pred[idx] = np.asarray(predict(trained, frozen, *batch))[:len(idx)]
    return pred

  rng = np.random.default_rng(r.seed)
  base_key = jax.random.key(r.seed)
  best, history, step, since_gain, best_score = None, [], 0, 0, None
  t0 = time.perf_counter()
  for epoch in range(1, r.epochs + 1):
    perm = rng.permutation(len(train_x.seqs))
    losses = []
    for lo in range(0, steps_per_epoch * B, B):
      idx = perm[lo:lo + B]
      ids, seg, read = _batch(train_x, idx, B, r.max_length)
      trained, opt_state, loss = train_step(
          trained, frozen, opt_state, ids, seg, read, train.labels[idx],
          np.float32(schedule(step)), jax.random.fold_in(base_key, step))
      losses.append(loss)
      step += 1
    pred = predict_split(trained, valid_x)
    scores = glue.metrics(pred, valid.labels, task.metrics)
    history.append(dict(epoch=epoch, train_loss=float(np.mean(jax.device_get(losses))),
                        **{f"valid_{k}": v for k, v in scores.items()}))
    logging.info("finetune %s (%s) epoch %d: %s", task_name, r.method, epoch, history[-1])
    if task.keep == "last" or best is None or scores[task.select] > best[2][task.select]:
      best = (epoch, trained, scores, pred)
    if r.patience is not None:  # EarlyStoppingCallback: a gain must exceed 0.001
      gained = best_score is None or scores[task.select] - best_score > 0.001
      since_gain = 0 if gained else since_gain + 1
      best_score = max(best_score or 0.0, scores[task.select])
      if since_gain >= r.patience:
        logging.info("finetune %s: no gain for %d epochs, stopped", task_name, r.patience)
        break
  epoch, trained, scores, pred = best
  # The leaderboard's data: the whole official validation split, trained on the whole
  # training split, by the official method (the hyperparameters are not checked).
  sizes = {**layout.GLUE_SIZES, **glue.TRACK_VALID_SIZES}
  official_data = (r.method == "full" and fc.max_train_examples is None
                   and len(valid_x.seqs) == sizes[task_name])
  report = dict(
      task=task_name, method=r.method, headline=round(100 * scores[task.headline], 4),
      headline_metric=task.headline, **scores, official_data=official_data,
      select_metric=task.select, best_epoch=epoch, kept=task.keep, epochs_run=len(history),
      attention="causal" if r.causal else "bidirectional",
      trained_params=count_params(trained), recipe=dataclasses.asdict(r),
      model_dropout=float(encoder.cfg.dropout), train_examples=len(train_x.seqs),
      valid_examples=len(valid_x.seqs), truncated=train_x.truncated + valid_x.truncated,
      files=[train.file, valid.file], step=(info or {}).get("step"),
      words_seen=(info or {}).get("words_seen"), use_ema=(info or {}).get("use_ema"),
      checkpoint=str((info or {}).get("path", "")),
      seconds=round(time.perf_counter() - t0, 1), history=history)
  return report, pred, nnx.merge(graphdef, trained, frozen)


def parse_tasks(spec: str, data_dir: str) -> tuple[list[str], list[str]]:
  """(tasks to run, tasks skipped for want of files). `all` takes every task whose train and
  valid files exist; a task named explicitly must have both."""
  names = [s.strip() for s in str(spec).split(",") if s.strip()]
  if names == ["all"]:
    found, missing = glue.available(data_dir)
    if not found:
      raise DataError(f"finetune.data_dir '{data_dir}' holds no <task>.train.jsonl and "
                      f"<task>.valid.jsonl pair; point it at BabyLM's glue_filtered folder.")
    return found, missing
  if not names:
    raise ConfigError(f"finetune.task is empty; use all or some of {', '.join(glue.TASKS)}.")
  return names, []  # unknown names fail in recipe()


def _revision(config) -> str:
  """The pipeline's name for the checkpoint: main, or chck_<N>M for a milestone."""
  words = config.eval.words
  return "main" if words is None else f"chck_{words // 1_000_000}M"


def summary_table(rows: list[dict]) -> str:
  """Accuracy (the leaderboard's number) first, F1 and MCC beside it."""
  head = (f"{'task':8s} {'method':6s} {'accuracy':>9s} {'f1':>7s} {'mcc':>7s} "
          f"{'official':>8s} {'trained':>11s} {'epoch':>5s} {'seconds':>8s}")
  lines = [head, "-" * len(head)]
  for r in rows:
    f1 = f"{100 * r['f1']:7.2f}" if "f1" in r else f"{'-':>7s}"
    mcc = f"{100 * r['mcc']:7.2f}" if "mcc" in r else f"{'-':>7s}"
    official = "yes" if r.get("official_data") else "no"
    lines.append(f"{r['task']:8s} {r['method']:6s} {100 * r['accuracy']:9.2f} {f1} {mcc} "
                 f"{official:>8s} {r['trained_params']:11,d} {r['best_epoch']:5d} "
                 f"{r['seconds']:8.1f}")
  return "\n".join(lines)


def run_finetune(config, workdir: str) -> list[dict]:
  """Loads the checkpoint (as eval does), runs every task asked for, writes the reports."""
  from babylm_jax.eval.run import load_tokenizer
  from babylm_jax.checkpoint_params import load_model
  fc = config.finetune
  tasks, skipped = parse_tasks(fc.task, fc.data_dir)
  for task in tasks:  # bad names, settings or files fail before the checkpoint is read
    recipe(config, task)
    for split in ("train", "valid"):
      glue.load_split(fc.data_dir, task, split, 1)
  if skipped:
    print(f"finetune: skipped {', '.join(skipped)} (no train or valid file in "
          f"'{fc.data_dir}')", flush=True)
  from babylm_jax.workdir import check_writable
  check_writable(os.path.join(workdir, "eval"), "the report folder")
  tokenizer = load_tokenizer(workdir)
  model, info = load_model(config, workdir, step=config.eval.step, words=config.eval.words,
                           use_ema=config.eval.use_ema)
  versions.record(workdir, "finetune")
  name = fc.model_name or os.path.basename(os.path.abspath(workdir))
  name += "-warp" if fc.method == "warp" else ""  # never overwrites full fine-tuning's
  results_dir = fc.results_dir or os.path.join(workdir, "results")
  rows, compiled = [], {}
  for task in tasks:
    report, pred, _ = finetune(model, tokenizer, config, task, info, compiled)
    folder = glue.official_dir(results_dir, name, _revision(config), task)
    glue.write_official(folder, task, {k: report[k] for k in glue.get(task).metrics}, pred)
    report["predictions"] = os.path.join(folder, "predictions.json")
    write_json(os.path.join(workdir, "eval", f"{REPORT_PREFIX[fc.method]}-{task}.json"),
               report)
    rows.append(report)
  print(summary_table(rows + _other_method_rows(workdir, fc.method, tasks)), flush=True)
  from babylm_jax.eval import summary
  summary.refresh(workdir, versions.read(workdir))  # the rows join eval/summary.{json,md}
  return rows


def _other_method_rows(workdir: str, method: str, tasks) -> list[dict]:
  """Reports the other method left for these tasks, to print the two side by side."""
  rows = []
  for other, prefix in REPORT_PREFIX.items():
    for task in tasks if other != method else ():
      path = os.path.join(workdir, "eval", f"{prefix}-{task}.json")
      if os.path.isfile(path):
        with open(path) as f:
          rows.append(json.load(f))
  return rows
