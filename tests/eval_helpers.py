"""Helpers for the eval tests: a real BPE tokenizer trained on the shared text, a tiny model."""

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from babylm_jax.config import SPECIAL_TOKENS
from conftest import data_path


@functools.lru_cache(maxsize=None)
def small_tokenizer(vocab_size: int = 512) -> Tokenizer:
  """A byte-level BPE trained on train_100k: real text, real merges, in about a second."""
  files = sorted(str(p) for p in data_path("babylm_text", "train_100k").glob("*.train"))
  tok = Tokenizer(models.BPE(unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                show_progress=False)
  tok.train(files, trainer)
  return tok


class TinyLM(nnx.Module):
  """A one-layer transformer with GPTBert's interface, for the engine before GPTBert lands."""

  def __init__(self, vocab_size: int, dim: int = 32, *, rngs: nnx.Rngs):
    self.embed = nnx.Embed(vocab_size, dim, rngs=rngs)
    self.pos = nnx.Embed(128, dim, rngs=rngs)
    self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
    self.mlp = nnx.Linear(dim, dim, rngs=rngs)
    self.out = nnx.Linear(dim, vocab_size, rngs=rngs)

  def encode(self, ids_BT, seg_BT, is_causal_B, deterministic=True):
    T = ids_BT.shape[1]
    x_BTD = self.embed(ids_BT) + self.pos(jnp.arange(T))[None]
    q, k, v = jnp.split(self.qkv(x_BTD), 3, axis=-1)
    keep_BTT = (seg_BT[:, None, :] > 0) & (seg_BT[:, :, None] > 0)
    lower_TT = jnp.tril(jnp.ones((T, T), bool))
    keep_BTT &= jnp.where(is_causal_B[:, None, None], lower_TT[None], True)
    keep_BTT |= jnp.eye(T, dtype=bool)[None]
    s_BTT = jnp.where(keep_BTT, q @ k.transpose(0, 2, 1) / jnp.sqrt(q.shape[-1]), -1e9)
    x_BTD = x_BTD + jax.nn.softmax(s_BTT, axis=-1) @ v
    return x_BTD + jnp.tanh(self.mlp(x_BTD))

  def head(self, hidden):
    return self.out(hidden)


def tiny_gpt_bert(vocab_size: int = 512, seed: int = 0):
  """A real GPTBert of the smoke shape, random weights, for engine tests."""
  from babylm_jax.config import base_config
  from babylm_jax.model.gpt_bert import GPTBert
  c = base_config()
  c.model.vocab_size = vocab_size
  c.model.hidden_size = 32
  c.model.num_layers = 2
  c.model.num_heads = 2
  c.model.intermediate_size = 64
  c.model.dropout = 0.0
  c.model.max_position = 128
  return GPTBert(c.model, rngs=nnx.Rngs(seed)), c


def logits_fn_of(model):
  """model -> jitted logits_fn(ids_BT, segment_ids_BT, is_causal_B) for the reference."""
  graphdef, state = nnx.split(model)

  @jax.jit
  def fn(state, ids, seg, causal):
    m = nnx.merge(graphdef, state)
    return m.head(m.encode(ids, seg, causal, deterministic=True)).astype(jnp.float32)

  return lambda ids, seg, causal: fn(state, jnp.asarray(ids), jnp.asarray(seg),
                                     jnp.asarray(causal))
