"""Seconds to load a run's EMA parameters: the params-only loader (checkpoint_params.load_params,
orbax partial restore of `ema_params`) against the old path (the whole train state restored,
optimizer moments included, then its EMA parameters taken), for the smoke and cpu_proxy shapes.

  python benchmarks/load_params.py [--configs smoke,cpu_proxy] [--repeats 3]

Each shape's checkpoint is written first into a temporary workdir from a freshly initialised
train state. Prints one line per shape, one JSON line last with the ratios (old / new).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from babylm_jax import checkpoint_params  # noqa: E402
from babylm_jax import config as config_lib  # noqa: E402
from babylm_jax.train import checkpoint, sharding, step as step_lib  # noqa: E402


def _best(fn, repeats):
  best, out = float("inf"), None
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t0)
  return best, out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--configs", default="smoke,cpu_proxy")
  ap.add_argument("--repeats", type=int, default=3)
  a = ap.parse_args()
  result = {}
  for name in a.configs.split(","):
    c = importlib.import_module(f"configs.{name}").get_config()
    c.train.steps = 10  # no corpus is read: the derived schedule needs only a length
    derived = config_lib.derive(c)
    mesh = sharding.make_mesh(c)
    with tempfile.TemporaryDirectory() as wd:
      _, state, _ = step_lib.create_train_state(c, derived, mesh)
      ck = checkpoint.Checkpointer(wd, c)
      ck.save(state, checkpoint.make_meta(c, 1, 0, 0, "x"))
      ck.wait()
      ck.close()
      del state

      def old():
        ck = checkpoint.Checkpointer(wd, c, read_only=True)
        _, abstract = step_lib.abstract_train_state(c, config_lib.derive(c), mesh)
        st, _ = ck.restore(1, abstract)
        ck.close()
        return st.ema_params

      def new():
        return checkpoint_params.load_params(c, wd, mesh=mesh)[1]

      t_old, p_old = _best(old, a.repeats)
      t_new, p_new = _best(new, a.repeats)
      same = all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(p_old),
                                                      jax.tree.leaves(p_new)))
    result[name] = dict(old_s=t_old, new_s=t_new, speedup=t_old / t_new, same=same)
    print(f"{name}: full train state {t_old:.3f} s, params only {t_new:.3f} s, "
          f"x{t_old / t_new:.2f}, identical: {same}", flush=True)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
