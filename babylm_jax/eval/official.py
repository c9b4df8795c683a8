"""The official BabyLM 2025 pipeline's view of the zero-shot files, and its results beside ours.

The pipeline (babylm/evaluation-pipeline-2025, `evaluation_pipeline.sentence_zero_shot`) reads
the same jsonl files as `suites.py` but forms its own sentences and paradigm names (UIDs):

  blimp, supplement  each sentence whole; UID from the record, or the file name
  ewok               Context1 + " " + Target, the target (with its space) scored; UID = Domain
  entity_tracking    input_prefix + option, the option scored; UID = <file>_<numops>_ops
  wug_adj, wug_past  the tab-separated sentences, each whole; UID = the task; each prediction
                     also carries `prob`, the softmax share of the first sentence
  comps              prefix + " " + property phrase, the phrase scored; the prediction is the
                     whole sentence; UID = base, wugs, wugs_dist_before, wugs_dist_in_between

It picks the option with the highest score, the first one on a tie (torch.max), so a tie
counts as correct where we count it 0.5. With --save_predictions it writes, per UID in file
order, the chosen completion (`predictions.json`), and per-UID accuracies in percent
(`best_temperature_report.txt`; the WUGs' is Spearman's rho). `compare` sets those against
our option scores; `compare_wug` the WUGs' probabilities and correlation.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Iterator

import numpy as np

# Our suite -> the pipeline's --task.
TASKS = {"blimp": "blimp", "blimp_fast": "blimp", "supplement": "blimp", "ewok": "ewok",
         "entity_tracking": "entity_tracking", "wug_adj": "wug_adj", "wug_past": "wug_past",
         "comps": "comps"}
WUGS = ("wug_adj", "wug_past")
# COMPS file stem -> the pipeline's UID.
COMPS_UIDS = {"comps_base": "base", "comps_wugs": "wugs",
              "comps_wugs_dist-before": "wugs_dist_before"}


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
  if suite in WUGS:  # tab-separated sentences, each scored whole
    return [(s, s) for s in record["sentences"].split("\t")]
  if suite == "comps":  # the phrase is scored; the prediction names the whole sentence
    return [(f"{record[k]} {record['property_phrase']}",) * 2
            for k in ("prefix_acceptable", "prefix_unacceptable")]
  return [(s, s) for s in (record["sentence_good"], record["sentence_bad"])]


def uid(suite: str, stem: str, record: dict) -> str:
  """The paradigm name the pipeline files a record under."""
  if suite == "ewok":
    return record["Domain"]
  if suite == "entity_tracking":
    return f"{stem}_{record['numops']}_ops"
  if suite in WUGS:
    return suite
  if suite == "comps":
    return COMPS_UIDS.get(stem, "wugs_dist_in_between")  # the pipeline's else branch
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


def compare_wug(suite: str, folder, ours: list[dict], predictions: dict) -> dict:
  """The pipeline's WUG predictions beside ours: its `prob` of the first sentence against our
  softmax share, its chosen sentence against ours, and Spearman's rho of each with `ratio`."""
  from scipy.stats import spearmanr
  preds = predictions.get(suite, {}).get("predictions", [])
  if len(preds) != len(ours):
    raise ValueError(f"the pipeline reports {len(preds)} items of '{suite}' where we scored "
                     f"{len(ours)}; run it on the same data folder.")
  ratios = [float(r["ratio"]) for _, r in records(folder)]
  mine, diff = [], 0
  for item, pred in zip(ours, preds):
    s = np.asarray(item["scores"], np.float64)
    e = np.exp(s - s.max())
    mine.append(float(e[0] / e.sum()))
    diff += item["completions"][int(np.argmax(s))] != pred["pred"]
  theirs = [float(p["prob"]) for p in preds]
  rho = lambda p: float(spearmanr(p, ratios).statistic) if len(set(p)) > 1 else None
  return dict(items=len(ours), differing_decisions=diff,
              max_prob_diff=float(np.max(np.abs(np.subtract(mine, theirs)))),
              official_rho=rho(theirs), ours_rho=rho(mine))
