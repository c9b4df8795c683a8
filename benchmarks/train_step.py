"""Throughput and MFU of the full training step (forward, backward, AdamW, EMA).

  python benchmarks/train_step.py --config configs/strict_small.py [--compute_dtype float32]
      [--seq_len 128] [--rows 32] [--steps 6]

Runs the jitted, sharded step of babylm_jax.train.step on a global batch of rows x seq_len
tokens (15 masked rows to 1 causal, 30% of the masked rows' positions as targets, two
documents a row), all local devices on the data axis.

Model FLOPs per token (babylm_jax.train.flops):
  6 * N_matmul + 12 * L * D * (T + R)
N_matmul: every dense kernel and bias plus the tied vocabulary projection; the second term is
attention (q.k and probs.v over T keys, and the two relative-position terms over R = 63
buckets), forward + backward. `mfu` = that x tokens/s / the peak: on a CPU, the peak of a
jitted 2048 x 2048 matmul measured in this run just before each timed step (x device count;
the median of the per-step ratios, so that a shared machine's load affects both sides alike);
on a GPU or TPU in bfloat16, the chip's data-sheet dense peak (babylm_jax.train.flops), with
the measured-matmul figure kept as `mfu_vs_measured_matmul`.
`mfu_executed` counts what actually runs instead: the vocabulary projection only over the
target gather buffer, plus the one-hot matmuls that spread the R bucket scores to T x T
(2 x 2 * T * R * H per token and layer, forward).
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from babylm_jax.config import MASK_ID, derive  # noqa: E402
from babylm_jax.train import flops, sharding  # noqa: E402
from babylm_jax.train import step as step_lib  # noqa: E402
from babylm_jax.train.objectives.targets import capacity  # noqa: E402


def load_config(path):
  spec = importlib.util.spec_from_file_location("_bench_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def make_batch(seed, B, T, V, causal_rows, rate=0.3):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(16, V, (B, T + 1)).astype(np.int32)
  seg = np.zeros((B, T), np.int32)
  for b in range(B):
    cut, end = rng.integers(T // 4, 3 * T // 4), T - rng.integers(0, T // 16 + 1)
    seg[b, :cut], seg[b, cut:end] = 1, 2
  is_causal = np.zeros(B, bool)
  is_causal[:causal_rows] = True
  has_next = np.concatenate([seg[:, 1:] == seg[:, :-1], np.zeros((B, 1), bool)], 1) & (seg > 0)
  loss_mask = np.where(is_causal[:, None], has_next, has_next & (rng.random((B, T)) < rate))
  hide = np.roll(loss_mask, 1, axis=1) & ~is_causal[:, None]
  return dict(input_ids=np.where(hide, MASK_ID, tokens[:, :T]).astype(np.int32),
              targets=tokens[:, 1:].copy(), loss_mask=loss_mask, segment_ids=seg,
              is_causal=is_causal)


def fixed_shape_step(c, B, T, n_batches=2, batch_fn=None):
  """(jitted step, state, n_batches global batches, mesh) for B x T rows of config `c`.

  Sets `c` to one sequence length and B x T tokens per step, all local devices on the data
  axis; the batches are make_batch(0..n_batches-1), or batch_fn(c, seed, B, T) when given.
  """
  c.train.tokens_per_step = B * T
  c.train.seq_lens, c.train.seq_len_fractions = (T,), (1.0,)
  c.train.steps = 1000
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = -1, 1, 1
  d = derive(c)
  mesh = sharding.make_mesh(c)
  graphdef, state, shardings = step_lib.create_train_state(c, d, mesh)
  train_step = step_lib.make_train_step(c, d, graphdef, mesh, shardings)
  causal_rows = max(1, round(B * c.objective.causal_fraction))
  if batch_fn is None:
    batch_fn = lambda c, i, B, T: make_batch(i, B, T, c.model.vocab_size, causal_rows)  # noqa
  batches = [sharding.global_batch(batch_fn(c, i, B, T), mesh) for i in range(n_batches)]
  return train_step, state, batches, mesh


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", default=str(ROOT / "configs" / "strict_small.py"))
  p.add_argument("--compute_dtype", default=None)
  p.add_argument("--seq_len", type=int, default=128)
  p.add_argument("--rows", type=int, default=32)
  p.add_argument("--steps", type=int, default=6)
  p.add_argument("--target_capacity", type=float, default=None)
  args = p.parse_args()

  c = load_config(args.config)
  if args.compute_dtype:
    c.model.compute_dtype = args.compute_dtype
  if args.target_capacity is not None:
    c.train.target_capacity = args.target_capacity
  B, T = args.rows, args.seq_len
  train_step, state, batches, mesh = fixed_shape_step(c, B, T)
  t0 = time.perf_counter()
  state, m = train_step(state, batches[0])
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  # The machine may be shared: every timed step is paired with a matmul peak measured just
  # before it, and the figures are medians of those pairs.
  # CPU seconds are recorded too: on a busy host, FLOPs per CPU-second of the step against
  # those of the matmul (`mfu_cpu_time`) are less sensitive to what else runs.
  times, peaks, cpu_times = [], [], []
  for i in range(args.steps):
    peaks.append(flops.measure_matmul_peak(c.model.compute_dtype, repeats=3)
                 * jax.device_count())
    t0, c0 = time.perf_counter(), time.process_time()
    state, m = train_step(state, batches[i % 2])
    jax.block_until_ready((state, m))
    times.append(time.perf_counter() - t0)
    cpu_times.append(time.process_time() - c0)
  matmul_flops_per_cpu_s = flops.matmul_flops_per_cpu_second(c.model.compute_dtype, repeats=20)
  step_s = statistics.median(times)
  peak = statistics.median(peaks)
  mfu_pairs = [B * T / t * flops.flops_per_token(c.model, T) / pk for t, pk in zip(times, peaks)]
  tokens_per_s = B * T / step_s
  per_token = flops.flops_per_token(c.model, T)
  model_flops = tokens_per_s * per_token
  cap = capacity(c, B, T, sharding.batch_divisor(mesh))
  targets = int(sum(np.asarray(b["loss_mask"]).sum() for b in batches) / len(batches))
  projected = cap if targets <= cap else B * T
  V, D = c.model.vocab_size, c.model.hidden_size
  R, H, L = flops.position_buckets(c.model), c.model.num_heads, c.model.num_layers
  executed_per_token = (per_token - 6.0 * (V * D + V) * (1 - projected / (B * T))
                        + 3.0 * L * 4 * T * R * H)
  print(f"compile {compile_s:.1f}s, step times {[round(t, 3) for t in times]}, "
        f"peaks {[round(x / 1e9, 1) for x in peaks]} GFLOP/s, "
        f"targets {targets}/{B * T}, projected {projected}", file=sys.stderr)
  mfu_matmul = statistics.median(mfu_pairs)
  # On a GPU or TPU the target is against the chip's data-sheet dense peak (a 2048^2 matmul
  # does not reach it); on a CPU, where there is no such figure, against the measured matmul.
  chip = flops.chip_peak_flops(jax.devices()[0], c.model.compute_dtype)
  if chip is not None:
    mfu, peak_source = model_flops / (chip * jax.device_count()), "data sheet"
  else:
    mfu, peak_source = mfu_matmul, "measured matmul"
  print(json.dumps(dict(
      config=args.config, compute_dtype=c.model.compute_dtype, seq_len=T, rows=B,
      devices=jax.device_count(), backend=jax.default_backend(),
      device_kind=jax.devices()[0].device_kind, step_s=round(step_s, 4),
      tokens_per_s=round(tokens_per_s, 1), model_flops_per_s=model_flops,
      matmul_peak_flops_per_s=peak, chip_peak_flops_per_s=chip and chip * jax.device_count(),
      peak_source=peak_source, mfu=round(mfu, 4), mfu_vs_measured_matmul=round(mfu_matmul, 4),
      mfu_executed=round(mfu * executed_per_token / per_token, 4),
      mfu_cpu_time=round(B * T * per_token / statistics.median(cpu_times)
                         / matmul_flops_per_cpu_s, 4),
      flops_per_token=per_token, loss=float(m["loss"]))))


if __name__ == "__main__":
  main()
