"""Step time of each named config of the seed's systems relative to GPT-BERT's.

  python benchmarks/objectives.py [--rows 32] [--seq_len 128] [--rounds 5]
      [--configs ltg_bert_small,elc_bert_small,roberta_small,gpt_small,boot_bert_small]

For each config, in one process: the jitted training step of that config and of
configs/strict_small.py (GPT-BERT), each at rows x seq_len tokens (one length phase, all local
devices on the data axis), alternate step by step for `rounds` rounds, so that a shared
machine's load falls on both alike. Batches are random tokens (two documents a row) turned
into each objective's batch by its own row rule (babylm_jax/data/batches.py), masked by the
config's masker at its starting rate (15% for these configs, 30% for GPT-BERT, whose rows are
1 in 16 causal). Reports per config
the median wall-clock and CPU seconds of its step and of GPT-BERT's, and their ratios (the
median of the per-round ratios). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from babylm_jax.config import BOS_ID, NUM_SPECIAL_TOKENS, derive  # noqa: E402
from babylm_jax.data.batches import CAUSAL_FRACTIONS, ROW_RULES, Rows  # noqa: E402
from babylm_jax.data.masking import make_masker  # noqa: E402
from babylm_jax.model.gpt_bert import count_params  # noqa: E402
from babylm_jax.train import sharding  # noqa: E402
from babylm_jax.train import step as step_lib  # noqa: E402
from benchmarks.train_step import load_config  # noqa: E402

CONFIGS = ("ltg_bert_small", "elc_bert_small", "roberta_small", "gpt_small", "boot_bert_small")


def objective_batch(c, seed, B, T):
  """Random tokens, two documents a row, masked by the config's masker and turned into the
  objective's batch by its row rule."""
  rng = np.random.default_rng(seed)
  V, o = c.model.vocab_size, c.objective
  tokens = rng.integers(NUM_SPECIAL_TOKENS, V, (B, T + 1)).astype(np.int32)
  starts = np.zeros((B, T + 1), bool)
  starts[:, 0] = True
  starts[np.arange(B), rng.integers(T // 4, 3 * T // 4, B)] = True
  tokens[starts] = BOS_ID
  is_causal = rng.random(B) < CAUSAL_FRACTIONS.get(o.kind, o.causal_fraction)
  masker = make_masker(o, V)
  m = masker(rng.random((B, masker.uniforms_per_row(T + 1))), tokens,
             ~starts & ~is_causal[:, None], starts, o.mask_rate_start)
  return ROW_RULES[o.kind](Rows(tokens=tokens, starts=starts, is_causal=is_causal, masked=m))


def setup(name, B, T):
  c = load_config(ROOT / "configs" / f"{name}.py")
  c.train.tokens_per_step = B * T
  c.train.seq_lens, c.train.seq_len_fractions = (T,), (1.0,)
  c.train.steps = 1000
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = -1, 1, 1
  d = derive(c)
  mesh = sharding.make_mesh(c)
  graphdef, state, shardings = step_lib.create_train_state(c, d, mesh)
  train_step = step_lib.make_train_step(c, d, graphdef, mesh, shardings)
  batches = [sharding.global_batch(objective_batch(c, i, B, T), mesh) for i in range(2)]
  state, m = train_step(state, batches[0])  # compile
  jax.block_until_ready(m)
  return dict(config=c, step=train_step, state=state, batches=batches)


def timed(run, i):
  t0, c0 = time.perf_counter(), time.process_time()
  run["state"], m = run["step"](run["state"], run["batches"][i % 2])
  jax.block_until_ready((run["state"], m))
  return time.perf_counter() - t0, time.process_time() - c0, float(m["loss"])


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--rows", type=int, default=32)
  p.add_argument("--seq_len", type=int, default=128)
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--configs", default=",".join(CONFIGS))
  args = p.parse_args()
  B, T = args.rows, args.seq_len
  results = {}
  for name in args.configs.split(","):
    runs = {"gpt_bert": setup("strict_small", B, T), name: setup(name, B, T)}
    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    for i in range(args.rounds):
      for k, run in runs.items():
        w, c, loss = timed(run, i)
        wall[k].append(w)
        cpu[k].append(c)
    ratio_wall = statistics.median(a / b for a, b in zip(wall[name], wall["gpt_bert"]))
    ratio_cpu = statistics.median(a / b for a, b in zip(cpu[name], cpu["gpt_bert"]))
    results[name] = dict(
        objective=runs[name]["config"].objective.kind,
        parameters=count_params(runs[name]["config"].model),
        step_s=round(statistics.median(wall[name]), 3),
        gpt_bert_step_s=round(statistics.median(wall["gpt_bert"]), 3),
        step_cpu_s=round(statistics.median(cpu[name]), 3),
        gpt_bert_step_cpu_s=round(statistics.median(cpu["gpt_bert"]), 3),
        ratio_to_gpt_bert=round(ratio_wall, 3), cpu_ratio_to_gpt_bert=round(ratio_cpu, 3))
    print(name, results[name], file=sys.stderr, flush=True)
    del runs
    gc.collect()
  print(json.dumps(dict(rows=B, seq_len=T, rounds=args.rounds, devices=jax.device_count(),
                        backend=jax.default_backend(), results=results)))


if __name__ == "__main__":
  main()
