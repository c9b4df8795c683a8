"""`--mode=finetune`: the BabyLM (Super)GLUE tasks on a run's checkpoint.

A linear classification head reads the final hidden state of the first token (`<s>`) under
bidirectional attention; the whole network is trained with AdamW (lr, batch, weight decay and
warmup fraction from `config.finetune`, cosine decay to zero) for 10 epochs (30 for wsc). The
epoch with the best validation accuracy is kept and reported, with F1 for mrpc and qqp, in
workdir/finetune/<task>.json. Data: `<task>.train.jsonl` / `<task>.valid.jsonl` in
`finetune.data_dir`, in the format of BabyLM's glue_filtered files.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from babylm_jax.config import BOS_ID, EOS_ID, PAD_ID
from babylm_jax.errors import ConfigError, DataError
from babylm_jax.eval.report import write_json
from babylm_jax.eval.suites import read_jsonl

# Task -> (text fields in reading order, number of labels).
TASKS = {
    "boolq": (("question", "passage"), 2),
    "mnli": (("premise", "hypothesis"), 3),
    "mrpc": (("sentence1", "sentence2"), 2),
    "multirc": (("paragraph", "question", "answer"), 2),
    "qqp": (("question1", "question2"), 2),
    "rte": (("sentence1", "sentence2"), 2),
    "wsc": (("text", "span1_text", "span2_text"), 2),
}
F1_TASKS = ("mrpc", "qqp")


def load_split(data_dir: str, task: str, split: str, limit: int | None = None):
  """[(texts, label)] of `<task>.<split>.jsonl`; DataError names a missing file or bad line."""
  fields, num_labels = TASKS[task]
  path = os.path.join(data_dir, f"{task}.{split}.jsonl")
  if not os.path.isfile(path):
    raise DataError(f"fine-tuning file '{path}' is missing; put the {task} {split} split "
                    f"there or point --config.finetune.data_dir at a folder that has it.")
  examples = []
  for where, record in read_jsonl(path, "fine-tuning"):
    texts = tuple(record.get(k) for k in fields)
    label = record.get("label")
    if not all(isinstance(t, str) for t in texts) or label not in range(num_labels):
      raise DataError(f"{where} needs string fields {', '.join(fields)} and a label in "
                      f"0..{num_labels - 1}; fix or remove that line.")
    examples.append((texts, int(label)))
    if limit is not None and len(examples) >= limit:
      break
  if not examples:
    raise DataError(f"fine-tuning file '{path}' holds no examples.")
  return examples


def encode_examples(tokenizer, examples, max_length: int):
  """(ids list, labels): `<s> a </s> b </s> ...`, cutting the longest part first to fit."""
  parts_per = len(examples[0][0])
  flat = [t for texts, _ in examples for t in texts]
  encoded = [e.ids for e in tokenizer.encode_batch(flat, add_special_tokens=False)]
  out = []
  budget = max_length - 1 - parts_per  # <s> and one </s> per part
  for k in range(len(examples)):
    parts = [list(p) for p in encoded[k * parts_per:(k + 1) * parts_per]]
    lens = [len(p) for p in parts]
    while sum(lens) > budget:
      lens[int(np.argmax(lens))] -= 1
    ids = [BOS_ID]
    for p, n in zip(parts, lens):
      ids += p[:n] + [EOS_ID]
    out.append(ids)
  return out, np.array([label for _, label in examples], np.int32)


class Classifier(nnx.Module):
  """The pretrained encoder and a linear head on the first token's final state."""

  def __init__(self, encoder, num_labels: int, *, rngs: nnx.Rngs):
    self.encoder = encoder
    D = encoder.cfg.hidden_size
    self.classifier = nnx.Linear(D, num_labels, rngs=rngs)

  def __call__(self, ids_BT, seg_BT):
    is_causal_B = jnp.zeros((ids_BT.shape[0],), bool)
    hidden_BTD = self.encoder.encode(ids_BT, seg_BT, is_causal_B, deterministic=True)
    return self.classifier(hidden_BTD[:, 0].astype(jnp.float32))


def _pad_batch(seqs, rows: int, max_length: int):
  T = min(max_length, -(-max(len(s) for s in seqs) // 32) * 32)
  ids = np.full((rows, T), PAD_ID, np.int32)
  seg = np.zeros((rows, T), np.int32)
  ids[:, 0], seg[:, 0] = BOS_ID, 1  # filler rows: one real token, zero weight
  for r, s in enumerate(seqs):
    ids[r, :len(s)], seg[r, :len(s)] = s, 1
  return ids, seg


def _metrics(pred, labels, task) -> dict:
  m = dict(accuracy=float(np.mean(pred == labels)))
  if task in F1_TASKS:
    tp = float(np.sum((pred == 1) & (labels == 1)))
    fp = float(np.sum((pred == 1) & (labels == 0)))
    fn = float(np.sum((pred == 0) & (labels == 1)))
    m["f1"] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
  return m


def finetune(encoder, tokenizer, config, task: str, info: dict | None = None) -> dict:
  """Fine-tunes `encoder` (a GPTBert) on `task`; returns the report of the best epoch."""
  if task not in TASKS:
    raise ConfigError(f"finetune.task '{task}' is unknown; use one of {', '.join(TASKS)}.")
  fc = config.finetune
  train = load_split(fc.data_dir, task, "train", fc.max_train_examples)
  valid = load_split(fc.data_dir, task, "valid", fc.max_valid_examples)
  num_labels = TASKS[task][1]
  train_ids, train_y = encode_examples(tokenizer, train, fc.max_length)
  valid_ids, valid_y = encode_examples(tokenizer, valid, fc.max_length)

  epochs = fc.epochs if fc.epochs is not None else (30 if task == "wsc" else 10)
  B = fc.batch_size
  steps_per_epoch = -(-len(train_ids) // B)
  total = epochs * steps_per_epoch
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, fc.lr, max(1, round(fc.warmup_fraction * total)), max(total, 2), end_value=0.0)
  model = Classifier(encoder, num_labels, rngs=nnx.Rngs(fc.seed))
  graphdef, params = nnx.split(model)
  tx = optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=fc.weight_decay,
                   mask=jax.tree.map(lambda p: p.ndim >= 2, params))
  opt_state = tx.init(params)

  @jax.jit
  def train_step(params, opt_state, ids, seg, labels, weight):
    def loss_fn(p):
      logits = nnx.merge(graphdef, p)(ids, seg)
      nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      return jnp.sum(nll * weight) / jnp.maximum(jnp.sum(weight), 1.0)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def predict(params, ids, seg):
    return jnp.argmax(nnx.merge(graphdef, params)(ids, seg), axis=-1)

  def evaluate(params, seqs, labels):
    # Sorted by length so that each batch pads little; predictions put back in order.
    order = np.argsort([len(s) for s in seqs], kind="stable")
    pred = np.zeros(len(seqs), np.int32)
    for lo in range(0, len(seqs), B):
      idx = order[lo:lo + B]
      ids, seg = _pad_batch([seqs[i] for i in idx], B, fc.max_length)
      pred[idx] = np.asarray(predict(params, ids, seg))[:len(idx)]
    return _metrics(pred, labels, task)

  rng = np.random.default_rng(fc.seed)
  best, best_params, history = None, params, []
  t0 = time.perf_counter()
  for epoch in range(1, epochs + 1):
    perm = rng.permutation(len(train_ids))
    losses = []
    for lo in range(0, len(perm), B):
      idx = perm[lo:lo + B]
      ids, seg = _pad_batch([train_ids[i] for i in idx], B, fc.max_length)
      labels = np.zeros(B, np.int32)
      labels[:len(idx)] = train_y[idx]
      weight = (np.arange(B) < len(idx)).astype(np.float32)
      params, opt_state, loss = train_step(params, opt_state, ids, seg, labels, weight)
      losses.append(float(loss))
    m = evaluate(params, valid_ids, valid_y)
    history.append(dict(epoch=epoch, train_loss=float(np.mean(losses)),
                        **{f"valid_{k}": v for k, v in m.items()}))
    logging.info("finetune %s epoch %d: loss %.4f valid %s", task, epoch, np.mean(losses), m)
    if best is None or m["accuracy"] > best[1]["accuracy"]:
      best, best_params = (epoch, m), params
  train_m = evaluate(best_params, train_ids, train_y)
  info = info or {}
  return dict(task=task, seed=fc.seed, best_epoch=best[0], **best[1],
              train_accuracy=train_m["accuracy"], epochs=epochs, lr=fc.lr, batch_size=B,
              weight_decay=fc.weight_decay, warmup_fraction=fc.warmup_fraction,
              train_examples=len(train_ids), valid_examples=len(valid_ids),
              step=info.get("step"), words_seen=info.get("words_seen"),
              use_ema=info.get("use_ema"), checkpoint=str(info.get("path", "")),
              seconds=round(time.perf_counter() - t0, 1), history=history)


def run_finetune(config, workdir: str) -> dict:
  """Loads the run's checkpoint (as eval does), fine-tunes, writes finetune/<task>.json."""
  from babylm_jax.eval.run import load_tokenizer
  from babylm_jax.train.checkpoint import load_model
  task = config.finetune.task
  if task not in TASKS:
    raise ConfigError(f"finetune.task '{task}' is unknown; use one of {', '.join(TASKS)}.")
  # Missing data fails before the checkpoint is read.
  load_split(config.finetune.data_dir, task, "train", 1)
  load_split(config.finetune.data_dir, task, "valid", 1)
  from babylm_jax.workdir import check_writable
  check_writable(os.path.join(workdir, "finetune"), "the report folder")
  tokenizer = load_tokenizer(workdir)
  model, info = load_model(config, workdir, step=config.eval.step, words=config.eval.words,
                           use_ema=config.eval.use_ema)
  result = finetune(model, tokenizer, config, task, info)
  write_json(os.path.join(workdir, "finetune", f"{task}.json"), result)
  line = f"{task}: accuracy {100 * result['accuracy']:.2f}"
  if "f1" in result:
    line += f", F1 {100 * result['f1']:.2f}"
  print(f"{line} (best epoch {result['best_epoch']} of {result['epochs']}, seed "
        f"{result['seed']})", flush=True)
  return result
