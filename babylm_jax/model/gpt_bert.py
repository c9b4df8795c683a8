"""GPT-BERT (LTG-BERT lineage) as Flax NNX modules, and the variants the config switches to.

One network serves both halves of the hybrid objective: rows marked causal attend to earlier
tokens of their own document only, the other (masked) rows attend to their whole document.
In both modes the logits at position i score token i + 1 (masked-next-token prediction), so
the model never shifts anything; the batch's `targets` already hold the next token.

The network is a short list of parts, each picked once here from `config.model`:
- embedding by `position` (model/positions.py): 'relative' (GPT-BERT: word embedding ->
  LayerNorm -> dropout, plus relative-position bucket vectors), 'learned_absolute', 'rotary';
- attention by `attention` (model/attention.py): 'disentangled' (GPT-BERT's content and
  relative-position terms, GELU-gated values) or 'standard' scaled dot-product;
- feed-forward by `ffn` (model/feed_forward.py): 'geglu' (GPT-BERT) or 'gelu';
- `normformer`: the extra LayerNorms before the attention output and the feed-forward down
  projections (GPT-BERT), or plain pre-LN blocks;
- layer weighting (model/layer_weighting.py): every sublayer's new state is a learned weighted
  sum of all earlier states ('gpt_bert'), ELC-BERT's per-layer softmax mix of earlier layers'
  outputs ('elc', or its ablation 'elc_weighted_output') or a plain residual ('residual');
- `final_norm`: BootBERT's affine LayerNorm at the end of the encoder (and of its decoder);
  the head then reads normalised states and drops its own first LayerNorm;
- head: LayerNorm -> dense -> GELU -> LayerNorm -> dropout (`head_dropout`) -> projection
  tied to the word embedding;
- with `decoder_layers` > 0, BootBERT's decoder (model/decoder.py): `<mask>` tokens are holes
  the encoder does not see, filled by the decoder before the head reads them (`states`).
The defaults are GPT-BERT exactly as before these switches existed (same parameters, same
arithmetic, same dropout draws).

Parameters are float32 and carry logical axis names (`axes` metadata, see model/axes.py);
activations run in `cfg.compute_dtype`; logits come out in float32.
Kernels are stored [in, out]; fused projections keep PyTorch's chunk order (query | key,
value | gate, value | gate for the feed-forward; query | key | value for standard attention).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from babylm_jax.config import MASK_ID
from babylm_jax.model import layer_weighting
from babylm_jax.model.attention import ATTENTIONS, attention_mask
from babylm_jax.model.axes import constrain
from babylm_jax.model.decoder import Decoder
from babylm_jax.model.feed_forward import FeedForward
from babylm_jax.model.layers import (Dense, dropout, final_norm, init_std, layer_norm, no_norm,
                                     param)
from babylm_jax.model.positions import EMBEDDINGS


# The top-level parameter groups of the encoder (what BootBERT's teacher follows); the rest
# are the LM head and the decoder.
ENCODER_PARTS = ("embedding", "attention", "ffn", "layer_weight", "final_norm")


class Head(nnx.Module):

  def __init__(self, cfg, *, rngs):
    D = cfg.hidden_size
    self.dense = Dense(D, D, ("embed", "embed_out"), bias=True, std=init_std(cfg), rngs=rngs)
    self.bias = param(jnp.zeros((cfg.vocab_size,), jnp.float32), ("vocab",))
    # States that end in the network's own affine LayerNorm are not normalised again (as
    # BootBERT's classifier reads its decoder's).
    self.norm = no_norm if cfg.final_norm else layer_norm
    self.cfg = cfg

  def transform(self, x_xD):
    """The head before its projection onto the vocabulary: [..., D] -> [..., D]."""
    eps = self.cfg.layer_norm_eps
    h_xD = self.dense(self.norm(x_xD, eps))
    return layer_norm(jax.nn.gelu(h_xD, approximate=False), eps)

  def __call__(self, x_xD, word_VD, deterministic, rngs, rows_x):
    h_xD = self.transform(x_xD)
    h_xD = dropout(h_xD, self.cfg.head_dropout, deterministic, rngs, rows_x)
    logits_xV = jnp.einsum("...d,vd->...v", h_xD, word_VD.astype(h_xD.dtype),
                           preferred_element_type=jnp.float32)
    return logits_xV + self.bias[...]


class GPTBert(nnx.Module):
  """The network. See the module docstring; `cfg` is `config.model`."""

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.embedding = EMBEDDINGS[cfg.position](cfg, rngs=rngs)
    attention = ATTENTIONS[cfg.attention]
    self.attention = nnx.List([attention(cfg, i, rngs=rngs) for i in range(cfg.num_layers)])
    self.ffn = nnx.List([FeedForward(cfg, i, rngs=rngs) for i in range(cfg.num_layers)])
    self.head_module = Head(cfg, rngs=rngs)
    w = layer_weighting.initial(cfg)
    self.layer_weight = None if w is None else param(jnp.asarray(w), ("layers", "layers"))
    self.stack = layer_weighting.STACKS[cfg.layer_weighting]
    self.final_norm = final_norm(cfg)
    self.decoder = Decoder(cfg, rngs=rngs) if cfg.decoder_layers else None
    self.visible_keys = _not_holes if cfg.decoder_layers else _every_key
    self.fill = _decode if cfg.decoder_layers else _no_holes

  def encode(self, input_ids_BT, segment_ids_BT, is_causal_B, *, deterministic=True,
             rngs: nnx.Rngs | None = None, word_BTD=None):
    """Final hidden states [B, T, D] of the encoder in the compute dtype.

    `word_BTD`, when given, replaces the word-embedding lookup of `input_ids_BT` (prompt
    tuning inserts learned vectors this way); everything after the lookup is unchanged.
    """
    return self._encode(input_ids_BT, segment_ids_BT, is_causal_B, deterministic, rngs,
                        word_BTD)[0]

  def states(self, input_ids_BT, segment_ids_BT, is_causal_B, *, deterministic=True,
             rngs: nnx.Rngs | None = None, word_BTD=None):
    """The states [B, T, D] the LM head reads: the encoder's, with the `<mask>` holes filled
    by the decoder when the model has one. `word_BTD` as in `encode`."""
    hidden_BTD, pos = self._encode(input_ids_BT, segment_ids_BT, is_causal_B, deterministic,
                                   rngs, word_BTD)
    return self.fill(self, hidden_BTD, input_ids_BT, segment_ids_BT, pos)

  def _encode(self, input_ids_BT, segment_ids_BT, is_causal_B, deterministic, rngs,
              word_BTD=None):
    """(encoder states, the embedding's positional input)."""
    cfg = self.cfg
    if not deterministic and cfg.dropout > 0 and rngs is None:
      raise ValueError("encode(deterministic=False) needs rngs with a 'dropout' stream.")
    mask_B1TT = self.visible_keys(attention_mask(segment_ids_BT, is_causal_B), input_ids_BT)
    x_BTD, pos = self.embedding(input_ids_BT, segment_ids_BT, deterministic, rngs, word_BTD)
    x_BTD = constrain(x_BTD, layer_weighting.NAMES)
    sublayers = []
    for attn, ffn in zip(self.attention, self.ffn):
      sublayers.append(functools.partial(_attend, attn, pos=pos, mask_B1TT=mask_B1TT,
                                         deterministic=deterministic, rngs=rngs))
      sublayers.append(functools.partial(ffn, deterministic=deterministic, rngs=rngs))
    weight = None if self.layer_weight is None else self.layer_weight[...]
    return self.final_norm(self.stack(sublayers, x_BTD, weight, cfg)), pos

  def head(self, hidden_xD, *, deterministic=True, rngs: nnx.Rngs | None = None, rows_x=None):
    """float32 logits [..., V] for hidden states of any leading shape.

    With `head_dropout` in training (deterministic=False) `rngs` draws the dropout mask;
    `rows_x` (the leading shape of `hidden_xD`) gives each hidden state's flat index in the
    B * T positions of its batch, so that a gathered subset of positions draws the mask those
    positions have in the full batch (by default they are numbered in order).
    """
    if not deterministic and self.cfg.head_dropout > 0 and rngs is None:
      raise ValueError("head(deterministic=False) needs rngs with a 'dropout' stream.")
    return self.head_module(hidden_xD, self.embedding.word[...], deterministic, rngs, rows_x)

  def __call__(self, input_ids_BT, segment_ids_BT, is_causal_B, *, deterministic=True,
               rngs: nnx.Rngs | None = None):
    return self.head(self.states(input_ids_BT, segment_ids_BT, is_causal_B,
                                 deterministic=deterministic, rngs=rngs),
                     deterministic=deterministic, rngs=rngs)

  def layer_weights(self) -> np.ndarray:
    """The learned layer-weighting matrix for a heatmap; unused entries are NaN.

    gpt_bert: [2L, 2L + 1], row i = weights of (embedding, sublayer 0, ..., sublayer i).
    elc: [L, L] (elc_weighted_output: [L + 1, L + 1], row L the output's), softmax-normalised
    rows. residual: an empty [0, 0] array.
    """
    weight = None if self.layer_weight is None else self.layer_weight[...]
    return layer_weighting.readable(self.cfg, weight)


def _attend(attn, x_BTD, *, pos, mask_B1TT, deterministic, rngs):
  return attn(x_BTD, pos, mask_B1TT, deterministic, rngs)


def _every_key(mask_B1TT, input_ids_BT):
  del input_ids_BT
  return mask_B1TT


def _not_holes(mask_B1TT, input_ids_BT):
  """The encoder of a model with a decoder never attends to a `<mask>` hole."""
  return mask_B1TT & (input_ids_BT != MASK_ID)[:, None, None, :]


def _no_holes(model, hidden_BTD, input_ids_BT, segment_ids_BT, pos):
  del model, input_ids_BT, segment_ids_BT, pos
  return hidden_BTD


def _decode(model, hidden_BTD, input_ids_BT, segment_ids_BT, pos):
  B = input_ids_BT.shape[0]
  mask_B1TT = attention_mask(segment_ids_BT, jnp.zeros((B,), bool))
  return model.decoder(hidden_BTD, input_ids_BT == MASK_ID, pos, mask_B1TT)


def count_params(cfg) -> int:
  """Parameter count without allocating (jax.eval_shape)."""
  abstract = nnx.eval_shape(lambda: GPTBert(cfg, rngs=nnx.Rngs(0)))
  state = nnx.state(abstract, nnx.Param)
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))
