"""A sweep's table: WORKDIR/summary.json, summary.md and summary.png, from the variants' workdirs.

Everything is read back from what each run wrote (config.json, metrics.jsonl, eval/*.json), so
the summary of a sweep that was killed and resumed equals that of one that never stopped,
except for the measured times. Per variant:
  status       finished (trained and evaluated), trained, partial (has trained, not to the
               end) or pending
  parameters   of the model (from the config, whether or not it has trained)
  steps, words_seen, total_steps
  wall_s       training time: the sum of the logged intervals (compilation, validation and
               learning-curve points included; start-up and work lost to a kill excluded)
  tokens_per_s the median of the logged training rates (steady state, outside evaluations)
  val_loss     the last validation loss (the objective's own; not comparable across objectives)
  val_masked_loss, val_causal_loss
               its masked and causal parts (None where the objective has no such rows):
               these compare variants of different objectives (a causal-only run's causal
               loss against a hybrid run's)
  accuracy     '<suite>/<backend>' -> macro accuracy from --mode=eval of the final checkpoint
  vs_first     the same keys and the validation losses: this variant minus the first variant
  curve        '<suite>/<backend>' -> [[words seen, macro accuracy]] of the learning curves
  corpus_words words per domain of a data.path built by a corpus recipe (its corpus.json)
"""

from __future__ import annotations

import datetime
import json
import math
import os
import statistics

from babylm_jax.eval import report
from babylm_jax.train.metrics import zero_shot_series

TIMING = ("wall_s", "tokens_per_s", "curves_s")
VAL_PARTS = ("val_masked_loss", "val_causal_loss")


def num_params(config) -> int:
  """Parameters of the config's model, from abstract shapes (nothing is allocated)."""
  import jax
  from babylm_jax.train.step import abstract_model
  _, _, shapes = abstract_model(config)
  return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))


def read_json(path):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def total_steps(workdir: str) -> int | None:
  """The run's planned steps, from the config.json it wrote (None before it started)."""
  resolved = read_json(os.path.join(workdir, "config.json"))
  return resolved["derived"]["total_steps"] if resolved else None


def trained(workdir: str) -> bool:
  """Whether the run has its final checkpoint (orbax names a step's folder when complete)."""
  total = total_steps(workdir)
  return total is not None and os.path.isdir(os.path.join(workdir, "checkpoints", str(total)))


def eval_reports(workdir: str, config) -> dict[str, dict] | None:
  """'<suite>/<backend>' -> report of the final checkpoint for every suite and backend the
  config asks for, or None while one is missing (or is of another step or subset)."""
  from babylm_jax.eval import run, scoring
  total, out = total_steps(workdir), {}
  for suite in run.parse_suites(config.eval.suites):
    for backend in scoring.parse_backends(config.eval.backend):
      r = read_json(os.path.join(workdir, "eval", f"{suite}-{backend}.json"))
      if r is None or r.get("step") != total or r.get("max_items") != config.eval.max_items:
        return None
      out[f"{suite}/{backend}"] = r
  return out


def _records(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def variant_row(variant, workdir: str, base: str, parameters: int) -> dict:
  recs = _records(workdir)
  train = [r for r in recs if "loss" in r]
  val = [r for r in recs if "val_loss" in r]
  reports = eval_reports(workdir, variant.config) if trained(workdir) else None
  status = ("finished" if reports is not None else "trained" if trained(workdir)
            else "partial" if train else "pending")
  wall, prev = 0.0, 0
  for r in train:
    wall += (r["step"] - prev) * r["step_time_s"]
    prev = r["step"]
  return dict(
      name=variant.name, status=status,
      config="" if variant.config_file == base else variant.config_file,
      overrides=dict(variant.own), seed=variant.config.seed,
      parameters=parameters, steps=train[-1]["step"] if train else 0,
      total_steps=total_steps(workdir), words_seen=train[-1]["words_seen"] if train else 0,
      wall_s=round(wall, 1),
      tokens_per_s=round(statistics.median(r["tokens_per_s"] for r in train)) if train else None,
      curves_s=round(sum(r.get("zero_shot_s", 0.0) for r in recs), 1),
      val_loss=val[-1]["val_loss"] if val else None,
      **{k: val[-1].get(k) if val else None for k in VAL_PARTS},
      accuracy={k: r["macro_accuracy"] for k, r in (reports or {}).items()},
      curve={k: [list(p) for p in v] for k, v in zero_shot_series(recs).items()},
      val_curve=[[r["words_seen"], r["val_loss"]] for r in val],
      corpus_words=_corpus_words(variant.config.data.path))


def _corpus_words(path: str) -> dict[str, int] | None:
  """Words per domain of a corpus folder built by a recipe (its manifest), else None."""
  manifest = read_json(os.path.join(path, "corpus.json")) if os.path.isdir(path) else None
  if not manifest:
    return None
  return {s["name"]: s["selected"]["words"] for s in manifest["sources"]}


def _differences(rows: list[dict]):
  first = rows[0]
  for row in rows:
    diff = {k: v - first["accuracy"][k] for k, v in row["accuracy"].items()
            if k in first["accuracy"]}
    if row["status"] != "partial" and first["status"] != "partial":
      for k in ("val_loss",) + VAL_PARTS:
        if row[k] is not None and first[k] is not None:
          diff[k] = row[k] - first[k]
    row["vs_first"] = diff


def write(workdir: str, sweep, variants, parameters: dict[str, int]) -> list[dict]:
  """Rewrites WORKDIR/summary.{json,md,png}; returns the rows. parameters: per variant name."""
  s = sweep.sweep
  rows = [variant_row(v, os.path.join(workdir, v.name), s.base, parameters[v.name])
          for v in variants]
  _differences(rows)
  head = dict(name=os.path.basename(os.path.abspath(workdir)), base=s.base, budget=s.budget,
              overrides=dict(s.overrides),
              date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
  report.write_json(os.path.join(workdir, "summary.json"), dict(sweep=head, variants=rows))
  _write_text(os.path.join(workdir, "summary.md"), markdown(head, rows))
  plot(os.path.join(workdir, "summary.png"), rows)
  return rows


def _write_text(path: str, text: str):
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def _fmt_overrides(row) -> str:
  parts = [f"{k}={v}" for k, v in row["overrides"].items()]
  if row["config"]:
    parts.insert(0, row["config"])
  return ", ".join(parts)


def markdown(head: dict, rows: list[dict]) -> str:
  """The summary table: accuracies in %, differences to the first variant in brackets."""
  keys = list(dict.fromkeys(k for r in rows for k in r["accuracy"]))
  common = ", ".join(f"{k}={v}" for k, v in head["overrides"].items()) or "none"
  lines = [f"# Sweep {head['name']}", "",
           f"{head['date']}. Base `{head['base']}` at {head['budget']:g} of its budget; "
           f"overrides for every variant: {common}. Brackets: difference to the first "
           f"variant ({rows[0]['name']}).", "",
           "| variant | config and overrides | status | parameters | steps | words seen | "
           "wall time | tokens/s | val loss | val masked | val causal |"
           + "".join(f" {k} |" for k in keys),
           "|" + " --- |" * (11 + len(keys))]
  for r in rows:
    d = r["vs_first"]
    val = " | ".join(
        "-" if r[k] is None else f"{r[k]:.3f}" + (
            f" ({d[k]:+.3f})" if k in d and r is not rows[0] else "")
        for k in ("val_loss",) + VAL_PARTS)
    acc = []
    for k in keys:
      if k not in r["accuracy"]:
        acc.append("-")
        continue
      cell = f"{100 * r['accuracy'][k]:.1f}"
      if k in d and r is not rows[0]:
        cell += f" ({100 * d[k]:+.1f})"
      acc.append(cell)
    wall = "-" if not r["steps"] else f"{r['wall_s'] / 60:.1f} min"
    rate = "-" if r["tokens_per_s"] is None else f"{r['tokens_per_s']:,}"
    lines.append(f"| {r['name']} | {_fmt_overrides(r) or '(base)'} | {r['status']} | "
                 f"{r['parameters']:,} | {r['steps']:,} | {r['words_seen']:,} | {wall} | "
                 f"{rate} | {val} |" + "".join(f" {a} |" for a in acc))
  return "\n".join(lines) + "\n"


def plot(path: str, rows: list[dict]):
  """One panel per learning curve and one of validation loss, one line per variant."""
  from matplotlib.figure import Figure

  panels = list(dict.fromkeys(k for r in rows for k in r["curve"])) + ["validation loss"]
  cols = min(3, len(panels))
  nrows = math.ceil(len(panels) / cols)
  fig = Figure(figsize=(4.5 * cols, 3.5 * nrows))
  axes = fig.subplots(nrows, cols, squeeze=False).ravel()
  for ax, name in zip(axes, panels):
    for r in rows:
      points = r["val_curve"] if name == "validation loss" else r["curve"].get(name, [])
      if points:
        scale = 1 if name == "validation loss" else 100
        ax.plot([w for w, _ in points], [scale * a for _, a in points], "o-", ms=3, lw=1.3,
                label=r["name"])
    ax.set_title(name if name == "validation loss" else f"{name} (macro %)", fontsize=10)
    ax.set_xlabel("words seen")
    ax.grid(alpha=0.3)
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=110)
  os.replace(tmp, path)
