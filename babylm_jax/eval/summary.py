"""One table for a run's evaluation: each task's number as the BabyLM 2025 leaderboard shows it,
and whether it was computed on the leaderboard's data.

The summary is rebuilt from the reports in an eval folder, so any mode can refresh it:
  <task>-<backend>.json    written by --mode=eval; `headline` maps columns to numbers,
                           `data_set` says whether the data is the official set (layout.py)
  finetune-<name>.json     written by --mode=finetune: `task`, `headline` (percent, as the
                           leaderboard shows it), `accuracy`, `f1`, `mcc`, `official_data`,
                           optionally `method` ('full' when absent)
It writes summary.json and summary.md beside them. Columns follow the leaderboard: accuracy
tasks as macro averages over their subsets (x100), WUGs as Spearman's rho (x100), reading as the
percentage of the possible R^2 increase, (Super)GLUE as the mean validation accuracy over its
tasks of full fine-tuning (the pipeline's calculate_results_from_pred.py; F1 and MCC are listed
beside it). The macro average is the plain mean of the columns present for a backend (BLiMP
once: the full set when both it and blimp_fast are there); it says how many it covers.

Every row says whether it is the official set (`official`, with the counts behind the verdict
in `data_set`); the GLUE row only when all seven tasks are there, each on its official split.
`leaderboard` says whether the macro average is comparable with the leaderboard's: every column
of the official full (or fast) set present and official, and nothing else.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from babylm_jax import versions as versions_lib
from babylm_jax.eval import glue, layout, multilingual
from babylm_jax.eval.report import save_figure, write_json

# column -> (label, metric), in the leaderboard's order.
COLUMNS = {
    "blimp": ("BLiMP", "accuracy"),
    "blimp_fast": ("BLiMP (fast)", "accuracy"),
    "supplement": ("BLiMP supplement", "accuracy"),
    "ewok": ("EWoK", "accuracy"),
    "entity_tracking": ("Entity tracking", "accuracy"),
    "wug_adj": ("WUG adjective nominalization", "Spearman x100"),
    "wug_past": ("WUG past tense", "Spearman x100"),
    "comps": ("COMPS", "accuracy"),
    "reading_eye_tracking": ("Reading: eye tracking", "% of possible R2 gain"),
    "reading_self_paced": ("Reading: self-paced reading", "% of possible R2 gain"),
    "glue": ("(Super)GLUE fine-tuning", "accuracy"),
    "aoa": ("Age of acquisition (milestones)", "Pearson r"),
}
# Columns on another scale than the percentages, left out of the macro average.
NOT_IN_MACRO = ("aoa",)


def _load(path: str) -> dict | None:
  """A report with its file's modification time as `_mtime`; None if unreadable."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError):
    return None
  if isinstance(data, dict):
    data["_mtime"] = os.path.getmtime(path)
  return data


def zero_shot_reports(eval_dir: str, names=None) -> list[dict]:
  """The --mode=eval reports `names` (file names) in `eval_dir`, or all of them."""
  if names is None:
    names = [os.path.basename(p) for p in sorted(glob.glob(os.path.join(eval_dir, "*-*.json")))
             if not os.path.basename(p).startswith("finetune-")]
  out = []
  for name in names:
    r = _load(os.path.join(eval_dir, name))
    if r and {"suite", "backend", "headline"} <= set(r):
      out.append(dict(r, _file=name))
  return out


def finetune_reports(eval_dir: str) -> list[dict]:
  out = []
  # --mode=finetune writes finetune-<task>.json (full) and warp-<task>.json (WARP).
  paths = (glob.glob(os.path.join(eval_dir, "finetune-*.json"))
           + glob.glob(os.path.join(eval_dir, "warp-*.json")))
  for path in sorted(paths):
    r = _load(path)
    if r and isinstance(r.get("headline"), (int, float)) and r.get("task"):
      out.append(r)
  return out


def _checkpoint(r: dict) -> dict:
  return dict(path=r.get("checkpoint", ""), step=r.get("step"),
              words_seen=r.get("words_seen"), use_ema=r.get("use_ema"))


def _zero_shot_official(r: dict) -> tuple[bool, str]:
  """(official, a few words on the data) of a --mode=eval report."""
  data_set = r.get("data_set")
  if not isinstance(data_set, dict):
    return False, "not checked against the official set (report of an older version)"
  if _is_multilingual(r):
    return bool(data_set.get("official")), multilingual.describe(data_set)
  return bool(data_set.get("official")), layout.describe(data_set)


def _is_multilingual(r: dict) -> bool:
  """Whether a report was checked against the multilingual track's data (multilingual.py)."""
  data_set = r.get("data_set")
  return isinstance(data_set, dict) and data_set.get("set") == "multilingual"


def _glue_row(method: str, reports: list[dict]) -> dict:
  """The GLUE column of one method: mean accuracy x100, official only with all seven tasks
  on their official splits by full fine-tuning."""
  tasks = sorted({r["task"] for r in reports})
  official_tasks = sorted({r["task"] for r in reports if r.get("official_data")})
  value = float(np.mean([100 * r["accuracy"] if isinstance(r.get("accuracy"), (int, float))
                         else float(r["headline"]) for r in reports]))
  why = []
  if method != "full":
    why.append(f"{method} is not the official method (full fine-tuning)")
  absent = [t for t in glue.TASKS if t not in tasks]
  if absent:
    why.append(f"{len(tasks)} of {len(glue.TASKS)} tasks (no {', '.join(absent)})")
  off = [t for t in tasks if t not in official_tasks]
  if off:
    why.append(f"not on the whole official split: {', '.join(off)}")
  note = ("the official full set: all seven tasks on their official splits" if not why
          else "not comparable: " + "; ".join(why))
  return dict(value=value, task=("glue" if method == "full" else f"glue_{method}"),
              tasks=len(tasks), official=not why, note=note)


def build(eval_dir: str, info: dict | None = None, missing=None, reports=None,
          versions=None) -> dict:
  """The summary of the reports in `eval_dir`; `info` names the checkpoint just evaluated.

  `reports` names the zero-shot report files of the evaluation (all in the folder when no
  earlier summary names them); `missing` lists tasks whose data folder was absent;
  `versions` is versions.read(workdir). All three are kept from the previous summary.json
  when not given, so fine-tuning can refresh it. Without `info` the checkpoint is that of the
  newest report. Fine-tuning reports are all read; any report of another checkpoint is listed
  under `other_checkpoints`.
  """
  previous = _load(os.path.join(eval_dir, "summary.json")) or {}
  if reports is None:
    reports = previous.get("reports")
  if missing is None:
    missing = previous.get("missing", [])
  if versions is None:
    versions = previous.get("versions", {})
  zero, tuned = zero_shot_reports(eval_dir, reports), finetune_reports(eval_dir)
  if info is not None:
    checkpoint = dict(path=str(info.get("path", "")), step=info.get("step"),
                      words_seen=info.get("words_seen"), use_ema=info.get("use_ema"))
  else:
    newest = max(zero + tuned, key=lambda r: r.get("_mtime", 0), default={})
    checkpoint = _checkpoint(newest)
  backends = list(dict.fromkeys(r["backend"] for r in zero))
  values: dict[str, dict[str, float | None]] = {}
  sources: dict[str, dict] = {}
  others = []
  for r in zero:
    official, note = _zero_shot_official(r)
    for column, value in r["headline"].items():
      values.setdefault(column, {})[r["backend"]] = value
      sources[column] = dict(task=r["suite"], data_dir=r.get("data_dir"),
                             files=r.get("files", []), official=official, note=note,
                             data_set=r.get("data_set"), items=r.get("items"))
    if r.get("step") != checkpoint["step"]:
      others.append(dict(report=f"{r['suite']}-{r['backend']}", **_checkpoint(r)))
  finetune = []
  by_method: dict[str, list[dict]] = {}
  for r in tuned:
    method = r.get("method") or "full"
    if r["task"] not in glue.TRACK_TASKS:  # SIB-200 is listed below, not a GLUE task
      by_method.setdefault(method, []).append(r)
    finetune.append(dict(task=r["task"], method=method, headline=r["headline"],
                         **{k: r.get(k) for k in glue.BINARY_METRICS},
                         official_data=bool(r.get("official_data")),
                         trained_parameters=r.get("trained_parameters", r.get("trained_params")),
                         step=r.get("step")))
    if r.get("step") != checkpoint["step"]:
      others.append(dict(report=f"{method}-{r['task']}", **_checkpoint(r)))
  for method, rs in by_method.items():
    g = _glue_row(method, rs)
    column = g.pop("task")
    values[column] = {b: g["value"] for b in backends or ["-"]}
    sources[column] = dict(task=column, tasks=g["tasks"], official=g["official"],
                           note=g["note"])
  rows = []
  for column in list(COLUMNS) + sorted(c for c in values if c not in COLUMNS):
    if column in values:
      label, metric = COLUMNS.get(column) or multilingual.COLUMNS.get(
          column, (f"(Super)GLUE, {column[5:]}", "accuracy"))
      if column.startswith("glue"):
        label += f" ({sources[column]['tasks']} tasks)"
      rows.append(dict(column=column, label=label, metric=metric, values=values[column],
                       **sources[column]))
  # A multilingual task (English BLiMP included) counts in its language's row, not here.
  track = {c for c, src in sources.items() if _is_multilingual(src)}
  in_macro = [r["column"] for r in rows if r["column"] in COLUMNS
              and r["column"] not in NOT_IN_MACRO and r["column"] not in track
              and not (r["column"] == "blimp_fast" and "blimp" in values)]
  macro = {}
  for b in backends or (["-"] if "glue" in values else []):
    present = [values[c].get(b) for c in in_macro if values[c].get(b) is not None]
    macro[b] = dict(value=float(np.mean(present)) if present else None, columns=len(present))
  languages = (multilingual.languages(
      {c: values[c] for c in track}, {c: sources[c]["items"] for c in track}, backends)
      if track else {})
  return dict(checkpoint=checkpoint, backends=backends or list(macro), rows=rows,
              languages=languages,
              macro_average=macro, macro_columns=in_macro,
              leaderboard=_leaderboard(rows, in_macro), missing=list(missing),
              finetune=finetune, other_checkpoints=others, reports=[r["_file"] for r in zero],
              versions=versions)


def _leaderboard(rows: list[dict], in_macro: list[str]) -> dict:
  """Whether the macro average is comparable with the leaderboard's, and if not, why."""
  by = {r["column"]: r for r in rows}
  data_set = layout.FAST if "blimp_fast" in by and "blimp" not in by else layout.FULL
  want = layout.COLUMNS[data_set]
  why = [f"no {c}" for c in want if c not in by]
  why += [f"{by[c]['label']}: {by[c]['note']}" for c in want if c in by
          and not by[c]["official"]]
  why += [f"{c} is not a column of the {data_set} set" for c in in_macro if c not in want]
  return dict(set=data_set, comparable=not why, why=why)


def _cell(v) -> str:
  return "n/a" if v is None else f"{v:.2f}"


def data_label(row: dict) -> str:
  """'official full', 'official fast' or 'NOT official' for a summary row."""
  if not row.get("official"):
    return "NOT official"
  data_set = row.get("data_set")
  return f"official {data_set['set'] if isinstance(data_set, dict) else layout.FULL}"


def _macro_note(summary: dict) -> str:
  lb = summary["leaderboard"]
  if lb["comparable"]:
    return f"comparable with the leaderboard's ({lb['set']} set, every column official)"
  return f"NOT comparable with the leaderboard's ({lb['set']} set): " + "; ".join(lb["why"])


def _track_only(summary: dict) -> bool:
  """Only the multilingual track's tasks: its language rows stand for the 2025 macro."""
  return bool(summary.get("languages")) and not summary["macro_columns"] and not any(
      r["column"].startswith("glue") for r in summary["rows"])


def table(summary: dict) -> str:
  """The plain-text table printed at the end of an evaluation."""
  backends = summary["backends"]
  head = (f"{'task':<34} {'metric':<22} {'data':<13}"
          + "".join(f" {b:>8}" for b in backends))
  lines = [head, "-" * len(head)]
  for r in summary["rows"]:
    lines.append(f"{r['label']:<34} {r['metric']:<22} {data_label(r):<13}"
                 + "".join(f" {_cell(r['values'].get(b)):>8}" for b in backends))
  lines.append("-" * len(head))
  macro = summary["macro_average"]
  n = max((m["columns"] for m in macro.values()), default=0)
  if not _track_only(summary):
    lines.append(f"{f'macro average ({n} columns)':<34} {'':<22} {'':<13}"
                 + "".join(f" {_cell(macro.get(b, {}).get('value')):>8}" for b in backends))
    lines.append(f"macro average: {_macro_note(summary)}")
  for name, lang in summary.get("languages", {}).items():
    of = f"{len(lang['tasks'])} of {len(lang['tasks']) + len(lang['absent'])} tasks"
    for kind, what in (("weighted", "by items"), ("avg", "plain mean")):
      lines.append(f"{f'{name} ({what})':<34} {of:<22} {'':<13}"
                   + "".join(f" {_cell(lang['values'].get(b, {}).get(kind)):>8}"
                             for b in backends))
  for r in summary["rows"]:
    if not r.get("official"):
      lines.append(f"not official: {r['label']}: {r.get('note', '')}")
  c = summary["checkpoint"]
  lines.append(f"checkpoint {c['path'] or '?'}: step {c['step']}, {c['words_seen']} words seen"
               + (", EMA weights" if c["use_ema"] else ""))
  for mode, entry in summary.get("versions", {}).items():
    lines.append(f"versions ({mode}): {versions_lib.line(entry)}")
  for m in summary["missing"]:
    lines.append(f"missing {m['task']}: " + (m.get("hint") or f"no data at '{m['folder']}'"))
  for o in summary["other_checkpoints"]:
    lines.append(f"note: {o['report']} is of step {o['step']}, not this checkpoint's")
  return "\n".join(lines)


def _pct(v) -> str:
  return "" if v is None else f"{100 * v:.2f}"


def markdown(summary: dict) -> str:
  backends = summary["backends"]
  c = summary["checkpoint"]
  out = ["# Evaluation summary", "",
         f"Checkpoint `{c['path']}`: step {c['step']}, {c['words_seen']} words seen"
         + (", EMA weights." if c["use_ema"] else "."), "",
         "| task | metric | data | " + " | ".join(backends) + " |",
         "| --- | --- | --- | " + " | ".join("---:" for _ in backends) + " |"]
  for r in summary["rows"]:
    out.append(f"| {r['label']} | {r['metric']} | {data_label(r)} | "
               + " | ".join(_cell(r["values"].get(b)) for b in backends) + " |")
  macro = summary["macro_average"]
  if not _track_only(summary):
    out.append("| **macro average** | | | " + " | ".join(
        f"**{_cell(macro.get(b, {}).get('value'))}** ({macro.get(b, {}).get('columns', 0)})"
        for b in backends) + " |")
    out += ["", f"Macro average: {_macro_note(summary)}."]
  if summary.get("languages"):
    out += ["", "| language (lm-eval group) | tasks | " + " | ".join(
        f"{b} by items | {b} plain mean" for b in backends) + " |",
            "| --- | --- | " + " | ".join("---: | ---:" for _ in backends) + " |"]
    for name, lang in summary["languages"].items():
      out.append(f"| {name} | {', '.join(lang['tasks']) or 'none'}"
                 + (f" (missing: {', '.join(lang['absent'])})" if lang["absent"] else "")
                 + " | " + " | ".join(f"{_cell(lang['values'].get(b, {}).get('weighted'))} | "
                                      f"{_cell(lang['values'].get(b, {}).get('avg'))}"
                                      for b in backends) + " |")
    out += ["", "By items: lm-eval's zeroshot_<lang> (weight_by_size); plain mean: the "
            "pipeline's README table (avg). Both over the tasks present."]
  notes = [f"- {r['label']}: {r.get('note', '')}" for r in summary["rows"]
           if not r.get("official")]
  if notes:
    out += ["", "Not the official set (the leaderboard's numbers are not comparable):", *notes]
  out += ["", "Accuracy counts a tie between options as 1/k, never as correct (the official "
          "pipeline counts ties as correct). The macro average is the mean of the columns "
          "present (their number in brackets)."]
  if summary["missing"]:
    out += ["", "Not evaluated (no data): " + "; ".join(
        f"{m['task']} ({m.get('hint') or '`' + m['folder'] + '`'})"
        for m in summary["missing"]) + "."]
  if summary["finetune"]:
    out += ["", "| fine-tuning task | method | accuracy | F1 | MCC | official data "
            "| trained parameters |", "| --- | --- | ---: | ---: | ---: | --- | ---: |"]
    out += [f"| {f['task']} | {f['method']} | {f['headline']:.2f} | {_pct(f.get('f1'))} | "
            f"{_pct(f.get('mcc'))} | {'yes' if f.get('official_data') else 'no'} | "
            f"{f['trained_parameters'] if f['trained_parameters'] is not None else ''} |"
            for f in summary["finetune"]]
  if summary.get("versions"):
    out += ["", "| mode | versions |", "| --- | --- |"]
    out += [f"| {mode} | {versions_lib.line(entry)} |"
            for mode, entry in summary["versions"].items()]
  out += ["", "| task | data file | sha256 |", "| --- | --- | --- |"]
  seen = set()
  for r in summary["rows"]:
    for f in r.get("files") or []:
      if (r["task"], f["name"]) not in seen:
        seen.add((r["task"], f["name"]))
        out.append(f"| {r['task']} | {f['name']} | `{f['sha256']}` |")
  return "\n".join(out) + "\n"


def write(eval_dir: str, info: dict | None = None, missing=None, reports=None,
          versions=None) -> dict:
  """Builds the summary of `eval_dir` and writes summary.json and summary.md there."""
  summary = build(eval_dir, info, missing, reports, versions)
  write_json(os.path.join(eval_dir, "summary.json"), summary)
  tmp = os.path.join(eval_dir, ".tmp-summary.md")
  with open(tmp, "w") as f:
    f.write(markdown(summary))
  os.replace(tmp, os.path.join(eval_dir, "summary.md"))
  return summary


def refresh(workdir: str, versions=None) -> dict | None:
  """Rebuilds workdir/eval/summary.{json,md} from the reports there (for --mode=finetune)."""
  eval_dir = os.path.join(workdir, "eval")
  return write(eval_dir, versions=versions) if os.path.isdir(eval_dir) else None


def plot_learning_curve(path: str, summaries: list[dict]):
  """Each column's number against words seen, one panel per column, a line per backend."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  columns = list(dict.fromkeys(r["column"] for s in summaries for r in s["rows"]))
  backends = list(dict.fromkeys(b for s in summaries for b in s["backends"]))
  cols = min(3, len(columns))
  rows = -(-len(columns) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
  for ax, column in zip(axes.flat, columns):
    for b in backends:
      points = [(s["checkpoint"]["words_seen"], r["values"].get(b)) for s in summaries
                for r in s["rows"] if r["column"] == column]
      points = sorted((w, v) for w, v in points if v is not None)
      if points:
        ax.plot(*zip(*points), marker="o", label=b)
    label, metric = COLUMNS.get(column, (column, ""))
    ax.set_title(label, fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("words seen")
    ax.set_ylabel(metric, fontsize=8)
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(columns):]:
    ax.axis("off")
  save_figure(fig, path)
