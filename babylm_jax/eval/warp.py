"""WARP prompt tuning (Hambardzumyan et al., 2021): a frozen masked LM reprogrammed by a few
learned input vectors.

WARP-8: eight prompt vectors framed around the pair and one `<mask>`,
    <s> P1 P2 a P3 P4 <mask> P5 P6 b P7 P8
enter the word-embedding sequence in place of the reserved tokens `<special_0..7>` (the
tokenizer frames the pair with them, so truncation leaves room for them). The class scores
are the dot products of the LM head's transform (everything but its vocabulary projection)
at the mask's prediction with one learned verbalizer vector per class, each initialised from
the word embedding of that label's word (" yes", " no", ...; the mean over its tokens). Only
the prompts and the verbalizers train; every pretrained weight stays as loaded.

Where the mask's prediction is read: GPT-BERT's masked-next-token head scores token i + 1 at
position i, in its masked and its hybrid variants alike, so a `<mask>` at position m is
predicted by the output at m - 1 (here the output at P4).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from babylm_jax.config import NUM_SPECIAL_TOKENS, SPECIAL_TOKENS

NUM_PROMPTS = 8
_P = [f"<special_{i}>" for i in range(NUM_PROMPTS)]
_SLOTS = tuple(SPECIAL_TOKENS.index(p) for p in _P)  # their token ids
TEMPLATE = (f"<s> {_P[0]} {_P[1]} $A {_P[2]} {_P[3]} <mask> "
            f"{_P[4]}:1 {_P[5]}:1 $B:1 {_P[6]}:1 {_P[7]}:1")
# The prediction for the token after position i is read at i (masked-next-token).
READ_OFFSET = -1


class Prompt(nnx.Param):
  """A trained WARP vector (prompt or verbalizer); everything else stays frozen."""


class Warp(nnx.Module):
  """The frozen GPT-BERT with WARP-8's prompts and verbalizers."""

  template = TEMPLATE
  trainable = Prompt

  def __init__(self, encoder, task, recipe, tokenizer, *, rngs: nnx.Rngs):
    del rngs  # WARP adds no dropout of its own; the encoder's follows the model config
    self.encoder = encoder
    word_VD = np.asarray(encoder.embedding.word[...], np.float32)
    # Prompts start as the embeddings of random ordinary tokens: inside the distribution
    # the model was trained on, and all different.
    pick = np.random.default_rng(recipe.seed)
    ids = pick.choice(np.arange(NUM_SPECIAL_TOKENS, word_VD.shape[0]), NUM_PROMPTS, False)
    self.prompts = Prompt(jnp.asarray(word_VD[ids]))
    verbalizers = []
    for word in task.label_words:
      tokens = tokenizer.encode(word, add_special_tokens=False).ids
      verbalizers.append(word_VD[tokens].mean(0))
    self.verbalizers = Prompt(jnp.asarray(np.stack(verbalizers)))

  @staticmethod
  def read_position(type_ids) -> int:
    """Where the mask's prediction is read: the `<mask>` is the last token of type 0."""
    mask_at = len(type_ids) - int(np.count_nonzero(type_ids)) - 1
    return mask_at + READ_OFFSET

  def __call__(self, ids_BT, seg_BT, read_B, *, deterministic, rngs=None):
    enc = self.encoder
    word_BTD = jnp.take(enc.embedding.word[...], ids_BT, axis=0)
    is_slot_BTP = ids_BT[..., None] == jnp.asarray(_SLOTS, ids_BT.dtype)
    slot_BT = jnp.argmax(is_slot_BTP, axis=-1)
    is_prompt_BT1 = jnp.any(is_slot_BTP, axis=-1, keepdims=True)
    word_BTD = jnp.where(is_prompt_BT1, self.prompts[...][slot_BT], word_BTD)
    is_causal_B = jnp.zeros((ids_BT.shape[0],), bool)
    hidden_BTD = enc.encode(ids_BT, seg_BT, is_causal_B, deterministic=deterministic,
                            rngs=rngs, word_BTD=word_BTD)
    hidden_BD = hidden_BTD[jnp.arange(ids_BT.shape[0]), read_B]
    h_BD = enc.head_module.transform(hidden_BD).astype(jnp.float32)
    return h_BD @ self.verbalizers[...].T
