"""BootBERT's shallow decoder and latent head ("Mean BERTs make erratic language teachers",
Samuel 2023), present when `model.decoder_layers` > 0.

In a model with a decoder, `<mask>` tokens are holes: the encoder does not attend to them
(their own states are computed and thrown away), which for positions read inside the
attention (relative, rotary) is the same as BootBERT's encoder reading only the unmasked
tokens at their original positions. The decoder then takes the encoder's states, puts a
learned mask embedding in every hole, and runs `decoder_layers` plain residual blocks of the
encoder's kind (same attention and feed-forward switches, no dropout) over the whole document,
reading the encoder's positional input, and ends, as the encoder does, in an affine LayerNorm
when `model.final_norm` is on (BootBERT's decoder is a 4-layer copy of its encoder's class).
Its states feed the LM head (a hole's state predicts its own token) and, in training, the
latent head, which predicts the teacher's states.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from babylm_jax.model.attention import ATTENTIONS
from babylm_jax.model.axes import constrain
from babylm_jax.model.feed_forward import FeedForward
from babylm_jax.model.layers import Dense, final_norm, init_std, layer_norm, param

NAMES = ("batch", "length", "embed")


class LatentHead(nnx.Module):
  """dense -> GELU -> LayerNorm -> dense: a decoder state's guess of the teacher's state."""

  def __init__(self, cfg, *, rngs):
    D, std = cfg.hidden_size, init_std(cfg)
    self.dense = Dense(D, D, ("embed", "embed_out"), bias=True, std=std, rngs=rngs)
    self.out = Dense(D, D, ("embed_out", "embed"), bias=True, std=std, rngs=rngs)
    self.eps = cfg.layer_norm_eps

  def __call__(self, x_xD):
    h_xD = layer_norm(jax.nn.gelu(self.dense(x_xD), approximate=False), self.eps)
    return self.out(h_xD)


class Decoder(nnx.Module):
  """Fills the holes: mask embedding at holes, encoder states elsewhere, then residual blocks."""

  def __init__(self, cfg, *, rngs):
    # BootBERT draws its mask embedding from a standard normal (the scale of the LayerNorm-ed
    # word embeddings).
    self.mask = param(jax.random.normal(rngs.params(), (cfg.hidden_size,), jnp.float32),
                      ("embed",))
    attention = ATTENTIONS[cfg.attention]
    self.attention = nnx.List([attention(cfg, i, rngs=rngs)
                               for i in range(cfg.decoder_layers)])
    self.ffn = nnx.List([FeedForward(cfg, i, rngs=rngs) for i in range(cfg.decoder_layers)])
    self.final_norm = final_norm(cfg)
    self.latent_head = LatentHead(cfg, rngs=rngs)

  def __call__(self, hidden_BTD, holes_BT, pos, mask_B1TT):
    """States [B, T, D] in the encoder's dtype; `mask_B1TT` lets every token of a document
    (holes included) attend to every other."""
    x_BTD = jnp.where(holes_BT[..., None], self.mask[...].astype(hidden_BTD.dtype), hidden_BTD)
    for attn, ffn in zip(self.attention, self.ffn):
      x_BTD = constrain(x_BTD + attn(x_BTD, pos, mask_B1TT, True, None), NAMES)
      x_BTD = constrain(x_BTD + ffn(x_BTD, True, None), NAMES)
    return self.final_norm(x_BTD)
