"""The official BabyLM 2025 pipeline's view of the zero-shot files, and its results beside ours.

The pipeline (babylm/evaluation-pipeline-2025, `evaluation_pipeline.sentence_zero_shot`) reads
the same jsonl files as `suites.py` but forms its own sentences and paradigm names (UIDs):

  blimp, supplement  each sentence whole; UID from the record, or the file name
  ewok               Context1 + " " + Target, the target (with its space) scored; UID = Domain
  entity_tracking    input_prefix + option, the option scored; UID = <file>_<numops>_ops
  wug                the tab-separated sentences, each whole (no suite of ours)

It picks the option with the highest score, the first one on a tie (torch.max), so a tie
counts as correct where we count it 0.5. With --save_predictions it writes, per UID in file
order, the chosen completion (`predictions.json`), and per-UID accuracies in percent
(`best_temperature_report.txt`). `compare` sets those against our option scores.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Iterator

import numpy as np

# Our suite -> the pipeline's --task.
TASKS = {"blimp": "blimp", "blimp_fast": "blimp", "supplement": "blimp", "ewok": "ewok",
         "entity_tracking": "entity_tracking"}


def records(folder) -> Iterator[tuple[str, dict]]:
  """(file stem, record) per non-blank line, in the order `suites.load_suite` reads them."""
  for path in sorted(pathlib.Path(folder).glob("*.jsonl")):
    for line in path.read_text(encoding="utf-8").splitlines():
      if line.strip():
        yield path.stem, json.loads(line)


def sentences(suite: str, record: dict) -> list[tuple[str, str]]:
  """(sentence, its scored completion) per option, as the pipeline forms them."""
  if suite == "ewok":
    return [(f"{record['Context1']} {t}", f" {t}") for t in (record["Target1"],
                                                             record["Target2"])]
  if suite == "entity_tracking":
    return [(record["input_prefix"] + o, o) for o in record["options"]]
  if suite == "wug":  # wug_adj_nominalization: tab-separated sentences, each scored whole
    return [(s, s) for s in record["sentences"].split("\t")]
  return [(s, s) for s in (record["sentence_good"], record["sentence_bad"])]


def uid(suite: str, stem: str, record: dict) -> str:
  """The paradigm name the pipeline files a record under."""
  if suite == "ewok":
    return record["Domain"]
  if suite == "entity_tracking":
    return f"{stem}_{record['numops']}_ops"
  return record["UID"] if "field" in record else stem


def our_items(suite: str, folder, option_scores) -> list[dict]:
  """Per item: the pipeline's UID, its completions and our option scores (option 0 correct)."""
  rows = list(records(folder))
  if len(rows) != len(option_scores):
    raise ValueError(f"{len(rows)} records in '{folder}' but {len(option_scores)} scored items")
  return [dict(uid=uid(suite, stem, r), completions=[c for _, c in sentences(suite, r)],
               scores=[float(s) for s in scores])
          for (stem, r), scores in zip(rows, option_scores)]


def read_report(path) -> dict[str, float]:
  """Per-UID accuracy in percent from a best_temperature_report.txt ("### UID ACCURACY")."""
  section, out = None, {}
  for line in pathlib.Path(path).read_text().splitlines():
    if line.startswith("### "):
      section = line[4:].strip()
    elif section == "UID ACCURACY" and (m := re.match(r"^(.+): (-?[\d.]+)$", line.strip())):
      out[m.group(1)] = float(m.group(2))
  return out


def compare(ours: list[dict], predictions: dict, report: dict[str, float]) -> dict:
  """Per UID and overall: the pipeline's accuracy beside ours, and the decisions that differ.

  ours: `our_items` output; predictions: the pipeline's predictions.json ({uid: {"predictions":
  [{"pred": completion}, ...]}}, file order within a UID); report: `read_report` output.
  A decision differs when our first-highest option is another completion than the pipeline's.
  """
  by_uid: dict[str, list[dict]] = {}
  for item in ours:
    by_uid.setdefault(item["uid"], []).append(item)
  paradigms, differing = {}, 0
  for name, items in sorted(by_uid.items()):
    preds = [p["pred"] for p in predictions.get(name, {}).get("predictions", [])]
    if len(preds) != len(items) or name not in report:
      raise ValueError(f"the pipeline reports {len(preds)} items of '{name}' where we scored "
                       f"{len(items)}; run it on the same data folder.")
    half = first = ties = diff = 0.0
    for item, pred in zip(items, preds):
      scores = np.asarray(item["scores"])
      top = scores.max()
      tied = int(np.sum(scores == top))
      half += (scores[0] == top) / tied
      first += scores[0] == top  # the first-highest option is the correct one
      ties += tied > 1
      diff += item["completions"][int(np.argmax(scores))] != pred
    n = len(items)
    paradigms[name] = dict(items=n, official=report[name],
                           ours_ties_correct=100 * first / n, ours=100 * half / n,
                           ties=int(ties), differing_decisions=int(diff))
    differing += int(diff)
  gaps = [abs(p["official"] - p["ours_ties_correct"]) for p in paradigms.values()]
  gaps_half = [abs(p["official"] - p["ours"]) for p in paradigms.values()]
  return dict(paradigms=paradigms, items=len(ours), differing_decisions=differing,
              ties=sum(p["ties"] for p in paradigms.values()),
              max_diff_points=max(gaps), max_diff_points_ties_half=max(gaps_half))
