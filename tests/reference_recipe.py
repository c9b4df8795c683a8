"""GPT-BERT's reference recipe written out plainly for the tests (no PyTorch): its masking of a
row, its LAMB, both as its reference code (ltgoslo/gpt-bert) states them, in our uniforms' and
parameters' layout."""

import math

import numpy as np

from babylm_jax.config import MASK_ID, NUM_SPECIAL_TOKENS


def masked_row(u, tokens, starts, eligible, rate, history, vocab_size, max_span=3):
  """GPT-BERT's masking of one row, segment by segment, as its reference code states it:
  consecutive spans of 1..3 tokens from the segment's first token, one key per span (times
  e^count), k = max(1, int(n * rate + U)), every token whose key is at most the k-th smallest
  is masked. The uniforms are read in masking.RankedSpans' layout."""
  n = len(tokens)
  u_len, u_key, u_dec, u_k, u_tok = (u[i * n:(i + 1) * n] for i in range(5))
  chosen = np.zeros(n, bool)
  inputs = tokens.copy()
  bounds = [t for t in range(n) if t == 0 or starts[t]] + [n]
  span_no = -1
  for seg_no, (t, t1) in enumerate(zip(bounds, bounds[1:])):
    t0 = t
    if starts[t]:  # the segment's <s> is a span of its own
      span_no += 1
      t0 = t + 1
    keys, spans = [], []
    pos = t0
    while pos < t1:
      span_no += 1
      length = 1 + int(u_len[pos] * max_span)
      for q in range(pos, min(pos + length, t1)):
        keys.append(u_key[span_no] * math.exp(history[q]) if eligible[q] else math.inf)
        spans.append(span_no)
      pos += length
    if t1 > t0:
      k = min(max(1, int((t1 - t0) * rate + u_k[seg_no])), int(eligible[t0:t1].sum()))
      if k > 0:
        threshold = sorted(keys)[k - 1]
        for q, key, sp in zip(range(t0, t1), keys, spans):
          if key <= threshold:
            chosen[q] = True
            d = u_dec[sp]
            if d < 0.8:
              inputs[q] = MASK_ID
            elif d < 0.9:
              inputs[q] = NUM_SPECIAL_TOKENS + int(u_tok[q] * (vocab_size - NUM_SPECIAL_TOKENS))
  return chosen, inputs


def tensors(params) -> list[tuple[str, np.ndarray]]:
  """(name, tensor) of a parameter tree at the reference's granularity: the layer-weight
  matrix is one vector per row (its used entries), as the reference's per-sublayer alphas."""
  import jax
  out = []
  for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    x = np.asarray(x)
    if name == "layer_weight":
      out += [(f"alphas/{i}", x[i, :i + 2]) for i in range(x.shape[0])]
    else:
      out.append((name, x))
  return out


def from_tensors(values, like):
  """The parameter tree `like` holding `values` (in the order of `tensors(like)`)."""
  import jax
  leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
  values, out = list(values), []
  for path, x in leaves:
    if str(getattr(path[-1], "key", path[-1])) == "layer_weight":
      w = np.zeros(x.shape, np.float64)
      for i in range(x.shape[0]):
        w[i, :i + 2] = values.pop(0)
      out.append(w)
    else:
      out.append(values.pop(0))
  return jax.tree_util.tree_unflatten(jax.tree.structure(like), out)


def decayed(names, no_decay=("bias", "norm")) -> list[bool]:
  """The reference's groups: no decay (and so no trust ratio) for names holding a `no_decay`
  fragment (GPT-BERT's: bias, norm)."""
  return [not any(f in n for f in no_decay) for n in names]


class Lamb:
  """GPT-BERT's reference LAMB on a list of float64 numpy tensors."""

  def __init__(self, tensors, decayed, b1=0.9, b2=0.98, eps=1e-8, wd=0.1):
    self.p = [np.asarray(x, np.float64).copy() for x in tensors]
    self.m = [np.zeros_like(x) for x in self.p]
    self.v = [np.zeros_like(x) for x in self.p]
    self.decayed, self.b1, self.b2, self.eps, self.wd, self.t = decayed, b1, b2, eps, wd, 0

  def step(self, grads, lr):
    self.t += 1
    b1, b2, t = self.b1, self.b2, self.t
    for i, g in enumerate(grads):
      self.m[i] = b1 * self.m[i] + (1 - b1) * g
      self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
      u = (self.m[i] / (1 - b1 ** t)) / (np.sqrt(self.v[i] / (1 - b2 ** t)) + self.eps)
      ratio = 1.0
      if self.decayed[i]:
        u = u + self.wd * self.p[i]
        pn, un = np.linalg.norm(self.p[i]), np.linalg.norm(u)
        ratio = pn / un if pn > 0 and un > 0 else 1.0
      self.p[i] = self.p[i] - lr * ratio * u
    return self.p


def clip(grads, max_norm=2.0):
  """torch.nn.utils.clip_grad_norm_ as the reference calls it, on a list of tensors."""
  norm = math.sqrt(sum(float(np.sum(np.square(g))) for g in grads))
  coef = max_norm / (norm + 1e-6)
  return [g * coef for g in grads] if coef < 1.0 else list(grads)
