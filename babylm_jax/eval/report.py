"""Honest accuracy, the WUG correlation, the per-task JSON report and its charts.

An item is won when its correct option scores strictly highest. When the top score is shared,
the item earns 1/k for k options tied at the top (0.5 for a pair) and counts as a tie: other
pipelines count such ties as correct, so a model that gives every sentence the same score
reaches 100% on paradigms whose two sentences are permutations of each other.

The WUG tasks have no correct option: the model's preference for the first form is the
softmax of the options' summed log-probabilities, and the score is its Spearman correlation
with the share of people who chose that form (as the BabyLM 2025 pipeline computes it).
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np

from babylm_jax import file_modes


def item_credit(scores: np.ndarray) -> tuple[float, bool]:
  """(credit, tied) for one item whose option 0 is correct."""
  top = scores.max()
  if scores[0] < top:
    return 0.0, False
  k = int(np.sum(scores == top))
  return 1.0 / k, k > 1


def accuracy(items, option_scores) -> dict:
  """Per-paradigm, macro (mean over paradigms) and micro (over items) accuracy with ties."""
  per: dict[str, list] = {}
  for item, scores in zip(items, option_scores):
    credit, tied = item_credit(np.asarray(scores, np.float64))
    p = per.setdefault(item.paradigm, [0.0, 0, 0, len(item.options)])
    p[0] += credit
    p[1] += 1
    p[2] += int(tied)
  paradigms = {name: dict(accuracy=c / n, pairs=n, ties=t, chance=1.0 / k)
               for name, (c, n, t, k) in sorted(per.items())}
  total = sum(v[1] for v in per.values())
  return dict(
      paradigms=paradigms,
      macro_accuracy=float(np.mean([v["accuracy"] for v in paradigms.values()])),
      micro_accuracy=sum(v[0] for v in per.values()) / total,
      ties=sum(v[2] for v in per.values()),
      items=total)


def correlation(items, option_scores) -> dict:
  """Spearman's rho between the model's probability of option 0 and people's share for it."""
  from scipy.stats import spearmanr
  prob, human = [], []
  for item, scores in zip(items, option_scores):
    s = np.asarray(scores, np.float64)
    e = np.exp(s - s.max())
    prob.append(float(e[0] / e.sum()))
    human.append(item.human)
  rho = float(spearmanr(prob, human).statistic) if len(set(prob)) > 1 else math.nan
  # How often the model prefers the form most people chose, ties at 0.5 (for reading along).
  agree = [0.5 if p == 0.5 else float((p > 0.5) == (h > 0.5)) for p, h in zip(prob, human)]
  return dict(spearman=None if math.isnan(rho) else rho, items=len(prob),
              agreement=float(np.mean(agree)), probability=prob, human=human)


def write_json(path: str, data: dict):
  """Writes to a temporary name in the same folder, then renames: never a half file."""
  folder = os.path.dirname(path) or "."
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(data, f, indent=2, sort_keys=False)
      f.write("\n")
    file_modes.share(tmp)  # mkstemp makes it 0600
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def plot(path: str, report: dict, title: str):
  """A per-paradigm bar chart with each paradigm's chance level as a line."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = list(report["paradigms"])
  acc = [report["paradigms"][n]["accuracy"] for n in names]
  chance = [report["paradigms"][n]["chance"] for n in names]
  fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(names) + 2), 4.5))
  x = np.arange(len(names))
  ax.bar(x, acc, color="tab:blue")
  ax.step(np.concatenate([x - 0.5, [x[-1] + 0.5]]), chance + [chance[-1]], where="post",
          color="tab:red", linestyle="--", label="chance")
  ax.set_xticks(x)
  ax.set_xticklabels(names, rotation=90, fontsize=6 if len(names) > 20 else 8)
  ax.set_ylim(0, 1)
  ax.set_ylabel("accuracy")
  ax.set_title(f"{title}: macro {report['macro_accuracy']:.3f}, "
               f"micro {report['micro_accuracy']:.3f}, ties {report['ties']}")
  ax.legend(loc="lower right")
  save_figure(fig, path)


def plot_correlation(path: str, report: dict, title: str):
  """The model's preference for the first form against people's, one point per item."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(5, 5))
  ax.scatter(report["human"], report["probability"], s=12, alpha=0.7)
  ax.set_xlim(-0.02, 1.02)
  ax.set_ylim(-0.02, 1.02)
  ax.set_xlabel("people choosing the first form")
  ax.set_ylabel("model probability of the first form")
  rho = report["spearman"]
  ax.set_title(f"{title}: Spearman {'n/a' if rho is None else f'{rho:.3f}'}", fontsize=9)
  save_figure(fig, path)


def save_figure(fig, path: str):
  """Saves a PNG under a temporary name, then renames it; closes the figure."""
  import matplotlib.pyplot as plt
  fig.tight_layout()
  folder = os.path.dirname(path) or "."
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".png")
  os.close(fd)
  try:
    fig.savefig(tmp, dpi=120, format="png")
    file_modes.share(tmp)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise
  finally:
    plt.close(fig)
