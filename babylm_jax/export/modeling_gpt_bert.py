"""A PyTorch GPT-BERT for `transformers`, equal in its arithmetic to babylm_jax's Flax model.

This file is copied into every export folder and loaded with `trust_remote_code=True`; it needs
only torch, numpy and transformers. It mirrors babylm_jax/model/ step by step (read
gpt_bert.py's docstring for the architecture), so that the logits agree to float32 rounding:

- embedding by `position`: 'relative' (word embedding -> LayerNorm without affine;
  relative-position bucket vectors with an affine LayerNorm, shared by every layer),
  'learned_absolute' (word + position vector -> LayerNorm) or 'rotary' (word embedding ->
  LayerNorm; RoPE angles for the attention); absolute and rotary positions count from 0 at
  each document's first token;
- attention by `attention`: 'disentangled' (content-content + content-position +
  position-content scores over log-spaced relative-position buckets, scaled by
  1/sqrt(3 * head_dim); values gated by GELU) or 'standard' (scaled dot-product, RoPE on
  queries and keys with rotary positions) or 'ltg' (LTG-BERT: the disentangled scores, values
  without a gate, an affine LayerNorm after the output projection);
- feed-forward by `ffn`: GEGLU (tanh GELU) or GELU (erf);
- `normformer`: LayerNorms before the attention output and the feed-forward down projection;
- layer weighting 'gpt_bert', 'elc' (ELC-BERT: each layer reads a softmax mix of the earlier
  layers' outputs, has no residual around its attention, and the last layer's output is the
  encoder's), 'elc_weighted_output' (ELC-BERT's ablation) or 'residual';
- `final_norm`: an affine LayerNorm at the end of the encoder and of the decoder (BootBERT);
  the LM head then has no first LayerNorm;
- head: LayerNorm -> dense -> GELU -> LayerNorm -> dropout -> projection tied to the word
  embedding.

`GptBertForCausalLM` attends causally, `GptBertForMaskedLM` bidirectionally. What the logits
at position i score follows `objective`, the objective trained: token i + 1 for 'hybrid'
(GPT-BERT's masked-next-token prediction) and 'causal'; token i itself for 'masked' and
'bootstrap' (the plain masked-LM convention, the pipeline's `mlm` backend). With
`decoder_layers` > 0 (BootBERT) `<mask>` tokens are holes the encoder does not attend to, and
the decoder fills them before the head reads them; `GptBertModel` returns the encoder's states.
`attention_mask` (1 = token, 0 = padding) may also hold document ids 1, 2, ... to keep packed
documents apart, as in training. Masked-LM `labels` follow the usual convention (the label sits
at the masked position); a 'hybrid' model reads it from the position before.
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (BaseModelOutput, CausalLMOutput, MaskedLMOutput,
                                           SequenceClassifierOutput)

from .configuration_gpt_bert import GptBertConfig

_NEG = -1e30  # masked score; finite so that fully masked (padding) rows stay finite
ROTARY_BASE = 10_000.0


def _layer_norm(x, eps):
  """LayerNorm without scale or bias, statistics in float32, result in x's dtype."""
  x32 = x.float()
  mean = x32.mean(-1, keepdim=True)
  var = (x32 - mean).square().mean(-1, keepdim=True)
  return ((x32 - mean) * torch.rsqrt(var + eps)).to(x.dtype)


@functools.lru_cache(maxsize=None)
def relative_buckets(length: int, bucket_size: int, max_position: int) -> np.ndarray:
  """Bucket index [q, k] in [0, 2 * bucket_size - 2] of the relative position q - k.

  Exact within +-bucket_size / 2, log-spaced beyond, saturating at max_position. Computed in
  numpy float64 exactly as the JAX model does, so the two agree on every bucket.
  """
  rel = np.arange(length)[:, None] - np.arange(length)[None, :]
  mid = bucket_size // 2
  sign = np.sign(rel)
  abs_pos = np.where(np.abs(rel) < mid, mid - 1, np.minimum(np.abs(rel), max_position - 1))
  log_pos = np.ceil(np.log(abs_pos / mid) / np.log((max_position - 1) / mid)
                    * (mid - 1)).astype(np.int64) + mid
  bucket = np.where(abs_pos <= mid, rel, log_pos * sign)
  return (bucket + bucket_size - 1).astype(np.int64)


def document_positions(segment_ids_BT):
  """[B, T]: each token's index within its document (a run of equal ids in attention_mask)."""
  B, T = segment_ids_BT.shape
  idx_BT = torch.arange(T, device=segment_ids_BT.device).expand(B, T)
  starts_BT = torch.ones_like(segment_ids_BT, dtype=torch.bool)
  starts_BT[:, 1:] = segment_ids_BT[:, 1:] != segment_ids_BT[:, :-1]
  return idx_BT - torch.cummax(torch.where(starts_BT, idx_BT, 0), dim=1).values


def rotary_angles(positions_BT, head_dim: int):
  """(cos, sin), each [B, T, head_dim / 2] float32, of RoPE's angles position x frequency."""
  inv_freq_k = torch.from_numpy(
      (ROTARY_BASE ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)).astype(
          np.float32)).to(positions_BT.device)
  angles_BTk = positions_BT.float()[..., None] * inv_freq_k
  return torch.cos(angles_BTk), torch.sin(angles_BTk)


def rotate(x_BTHK, cos_BTk, sin_BTk):
  """RoPE in the rotate-half layout: feature i pairs with feature i + K / 2."""
  x1, x2 = x_BTHK.chunk(2, dim=-1)
  cos, sin = cos_BTk[:, :, None].to(x_BTHK.dtype), sin_BTk[:, :, None].to(x_BTHK.dtype)
  return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def _no_norm(x, eps):
  return x


class _FinalNorm(nn.LayerNorm):
  """An affine LayerNorm with the statistics in float32, as the JAX model computes it."""

  def forward(self, x_xD):
    y_xD = _layer_norm(x_xD.float(), self.eps) * self.weight + self.bias
    return y_xD.to(x_xD.dtype)


def _final_norm(config):
  """The affine LayerNorm that ends the encoder and the decoder, or nothing."""
  return _FinalNorm(config.hidden_size, eps=config.layer_norm_eps) if config.final_norm else None


def _finish(norm, x_xD):
  return x_xD if norm is None else norm(x_xD)


def _inner_norm(config):
  """The NormFormer LayerNorm inside attention and feed-forward, or nothing."""
  return _layer_norm if config.normformer else _no_norm


def attention_allowed(segment_ids_BT, causal: bool):
  """[B, 1, T, T] bool: same non-padding document, and key <= query when causal."""
  seg_q = segment_ids_BT[:, :, None]
  seg_k = segment_ids_BT[:, None, :]
  allowed_BTT = (seg_q == seg_k) & (seg_k > 0)
  if causal:
    T = segment_ids_BT.shape[1]
    allowed_BTT = allowed_BTT & torch.ones(T, T, dtype=torch.bool,
                                           device=segment_ids_BT.device).tril()[None]
  return allowed_BTT[:, None]


class RelativeEmbedding(nn.Module):
  """Word embedding -> LayerNorm -> dropout; the relative-position bucket vectors."""

  def __init__(self, config):
    super().__init__()
    D = config.hidden_size
    self.word = nn.Embedding(config.vocab_size, D)
    self.relative = nn.Parameter(torch.zeros(2 * config.position_bucket_size - 1, D))
    self.relative_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.eps = config.layer_norm_eps

  def forward(self, input_ids_BT, segment_ids_BT):
    x_BTD = self.dropout(_layer_norm(self.word(input_ids_BT), self.eps))
    rel_RD = _layer_norm(self.relative, self.eps)
    rel_RD = rel_RD * self.relative_norm.weight + self.relative_norm.bias
    return x_BTD, rel_RD


class AbsoluteEmbedding(nn.Module):
  """(Word embedding + the learned vector of each position) -> LayerNorm -> dropout."""

  def __init__(self, config):
    super().__init__()
    D = config.hidden_size
    self.word = nn.Embedding(config.vocab_size, D)
    self.absolute = nn.Parameter(torch.zeros(config.max_position_embeddings, D))
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.eps = config.layer_norm_eps

  def forward(self, input_ids_BT, segment_ids_BT):
    x_BTD = self.word(input_ids_BT) + self.absolute[document_positions(segment_ids_BT)]
    return self.dropout(_layer_norm(x_BTD, self.eps)), None


class RotaryEmbedding(nn.Module):
  """Word embedding -> LayerNorm -> dropout; RoPE's cosines and sines for the attention."""

  def __init__(self, config):
    super().__init__()
    self.word = nn.Embedding(config.vocab_size, config.hidden_size)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.eps = config.layer_norm_eps
    self.head_dim = config.hidden_size // config.num_attention_heads

  def forward(self, input_ids_BT, segment_ids_BT):
    x_BTD = self.dropout(_layer_norm(self.word(input_ids_BT), self.eps))
    return x_BTD, rotary_angles(document_positions(segment_ids_BT), self.head_dim)


EMBEDDINGS = {"relative": RelativeEmbedding, "learned_absolute": AbsoluteEmbedding,
              "rotary": RotaryEmbedding}


def _disentangled_scores(qk, h_BTD, rel_RD, cfg):
  """[B, H, T, T] float32 content-content + content-position + position-content scores, each
  scaled by 1/sqrt(3 * head_dim); `qk` projects both the states and the bucket vectors."""
  B, T, D = h_BTD.shape
  H = cfg.num_attention_heads
  K = D // H
  qk_BT2HK = qk(h_BTD).view(B, T, 2, H, K)
  q_BTHK, k_BTHK = qk_BT2HK[:, :, 0], qk_BT2HK[:, :, 1]
  R = rel_RD.shape[0]
  pos_R2HK = qk(rel_RD).view(R, 2, H, K)
  qpos_RHK, kpos_RHK = pos_R2HK[:, 0], pos_R2HK[:, 1]

  scale = 1.0 / math.sqrt(3 * K)
  q_BTHK = q_BTHK * scale
  c2c_BHTT = torch.einsum("bqhk,bshk->bhqs", q_BTHK, k_BTHK)
  bucket_TT = torch.from_numpy(
      relative_buckets(T, cfg.position_bucket_size, cfg.max_position_embeddings)).to(
          h_BTD.device)
  # Position terms against the R bucket vectors, then gathered out to [T, T].
  c2p_BHTR = torch.einsum("bqhk,rhk->bhqr", q_BTHK, kpos_RHK)
  p2c_BHTR = torch.einsum("bshk,rhk->bhsr", k_BTHK * scale, qpos_RHK)
  c2p_BHTT = torch.gather(c2p_BHTR, -1, bucket_TT.expand(B, H, T, T))
  # p2c[q, s] uses key s against bucket(q - s).
  p2c_BHTT = torch.gather(p2c_BHTR, -1, bucket_TT.T.expand(B, H, T, T)).transpose(-1, -2)
  return (c2c_BHTT + c2p_BHTT + p2c_BHTT).float()


def _attend(scores_BHTT, allowed_B1TT, v_BTD, dropout, H):
  """Masked float32 softmax, dropout, and the probabilities' weighted values [B, T, D]."""
  B, T, D = v_BTD.shape
  scores_BHTT = scores_BHTT.masked_fill(~allowed_B1TT, _NEG)
  probs_BHTT = dropout(torch.softmax(scores_BHTT, dim=-1).to(v_BTD.dtype))
  return torch.einsum("bhqs,bshk->bqhk", probs_BHTT,
                      v_BTD.reshape(B, T, H, D // H)).reshape(B, T, D)


class DisentangledAttention(nn.Module):
  """GPT-BERT's attention: content and relative-position terms, GELU-gated values."""

  def __init__(self, config):
    super().__init__()
    D = config.hidden_size
    self.qk = nn.Linear(D, 2 * D)  # query | key
    self.vg = nn.Linear(D, 2 * D)  # value | gate
    self.out = nn.Linear(D, D)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.norm = _inner_norm(config)
    self.config = config

  def forward(self, x_BTD, rel_RD, allowed_B1TT):
    cfg = self.config
    h_BTD = _layer_norm(x_BTD, cfg.layer_norm_eps)
    scores_BHTT = _disentangled_scores(self.qk, h_BTD, self.dropout(rel_RD), cfg)
    v_BTD, gate_BTD = self.vg(h_BTD).chunk(2, dim=-1)
    ctx_BTD = _attend(scores_BHTT, allowed_B1TT, v_BTD, self.dropout, cfg.num_attention_heads)
    ctx_BTD = ctx_BTD * F.gelu(gate_BTD)
    ctx_BTD = self.out(self.norm(ctx_BTD, cfg.layer_norm_eps))
    return self.dropout(ctx_BTD)


class LTGAttention(nn.Module):
  """LTG-BERT's attention: GPT-BERT's scores, values without a gate, and an affine LayerNorm
  after the output projection."""

  def __init__(self, config):
    super().__init__()
    D = config.hidden_size
    self.qk = nn.Linear(D, 2 * D)  # query | key
    self.v = nn.Linear(D, D)
    self.out = nn.Linear(D, D)
    self.post_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.config = config

  def forward(self, x_BTD, rel_RD, allowed_B1TT):
    cfg = self.config
    h_BTD = _layer_norm(x_BTD, cfg.layer_norm_eps)
    scores_BHTT = _disentangled_scores(self.qk, h_BTD, self.dropout(rel_RD), cfg)
    ctx_BTD = _attend(scores_BHTT, allowed_B1TT, self.v(h_BTD), self.dropout,
                      cfg.num_attention_heads)
    ctx_BTD = _layer_norm(self.out(ctx_BTD), cfg.layer_norm_eps)
    ctx_BTD = ctx_BTD * self.post_norm.weight + self.post_norm.bias
    return self.dropout(ctx_BTD)


class StandardAttention(nn.Module):
  """Scaled dot-product attention; RoPE on queries and keys with rotary positions."""

  def __init__(self, config):
    super().__init__()
    D = config.hidden_size
    self.qkv = nn.Linear(D, 3 * D)  # query | key | value
    self.out = nn.Linear(D, D)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.norm = _inner_norm(config)
    self.rotate = _rotation if config.position == "rotary" else _no_rotation
    self.config = config

  def forward(self, x_BTD, pos, allowed_B1TT):
    cfg = self.config
    B, T, D = x_BTD.shape
    H = cfg.num_attention_heads
    K = D // H
    h_BTD = _layer_norm(x_BTD, cfg.layer_norm_eps)
    qkv_BT3HK = self.qkv(h_BTD).view(B, T, 3, H, K)
    q_BTHK, k_BTHK, v_BTHK = qkv_BT3HK.unbind(2)
    q_BTHK = self.rotate(q_BTHK, pos) * (1.0 / math.sqrt(K))
    k_BTHK = self.rotate(k_BTHK, pos)
    scores_BHTT = torch.einsum("bqhk,bshk->bhqs", q_BTHK, k_BTHK).float()
    scores_BHTT = scores_BHTT.masked_fill(~allowed_B1TT, _NEG)
    probs_BHTT = self.dropout(torch.softmax(scores_BHTT, dim=-1).to(x_BTD.dtype))
    ctx_BTD = torch.einsum("bhqs,bshk->bqhk", probs_BHTT, v_BTHK).reshape(B, T, D)
    return self.dropout(self.out(self.norm(ctx_BTD, cfg.layer_norm_eps)))


def _no_rotation(x_BTHK, pos):
  return x_BTHK


def _rotation(x_BTHK, cos_sin):
  return rotate(x_BTHK, *cos_sin)


ATTENTIONS = {"disentangled": DisentangledAttention, "ltg": LTGAttention,
              "standard": StandardAttention}


def _geglu(up_BTF):
  value_BTF, gate_BTF = up_BTF.chunk(2, dim=-1)
  return value_BTF * F.gelu(gate_BTF, approximate="tanh")


# ffn -> (up-projection width in units of intermediate_size, activation)
_FFN_KINDS = {"geglu": (2, _geglu), "gelu": (1, F.gelu)}


class FeedForward(nn.Module):

  def __init__(self, config):
    super().__init__()
    D, Fd = config.hidden_size, config.intermediate_size
    width, self.activation = _FFN_KINDS[config.ffn]
    self.up = nn.Linear(D, width * Fd, bias=False)  # geglu: value | gate
    self.down = nn.Linear(Fd, D, bias=False)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.norm = _inner_norm(config)
    self.eps = config.layer_norm_eps

  def forward(self, x_BTD):
    h_BTF = self.activation(self.up(_layer_norm(x_BTD, self.eps)))
    return self.dropout(self.down(self.norm(h_BTF, self.eps)))


def _weighting_shape(config):
  L = config.num_hidden_layers
  if config.layer_weighting == "gpt_bert":
    return (2 * L, 2 * L + 1)
  if config.layer_weighting == "elc":
    return (L, L)
  if config.layer_weighting == "elc_weighted_output":
    return (L + 1, L + 1)
  return None


def _weighting_mask(config):
  rows, cols = _weighting_shape(config)
  offset = 1 if config.layer_weighting == "gpt_bert" else 0
  return torch.from_numpy(np.arange(cols)[None, :] <= np.arange(rows)[:, None] + offset)


def _mix(weights_N, states):
  out = weights_N[0].to(states[0].dtype) * states[0]
  for i in range(1, len(states)):
    out = out + weights_N[i].to(states[i].dtype) * states[i]
  return out


class LatentHead(nn.Module):
  """BootBERT's prediction of the teacher's states (training only; kept so that an export
  loads back into training)."""

  def __init__(self, config):
    super().__init__()
    self.dense = nn.Linear(config.hidden_size, config.hidden_size)
    self.out = nn.Linear(config.hidden_size, config.hidden_size)
    self.eps = config.layer_norm_eps

  def forward(self, x_xD):
    return self.out(_layer_norm(F.gelu(self.dense(x_xD)), self.eps))


class Decoder(nn.Module):
  """BootBERT's decoder: the mask embedding in every hole, then residual blocks of the
  encoder's kind without dropout."""

  def __init__(self, config):
    super().__init__()
    plain = copy.deepcopy(config)
    plain.hidden_dropout_prob = 0.0
    self.mask = nn.Parameter(torch.zeros(config.hidden_size))
    attention = ATTENTIONS[config.attention]
    self.attention = nn.ModuleList([attention(plain) for _ in range(config.decoder_layers)])
    self.ffn = nn.ModuleList([FeedForward(plain) for _ in range(config.decoder_layers)])
    self.final_norm = _final_norm(config)
    self.latent_head = LatentHead(config)

  def forward(self, hidden_BTD, holes_BT, pos, allowed_B1TT):
    x_BTD = torch.where(holes_BT[..., None], self.mask.to(hidden_BTD.dtype), hidden_BTD)
    for attn, ffn in zip(self.attention, self.ffn):
      x_BTD = x_BTD + attn(x_BTD, pos, allowed_B1TT)
      x_BTD = x_BTD + ffn(x_BTD)
    return _finish(self.final_norm, x_BTD)


class GptBertPreTrainedModel(PreTrainedModel):
  config_class = GptBertConfig
  base_model_prefix = "model"
  supports_gradient_checkpointing = False
  # The encoder alone and the classifier load an export without its pretraining head, by design.
  # (The classifier's own weights are reported new as for any pretrained encoder: ignoring them
  # would leave them uninitialised, on the meta device, under transformers 4.51.3.)
  _keys_to_ignore_on_load_unexpected = [r"^head\."]

  @torch.no_grad()
  def _init_weights(self, module):
    std = self.config.initializer_range
    if isinstance(module, nn.Linear):
      nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
      if module.bias is not None:
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
      nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
    elif isinstance(module, nn.LayerNorm):
      nn.init.ones_(module.weight)
      nn.init.zeros_(module.bias)
    elif isinstance(module, RelativeEmbedding):
      nn.init.trunc_normal_(module.relative, std=std, a=-2 * std, b=2 * std)
    elif isinstance(module, AbsoluteEmbedding):
      nn.init.trunc_normal_(module.absolute, std=std, a=-2 * std, b=2 * std)
    elif isinstance(module, Decoder):
      nn.init.normal_(module.mask)
    elif isinstance(module, GptBertModel) and module.layer_weight is not None:
      w = torch.zeros_like(module.layer_weight)
      rows = torch.arange(w.shape[0])
      if self.config.layer_weighting == "gpt_bert":
        w[rows, rows + 1] = 1.0  # a plain residual stream
      elif self.config.layer_weighting == "elc":
        w[rows, rows] = 1.0  # each layer leans on the previous one
      module.layer_weight.copy_(w)
    elif isinstance(module, LMHead):
      nn.init.zeros_(module.bias)


class GptBertModel(GptBertPreTrainedModel):
  """The encoder: final hidden states [B, T, D]."""

  def __init__(self, config):
    super().__init__(config)
    self.embedding = EMBEDDINGS[config.position](config)
    attention = ATTENTIONS[config.attention]
    self.attention = nn.ModuleList([attention(config) for _ in range(config.num_hidden_layers)])
    self.ffn = nn.ModuleList([FeedForward(config) for _ in range(config.num_hidden_layers)])
    shape = _weighting_shape(config)
    self.layer_weight = nn.Parameter(torch.zeros(shape)) if shape else None
    self.final_norm = _final_norm(config)
    self.decoder = Decoder(config) if config.decoder_layers else None
    self.post_init()

  def get_input_embeddings(self):
    return self.embedding.word

  def set_input_embeddings(self, value):
    self.embedding.word = value

  def forward(self, input_ids=None, attention_mask=None, causal=None, return_dict=None,
              **kwargs):
    """The encoder's states; attention is causal by default only for a causal-only model (as
    it was trained), so that a pipeline reading AutoModel gets the states it learned."""
    if causal is None:
      causal = self.config.objective == "causal"
    return BaseModelOutput(last_hidden_state=self._encode(input_ids, attention_mask,
                                                          causal)[0])

  def states(self, input_ids, attention_mask=None, causal=False):
    """What the LM head reads: the encoder's states, the holes filled by the decoder."""
    x_BTD, pos, segment_ids_BT = self._encode(input_ids, attention_mask, causal)
    if self.decoder is None:
      return x_BTD
    return self.decoder(x_BTD, input_ids == self.config.mask_token_id, pos,
                        attention_allowed(segment_ids_BT, False))

  def _encode(self, input_ids, attention_mask, causal):
    cfg = self.config
    if attention_mask is None:
      attention_mask = torch.ones_like(input_ids)
    segment_ids_BT = attention_mask.long()
    allowed_B1TT = attention_allowed(segment_ids_BT, causal)
    if self.decoder is not None:  # the encoder never attends to a <mask> hole
      allowed_B1TT = allowed_B1TT & (input_ids != cfg.mask_token_id)[:, None, None, :]
    x_BTD, pos = self.embedding(input_ids, segment_ids_BT)
    sublayers = []
    for attn, ffn in zip(self.attention, self.ffn):
      sublayers.append(lambda x_BTD, attn=attn: attn(x_BTD, pos, allowed_B1TT))
      sublayers.append(ffn)

    if cfg.layer_weighting == "residual":
      for f in sublayers:
        x_BTD = x_BTD + f(x_BTD)
    elif cfg.layer_weighting == "gpt_bert":
      mask = _weighting_mask(cfg).to(self.layer_weight.device)
      w = torch.where(mask, self.layer_weight, torch.zeros_like(self.layer_weight))
      states = [x_BTD]
      for i, f in enumerate(sublayers):
        states.append(x_BTD + f(x_BTD))
        x_BTD = _mix(w[i, :i + 2], states)
    elif cfg.layer_weighting == "elc":
      mask = _weighting_mask(cfg).to(self.layer_weight.device)
      w = self.layer_weight.masked_fill(~mask, -math.inf)
      states = [x_BTD]
      for l in range(cfg.num_hidden_layers):
        h_BTD = _mix(torch.softmax(w[l, :l + 1], -1), states)
        a_BTD = sublayers[2 * l](h_BTD)  # no residual around the attention
        states.append(a_BTD + sublayers[2 * l + 1](a_BTD))
      x_BTD = states[-1]
    else:  # elc_weighted_output
      mask = _weighting_mask(cfg).to(self.layer_weight.device)
      w = self.layer_weight.masked_fill(~mask, -math.inf)
      outputs = [x_BTD]
      for l in range(cfg.num_hidden_layers):
        h_BTD = _mix(torch.softmax(w[l, :l + 1], -1), outputs)
        y_BTD = h_BTD + sublayers[2 * l](h_BTD)
        y_BTD = y_BTD + sublayers[2 * l + 1](y_BTD)
        outputs.append(y_BTD - h_BTD)
      x_BTD = _mix(torch.softmax(w[-1], -1), outputs)
    return _finish(self.final_norm, x_BTD), pos, segment_ids_BT


class LMHead(nn.Module):
  """LayerNorm -> dense -> GELU -> LayerNorm -> dropout -> the word embedding, transposed,
  + bias; without the first LayerNorm when the states end in the model's `final_norm`."""

  def __init__(self, config):
    super().__init__()
    self.dense = nn.Linear(config.hidden_size, config.hidden_size)
    self.bias = nn.Parameter(torch.zeros(config.vocab_size))
    self.dropout = nn.Dropout(config.head_dropout_prob)
    self.norm = _no_norm if config.final_norm else _layer_norm
    self.eps = config.layer_norm_eps

  def forward(self, x_BTD, word_VD):
    h_BTD = self.dense(self.norm(x_BTD, self.eps))
    h_BTD = self.dropout(_layer_norm(F.gelu(h_BTD), self.eps))
    return F.linear(h_BTD, word_VD.to(h_BTD.dtype)).float() + self.bias.float()


class _GptBertLM(GptBertPreTrainedModel):
  causal = False

  def __init__(self, config):
    super().__init__(config)
    self.model = GptBertModel(config)
    self.head = LMHead(config)
    self.post_init()

  def get_input_embeddings(self):
    return self.model.embedding.word

  def set_input_embeddings(self, value):
    self.model.embedding.word = value

  def _logits(self, input_ids, attention_mask):
    hidden_BTD = self.model.states(input_ids, attention_mask, causal=self.causal)
    return self.head(hidden_BTD, self.model.embedding.word.weight)

  @staticmethod
  def _next_token_loss(logits_BTV, labels):
    """Cross-entropy of labels[:, i + 1] under logits[:, i] (-100 labels ignored)."""
    if labels is None:
      return None
    return F.cross_entropy(logits_BTV[:, :-1].flatten(0, 1), labels[:, 1:].flatten(),
                           ignore_index=-100)

  @staticmethod
  def _same_position_loss(logits_BTV, labels):
    """Cross-entropy of labels[:, i] under logits[:, i] (-100 labels ignored)."""
    if labels is None:
      return None
    return F.cross_entropy(logits_BTV.flatten(0, 1), labels.flatten(), ignore_index=-100)


class GptBertForCausalLM(_GptBertLM):
  """Causal attention; logits[:, i] score token i + 1. `labels` as in any causal LM."""
  causal = True

  def forward(self, input_ids=None, attention_mask=None, labels=None, return_dict=None,
              **kwargs):
    logits_BTV = self._logits(input_ids, attention_mask)
    return CausalLMOutput(loss=self._next_token_loss(logits_BTV, labels), logits=logits_BTV)


class GptBertForMaskedLM(_GptBertLM):
  """Bidirectional attention. A 'hybrid' model's logits[:, i] score token i + 1
  (masked-next-token prediction); a 'masked' or 'bootstrap' model's score token i.

  `labels[:, i]` is the original token at a masked position i (-100 elsewhere); it is scored
  by the logits at i - 1 ('hybrid') or at i.
  """
  causal = False

  def __init__(self, config):
    super().__init__(config)
    self.label_loss = (self._next_token_loss if config.objective == "hybrid"
                       else self._same_position_loss)

  def forward(self, input_ids=None, attention_mask=None, labels=None, return_dict=None,
              **kwargs):
    logits_BTV = self._logits(input_ids, attention_mask)
    return MaskedLMOutput(loss=self.label_loss(logits_BTV, labels), logits=logits_BTV)


class ClassifierHead(nn.Module):
  """LayerNorm -> dense -> GELU -> LayerNorm -> dropout -> dense, on the first token."""

  def __init__(self, config):
    super().__init__()
    self.dense = nn.Linear(config.hidden_size, config.hidden_size)
    self.out = nn.Linear(config.hidden_size, config.num_labels)
    self.dropout = nn.Dropout(config.classifier_dropout)
    self.eps = config.layer_norm_eps

  def forward(self, x_BD):
    h_BD = _layer_norm(F.gelu(self.dense(_layer_norm(x_BD, self.eps))), self.eps)
    return self.out(self.dropout(h_BD))


class GptBertForSequenceClassification(GptBertPreTrainedModel):
  """Bidirectional encoder with a new classification head on the first token (`<s>`)."""

  def __init__(self, config):
    super().__init__(config)
    self.num_labels = config.num_labels
    self.model = GptBertModel(config)
    self.classifier = ClassifierHead(config)
    self.post_init()

  def get_input_embeddings(self):
    return self.model.embedding.word

  def set_input_embeddings(self, value):
    self.model.embedding.word = value

  def forward(self, input_ids=None, attention_mask=None, labels=None, return_dict=None,
              **kwargs):
    hidden_BTD = self.model(input_ids, attention_mask, causal=False).last_hidden_state
    logits_BC = self.classifier(hidden_BTD[:, 0]).float()
    loss = None
    if labels is not None:
      if self.num_labels == 1:
        loss = F.mse_loss(logits_BC.squeeze(-1), labels.float())
      else:
        loss = F.cross_entropy(logits_BC, labels.long())
    return SequenceClassifierOutput(loss=loss, logits=logits_BC)
