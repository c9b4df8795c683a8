"""How much the training loop adds to the bare jitted step.

Runs the smoke config through `babylm_jax.train.loop.train` (input pipeline, logging,
metrics.jsonl, TensorBoard, validation off, asynchronous checkpoints every 50 steps included)
and, in the same process, times the bare jitted train step on batches of the same shape already
on the device. Prints one JSON line last: loop tokens/s, bare-step tokens/s and their ratio
(target >= 0.95). The loop's rate is taken from its own records after the first (compiling)
logging window.

  python benchmarks/train_loop.py [--steps 200] [--data ../shared/data/babylm_text/train_100k]
"""

import argparse
import importlib.util
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def smoke_config(args, cache_dir):
  spec = importlib.util.spec_from_file_location("smoke", ROOT / "configs" / "smoke.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config()
  c.data.path = args.data
  c.data.cache_dir = cache_dir
  c.train.steps = args.steps
  c.train.seq_lens = (args.seq_len,)
  c.train.seq_len_fractions = (1.0,)
  c.train.log_every = 20
  c.train.eval_every = 10 ** 9
  c.checkpoint.every = 50
  return c


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=200)
  p.add_argument("--seq_len", type=int, default=128)
  p.add_argument("--data", default=str(ROOT.parent / "shared/data/babylm_text/train_100k"))
  args = p.parse_args()

  import jax
  from babylm_jax.data.batches import BatchSource
  from babylm_jax.data.prepare import prepare_data
  from babylm_jax.train import loop, sharding, step as step_lib

  with tempfile.TemporaryDirectory() as tmp:
    config = smoke_config(args, f"{tmp}/cache")
    workdir = pathlib.Path(tmp) / "run"
    loop.train(config, str(workdir))
    recs = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in recs if "tokens_per_s" in r][1:]  # skip the compiling window
    loop_tokens_per_s = sum(r["tokens_per_s"] for r in train_recs) / len(train_recs)

    # The bare step: same config, same shapes, batches already on the device.
    prepared = prepare_data(config)
    derived = loop.derive_for_corpus(config, prepared.train)
    source = BatchSource(prepared.train, config, derived)
    mesh = sharding.make_mesh(config)
    graphdef, state, shardings = step_lib.create_train_state(config, derived, mesh)
    train_step = step_lib.make_train_step(config, derived, graphdef, mesh, shardings)
    batches = [sharding.global_batch(source.batch(s), mesh) for s in range(8)]
    state, m = train_step(state, batches[0])
    jax.block_until_ready(m)
    n = len(train_recs) * config.train.log_every
    start = time.perf_counter()
    for i in range(n):
      state, m = train_step(state, batches[i % len(batches)])
    jax.block_until_ready((state, m))
    bare_tokens_per_s = n * derived.tokens_per_step / (time.perf_counter() - start)

  print(json.dumps(dict(steps=args.steps, seq_len=args.seq_len,
                        loop_tokens_per_s=round(loop_tokens_per_s, 1),
                        bare_step_tokens_per_s=round(bare_tokens_per_s, 1),
                        ratio=round(loop_tokens_per_s / bare_tokens_per_s, 4))))


if __name__ == "__main__":
  main()
