"""How the sublayers' outputs are combined, one stack function per `model.layer_weighting`.

- 'gpt_bert': sublayer i's new state is a learned weighted sum of the embedding and every
  earlier sublayer's output ([2L, 2L + 1] weights, row i starting as the identity on its
  latest input, i.e. a plain residual stream);
- 'elc' (ELC-BERT as its code, ltgoslo/elc-bert models/model_elc_bert_base.py, computes it):
  layer l's input h is a softmax-weighted mix of the embedding and the outputs of layers
  0..l-1 ([L, L] weights, row l starting as 1 on its latest input and 0 elsewhere, so that
  the softmax leans e / (e + l) on the previous layer); the layer has no residual around its
  attention, a = attn(h), and outputs a + ffn(a); the encoder's output is the last layer's;
- 'elc_weighted_output' (ELC-BERT's `weighted_output` ablation, models/
  model_elc_bert_weighted_output.py): the same input mix but from uniform weights; the layer
  outputs a + ffn(h + a) (a residual around the attention, its input subtracted again); the
  encoder's output is one more softmax mix of all states ([L + 1, L + 1] weights, row L);
- 'residual': x + f(x) for each sublayer, no weights.
Each stack function takes the sublayers (attention, feed-forward, attention, ...), the
embedding output and the raw weight matrix, and returns the encoder output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from babylm_jax.model.axes import constrain

NAMES = ("batch", "length", "embed")


def shape(cfg) -> tuple[int, int] | None:
  L = cfg.num_layers
  if cfg.layer_weighting == "gpt_bert":
    return (2 * L, 2 * L + 1)  # row i mixes the embedding and sublayers 0..i
  if cfg.layer_weighting == "elc":
    return (L, L)  # row l mixes the embedding and layers 0..l-1
  if cfg.layer_weighting == "elc_weighted_output":
    return (L + 1, L + 1)  # as 'elc', and row L mixes all of them into the output
  return None


def used(cfg) -> np.ndarray:
  """[rows, cols] bool: the entries of the weight matrix that take part."""
  rows, cols = shape(cfg)
  offset = 1 if cfg.layer_weighting == "gpt_bert" else 0
  return np.arange(cols)[None, :] <= np.arange(rows)[:, None] + offset


def initial(cfg) -> np.ndarray | None:
  """The weights at initialisation (None for 'residual')."""
  size = shape(cfg)
  if size is None:
    return None
  w = np.zeros(size, np.float32)
  if cfg.layer_weighting == "gpt_bert":
    w[np.arange(size[0]), np.arange(size[0]) + 1] = 1.0
  elif cfg.layer_weighting == "elc":
    w[np.arange(size[0]), np.arange(size[0])] = 1.0
  return w


def _mix(weights_N, states):
  out = weights_N[0].astype(states[0].dtype) * states[0]
  for i in range(1, len(states)):
    out = out + weights_N[i].astype(states[i].dtype) * states[i]
  return constrain(out, NAMES)


def residual_stack(sublayers, x_BTD, weight, cfg):
  del weight, cfg
  for f in sublayers:
    x_BTD = constrain(x_BTD + f(x_BTD), NAMES)
  return x_BTD


def gpt_bert_stack(sublayers, x_BTD, weight, cfg):
  w = jnp.where(used(cfg), weight, 0.0)
  states = [x_BTD]
  for i, f in enumerate(sublayers):
    states.append(x_BTD + f(x_BTD))
    x_BTD = _mix(w[i, :i + 2], states)
  return x_BTD


def elc_stack(sublayers, x_BTD, weight, cfg):
  w = jnp.where(used(cfg), weight, -jnp.inf)
  states = [x_BTD]
  for l in range(cfg.num_layers):
    h_BTD = _mix(jax.nn.softmax(w[l, :l + 1]), states)
    a_BTD = sublayers[2 * l](h_BTD)  # no residual: the mix is the layer's only skip path
    states.append(constrain(a_BTD + sublayers[2 * l + 1](a_BTD), NAMES))
  return states[-1]


def elc_weighted_output_stack(sublayers, x_BTD, weight, cfg):
  w = jnp.where(used(cfg), weight, -jnp.inf)
  outputs = [x_BTD]
  for l in range(cfg.num_layers):
    h_BTD = _mix(jax.nn.softmax(w[l, :l + 1]), outputs)
    y_BTD = h_BTD + sublayers[2 * l](h_BTD)
    y_BTD = y_BTD + sublayers[2 * l + 1](y_BTD)
    outputs.append(y_BTD - h_BTD)
  return _mix(jax.nn.softmax(w[-1]), outputs)


STACKS = {"gpt_bert": gpt_bert_stack, "elc": elc_stack,
          "elc_weighted_output": elc_weighted_output_stack, "residual": residual_stack}


def readable(cfg, weight) -> np.ndarray:
  """The weights as they act, for a heatmap: elc rows softmax-normalised, unused entries NaN;
  an empty [0, 0] array for 'residual'."""
  if weight is None:
    return np.zeros((0, 0), np.float32)
  mask = used(cfg)
  w = np.asarray(jax.device_get(weight), np.float32)
  if cfg.layer_weighting.startswith("elc"):
    w = np.where(mask, w, -np.inf)
    w = np.exp(w - w.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
  return np.where(mask, w, np.nan)
