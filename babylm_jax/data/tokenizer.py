"""The tokenizer: byte-level BPE with the 16 special tokens at ids 0-15, and batched encoding.

`encode_documents` turns documents into one flat token array plus, per token, whether it
starts a whitespace word. Word starts come from the bytes of each vocabulary entry: a word
starts at a non-whitespace byte that follows whitespace (or the document start), and the
token holding that byte is flagged. So counting flags over any token range counts the exact
whitespace words of that text, without keeping offsets.
"""

from __future__ import annotations

import itertools
import os
from typing import Sequence

import numpy as np
import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from babylm_jax.config import NUM_SPECIAL_TOKENS, SPECIAL_TOKENS
from babylm_jax.errors import ConfigError, DataError

# How the exported Hugging Face tokenizer frames one text and a pair (`tokenizer(a, b)` in
# BabyLM's fine-tuning pipeline): `<s> A` and `<s> A </s> B`, B with token type 1.
SINGLE_TEMPLATE = "<s> $A"
PAIR_TEMPLATE = "<s> $A </s> $B:1"

# Byte-level BPE needs its 256 byte symbols besides the special tokens.
MIN_VOCAB = NUM_SPECIAL_TOKENS + 256
_WHITESPACE_BYTES = (9, 10, 11, 12, 13, 32)


def check_vocab_size(vocab_size: int):
  if vocab_size < MIN_VOCAB:
    raise ConfigError(f"model.vocab_size ({vocab_size}) is smaller than the {MIN_VOCAB} tokens "
                      f"a byte-level BPE needs ({NUM_SPECIAL_TOKENS} special + 256 bytes); "
                      f"raise --config.model.vocab_size.")


def set_pre_tokenizer(tok: tokenizers.Tokenizer, split_cjk: bool = False):
  """NFKC and a byte-level pre-tokenizer with a prefix space; with `split_cjk`, each CJK
  character (languages.CJK_CHARS) is a piece of its own first.

  GPT-2's byte-level split keeps a run of letters together, and Chinese has no spaces: a
  whole clause would be one "word", inside which BPE merges across word boundaries. Isolating
  the characters (as BERT's tokenizers do for CJK) lets merges join a character's bytes but
  not characters. The prefix space is then a normalizer (Prepend): ByteLevel's own would add
  one to every isolated character."""
  if not split_cjk:
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    return
  from babylm_jax.data.languages import CJK_CHARS
  tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Prepend(" ")])
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Split(tokenizers.Regex(CJK_CHARS), "isolated"),
      pre_tokenizers.ByteLevel(add_prefix_space=False)])


def train_tokenizer(docs: Sequence[str], vocab_size: int, min_frequency: int = 2,
                    split_cjk: bool = False) -> tokenizers.Tokenizer:
  """A byte-level BPE (NFKC, prefix space; see `set_pre_tokenizer`) trained on `docs`."""
  check_vocab_size(vocab_size)
  tok = tokenizers.Tokenizer(models.BPE())
  set_pre_tokenizer(tok, split_cjk)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
      special_tokens=list(SPECIAL_TOKENS),
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
  check_special_tokens(tok, "the trained tokenizer")
  return tok


def check_special_tokens(tok: tokenizers.Tokenizer, where: str):
  for i, name in enumerate(SPECIAL_TOKENS):
    if tok.token_to_id(name) != i:
      raise DataError(f"{where} does not have {name} at id {i}; use a tokenizer.json made by "
                      f"babylm_jax (leave --config.tokenizer.path empty to train one).")


def load_tokenizer(path: str, vocab_size: int) -> tokenizers.Tokenizer:
  """A given tokenizer.json, checked against the special-token layout and model.vocab_size."""
  if not os.path.isfile(path):
    raise DataError(f"tokenizer.path '{path}' does not exist; point --config.tokenizer.path "
                    f"at a tokenizer.json or leave it empty to train one.")
  try:
    tok = tokenizers.Tokenizer.from_file(path)
  except Exception:  # noqa: BLE001 - tokenizers raises plain Exception on bad JSON
    raise DataError(f"tokenizer.path '{path}' is not a valid tokenizer.json; point "
                    f"--config.tokenizer.path at one saved by the tokenizers library.") from None
  check_special_tokens(tok, f"tokenizer '{path}'")
  size = tok.get_vocab_size(with_added_tokens=True)
  if size > vocab_size:
    raise ConfigError(f"tokenizer '{path}' has {size} tokens but model.vocab_size is "
                      f"{vocab_size}; set --config.model.vocab_size={size} or larger.")
  return tok



def framed(tok: tokenizers.Tokenizer, pair: str = PAIR_TEMPLATE,
           max_length: int | None = None) -> tokenizers.Tokenizer:
  """A copy of `tok` that frames pairs with the template `pair` (special tokens by name,
  `$A`/`$B`, `:1` for token type 1) and, given `max_length`, truncates the longer text first
  so that the framed pair fits, as `tokenizer(a, b, truncation=True)` does in transformers."""
  out = tokenizers.Tokenizer.from_str(tok.to_str())
  names = {p.split(":")[0] for p in (SINGLE_TEMPLATE + " " + pair).split()}
  out.post_processor = processors.TemplateProcessing(
      single=SINGLE_TEMPLATE, pair=pair,
      special_tokens=[(n, tok.token_to_id(n)) for n in sorted(names) if n[0] != "$"])
  out.no_padding()
  if max_length is None:
    out.no_truncation()
  else:
    out.enable_truncation(max_length)
  return out


def _byte_of_char() -> dict[str, int]:
  """Inverse of the byte-level alphabet: printable Latin-1 bytes stand for themselves, the
  others (controls, space, a few more) were shifted to code points from 256 up."""
  printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
  shifted = [b for b in range(256) if b not in set(printable)]
  table = {chr(b): b for b in printable}
  table.update({chr(256 + n): b for n, b in enumerate(shifted)})
  return table


def word_tables(tok: tokenizers.Tokenizer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per token id: (holds a whitespace->word transition, starts with a non-whitespace byte,
  ends with a whitespace byte)."""
  size = tok.get_vocab_size(with_added_tokens=True)
  inner = np.zeros(size, bool)
  starts_word_byte = np.zeros(size, bool)
  ends_ws = np.zeros(size, bool)
  byte_of = _byte_of_char()
  special = set(SPECIAL_TOKENS)
  for token, i in tok.get_vocab(with_added_tokens=True).items():
    if token in special or i < NUM_SPECIAL_TOKENS:
      raw = token.encode("utf-8")  # added tokens match their literal text
    else:
      raw = bytes(byte_of.get(ch, 0x3F) for ch in token)
    ws = [b in _WHITESPACE_BYTES for b in raw]
    if not ws:
      continue
    inner[i] = any(a and not b for a, b in zip(ws, ws[1:]))
    starts_word_byte[i] = not ws[0]
    ends_ws[i] = ws[-1]
  return inner, starts_word_byte, ends_ws


def word_starts(tokens: np.ndarray, doc_offsets: np.ndarray, tables) -> np.ndarray:
  """uint8 flag per token: 1 where a whitespace word begins (see module docstring)."""
  inner, starts_word_byte, ends_ws = tables
  t = tokens.astype(np.int64)
  after_ws = np.empty(len(t), bool)
  after_ws[1:] = ends_ws[t[:-1]]
  starts = doc_offsets[:-1]
  after_ws[starts[starts < len(t)]] = True  # a document starts after (virtual) whitespace
  return (inner[t] | (starts_word_byte[t] & after_ws)).astype(np.uint8)


def token_dtype(vocab_size: int):
  return np.uint16 if vocab_size <= 65536 else np.uint32


def encode_documents(tok: tokenizers.Tokenizer, docs: Sequence[str], batch_docs: int = 1024):
  """(tokens, doc_lengths) of `docs`, encoded in parallel batches without per-token Python."""
  dtype = token_dtype(tok.get_vocab_size(with_added_tokens=True))
  encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
  arrays, lengths = [], []
  for i in range(0, len(docs), batch_docs):
    ids = [e.ids for e in encode(list(docs[i:i + batch_docs]), add_special_tokens=False)]
    lens = np.fromiter(map(len, ids), np.int64, count=len(ids))
    arrays.append(np.fromiter(itertools.chain.from_iterable(ids), dtype, count=int(lens.sum())))
    lengths.append(lens)
  tokens = np.concatenate(arrays) if arrays else np.zeros(0, dtype)
  lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
  return tokens, lengths


def save_tokenizer_atomic(tok: tokenizers.Tokenizer, path: str):
  """Writes tokenizer.json under a temporary name, then renames it into place."""
  from etils import epath
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
  try:
    tmp.write_text(tok.to_str(pretty=True))
    tmp.replace(path)
  except BaseException:
    if tmp.exists():
      tmp.unlink()
    raise


def token_bytes(tok) -> np.ndarray:
  """int64 per token id: the UTF-8 bytes of text it stands for (0 for special tokens)."""
  size = tok.get_vocab_size(with_added_tokens=True)
  out = np.zeros(size, np.int64)
  byte_of = _byte_of_char()
  special = set(SPECIAL_TOKENS)
  for token, i in tok.get_vocab(with_added_tokens=True).items():
    if token not in special and i >= NUM_SPECIAL_TOKENS:
      out[i] = sum(ch in byte_of for ch in token)
  return out
