"""This tree's training step against another checkout's, alternating in one process.

  git archive BASE_COMMIT | tar -x -C /tmp/base
  python benchmarks/step_ab.py --base /tmp/base [--config configs/cpu_proxy.py]
      [--objective hybrid] [--rows 64] [--seq_len 128] [--rounds 12]

Imports the babylm_jax package of `--base` first and builds its jitted step (forward,
backward, optimizer, EMA) at rows x seq_len tokens on the batches of benchmarks/variants.py;
then drops those modules from sys.modules, imports this tree's package and builds its step
on the same batches. The compiled steps keep their own modules, so both run in this process:
`--rounds` rounds of one step each, in alternating order, so that a shared machine's load
falls on both alike. `ratio` is the median over rounds of base step time / this tree's (> 1:
this tree is faster), `ratio_cpu` the same in this process's CPU seconds. Each side's first
step's loss is printed: the two must agree. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _build(tree: pathlib.Path, args):
  """(step, state, batches) of the package in `tree`, imported afresh."""
  for name in [n for n in sys.modules
               if n.split(".")[0] in ("babylm_jax", "train_step", "variants")]:
    del sys.modules[name]
  sys.path[:0] = [str(tree), str(tree / "benchmarks")]
  try:
    import jax
    from babylm_jax.train.step import _pick
    from train_step import fixed_shape_step, load_config
    from variants import _timed, objective_batch  # this tree's timer serves both sides
    c = load_config(ROOT / "configs" / pathlib.Path(args.config).name)
    if args.objective:
      c.objective.kind = args.objective
    step, state, batches, _ = fixed_shape_step(c, args.rows, args.seq_len,
                                               batch_fn=objective_batch)
    batches = [_pick(b) for b in batches]
    compiled = step.jitted.lower(state, batches[0], ()).compile()
    state, m = compiled(state, batches[0], ())
    loss = float(jax.block_until_ready(m)["loss"])
  finally:
    del sys.path[:2]
  return (lambda s, b: compiled(s, b, ())), state, batches, loss, _timed


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--base", required=True, help="a checkout of the code to compare against")
  p.add_argument("--config", default="configs/cpu_proxy.py")
  p.add_argument("--objective", default=None, help="override objective.kind")
  p.add_argument("--rows", type=int, default=64)
  p.add_argument("--seq_len", type=int, default=128)
  p.add_argument("--rounds", type=int, default=12)
  args = p.parse_args()
  base = pathlib.Path(args.base).resolve()
  if not (base / "babylm_jax" / "train" / "step.py").exists():
    sys.exit(f"--base {args.base} holds no babylm_jax checkout; give a folder with "
             "babylm_jax/ and benchmarks/ of the commit to compare against.")
  sides = {"base": _build(base, args), "new": _build(ROOT, args)}
  print(f"first-step loss: base {sides['base'][3]:.6f}, new {sides['new'][3]:.6f}",
        file=sys.stderr)
  timed = sides["new"][4]  # variants._timed of this tree
  states = {k: v[1] for k, v in sides.items()}
  wall = {k: [] for k in sides}
  cpu = {k: [] for k in sides}
  for r in range(args.rounds):
    for k in (("base", "new") if r % 2 == 0 else ("new", "base")):
      step, _, batches = sides[k][:3]
      states[k], w, u = timed(step, states[k], batches[r % 2])
      wall[k].append(w)
      cpu[k].append(u)
    print(f"round {r}: base {wall['base'][-1]:.3f} s, new {wall['new'][-1]:.3f} s, "
          f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
  ratios = [b / n for b, n in zip(wall["base"], wall["new"])]
  ratios_cpu = [b / n for b, n in zip(cpu["base"], cpu["new"])]
  print(json.dumps(dict(
      config=args.config, objective=args.objective, rows=args.rows, seq_len=args.seq_len,
      rounds=args.rounds, base=str(base), base_step_s=round(statistics.median(wall["base"]), 3),
      new_step_s=round(statistics.median(wall["new"]), 3),
      ratio=round(statistics.median(ratios), 3), ratio_cpu=round(statistics.median(ratios_cpu), 3),
      base_loss=sides["base"][3], new_loss=sides["new"][3], load=os.getloadavg()[0])))


if __name__ == "__main__":
  main()
