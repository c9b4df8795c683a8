"""A PyTorch GPT-BERT for `transformers`, equal in its arithmetic to babylm_jax's Flax model.

This file is copied into every export folder and loaded with `trust_remote_code=True`; it needs
only torch, numpy and transformers. It mirrors babylm_jax/model/gpt_bert.py step by step
(read that file's docstring for the architecture), so that the logits agree to float32
rounding:

- embedding: word embedding -> LayerNorm without affine; relative-position bucket vectors with
  an affine LayerNorm, shared by every layer;
- attention: content-content + content-position + position-content scores over log-spaced
  relative-position buckets, scaled by 1/sqrt(3 * head_dim); values gated by GELU; LayerNorm
  before the output projection;
- feed-forward: GEGLU (tanh GELU) with LayerNorms before and inside;
- layer weighting 'gpt_bert', 'elc' or 'residual';
- head: LayerNorm -> dense -> GELU -> LayerNorm -> projection tied to the word embedding.

In every mode the logits at position i score token i + 1 (GPT-BERT's masked-next-token
prediction): `GptBertForCausalLM` attends causally, `GptBertForMaskedLM` bidirectionally.
`attention_mask` (1 = token, 0 = padding) may also hold document ids 1, 2, ... to keep packed
documents apart, as in training. Masked-LM `labels` follow the usual convention (the label sits
at the masked position); the model reads it from the position before.
"""

from __future__ import annotations

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


class Embedding(nn.Module):

  def __init__(self, config):
    super().__init__()
    D = config.hidden_size
    self.word = nn.Embedding(config.vocab_size, D)
    self.relative = nn.Parameter(torch.zeros(2 * config.position_bucket_size - 1, D))
    self.relative_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.eps = config.layer_norm_eps

  def forward(self, input_ids_BT):
    x_BTD = self.dropout(_layer_norm(self.word(input_ids_BT), self.eps))
    rel_RD = _layer_norm(self.relative, self.eps)
    rel_RD = rel_RD * self.relative_norm.weight + self.relative_norm.bias
    return x_BTD, rel_RD


class Attention(nn.Module):

  def __init__(self, config):
    super().__init__()
    D = config.hidden_size
    self.qk = nn.Linear(D, 2 * D)  # query | key
    self.vg = nn.Linear(D, 2 * D)  # value | gate
    self.out = nn.Linear(D, D)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.config = config

  def forward(self, x_BTD, rel_RD, allowed_B1TT):
    cfg = self.config
    B, T, D = x_BTD.shape
    H = cfg.num_attention_heads
    K = D // H
    h_BTD = _layer_norm(x_BTD, cfg.layer_norm_eps)
    qk_BT2HK = self.qk(h_BTD).view(B, T, 2, H, K)
    q_BTHK, k_BTHK = qk_BT2HK[:, :, 0], qk_BT2HK[:, :, 1]
    v_BTD, gate_BTD = self.vg(h_BTD).chunk(2, dim=-1)
    rel_RD = self.dropout(rel_RD)
    R = rel_RD.shape[0]
    pos_R2HK = self.qk(rel_RD).view(R, 2, H, K)
    qpos_RHK, kpos_RHK = pos_R2HK[:, 0], pos_R2HK[:, 1]

    scale = 1.0 / math.sqrt(3 * K)
    q_BTHK = q_BTHK * scale
    c2c_BHTT = torch.einsum("bqhk,bshk->bhqs", q_BTHK, k_BTHK)
    bucket_TT = torch.from_numpy(
        relative_buckets(T, cfg.position_bucket_size, cfg.max_position_embeddings)).to(
            x_BTD.device)
    # Position terms against the R bucket vectors, then gathered out to [T, T].
    c2p_BHTR = torch.einsum("bqhk,rhk->bhqr", q_BTHK, kpos_RHK)
    p2c_BHTR = torch.einsum("bshk,rhk->bhsr", k_BTHK * scale, qpos_RHK)
    c2p_BHTT = torch.gather(c2p_BHTR, -1, bucket_TT.expand(B, H, T, T))
    # p2c[q, s] uses key s against bucket(q - s).
    p2c_BHTT = torch.gather(p2c_BHTR, -1, bucket_TT.T.expand(B, H, T, T)).transpose(-1, -2)
    scores_BHTT = (c2c_BHTT + c2p_BHTT + p2c_BHTT).float()
    scores_BHTT = scores_BHTT.masked_fill(~allowed_B1TT, _NEG)
    probs_BHTT = self.dropout(torch.softmax(scores_BHTT, dim=-1).to(x_BTD.dtype))
    ctx_BTD = torch.einsum("bhqs,bshk->bqhk", probs_BHTT,
                           v_BTD.reshape(B, T, H, K)).reshape(B, T, D)
    ctx_BTD = ctx_BTD * F.gelu(gate_BTD)
    ctx_BTD = self.out(_layer_norm(ctx_BTD, cfg.layer_norm_eps))
    return self.dropout(ctx_BTD)


class FeedForward(nn.Module):

  def __init__(self, config):
    super().__init__()
    D, Fd = config.hidden_size, config.intermediate_size
    self.up = nn.Linear(D, 2 * Fd, bias=False)  # value | gate
    self.down = nn.Linear(Fd, D, bias=False)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.eps = config.layer_norm_eps

  def forward(self, x_BTD):
    value_BTF, gate_BTF = self.up(_layer_norm(x_BTD, self.eps)).chunk(2, dim=-1)
    h_BTF = value_BTF * F.gelu(gate_BTF, approximate="tanh")
    return self.dropout(self.down(_layer_norm(h_BTF, self.eps)))


def _weighting_shape(config):
  L = config.num_hidden_layers
  if config.layer_weighting == "gpt_bert":
    return (2 * L, 2 * L + 1)
  if config.layer_weighting == "elc":
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
    elif isinstance(module, Embedding):
      nn.init.trunc_normal_(module.relative, std=std, a=-2 * std, b=2 * std)
    elif isinstance(module, GptBertModel) and module.layer_weight is not None:
      w = torch.zeros_like(module.layer_weight)
      if self.config.layer_weighting == "gpt_bert":
        rows = torch.arange(w.shape[0])
        w[rows, rows + 1] = 1.0  # a plain residual stream
      module.layer_weight.copy_(w)
    elif isinstance(module, LMHead):
      nn.init.zeros_(module.bias)


class GptBertModel(GptBertPreTrainedModel):
  """The encoder: final hidden states [B, T, D]."""

  def __init__(self, config):
    super().__init__(config)
    self.embedding = Embedding(config)
    self.attention = nn.ModuleList([Attention(config) for _ in range(config.num_hidden_layers)])
    self.ffn = nn.ModuleList([FeedForward(config) for _ in range(config.num_hidden_layers)])
    shape = _weighting_shape(config)
    self.layer_weight = nn.Parameter(torch.zeros(shape)) if shape else None
    self.post_init()

  def get_input_embeddings(self):
    return self.embedding.word

  def set_input_embeddings(self, value):
    self.embedding.word = value

  def forward(self, input_ids=None, attention_mask=None, causal=False, return_dict=None,
              **kwargs):
    cfg = self.config
    if attention_mask is None:
      attention_mask = torch.ones_like(input_ids)
    allowed_B1TT = attention_allowed(attention_mask.long(), causal)
    x_BTD, rel_RD = self.embedding(input_ids)
    sublayers = []
    for attn, ffn in zip(self.attention, self.ffn):
      sublayers.append(functools.partial(attn, rel_RD=rel_RD, allowed_B1TT=allowed_B1TT))
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
    else:  # elc
      mask = _weighting_mask(cfg).to(self.layer_weight.device)
      w = self.layer_weight.masked_fill(~mask, -math.inf)
      outputs = [x_BTD]
      for l in range(cfg.num_hidden_layers):
        h_BTD = _mix(torch.softmax(w[l, :l + 1], -1), outputs)
        y_BTD = h_BTD + sublayers[2 * l](h_BTD)
        y_BTD = y_BTD + sublayers[2 * l + 1](y_BTD)
        outputs.append(y_BTD - h_BTD)
      x_BTD = _mix(torch.softmax(w[-1], -1), outputs)
    return BaseModelOutput(last_hidden_state=x_BTD)


class LMHead(nn.Module):
  """LayerNorm -> dense -> GELU -> LayerNorm -> the word embedding, transposed, + bias."""

  def __init__(self, config):
    super().__init__()
    self.dense = nn.Linear(config.hidden_size, config.hidden_size)
    self.bias = nn.Parameter(torch.zeros(config.vocab_size))
    self.eps = config.layer_norm_eps

  def forward(self, x_BTD, word_VD):
    h_BTD = self.dense(_layer_norm(x_BTD, self.eps))
    h_BTD = _layer_norm(F.gelu(h_BTD), self.eps)
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
    hidden_BTD = self.model(input_ids, attention_mask, causal=self.causal).last_hidden_state
    return self.head(hidden_BTD, self.model.embedding.word.weight)

  @staticmethod
  def _next_token_loss(logits_BTV, labels):
    """Cross-entropy of labels[:, i + 1] under logits[:, i] (-100 labels ignored)."""
    if labels is None:
      return None
    return F.cross_entropy(logits_BTV[:, :-1].flatten(0, 1), labels[:, 1:].flatten(),
                           ignore_index=-100)


class GptBertForCausalLM(_GptBertLM):
  """Causal attention; logits[:, i] score token i + 1. `labels` as in any causal LM."""
  causal = True

  def forward(self, input_ids=None, attention_mask=None, labels=None, return_dict=None,
              **kwargs):
    logits_BTV = self._logits(input_ids, attention_mask)
    return CausalLMOutput(loss=self._next_token_loss(logits_BTV, labels), logits=logits_BTV)


class GptBertForMaskedLM(_GptBertLM):
  """Bidirectional attention; logits[:, i] score token i + 1 (masked-next-token prediction).

  `labels[:, i]` is the original token at a masked position i (-100 elsewhere); it is scored
  by the logits at i - 1.
  """
  causal = False

  def forward(self, input_ids=None, attention_mask=None, labels=None, return_dict=None,
              **kwargs):
    logits_BTV = self._logits(input_ids, attention_mask)
    return MaskedLMOutput(loss=self._next_token_loss(logits_BTV, labels), logits=logits_BTV)


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
