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


@functools.lru_cache(maxsize=None)
def project_tokenizer(vocab_size: int = 512) -> Tokenizer:
  """The project's own tokenizer (NFKC, prefix space) trained on train_100k."""
  from babylm_jax.data.tokenizer import train_tokenizer
  lines = [l for p in sorted(data_path("babylm_text", "train_100k").glob("*.train"))
           for l in p.read_text().splitlines() if l.strip()]
  return train_tokenizer(lines, vocab_size)
