"""The BabyLM (Super)GLUE tasks as the official 2025 pipeline defines them.

Per task: which fields of a `glue_filtered` record make the two texts of the pair the model
reads, the labels, the metrics the pipeline computes (accuracy, F1 of label 1, Matthews
correlation), the metric that picks the best epoch and the one the leaderboard reports; and
the results layout the pipeline writes and `collate_preds` reads for a submission:
  <results>/<model>/<revision>/finetune/<task>/predictions.json   {task: {"predictions":
                                                                   [{"id": "<task>_<i>",
                                                                     "pred": label}, ...]}}
  <results>/<model>/<revision>/finetune/<task>/results.txt        "metric: value" lines
Predictions are made on the validation split, in file order (the pipeline's `predict_data`
is the validation file, and the leaderboard scores them against its labels).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from babylm_jax.errors import DataError
from babylm_jax.eval.report import write_json
from babylm_jax.eval.suites import read_jsonl

BINARY_METRICS = ("accuracy", "f1", "mcc")


@dataclasses.dataclass(frozen=True)
class Task:
  """How a record becomes the pair (a, b), or one text when `b_key` is None; `a_format`
  fills `a_keys` into the first text. `label_names`: the labels are these strings (their
  index is the class), else integers."""
  a_keys: tuple[str, ...]
  b_key: str | None
  label_words: tuple[str, ...]  # one per label, for WARP's verbalizers
  a_format: str = "{}"
  metrics: tuple[str, ...] = BINARY_METRICS
  select: str = "accuracy"  # picks the best epoch (the pipeline's --metric_for_valid)
  # What the leaderboard reports: accuracy for every task (the pipeline's
  # calculate_results_from_pred.py scores each task's predictions by accuracy and averages).
  headline: str = "accuracy"
  label_names: tuple[str, ...] | None = None
  # Which epoch's model is scored: 'best' by `select` (the 2025 pipeline), or 'last' (the
  # 2026 multilingual track's script: its Trainer never saves a checkpoint, so
  # load_best_model_at_end has nothing to load and the final model is scored).
  keep: str = "best"

  @property
  def num_labels(self) -> int:
    return len(self.label_words)

  def pair(self, record: dict) -> tuple[str, str] | str:
    a = self.a_format.format(*(record[k] for k in self.a_keys))
    return a if self.b_key is None else (a, record[self.b_key])


_NO_YES = (" no", " yes")
# The pipeline's fine-tuning script selects the best epoch of mrpc and qqp by F1 (accuracy
# elsewhere); their headline is still accuracy.
TASKS = {
    "boolq": Task(("question",), "passage", _NO_YES),
    "mnli": Task(("premise",), "hypothesis", (" yes", " maybe", " no"), metrics=("accuracy",)),
    "mrpc": Task(("sentence1",), "sentence2", _NO_YES, select="f1"),
    "multirc": Task(("question", "answer"), "paragraph", _NO_YES,
                    a_format="Question: {} Answer: {}"),
    "qqp": Task(("question1",), "question2", _NO_YES, select="f1"),
    "rte": Task(("sentence1",), "sentence2", (" yes", " no")),
    "wsc": Task(("span2_text", "span1_text"), "text", _NO_YES,
                a_format='Does "{}" refer to "{}" in this passage?'),
}
# The 2026 multilingual track's classification sets (babylm-org/babylm-eval multilingual/
# finetune): <task>_<language>.{train,valid}.jsonl. Its script reads the one text field
# besides `idx` and `label`, numbers the string labels in sorted order, and reports accuracy.
SIB200_LABELS = ("entertainment", "geography", "health", "politics", "science/technology",
                 "sports", "travel")
TRACK_TASKS = {
    f"sib200_{lang}": Task(("sentence",), None, tuple(f" {w}" for w in SIB200_LABELS),
                           metrics=("accuracy",), label_names=SIB200_LABELS, keep="last")
    for lang in ("en", "nl", "zh")}
# Their validation examples (the track's copies in ../shared/data/multilingual/sib200).
TRACK_VALID_SIZES = {task: 201 for task in TRACK_TASKS}


def get(name: str) -> Task | None:
  """A (Super)GLUE task or one of the multilingual track's, by name; None if neither."""
  return TASKS.get(name) or TRACK_TASKS.get(name)


@dataclasses.dataclass(frozen=True)
class Split:
  pairs: tuple[tuple[str, str], ...]
  labels: np.ndarray  # int32 [N]
  file: dict  # {'name', 'sha256', 'examples'}


def split_path(data_dir: str, task: str, split: str) -> str:
  return os.path.join(data_dir, f"{task}.{split}.jsonl")


def load_split(data_dir: str, task: str, split: str, limit: int | None = None) -> Split:
  """The first `limit` (all by default) examples of `<task>.<split>.jsonl`.

  DataError names a missing file or the first bad line.
  """
  t = get(task)
  path = split_path(data_dir, task, split)
  if not os.path.isfile(path):
    raise DataError(f"fine-tuning file '{path}' is missing; put the {task} {split} split "
                    f"there or point --config.finetune.data_dir at a folder that has it.")
  pairs, labels = [], []
  for where, record in read_jsonl(path, "fine-tuning"):
    keys = (*t.a_keys, t.b_key) if t.b_key else t.a_keys
    label = record.get("label")
    if t.label_names is not None and label in t.label_names:
      label = t.label_names.index(label)
    labels_are = (f"one of {', '.join(t.label_names)}" if t.label_names
                  else f"a label in 0..{t.num_labels - 1}")
    if (not all(isinstance(record.get(k), str) for k in keys)
        or type(label) is not int or not 0 <= label < t.num_labels):
      raise DataError(f"{where} needs string fields {', '.join(keys)} and {labels_are}; "
                      f"fix or remove that line.")
    pairs.append(t.pair(record))
    labels.append(label)
    if limit is not None and len(pairs) >= limit:
      break
  if not pairs:
    raise DataError(f"fine-tuning file '{path}' holds no examples.")
  with open(path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  return Split(tuple(pairs), np.asarray(labels, np.int32),
               dict(name=os.path.basename(path), sha256=digest, examples=len(pairs)))


def available(data_dir: str) -> tuple[list[str], list[str]]:
  """(tasks with both a train and a valid file, tasks missing one) in `data_dir`."""
  found, missing = [], []
  for task in TASKS:
    ok = all(os.path.isfile(split_path(data_dir, task, s)) for s in ("train", "valid"))
    (found if ok else missing).append(task)
  return found, missing


def metrics(pred: np.ndarray, labels: np.ndarray, names=BINARY_METRICS) -> dict[str, float]:
  """Accuracy, F1 of label 1 (0 when label 1 is never predicted nor true) and Matthews
  correlation (0 when a row or column of the confusion matrix is empty), as scikit-learn's
  accuracy_score, f1_score and matthews_corrcoef compute them."""
  pred, labels = np.asarray(pred), np.asarray(labels)
  out = {}
  for name in names:
    if name == "accuracy":
      out[name] = float(np.mean(pred == labels))
    elif name == "f1":
      tp = np.sum((pred == 1) & (labels == 1))
      wrong = np.sum(pred != labels)  # false positives + false negatives, in binary tasks
      out[name] = float(2 * tp / (2 * tp + wrong)) if tp + wrong else 0.0
    elif name == "mcc":
      out[name] = _mcc(pred, labels)
  return out


def _mcc(pred, labels) -> float:
  # The multiclass form (Gorodkin 2004), which is the familiar binary one for two labels.
  k = int(max(pred.max(), labels.max())) + 1
  confusion = np.zeros((k, k), np.float64)
  np.add.at(confusion, (labels, pred), 1)
  t, p = confusion.sum(1), confusion.sum(0)
  n, correct = confusion.sum(), np.trace(confusion)
  denominator = np.sqrt((n * n - p @ p) * (n * n - t @ t))
  return float((correct * n - t @ p) / denominator) if denominator else 0.0


def official_dir(results_dir: str, model_name: str, revision: str, task: str) -> str:
  return os.path.join(results_dir, model_name, revision, "finetune", task)


def write_official(folder: str, task: str, scores: dict[str, float], pred: np.ndarray):
  """predictions.json and results.txt of one task, as the pipeline writes them."""
  records = [{"id": f"{task}_{i}", "pred": int(p)} for i, p in enumerate(pred)]
  write_json(os.path.join(folder, "predictions.json"), {task: {"predictions": records}})
  text = "\n".join(f"{k}: {v}" for k, v in scores.items())
  tmp = os.path.join(folder, ".results.txt.tmp")
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, os.path.join(folder, "results.txt"))


def read_predictions(folder: str, task: str) -> np.ndarray:
  """The labels of an official predictions.json, checked to be in order."""
  with open(os.path.join(folder, "predictions.json")) as f:
    records = json.load(f)[task]["predictions"]
  if [r["id"] for r in records] != [f"{task}_{i}" for i in range(len(records))]:
    raise DataError(f"predictions in '{folder}' are not numbered {task}_0, {task}_1, ...; "
                    f"write them again with --mode=finetune.")
  return np.asarray([r["pred"] for r in records], np.int32)
