"""Model FLOPs per token and the machine's measured matmul peak, for MFU figures.

Training FLOPs per token (forward + backward = 3 x forward, a multiply-add = 2 FLOPs):

  6 * N  +  12 * L * D * (T + R)

N counts the parameters used in a matmul once per token: every dense kernel and the tied word
embedding (as the output projection), with their biases. The second term is attention:
per layer and token the forward pass spends 2*T*D on q.k and 2*T*D on probs.v over the T
keys of the row (computed densely, whatever the mask), and 2*R*D each for the
content-to-position and position-to-content scores against the R = 2 * bucket_size - 1
relative-position vectors.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


def matmul_params(model_cfg) -> int:
  D, F, V, L = (model_cfg.hidden_size, model_cfg.intermediate_size, model_cfg.vocab_size,
                model_cfg.num_layers)
  attention = 2 * (D * 2 * D + 2 * D) + D * D + D  # qk, value-gate (with biases), output
  ffn = D * 2 * F + F * D
  head = D * D + D + V * D + V
  return L * (attention + ffn) + head


def flops_per_token(model_cfg, seq_len: int) -> float:
  """Training FLOPs per token: 6 * matmul_params + 12 * L * D * (T + R) (see module doc)."""
  R = 2 * model_cfg.position_bucket_size - 1
  L, D = model_cfg.num_layers, model_cfg.hidden_size
  return 6.0 * matmul_params(model_cfg) + 12.0 * L * D * (seq_len + R)


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
