"""Sampling text from the network with a key/value cache: prefill once, then one token a step.

A batch of prompts is left-padded to one length P, so every row's next token sits at the same
slot and the whole batch advances together; slots hold positions of one document, and with
relative positions only slot differences matter, so the padding changes nothing but is masked
as keys. Each layer's cache holds, for S = P + new slots, the keys and values and the keys'
position-to-content scores against the R relative-position buckets (attention.cached): a step
embeds one token per row, runs every layer on it against the cache, and reads the logits.
The layer weighting and the feed-forward blocks are per-position, so the network's own stack
function composes the cached attention with them unchanged.

`recompute` is the plain loop the cache replaces: the full causal forward over every slot for
every new token (the same masks and the same greedy tokens; the tests and
benchmarks/generate.py compare the two). Only causal decoding with GPT-BERT's relative-position
attentions ('disentangled', 'ltg') is cached; `check_model` refuses the others. The zero-shot
scorer (eval/scoring.py) uses the same cache to run a context shared by several options once.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from babylm_jax.config import NUM_SPECIAL_TOKENS
from babylm_jax.model.attention import cache_shapes
from babylm_jax.model.layers import compute_dtype

CACHED_ATTENTIONS = ("disentangled", "ltg")


@dataclasses.dataclass(frozen=True)
class Sampling:
  """How the next token is drawn from the logits. temperature 0: greedy (argmax)."""
  temperature: float = 1.0
  top_k: int = 0  # 0: every token
  top_p: float = 1.0  # nucleus: the smallest set of tokens holding this much probability


def check_model(cfg) -> str | None:
  """Why the cached decoder cannot run this network (one sentence), or None."""
  if cfg.attention not in CACHED_ATTENTIONS or cfg.position != "relative":
    return (f"generation needs GPT-BERT's relative-position attention (model.attention "
            f"{' or '.join(CACHED_ATTENTIONS)} with model.position 'relative'); this run has "
            f"model.attention '{cfg.attention}' and model.position '{cfg.position}'.")
  if cfg.decoder_layers:
    return "generation cannot run a model with a BootBERT decoder (model.decoder_layers > 0)."
  return None


def init_cache(cfg, batch: int, slots: int) -> list[dict]:
  dtype = compute_dtype(cfg)
  return [{k: jnp.zeros(s, dtype) for k, s in cache_shapes(cfg, batch, slots).items()}
          for _ in range(cfg.num_layers)]


def cached_forward(model, ids_Bt, start, pad_B, cache):
  """(float32 logits [B, t, V], new cache) of t tokens written at slots start.. of every row;
  row b's first pad_B[b] slots are padding, never attended to."""
  hidden_BtD, new_cache = cached_states(model, ids_Bt, start, pad_B, cache)
  return model.head(hidden_BtD), new_cache


def cached_states(model, ids_Bt, start, pad_B, cache):
  """As cached_forward, with the states the head reads [B, t, D] in place of the logits (a
  prefix whose logits nobody reads need not be projected onto the vocabulary)."""
  cfg = model.cfg
  x_BtD, rel_RD = model.embedding(ids_Bt, None, True, None)
  t, S = ids_Bt.shape[1], cache[0]["k"].shape[2]
  q_t = start + jnp.arange(t)
  s_S = jnp.arange(S)
  mask_B1tS = ((s_S[None, None, :] <= q_t[None, :, None])
               & (s_S[None, None, :] >= pad_B[:, None, None]))[:, None]
  new_cache = []

  def attend(attn, layer_cache, x_BtD):
    y_BtD, c = attn.cached(x_BtD, rel_RD, mask_B1tS, layer_cache, start)
    new_cache.append(c)
    return y_BtD

  sublayers = []
  for attn, ffn, layer_cache in zip(model.attention, model.ffn, cache):
    sublayers.append(functools.partial(attend, attn, layer_cache))
    sublayers.append(functools.partial(ffn, deterministic=True, rngs=None))
  weight = None if model.layer_weight is None else model.layer_weight[...]
  return model.final_norm(model.stack(sublayers, x_BtD, weight, cfg)), new_cache


def sample(logits_BV, key, s: Sampling):
  """[B] int32 next tokens. Special tokens are never drawn (the corpus has none inside a
  document: `<s>` only opens one)."""
  V = logits_BV.shape[-1]
  logits_BV = jnp.where(jnp.arange(V) < NUM_SPECIAL_TOKENS, -jnp.inf, logits_BV)
  if s.temperature == 0:
    return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
  logits_BV = logits_BV / s.temperature
  if s.top_k:
    kth_B1 = jax.lax.top_k(logits_BV, s.top_k)[0][:, -1:]
    logits_BV = jnp.where(logits_BV < kth_B1, -jnp.inf, logits_BV)
  if s.top_p < 1.0:
    sorted_BV = jnp.sort(logits_BV, axis=-1)[:, ::-1]
    probs_BV = jax.nn.softmax(sorted_BV, axis=-1)
    # Keep a token while the probability before it is under top_p (the first always stays).
    before_BV = jnp.cumsum(probs_BV, axis=-1) - probs_BV
    cut_B1 = jnp.min(jnp.where(before_BV < s.top_p, sorted_BV, jnp.inf), axis=-1,
                     keepdims=True)
    logits_BV = jnp.where(logits_BV < cut_B1, -jnp.inf, logits_BV)
  return jax.random.categorical(key, logits_BV, axis=-1).astype(jnp.int32)


def generate(graphdef, params, prompt_BP, pad_B, key, new_tokens: int, s: Sampling):
  """[B, new_tokens] int32 tokens after each left-padded prompt, with the cache (traceable:
  jit it with `new_tokens` and `s` static). Token i is drawn with fold_in(key, i)."""
  model = nnx.merge(graphdef, params)
  B, P = prompt_BP.shape
  cache = init_cache(model.cfg, B, P + new_tokens)
  logits_BPV, cache = cached_forward(model, prompt_BP, 0, pad_B, cache)
  first_B = sample(logits_BPV[:, -1], jax.random.fold_in(key, 0), s)

  def step(carry, i):
    tok_B, cache = carry
    logits_B1V, cache = cached_forward(model, tok_B[:, None], P + i - 1, pad_B, cache)
    nxt_B = sample(logits_B1V[:, 0], jax.random.fold_in(key, i), s)
    return (nxt_B, cache), nxt_B

  _, rest_NB = jax.lax.scan(step, (first_B, cache), jnp.arange(1, new_tokens))
  return jnp.concatenate([first_B[:, None], rest_NB.T], axis=1)


def recompute(graphdef, params, prompt_BP, pad_B, key, new_tokens: int, s: Sampling):
  """As `generate`, without a cache: every new token runs the causal forward over all
  P + new_tokens slots (those not yet written are masked as padding)."""
  model = nnx.merge(graphdef, params)
  B, P = prompt_BP.shape
  S = P + new_tokens
  ids_BS = jnp.zeros((B, S), jnp.int32).at[:, :P].set(prompt_BP)
  slot_S = jnp.arange(S)
  is_causal_B = jnp.ones((B,), bool)

  def step(i, ids_BS):
    filled = P + i  # slots holding tokens
    seg_BS = ((slot_S[None] >= pad_B[:, None]) & (slot_S[None] < filled)).astype(jnp.int32)
    logits_BSV = model(ids_BS, seg_BS, is_causal_B)
    logits_BV = jax.lax.dynamic_index_in_dim(logits_BSV, filled - 1, axis=1, keepdims=False)
    nxt_B = sample(logits_BV, jax.random.fold_in(key, i), s)
    return jax.lax.dynamic_update_slice_in_dim(ids_BS, nxt_B[:, None], filled, axis=1)

  return jax.lax.fori_loop(0, new_tokens, step, ids_BS)[:, P:]
