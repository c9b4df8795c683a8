"""What the learning curves cost on a proxy-sized run (issue 13, section 2): target < 0.10.

Trains a model of the CPU proxy track's size (--config, default configs/cpu_proxy.py when it
exists, else the smoke config made 4 x 256 (FFN 683, residual, causal rows) with a vocabulary
of 8,192 and 8,192 tokens per step at T=128 on the shared 3.45M-word sample, as the draft
proxy recipe) for --steps steps with the learning curves on
(blimp_fast, supplement, ewok; causal; train.eval_suites_max_items items per suite) every
--every_words words, and measures in the same run the seconds of a training step (median of
the logged intervals that hold no curve point) and of a curve point (median; the first point,
which compiles, reported apart). From them it projects the curves' share of a --budget_s run
with points at the start, at the BabyLM milestones the run reaches and at its end:

  fraction = (2 + milestones reached) x point seconds / budget seconds   (+ one compile)

  python benchmarks/curves_cost.py [--steps 20] [--every_words 30000] [--max_items 2000]

Prints one JSON line last.
"""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def proxy_config(args):
  from babylm_jax import config_files
  path = ROOT / "configs" / "cpu_proxy.py"
  if args.config or path.exists():
    return config_files.load(args.config or str(path))
  c = config_files.load(str(ROOT / "configs" / "smoke.py"))
  c.data.path = str(ROOT.parent / "shared" / "data" / "babylm_text" / "train_600k")
  c.model.vocab_size, c.model.hidden_size, c.model.num_layers = 8192, 256, 4
  c.model.num_heads, c.model.intermediate_size = 4, 683
  c.model.layer_weighting, c.objective.causal_fraction = "residual", 1.0
  c.train.tokens_per_step, c.train.seq_lens, c.train.seq_len_fractions = 8192, (128,), (1.0,)
  return c


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--config", default=None)
  ap.add_argument("--steps", type=int, default=20)
  ap.add_argument("--every_words", type=int, default=30_000)
  ap.add_argument("--max_items", type=int, default=2000)
  ap.add_argument("--suites", default="blimp_fast,supplement,ewok")
  ap.add_argument("--budget_s", type=float, default=3600.0)
  args = ap.parse_args()

  from babylm_jax.train.checkpoint import MILESTONES
  from babylm_jax.train.loop import train
  c = proxy_config(args)
  c.train.steps = args.steps
  c.train.log_every = 1  # every step timed, so that intervals without a curve point exist
  c.train.eval_every = 10 ** 9
  c.checkpoint.every = 10 ** 9
  c.checkpoint.milestones = False
  c.train.eval_suites = args.suites
  c.train.eval_suites_backend = "causal"
  c.train.eval_suites_every_words = args.every_words
  c.train.eval_suites_max_items = args.max_items
  with tempfile.TemporaryDirectory() as workdir:
    train(c, workdir)
    records = [json.loads(l) for l in (pathlib.Path(workdir) / "metrics.jsonl").read_text()
               .splitlines() if l]

  points = [r for r in records if "zero_shot" in r]
  steps = [r for r in records if "loss" in r]
  clean, prev = [], 0
  for r in steps:  # intervals without a curve point, after the compiling first one
    if prev and not any(prev < p["step"] <= r["step"] for p in points):
      clean.append(r["step_time_s"])
    prev = r["step"]
  step_s = statistics.median(clean)
  point_s = statistics.median(p["zero_shot_s"] for p in points[1:])
  words_per_step = steps[-1]["words_seen"] / steps[-1]["step"]
  words_in_budget = args.budget_s / step_s * words_per_step
  n_points = 2 + sum(m <= words_in_budget for m in MILESTONES)
  print(json.dumps(dict(
      model=dict(layers=c.model.num_layers, hidden=c.model.hidden_size,
                 vocab=c.model.vocab_size, tokens_per_step=c.train.tokens_per_step),
      items=points[-1]["zero_shot_items"], step_s=round(step_s, 3),
      point_s=round(point_s, 2), first_point_s=round(points[0]["zero_shot_s"], 2),
      points_measured=len(points), words_per_step=round(words_per_step),
      projected_words=round(words_in_budget), projected_points=n_points,
      projected_fraction=round((n_points * point_s + points[0]["zero_shot_s"] - point_s)
                               / args.budget_s, 4))))


if __name__ == "__main__":
  main()
