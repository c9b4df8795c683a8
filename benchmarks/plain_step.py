"""MFU of a plain pre-LayerNorm transformer next to GPT-BERT's, in the same run.

  python benchmarks/plain_step.py [--steps 6] [--rows 32] [--seq_len 128]

Issue 3 quotes "a plain NNX transformer step reaches about 0.6" on this CPU. This script trains
one of strict_small's size (12 layers, 384 wide, 6 heads, FFN 1536 with GELU, vocabulary 8192,
tied embedding, causal attention, no dropout) with AdamW under one jax.jit, and the real
GPT-BERT step of babylm_jax.train.step on the same shapes, in two consecutive blocks of timed
steps. Model FLOPs use the same formula for both (6 x matmul parameters + 12 x L x D x T per
token, each model with its own parameters). The last line is one JSON object with both mfu
figures and `gpt_bert_over_plain`, the ratio of their mfu.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from babylm_jax.train import flops  # noqa: E402
import train_step as bench_step  # noqa: E402


class Block(nnx.Module):

  def __init__(self, d, heads, ffn, rngs):
    self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(heads, d, decode=False, rngs=rngs)
    self.up, self.down = nnx.Linear(d, ffn, rngs=rngs), nnx.Linear(ffn, d, rngs=rngs)

  def __call__(self, x, mask):
    x = x + self.attn(self.ln1(x), mask=mask)
    return x + self.down(jax.nn.gelu(self.up(self.ln2(x))))


class Plain(nnx.Module):

  def __init__(self, vocab, d, layers, heads, ffn, rngs):
    self.embed = nnx.Embed(vocab, d, rngs=rngs)
    self.blocks = nnx.List([Block(d, heads, ffn, rngs) for _ in range(layers)])
    self.ln = nnx.LayerNorm(d, rngs=rngs)

  def __call__(self, ids):
    T = ids.shape[1]
    mask = jnp.tril(jnp.ones((T, T), bool))[None, None]
    x = self.embed(ids)
    for block in self.blocks:
      x = block(x, mask)
    return self.embed.attend(self.ln(x))


def plain_matmul_params(d, layers, ffn, vocab):
  return layers * (4 * d * d + 4 * d + 2 * d * ffn + ffn + d) + vocab * d


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=6)
  p.add_argument("--rows", type=int, default=32)
  p.add_argument("--seq_len", type=int, default=128)
  args = p.parse_args()
  B, T = args.rows, args.seq_len

  c = bench_step.load_config(str(ROOT / "configs" / "strict_small.py"))
  m = c.model
  D, L, H, V, F = m.hidden_size, m.num_layers, m.num_heads, m.vocab_size, 4 * m.hidden_size

  # GPT-BERT: the project's own step.
  gb_step, state, (batch,), _ = bench_step.fixed_shape_step(c, B, T, n_batches=1)

  # The plain transformer, functional like ours: split outside, merge inside one jax.jit.
  plain = Plain(V, D, L, H, F, nnx.Rngs(0))
  p_graph, p_params = nnx.split(plain, nnx.Param)
  tx = optax.adamw(1e-4, b1=0.9, b2=0.98, weight_decay=0.1)
  p_state = (p_params, tx.init(p_params))
  ids, targets = batch["input_ids"], batch["targets"]

  @functools.partial(jax.jit, donate_argnums=0)
  def plain_step(st, ids, targets):
    params, opt = st

    def loss_fn(params):
      logits = nnx.merge(p_graph, params)(ids).astype(jnp.float32)
      return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return (optax.apply_updates(params, updates), opt), loss

  state, _ = gb_step(state, batch)
  p_state, loss = plain_step(p_state, ids, targets)
  jax.block_until_ready((state, p_state, loss))
  # Blocks of consecutive steps, not alternating ones: alternating two models' buffers
  # defeats the allocator's reuse and slowed GPT-BERT's step by ~25% here. A matmul peak is
  # measured before every step and the figures are medians of step/peak pairs.
  times = {"gpt_bert": [], "plain": []}
  peaks = {"gpt_bert": [], "plain": []}
  for name in ("gpt_bert", "plain"):
    for _ in range(args.steps + 1):  # the first of each block warms its buffers, untimed
      peaks[name].append(flops.measure_matmul_peak("float32", repeats=3) * jax.device_count())
      t0 = time.perf_counter()
      if name == "gpt_bert":
        state, metrics = gb_step(state, batch)
        jax.block_until_ready((state, metrics))
      else:
        p_state, loss = plain_step(p_state, ids, targets)
        jax.block_until_ready((p_state, loss))
      times[name].append(time.perf_counter() - t0)
    times[name], peaks[name] = times[name][1:], peaks[name][1:]

  per_token = {
      "gpt_bert": flops.flops_per_token(m, T),
      "plain": 6.0 * plain_matmul_params(D, L, F, V) + 12.0 * L * D * T}
  out = dict(rows=B, seq_len=T)
  for name in times:
    mfu = [B * T * per_token[name] / t / pk for t, pk in zip(times[name], peaks[name])]
    out[name] = dict(step_s=round(statistics.median(times[name]), 4),
                     flops_per_token=per_token[name],
                     matmul_peak_flops_per_s=statistics.median(peaks[name]),
                     mfu=round(statistics.median(mfu), 4))
  out["gpt_bert_over_plain"] = round(out["gpt_bert"]["mfu"] / out["plain"]["mfu"], 4)
  print(f"step times {times}", file=sys.stderr)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
