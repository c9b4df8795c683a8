"""The CPU proxy track end to end: prepare, train and evaluate, timed (issue 13).

  python benchmarks/cpu_proxy.py --workdir DIR [--config configs/cpu_proxy.py]
      [--suites S1,S2] [--backends B1,B2] [--config.KEY=VALUE ...]

Runs launch.py as a user would, in a fresh workdir: --mode=prepare, --mode=train, then
--mode=eval of the final EMA checkpoint on whole suites; --config.KEY=VALUE flags go to all
three. Prints one JSON line last: the training wall time (the train process from start to
exit: start-up, compilation, validation and learning curves included) and its share of the
track's 60-minute budget, tokens/s over that time and the median logged training rate, words
seen, steps, the final validation loss, each suite's macro accuracy per backend, and what the
learning curves cost (their seconds and their share of the training time).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUDGET_S = 3600.0  # the proxy track trains in at most 60 minutes on the 2-core machine


def launch(mode: str, args, overrides: list[str]) -> float:
  """Runs launch.py in one mode; returns its wall time in seconds."""
  cmd = [sys.executable, str(ROOT / "launch.py"), f"--mode={mode}", "--config", args.config,
         "--workdir", args.workdir, *overrides]
  print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
  start = time.perf_counter()
  code = subprocess.run(cmd).returncode
  if code != 0:
    sys.exit(f"error: --mode={mode} stopped with exit code {code}.")
  return time.perf_counter() - start


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--workdir", required=True, help="a fresh folder for the run")
  ap.add_argument("--config", default="configs/cpu_proxy.py")
  ap.add_argument("--suites", default=None,
                  help="suites of the final evaluation (default: the config's eval.suites)")
  ap.add_argument("--backends", default=None,
                  help="backends of the final evaluation (default: the config's eval.backend)")
  args, overrides = ap.parse_known_args()
  bad = [o for o in overrides if not o.startswith("--config.")]
  if bad:
    ap.error(f"unknown arguments {bad}; pass config fields as --config.KEY=VALUE.")
  work = pathlib.Path(args.workdir)
  if (work / "checkpoints").exists() or (work / "metrics.jsonl").exists():
    sys.exit(f"error: '{work}' already holds a run; give a fresh --workdir so that the "
             f"training time is that of a whole run.")

  prepare_s = launch("prepare", args, overrides)
  train_s = launch("train", args, overrides)
  chosen = [f"--config.eval.{k}={v}" for k, v in (("suites", args.suites),
                                                    ("backend", args.backends)) if v]
  eval_s = launch("eval", args, overrides + chosen)

  records = [json.loads(l) for l in (work / "metrics.jsonl").read_text().splitlines() if l]
  train = [r for r in records if "loss" in r]
  val = [r for r in records if "val_loss" in r]
  curves_s = sum(r.get("zero_shot_s", 0.0) for r in records)
  accuracy = {}
  for path in sorted((work / "eval").glob("*-*.json")):  # one report per suite and backend
    report = json.loads(path.read_text())
    if "macro_accuracy" in report:
      accuracy[f"{report['suite']}/{report['backend']}"] = round(report["macro_accuracy"], 4)
  print(json.dumps(dict(
      config=args.config, overrides=overrides, steps=train[-1]["step"],
      words_seen=train[-1]["words_seen"], tokens_seen=train[-1]["tokens_seen"],
      train_wall_s=round(train_s, 1), train_fraction_of_60_min=round(train_s / BUDGET_S, 3),
      tokens_per_s=round(train[-1]["tokens_seen"] / train_s),
      tokens_per_s_logged_median=round(statistics.median(r["tokens_per_s"] for r in train)),
      final_val_loss=round(val[-1]["val_loss"], 4), macro_accuracy=accuracy,
      curves_s=round(curves_s, 1), curves_fraction_of_train=round(curves_s / train_s, 4),
      prepare_s=round(prepare_s, 1), eval_s=round(eval_s, 1),
      load_average=[round(x, 2) for x in os.getloadavg()])))


if __name__ == "__main__":
  main()
