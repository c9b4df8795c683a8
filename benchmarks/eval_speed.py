"""Zero-shot scoring, today's engine against the one before the shared-context path, in one run.

  python benchmarks/eval_speed.py [--baseline REV] [--tasks entity_tracking:causal,blimp_fast:mntp]
                                  [--limit 60] [--rounds 3] [--tokenizer PATH]

The baseline is babylm_jax/eval/scoring.py as it was at git revision REV (read with `git
show`, imported as its own module; nothing of it is kept in the package), the new engine the
one in this tree. Both score the same sequences with the same cpu_proxy-shaped model (random
weights: speed does not depend on them) and the tokenizer of a trained proxy run when there is
one (else a BPE trained on the shared text). For each task:backend, each engine first scores
a warm-up set that compiles every shape the timed set uses; then the rounds alternate old and
new on the timed items (`--limit`, spread over the task's files), so that a shared machine's
load falls on both alike. `ratio` is the median old time over the median new time;
`max_abs_diff` the largest difference of a sequence's log-probability between the two.
`projected_seconds` scales the medians to the whole task. The last line is one JSON object.
"""

import argparse
import dataclasses
import importlib.util
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from babylm_jax.eval import run, scoring, suites  # noqa: E402
from babylm_jax.model.gpt_bert import GPTBert  # noqa: E402
from configs.cpu_proxy import get_config  # noqa: E402

# The last commit before the shared-context scoring: the engine the issue timed.
BASELINE = "519ba8f"
PROXY_TOKENIZER = pathlib.Path("/work/sweeps/data_questions/mix/tokenizer.json")


def old_scoring(rev: str):
  """babylm_jax/eval/scoring.py at `rev` as a module of its own."""
  try:
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:babylm_jax/eval/scoring.py"],
                          check=True, capture_output=True, text=True).stdout
  except subprocess.CalledProcessError:
    sys.exit(f"git revision '{rev}' has no babylm_jax/eval/scoring.py; pass --baseline REV.")
  path = pathlib.Path(tempfile.mkdtemp()) / "scoring_baseline.py"
  path.write_text(text)
  spec = importlib.util.spec_from_file_location("scoring_baseline", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def spread_items(suite: suites.Suite, k: int) -> suites.Suite:
  """k items evenly spaced over the suite (every file and paradigm is represented)."""
  step = max(1, len(suite.items) // k)
  return dataclasses.replace(suite, items=suite.items[::step][:k])


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--baseline", default=BASELINE, help="git revision of the old scoring.py")
  ap.add_argument("--tasks", default="entity_tracking:causal,blimp_fast:mntp",
                  help="comma list of task:backend")
  ap.add_argument("--limit", type=int, default=60, help="items timed per task")
  ap.add_argument("--rounds", type=int, default=3)
  ap.add_argument("--tokenizer", default=None, help="tokenizer.json (default: a proxy run's)")
  args = ap.parse_args()

  config = get_config()
  max_len, tpb = config.model.max_position, config.eval.tokens_per_batch
  if args.tokenizer or PROXY_TOKENIZER.is_file():
    tok = Tokenizer.from_file(str(args.tokenizer or PROXY_TOKENIZER))
  else:
    from eval import train_tokenizer
    tok = train_tokenizer(config.model.vocab_size)
  model = GPTBert(config.model, rngs=nnx.Rngs(0))
  old_lib = old_scoring(args.baseline)
  engines = dict(old=old_lib.Scorer(model, max_len, tpb), new=scoring.Scorer(model, max_len, tpb))
  result = dict(baseline=args.baseline, limit=args.limit, rounds=args.rounds, tasks={})
  for spec in args.tasks.split(","):
    name, backend = spec.split(":")
    suite = suites.load_suite(name, str(ROOT / config.eval.data[name]))
    timed = spread_items(suite, args.limit)
    warm = spread_items(dataclasses.replace(suite, items=suite.items[1:]), args.limit)
    seqs = run.suite_sequences(tok, timed, max_len)
    warm_seqs = run.suite_sequences(tok, warm, max_len) + seqs[:1]
    times = {k: [] for k in engines}
    scores = {}
    for k, engine in engines.items():  # compile every shape
      engine.reset()
      engine.score(warm_seqs, backend)
      engine.score(seqs, backend)
    for _ in range(args.rounds):
      for k, engine in engines.items():
        engine.reset()
        t0 = time.perf_counter()
        scores[k] = engine.score(seqs, backend)
        times[k].append(time.perf_counter() - t0)
    old_s, new_s = statistics.median(times["old"]), statistics.median(times["new"])
    scale = len(suite.items) / len(timed.items)
    task = dict(items=len(suite.items), timed_items=len(timed.items), sequences=len(seqs),
                old_seconds=[round(t, 2) for t in times["old"]],
                new_seconds=[round(t, 2) for t in times["new"]],
                ratio=round(old_s / new_s, 2),
                max_abs_diff=float(np.max(np.abs(scores["old"] - scores["new"]))),
                old_projected_seconds=round(old_s * scale, 1),
                new_projected_seconds=round(new_s * scale, 1),
                new_stats=engines["new"].stats)
    print(f"{spec}: {task}", flush=True)
    result["tasks"][spec] = task
  print(json.dumps(result))


if __name__ == "__main__":
  main()
