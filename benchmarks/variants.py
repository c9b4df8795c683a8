"""Training-step time of each architecture variant relative to GPT-BERT's, in one process.

  python benchmarks/variants.py [--config configs/strict_small.py] [--rows 32]
      [--seq_len 128] [--steps 4] [--variants standard_rotary,gelu_ffn,...]
  python benchmarks/variants.py --variants= --configs ltg_bert_small,gpt_small,...

For each variant (config.model overrides, VARIANTS below) the full jitted step of
babylm_jax.train.step (forward, backward, AdamW, EMA) runs on the batches of
benchmarks/train_step.py, alternating step by step with the default network's, so that a
shared machine's load falls on both alike. Each of `--configs` (configs/<name>.py, the seed's
systems: their own objective, architecture and optimizer) runs the same way on random tokens
(two documents a row) masked by its masker at its starting rate and turned into its
objective's batch by its row rule (babylm_jax/data/batches.py). `ratio` is the median variant step time over the
median default step time of the same rounds; `ratio_cpu` the same in CPU seconds of this
process (all threads), less sensitive to other jobs. The last line printed is one JSON object.
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

import numpy as np  # noqa: E402

from babylm_jax.config import BOS_ID, NUM_SPECIAL_TOKENS  # noqa: E402
from babylm_jax.data.batches import CAUSAL_FRACTIONS, ROW_RULES, Rows  # noqa: E402
from babylm_jax.data.masking import make_masker  # noqa: E402
from babylm_jax.model.gpt_bert import count_params  # noqa: E402
from babylm_jax.train import flops  # noqa: E402
from train_step import fixed_shape_step, load_config  # noqa: E402

CONFIGS = ("ltg_bert_small", "elc_bert_small", "roberta_small", "gpt_small", "boot_bert_small")

VARIANTS = {
    "residual": dict(layer_weighting="residual"),
    "elc": dict(layer_weighting="elc"),
    "no_normformer": dict(normformer=False),
    "gelu_ffn": dict(ffn="gelu"),
    "standard_rotary": dict(attention="standard", position="rotary"),
    "standard_absolute": dict(attention="standard", position="learned_absolute"),
    "head_dropout": dict(head_dropout=0.1),
    "roberta_like": dict(attention="standard", position="learned_absolute", normformer=False,
                         ffn="gelu", layer_weighting="residual"),
    "gpt_like": dict(attention="standard", position="rotary", normformer=False, ffn="gelu",
                     layer_weighting="residual"),
}


def objective_batch(c, seed, B, T):
  """Random tokens, two documents a row, masked by config `c`'s masker and turned into its
  objective's batch by the objective's row rule."""
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


def _timed(step, state, batch):
  t0, c0 = time.perf_counter(), time.process_time()
  state, m = step(state, batch)
  jax.block_until_ready((state, m))
  return state, time.perf_counter() - t0, time.process_time() - c0


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", default=str(ROOT / "configs" / "strict_small.py"))
  p.add_argument("--rows", type=int, default=32)
  p.add_argument("--seq_len", type=int, default=128)
  p.add_argument("--steps", type=int, default=4)
  p.add_argument("--variants", default=",".join(VARIANTS))
  p.add_argument("--configs", default="", help=f"comma list of {', '.join(CONFIGS)}")
  args = p.parse_args()
  B, T = args.rows, args.seq_len

  base_step, base_state, batches, _ = fixed_shape_step(load_config(args.config), B, T)
  base_state, _, _ = _timed(base_step, base_state, batches[0])  # compile
  base_cfg = load_config(args.config).model
  out = {"default": dict(params=count_params(base_cfg),
                         flops_per_token=flops.flops_per_token(base_cfg, T))}
  runs = [(n, None) for n in args.variants.split(",") if n]
  runs += [(n, ROOT / "configs" / f"{n}.py") for n in args.configs.split(",") if n]
  for name, path in runs:
    if path is None:
      c = load_config(args.config)
      c.model.update(VARIANTS[name])
      step, state, own, _ = fixed_shape_step(c, B, T)
    else:
      c = load_config(path)
      step, state, own, _ = fixed_shape_step(c, B, T, batch_fn=objective_batch)
    t0 = time.perf_counter()
    state, _, _ = _timed(step, state, own[0])
    compile_s = time.perf_counter() - t0
    wall, cpu, base_wall, base_cpu = [], [], [], []
    for i in range(args.steps):
      base_state, w, u = _timed(base_step, base_state, batches[i % 2])
      base_wall.append(w)
      base_cpu.append(u)
      state, w, u = _timed(step, state, own[i % 2])
      wall.append(w)
      cpu.append(u)
    out[name] = dict(
        overrides=VARIANTS.get(name), objective=c.objective.kind, params=count_params(c.model),
        flops_per_token=flops.flops_per_token(c.model, T), compile_s=round(compile_s, 1),
        step_s=round(statistics.median(wall), 3),
        default_step_s=round(statistics.median(base_wall), 3),
        ratio=round(statistics.median(wall) / statistics.median(base_wall), 3),
        ratio_cpu=round(statistics.median(cpu) / statistics.median(base_cpu), 3))
    print(name, out[name], file=sys.stderr, flush=True)
    del state, step
  print(json.dumps(dict(config=args.config, rows=B, seq_len=T, steps=args.steps,
                        backend=jax.default_backend(), devices=jax.device_count(),
                        variants=out)))


if __name__ == "__main__":
  main()
