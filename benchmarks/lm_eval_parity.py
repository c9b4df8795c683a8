"""lm-evaluation-harness and babylm_jax on one export: the same items, the same decisions?

  python benchmarks/lm_eval_parity.py --export DIR --tasks zhoblimp,blimp \
      --tasks-repo CHECKOUT [--limit 10] [--paradigms 0] [--lm_eval_python PY] \
      [--data zhoblimp=DIR,...] [--out DIR]

The BabyLM 2026 multilingual track scores zero-shot tasks with lm-eval (`--model hf
--model_args pretrained=EXPORT,trust_remote_code=True`, babylm-org/babylm-eval
multilingual/scripts/zeroshot_model.sh). This benchmark runs the harness (0.4.13, pinned in
tests/pinned_env.py LM_EVAL_PINS, built on first use unless --lm_eval_python is given) on an
export from --mode=export, on CPU, with the pipeline's own task definitions made to read local
files: each task YAML of the fetched checkout (--tasks-repo, multilingual/tasks/<group>/;
English `blimp` is lm-eval's built-in group, read from the installed package) is resolved
through its `include`s and written to a temporary folder with `dataset_path: json` and
`data_files` pointing at the local jsonl (eval.data.<task>, or --data); nothing of theirs is
kept in this project. --limit takes the first N items of every task (lm-eval's --limit),
--paradigms the first K tasks of a group (0: all).

babylm_jax then scores the same items on the weights of the same export (causal backend) and
the two are compared per item: the decision (lm-eval: argmax of the summed log-likelihoods,
a tie goes to the first, correct option; ours under the same rule), the largest difference of
a summed log-likelihood, and per task lm-eval's `acc` against ours. The runner also records
what lm-eval conditions an empty context on (`prefix`: prefix_token_id, the tokenizer's
BOS/EOS, a sentence's ids with add_special_tokens=False). The last line is one JSON object:
items, differing_decisions, max_task_gap_points, max_abs_logprob_diff, the group accuracies
of both, and the prefix.

Not part of CI's default run (it builds the harness's environment, minutes on first use);
tests/test_lm_eval_parity.py runs it on a tiny export and a few items.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from babylm_jax.config import base_config  # noqa: E402
from babylm_jax.eval import run, suites  # noqa: E402

RUNNER = pathlib.Path(__file__).resolve().parent / "lm_eval_runner.py"
# Our task -> its folder of YAMLs in the pipeline's checkout (multilingual/tasks/); None: the
# harness's built-in tasks (lm_eval/tasks/<task>), as the pipeline's zeroshot_eng uses blimp.
TASK_FOLDERS = {"zhoblimp": "zhoblimp", "blimp_nl": "blimp_nl", "blimp": None,
                "multiblimp_eng": "multiblimp", "multiblimp_nld": "multiblimp",
                "xcomps_nl": "xcomps", "xcomps_zh": "xcomps"}


def _resolve(path: pathlib.Path) -> dict:
  """A task YAML with its `include` chain merged in (the including file wins)."""
  cfg = yaml.safe_load(path.read_text()) or {}
  if "include" in cfg:
    base = _resolve(path.parent / cfg.pop("include"))
    cfg = {**base, **cfg}
  return cfg


def _index(folder: pathlib.Path) -> tuple[dict, dict]:
  """({task: resolved config}, {group: its YAML}) of a folder of lm-eval task files."""
  tasks, groups = {}, {}
  for path in sorted(folder.iterdir()):
    if not (path.suffix == ".yaml" or path.name.endswith("_yaml")):
      continue
    cfg = yaml.safe_load(path.read_text()) or {}
    if "group" in cfg and isinstance(cfg.get("task"), list):
      groups[cfg["group"]] = cfg
    elif "task" in cfg:
      tasks[cfg["task"]] = _resolve(path)
  return tasks, groups


def _data_file(task_cfg: dict, folder: pathlib.Path) -> pathlib.Path:
  """The local jsonl of one lm-eval task: <dataset_name>.jsonl (ZhoBLiMP, BLiMP, BLiMP-NL),
  or the folder's one file (a MultiBLiMP language, an XCOMPS split)."""
  named = folder / f"{task_cfg.get('dataset_name')}.jsonl"
  if named.is_file():
    return named
  files = sorted(folder.glob("*.jsonl"))
  if len(files) == 1:
    return files[0]
  sys.exit(f"no '{named.name}' in '{folder}' for lm-eval task '{task_cfg['task']}'; "
           f"put the task's data there as jsonl.")


def generate(name: str, source: pathlib.Path, data: pathlib.Path, out: pathlib.Path,
             paradigms: int) -> list[tuple[str, pathlib.Path]]:
  """Writes `name`'s lm-eval YAMLs reading local files into `out`; [(lm-eval task, file)]."""
  tasks, groups = _index(source)
  if name in groups:
    group = dict(groups[name])
    members = group["task"][:paradigms or None]
    group["task"] = members
  elif name in tasks:
    group, members = None, [name]
  else:
    sys.exit(f"'{source}' defines no lm-eval task or group '{name}'.")
  made = []
  for task in members:
    cfg = dict(tasks[task])
    path = _data_file(cfg, data)
    split = next((cfg[k] for k in ("test_split", "validation_split") if cfg.get(k)), "train")
    for k in ("dataset_name", "group", "tag", "training_split", "fewshot_split"):
      cfg.pop(k, None)
    # The json builder names the one split of data_files after its key: keep their split name.
    cfg.update(dataset_path="json", dataset_kwargs=dict(data_files={split: str(path)}))
    (out / f"{task}.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))
    made.append((task, path))
  if group is not None:
    (out / f"_{name}.yaml").write_text(yaml.safe_dump(group, sort_keys=False))
  return made


def lm_eval_python(given: str) -> str:
  if given:
    return given
  import pinned_env
  return str(pinned_env.pinned_python(pinned_env.LM_EVAL_PINS))


def our_scores(export: pathlib.Path, name: str, files, limit: int | None):
  """({lm-eval task: Suite of its first `limit` items}, scores per item) by babylm_jax."""
  from official_parity import our_scorer
  scorer, tokenizer = our_scorer(export)
  out = {}
  for task, path in files:
    items = suites.parse_file(path, name)[:limit]
    suite = suites.Suite(name, tuple(items), ())
    out[task] = (suite, run.score_suite(scorer, tokenizer, suite, "causal"))
  return out


def compare(name: str, ours: dict, theirs: dict) -> dict:
  """Per lm-eval task: items matched by their options, decisions that differ, acc of both."""
  parse = suites._PARSERS[name]
  per, diffs, unmatched = {}, [], 0
  for task, (suite, scores) in ours.items():
    by_options = {it.options: s for it, s in zip(suite.items, scores)}
    rows = theirs["samples"].get(task, [])
    differ, ours_correct = 0, 0
    for row in rows:
      options = parse(row["doc"], task, f"lm-eval sample of {task}").options
      if options not in by_options:
        unmatched += 1
        continue
      mine = np.asarray(by_options[options], np.float64)
      lls = np.asarray(row["lls"], np.float64)
      diffs.append(float(np.max(np.abs(mine - lls))))
      # lm-eval's acc: argmax, the first option on a tie (the correct one).
      differ += int(np.argmax(mine) != np.argmax(lls))
      ours_correct += int(np.argmax(mine) == 0)
    n = len(rows)
    per[task] = dict(items=n, ours_items=len(suite.items), differing_decisions=differ,
                     lm_eval_acc=100 * theirs["results"].get(task, float("nan")),
                     ours_acc=100 * ours_correct / max(n, 1))
  return dict(tasks=per, unmatched=unmatched, max_abs_logprob_diff=max(diffs, default=None))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--export", type=pathlib.Path, required=True)
  ap.add_argument("--tasks", default="zhoblimp,blimp")
  ap.add_argument("--tasks-repo", type=pathlib.Path, required=True,
                  help="a checkout of babylm-org/babylm-eval (its multilingual/tasks/)")
  ap.add_argument("--limit", type=int, default=10, help="items per lm-eval task (0: all)")
  ap.add_argument("--paradigms", type=int, default=0, help="tasks per group (0: all)")
  ap.add_argument("--data", default="", help="task=DIR,... (default: eval.data.<task>)")
  ap.add_argument("--lm_eval_python", default="")
  ap.add_argument("--batch_size", type=int, default=32)
  ap.add_argument("--out", type=pathlib.Path, default=None)
  args = ap.parse_args()
  names = [t.strip() for t in args.tasks.split(",") if t.strip()]
  for t in names:
    if t not in TASK_FOLDERS:
      ap.error(f"--tasks entry '{t}' is unknown; use some of {', '.join(TASK_FOLDERS)}.")
  if not (args.export / "config.json").is_file():
    ap.error(f"--export '{args.export}' holds no config.json; give a --mode=export folder.")
  tasks_dir = args.tasks_repo / "multilingual" / "tasks"
  if not tasks_dir.is_dir():
    ap.error(f"--tasks-repo '{args.tasks_repo}' has no multilingual/tasks/; give a checkout "
             f"of babylm-org/babylm-eval.")
  data = {t: pathlib.Path(base_config().eval.data[t]) for t in names}
  for entry in filter(None, args.data.split(",")):
    task, _, folder = entry.partition("=")
    data[task] = pathlib.Path(folder)
  limit = args.limit or None
  py = lm_eval_python(args.lm_eval_python)
  builtin = pathlib.Path(subprocess.run(
      [py, "-c", "import lm_eval, os; print(os.path.dirname(lm_eval.__file__))"],
      capture_output=True, text=True, check=True).stdout.strip()) / "tasks"
  out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="lm_eval_parity-"))
  include = out / "tasks"
  include.mkdir(parents=True, exist_ok=True)
  files = {}
  for t in names:
    source = tasks_dir / TASK_FOLDERS[t] if TASK_FOLDERS[t] else builtin / t
    files[t] = generate(t, source, data[t], include, args.paradigms)

  t0 = time.perf_counter()
  env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
             PYTHONNOUSERSITE="1", TOKENIZERS_PARALLELISM="false",
             HF_DATASETS_CACHE=str(out / "datasets_cache"))
  env.pop("PYTHONPATH", None)
  theirs_path = out / "lm_eval.json"
  subprocess.run([py, str(RUNNER), "--export", str(args.export.resolve()), "--include",
                  str(include), "--tasks", ",".join(names), "--out", str(theirs_path),
                  "--batch_size", str(args.batch_size)]
                 + (["--limit", str(limit)] if limit else []),
                 check=True, env=env, stdin=subprocess.DEVNULL)
  lm_eval_s = time.perf_counter() - t0
  theirs = json.loads(theirs_path.read_text())
  t0 = time.perf_counter()
  result = dict(lm_eval=theirs["lm_eval"], prefix=theirs["prefix"], limit=limit, tasks={},
                groups={})
  for t in names:
    c = compare(t, our_scores(args.export.resolve(), t, files[t], limit), theirs)
    result["tasks"][t] = c
    print(f"\n{t}: {'lm-eval task':<55} {'items':>5} {'lm-eval':>8} {'ours':>8} {'differ':>6}")
    for task, p in c["tasks"].items():
      print(f"{'':<{len(t) + 2}}{task:<55} {p['items']:5d} {p['lm_eval_acc']:8.2f} "
            f"{p['ours_acc']:8.2f} {p['differing_decisions']:6d}")
    # The group's acc as lm-eval aggregates it (its YAML's weight_by_size) from our decisions.
    group_cfg = yaml.safe_load((include / f"_{t}.yaml").read_text()) \
        if (include / f"_{t}.yaml").is_file() else None
    accs = [(p["ours_acc"], p["items"]) for p in c["tasks"].values()]
    weighted = not group_cfg or group_cfg["aggregate_metric_list"][0].get("weight_by_size")
    acc, n = np.array(accs, np.float64).T
    ours_group = float(np.sum(acc * n) / np.sum(n) if weighted else np.mean(acc))
    result["groups"][t] = dict(lm_eval=100 * theirs["results"].get(t, float("nan")),
                               ours=ours_group)
  result["seconds"] = dict(lm_eval=round(lm_eval_s, 1), ours=round(time.perf_counter() - t0, 1))
  per = [p for c in result["tasks"].values() for p in c["tasks"].values()]
  result["items"] = sum(p["items"] for p in per)
  result["differing_decisions"] = sum(p["differing_decisions"] for p in per)
  result["unmatched"] = sum(c["unmatched"] for c in result["tasks"].values())
  result["max_task_gap_points"] = max(abs(p["lm_eval_acc"] - p["ours_acc"]) for p in per)
  result["max_abs_logprob_diff"] = max(
      (c["max_abs_logprob_diff"] for c in result["tasks"].values()
       if c["max_abs_logprob_diff"] is not None), default=None)
  summary = {k: result[k] for k in ("items", "differing_decisions", "unmatched",
                                     "max_task_gap_points", "max_abs_logprob_diff", "groups",
                                     "prefix", "seconds", "lm_eval", "limit")}
  (out / "parity.json").write_text(json.dumps(result, indent=1))
  print(json.dumps(summary))


if __name__ == "__main__":
  main()
