"""Model FLOPs per token and the machine's measured matmul peak, for MFU figures.

Training FLOPs per token (forward + backward = 3 x forward, a multiply-add = 2 FLOPs):

  6 * N  +  12 * L * D * (T + R)

N counts the parameters used in a matmul once per token: every dense kernel and the tied word
embedding (as the output projection), with their biases. Which kernels there are depends on
the variant: disentangled attention has query | key, value | gate and output projections
(5 D^2), ltg attention query | key, value and output (4 D^2), standard attention query | key | value and output (4 D^2); a GEGLU feed-forward
projects up to 2F (3 D F), a GELU one to F (2 D F). Position embeddings, rotary angles,
LayerNorms and layer weights are no matmul. The second term is attention: per layer and token
the forward pass spends 2*T*D on q.k and 2*T*D on probs.v over the T keys of the row
(computed densely, whatever the mask), and, in disentangled and ltg attention, 2*R*D each for
the content-to-position and position-to-content scores against the R = 2 * bucket_size - 1
relative-position vectors (R = 0 for standard attention).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


def matmul_params(model_cfg) -> int:
  D, F, V, L = (model_cfg.hidden_size, model_cfg.intermediate_size, model_cfg.vocab_size,
                model_cfg.num_layers)
  if model_cfg.attention == "disentangled":
    attention = 2 * (D * 2 * D + 2 * D) + D * D + D  # qk, value-gate (with biases), output
  elif model_cfg.attention == "ltg":
    attention = D * 2 * D + 2 * D + 2 * (D * D + D)  # qk, value, output (with biases)
  else:
    attention = D * 3 * D + 3 * D + D * D + D  # qkv, output (with biases)
  up = 2 * F if model_cfg.ffn == "geglu" else F
  ffn = D * up + F * D
  head = D * D + D + V * D + V
  return L * (attention + ffn) + head


def position_buckets(model_cfg) -> int:
  """R, the relative-position vectors each query and key is scored against (0 if none)."""
  if model_cfg.attention in ("disentangled", "ltg"):
    return 2 * model_cfg.position_bucket_size - 1
  return 0


def flops_per_token(model_cfg, seq_len: int) -> float:
  """Training FLOPs per token: 6 * matmul_params + 12 * L * D * (T + R) (see module doc)."""
  R = position_buckets(model_cfg)
  L, D = model_cfg.num_layers, model_cfg.hidden_size
  return 6.0 * matmul_params(model_cfg) + 12.0 * L * D * (seq_len + R)


# Dense bfloat16 peak FLOP/s per chip, from the vendors' data sheets (no sparsity), matched by
# a substring of jax's `device_kind`, most specific first. MFU on an accelerator is quoted
# against these: a jitted 2048 x 2048 matmul is far from a GPU's or TPU's peak.
_BF16_PEAKS = (
    ("H200", 989.4e12), ("H100 PCIe", 756.0e12), ("H100", 989.4e12), ("GH200", 989.4e12),
    ("A100", 312.0e12), ("L4", 121.0e12), ("A10G", 70.0e12),
    ("TPU v6 lite", 918.0e12), ("TPU v6e", 918.0e12), ("TPU v5 lite", 197.0e12),
    ("TPU v5e", 197.0e12), ("TPU v5p", 459.0e12), ("TPU v5", 459.0e12), ("TPU v4", 275.0e12),
)


def chip_peak_flops(device, dtype) -> float | None:
  """The data-sheet dense peak of one accelerator chip for `dtype`, or None when unknown.

  Known only for bfloat16 on the GPUs and TPUs listed above; CPUs have no such figure (use
  measure_matmul_peak there).
  """
  if device.platform == "cpu" or jnp.dtype(dtype) != jnp.bfloat16:
    return None
  kind = str(getattr(device, "device_kind", ""))
  for name, peak in _BF16_PEAKS:
    if name.lower() in kind.lower():
      return peak
  return None


def peak_flops(dtype) -> tuple[float, str]:
  """(peak FLOP/s of one device, where it comes from) for MFU figures.

  The chip's data-sheet peak where known (accelerators in bfloat16), else the measured
  throughput of a jitted 2048 x 2048 matmul on the default device, best of 3 (every training
  process measures it: 10 repeats took 2.8 s of a smoke run's start on a 2-core CPU, 3 take
  under 1). Multiply by the device count for a whole mesh.
  """
  device = jax.local_devices()[0]
  chip = chip_peak_flops(device, dtype)
  if chip is not None:
    return chip, f"data sheet ({device.device_kind})"
  return measure_matmul_peak(dtype, repeats=3), "measured 2048x2048 matmul"


def measure_matmul_peak(dtype="float32", n: int = 2048, repeats: int = 10) -> float:
  """FLOP/s of a jitted n x n matmul on the default device (best of `repeats`)."""
  dtype = jnp.dtype(dtype)
  ka, kb = jax.random.split(jax.random.key(0))
  a = jax.random.normal(ka, (n, n), dtype)
  b = jax.random.normal(kb, (n, n), dtype)
  f = jax.jit(jnp.matmul)
  f(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2.0 * n ** 3 / best


def matmul_flops_per_cpu_second(dtype="float32", n: int = 2048, repeats: int = 10) -> float:
  """FLOPs per CPU-second (all threads) of a jitted n x n matmul: less sensitive than
  wall-clock FLOP/s to other jobs on a shared host."""
  mm = jax.jit(jnp.matmul)
  a = jnp.ones((n, n), dtype)
  mm(a, a).block_until_ready()
  c0 = time.process_time()
  for _ in range(repeats):
    mm(a, a).block_until_ready()
  return repeats * 2.0 * n ** 3 / (time.process_time() - c0)
