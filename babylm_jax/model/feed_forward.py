"""Feed-forward blocks, one per `model.ffn`.

- 'geglu' (GPT-BERT, LTG-BERT): up-projection to 2F (value | gate), value x tanh-GELU(gate);
- 'gelu' (BERT, RoBERTa, GPT-2): up-projection to F, exact (erf) GELU.
Both: LayerNorm before the block (pre-LN), the NormFormer LayerNorm before the down projection
when `model.normformer` is on, dropout on the output, no biases (as GPT-BERT). Kernels start as
truncated normals of std sqrt(2 / 5D), scaled by sqrt(1 / (2 (layer + 1))): both of them with
`model.depth_scaling` 'gpt_bert' (GPT-BERT, LTG-BERT), the down projection only with
'boot_bert' (BootBERT scales its attention's output LayerNorm gain instead of the up
projection).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from babylm_jax.model.layers import Dense, depth_scale, dropout, init_std, inner_norm, layer_norm


def _geglu(up_BTF):
  value_BTF, gate_BTF = jnp.split(up_BTF, 2, axis=-1)
  return value_BTF * jax.nn.gelu(gate_BTF, approximate=True)


def _gelu(up_BTF):
  return jax.nn.gelu(up_BTF, approximate=False)


# model.ffn -> (up-projection width in units of F, activation)
_KINDS = {"geglu": (2, _geglu), "gelu": (1, _gelu)}


class FeedForward(nnx.Module):

  def __init__(self, cfg, layer_index, *, rngs):
    D, F, std = cfg.hidden_size, cfg.intermediate_size, init_std(cfg)
    width, self.activation = _KINDS[cfg.ffn]
    scale = depth_scale(layer_index)
    up_scale = scale if cfg.depth_scaling == "gpt_bert" else 1.0
    self.up = Dense(D, width * F, ("embed", "mlp"), bias=False, std=std, rngs=rngs,
                    scale=up_scale)
    self.down = Dense(F, D, ("mlp", "embed"), bias=False, std=std, rngs=rngs, scale=scale)
    self.norm = inner_norm(cfg)
    self.cfg = cfg

  def __call__(self, x_BTD, deterministic, rngs):
    eps = self.cfg.layer_norm_eps
    h_BTF = self.activation(self.up(layer_norm(x_BTD, eps)))
    y_BTD = self.down(self.norm(h_BTF, eps))
    return dropout(y_BTD, self.cfg.dropout, deterministic, rngs)
