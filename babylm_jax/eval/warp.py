"""WARP prompt tuning (Hambardzumyan et al., 2021): a frozen language model reprogrammed by a
few learned input vectors, as the reference (YerevaNN/WARP) trains it on GLUE.

The reference's WARP-20 frames a pair with four groups of `k` = 5 prompt vectors and one
`<mask>`,
    <s> P*k a P*k <mask> P*k b P*k
(`finetune.warp.prompts_per_gap` sets k; k = 2 is WARP-8). The prompts enter the
word-embedding sequence in place of the reserved token `<special_0>`, which the template puts
in every slot; the j-th slot of a sequence takes prompt j. The class scores are an affine map
(one learned verbalizer vector and bias per class) of the LM head's transform (everything but
its vocabulary projection) at the position that predicts the mask's token. Only the prompts,
verbalizers and biases train; the language model runs frozen and deterministic (no dropout,
as the reference keeps it in eval mode), every pretrained weight stays as loaded.

Where the mask's token is predicted depends on the objective the model was trained with:
- hybrid (GPT-BERT): the masked-next-token head scores token i + 1 at position i, so the
  output at m - 1 (bidirectional attention) predicts the `<mask>` at m;
- masked (LTG-BERT, ELC-BERT, RoBERTa): the head predicts a masked token at its own position
  m (bidirectional attention), as in the reference;
- bootstrap (BootBERT): the `<mask>` is a hole the encoder does not see; the decoder fills it
  and the head reads the decoder's state at m (`model.states`), as the model was trained;
- causal (GPT): the token at m is predicted at m - 1 under causal attention, which sees
  nothing after m - 1; the mask moves to the end,
    <s> P*k a P*k P*k b P*k <mask>
  so that the prediction reads the whole framed pair (the prompt groups stay in order).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from babylm_jax.config import MASK_ID, SPECIAL_TOKENS, UNK_ID

SLOT = "<special_0>"
SLOT_ID = SPECIAL_TOKENS.index(SLOT)
PROMPT_INITS = ("mask", "normal")
VERBALIZER_INITS = ("random", "words")


@dataclasses.dataclass(frozen=True)
class Reading:
  """How an objective's head predicts the token at the mask."""
  causal: bool  # attention of the forward pass
  offset: int  # the prediction of the token at m is read at m + offset
  mask_last: bool  # the mask follows the pair (causal attention sees nothing after it)


READINGS = {
    "hybrid": Reading(causal=False, offset=-1, mask_last=False),
    "masked": Reading(causal=False, offset=0, mask_last=False),
    "bootstrap": Reading(causal=False, offset=0, mask_last=False),
    "causal": Reading(causal=True, offset=-1, mask_last=True),
}


def template(prompts_per_gap: int, mask_last: bool) -> str:
  """The tokenizer's pair template: four groups of prompt slots around a, the mask and b."""
  a, b = [SLOT] * prompts_per_gap, [f"{SLOT}:1"] * prompts_per_gap
  if mask_last:
    parts = ["<s>", *a, "$A", *a, *b, "$B:1", *b, "<mask>:1"]
  else:
    parts = ["<s>", *a, "$A", *a, "<mask>", *b, "$B:1", *b]
  return " ".join(parts)


def num_prompts(prompts_per_gap: int) -> int:
  return 4 * prompts_per_gap


class Prompt(nnx.Param):
  """A trained WARP vector (prompt, verbalizer or its bias); everything else stays frozen."""


class Warp(nnx.Module):
  """The frozen model with WARP's prompts and verbalizers; `recipe.objective` picks where the
  mask's prediction is read (see the module docstring)."""

  trainable = Prompt

  def __init__(self, encoder, task, recipe, tokenizer, *, rngs: nnx.Rngs | None = None):
    rngs = nnx.Rngs(recipe.seed) if rngs is None else rngs
    self.encoder = encoder
    self.reading = READINGS[recipe.objective]
    self.template = template(recipe.prompts_per_gap, self.reading.mask_last)
    P, D = num_prompts(recipe.prompts_per_gap), encoder.cfg.hidden_size
    word_VD = encoder.embedding.word[...].astype(jnp.float32)
    if recipe.prompt_init == "mask":  # the reference's WARP runs: every prompt starts as <mask>
      prompts_PD = jnp.tile(word_VD[MASK_ID], (P, 1))
    else:  # 'normal': N(mean, std) of the word-embedding matrix (the reference's default)
      prompts_PD = word_VD.mean() + word_VD.std() * jax.random.normal(rngs.params(), (P, D))
    self.prompts = Prompt(prompts_PD)
    C = task.num_labels
    if recipe.verbalizer_init == "random":
      # The reference's classifier is a torch.nn.Linear, initialised as PyTorch does:
      # weight and bias uniform in +-1/sqrt(D).
      bound = D ** -0.5
      verbalizers_CD = jax.random.uniform(rngs.params(), (C, D), jnp.float32, -bound, bound)
      bias_C = jax.random.uniform(rngs.params(), (C,), jnp.float32, -bound, bound)
    else:  # 'words' (WARP_init): the label word's embedding and its LM-head bias
      lm_bias_V = np.asarray(encoder.head_module.bias[...], np.float32)
      tokens = [tokenizer.encode(w, add_special_tokens=False).ids for w in task.label_words]
      verbalizers_CD = jnp.stack([word_VD[jnp.asarray(t)].mean(0) for t in tokens])
      bias_C = jnp.asarray([lm_bias_V[t].mean() for t in tokens])
    self.verbalizers = Prompt(verbalizers_CD)
    self.bias = Prompt(bias_C)

  def frame(self, encoding) -> tuple[list[int], int]:
    """(token ids, read position) of one framed pair.

    The template's own `<mask>` (a special token of the framing, not of the text) gives the
    position; a text that spells a slot token gets `<unk>` there, so that only the
    template's slots take prompts.
    """
    special = encoding.special_tokens_mask
    ids = [UNK_ID if t == SLOT_ID and not s else t for t, s in zip(encoding.ids, special)]
    mask_at = next(i for i, (t, s) in enumerate(zip(ids, special)) if s and t == MASK_ID)
    return ids, mask_at + self.reading.offset

  def __call__(self, ids_BT, seg_BT, read_B, *, deterministic, rngs=None):
    # The language model is frozen and runs without dropout whatever `deterministic` says,
    # as the reference keeps it in eval mode; WARP itself adds no dropout.
    del deterministic, rngs
    enc, B = self.encoder, ids_BT.shape[0]
    word_BTD = jnp.take(enc.embedding.word[...], ids_BT, axis=0)
    is_slot_BT = ids_BT == SLOT_ID
    slot_BT = jnp.clip(jnp.cumsum(is_slot_BT, axis=1) - 1, 0, self.prompts.shape[0] - 1)
    prompt_BTD = self.prompts[...][slot_BT].astype(word_BTD.dtype)
    word_BTD = jnp.where(is_slot_BT[..., None], prompt_BTD, word_BTD)
    is_causal_B = jnp.full((B,), self.reading.causal)
    states_BTD = enc.states(ids_BT, seg_BT, is_causal_B, deterministic=True, word_BTD=word_BTD)
    h_BD = enc.head_module.transform(states_BTD[jnp.arange(B), read_B]).astype(jnp.float32)
    return h_BD @ self.verbalizers[...].T + self.bias[...]
