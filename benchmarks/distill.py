"""Training-step time with one and two distillation teachers relative to the plain step.

  python benchmarks/distill.py [--config configs/cpu_proxy.py] [--rows 64] [--seq_len 128]
      [--steps 4]

The full jitted step of babylm_jax.train.step (forward, backward, AdamW, EMA) of the config's
network runs on the batches of benchmarks/train_step.py, plain and with 1 and 2 teachers
(objective.distill, train/distill.py) of the same shape, alternating step by step in one
process so that a shared machine's load falls on all alike. The teachers' weights are a fresh
initialisation: the time of their forward passes does not depend on what they learned.
`ratio` is the median step time over the median plain step time of the same rounds;
`ratio_cpu` the same in CPU seconds of this process. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402

from babylm_jax.config import derive  # noqa: E402
from babylm_jax.train import distill, step as step_lib  # noqa: E402
from train_step import fixed_shape_step, load_config  # noqa: E402
from variants import _timed  # noqa: E402


def _teachers(c, mesh, n: int) -> list[distill.Teacher]:
  """n networks of `c`'s shape, initialised from other seeds and laid out on `mesh`."""
  out = []
  for k in range(n):
    tc = c.copy_and_resolve_references()
    tc.seed = 100 + k
    graphdef, state, _ = step_lib.create_train_state(tc, derive(tc), mesh)
    out.append(distill.Teacher(f"seed{tc.seed}", tc, graphdef, state.params, "", "", 0))
  return out


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", default=str(ROOT / "configs" / "cpu_proxy.py"))
  p.add_argument("--rows", type=int, default=64)
  p.add_argument("--seq_len", type=int, default=128)
  p.add_argument("--steps", type=int, default=4)
  args = p.parse_args()
  B, T = args.rows, args.seq_len

  c = load_config(args.config)
  base_step, base_state, batches, mesh = fixed_shape_step(c, B, T)
  d = derive(c)
  runs = {"plain": (base_step, base_state)}
  for n in (1, 2):
    graphdef, state, shardings = step_lib.create_train_state(c, d, mesh)
    runs[f"teachers_{n}"] = (step_lib.make_train_step(c, d, graphdef, mesh, shardings,
                                                      _teachers(c, mesh, n)), state)
  compile_s = {}
  for name, (step, state) in runs.items():
    t0 = time.perf_counter()
    state, _, _ = _timed(step, state, batches[0])
    compile_s[name] = round(time.perf_counter() - t0, 1)
    runs[name] = (step, state)
  wall = {k: [] for k in runs}
  cpu = {k: [] for k in runs}
  for i in range(args.steps):
    for name, (step, state) in runs.items():
      state, w, u = _timed(step, state, batches[i % 2])
      runs[name] = (step, state)
      wall[name].append(w)
      cpu[name].append(u)
  med = {k: statistics.median(v) for k, v in wall.items()}
  med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
  out = {k: dict(step_s=round(med[k], 3), compile_s=compile_s[k],
                 ratio=round(med[k] / med["plain"], 3),
                 ratio_cpu=round(med_cpu[k] / med_cpu["plain"], 3)) for k in runs}
  for k, v in out.items():
    print(k, v, file=sys.stderr, flush=True)
  print(json.dumps(dict(config=args.config, objective=c.objective.kind, rows=B, seq_len=T,
                        steps=args.steps, backend=jax.default_backend(),
                        devices=jax.device_count(), runs=out)))


if __name__ == "__main__":
  main()
