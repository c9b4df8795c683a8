"""Tokens/s of cached generation (model/cache.generate) against recomputing the whole forward
for every new token (model/cache.recompute), measured in the same run, for the cpu_proxy and
strict_small model shapes (random init: speed does not depend on the weights).

  python benchmarks/generate.py [--batch 4] [--prompt 32] [--new 64] [--configs cpu_proxy,...]

Compile time is excluded (each function runs once before it is timed). Prints one line per
shape and one JSON line last with the speed-ups.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from babylm_jax.model import cache as cache_lib  # noqa: E402
from babylm_jax.model.gpt_bert import GPTBert  # noqa: E402


def _timed(fn, args, repeats):
  jax.block_until_ready(fn(*args))  # compile
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t0)
  return best, np.asarray(out)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--configs", default="cpu_proxy,strict_small")
  ap.add_argument("--batch", type=int, default=4)
  ap.add_argument("--prompt", type=int, default=32)
  ap.add_argument("--new", type=int, default=64)
  ap.add_argument("--repeats", type=int, default=2)
  a = ap.parse_args()
  result = dict(batch=a.batch, prompt=a.prompt, new_tokens=a.new, device=jax.devices()[0].platform)
  for name in a.configs.split(","):
    cfg = importlib.import_module(f"configs.{name}").get_config().model
    graphdef, state = nnx.split(GPTBert(cfg, rngs=nnx.Rngs(0)))
    params = nnx.to_pure_dict(state)
    rng = np.random.default_rng(0)
    ids = rng.integers(16, cfg.vocab_size, (a.batch, a.prompt)).astype(np.int32)
    ids[:, 0] = 1
    pad = np.zeros((a.batch,), np.int32)
    greedy = cache_lib.Sampling(temperature=0.0)
    args = (graphdef, params, ids, pad, jax.random.key(0), a.new, greedy)
    cached = jax.jit(cache_lib.generate, static_argnums=(5, 6))
    plain = jax.jit(cache_lib.recompute, static_argnums=(5, 6))
    t_cached, out_c = _timed(cached, args, a.repeats)
    t_plain, out_p = _timed(plain, args, a.repeats)
    tokens = a.batch * a.new
    row = dict(cached_tokens_per_s=tokens / t_cached, recompute_tokens_per_s=tokens / t_plain,
               speedup=t_plain / t_cached, same_tokens=bool((out_c == out_p).all()))
    print(f"{name}: cached {row['cached_tokens_per_s']:.1f} tok/s, recompute "
          f"{row['recompute_tokens_per_s']:.1f} tok/s, x{row['speedup']:.2f}, same greedy "
          f"tokens: {row['same_tokens']}", flush=True)
    result[name] = row
  print(json.dumps(result))


if __name__ == "__main__":
  main()
