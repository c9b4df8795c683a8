"""The token store: a corpus encoded once into flat arrays on disk, memory-mapped to read.

A store is a folder holding `tokens.npy` (all documents back to back, uint16 or uint32),
`doc_offsets.npy` (int64, num_docs + 1), `word_starts.npy` (uint8 per token: 1 where a
whitespace word begins), `doc_words.npy`, `doc_domains.npy` and `meta.json`. It is built
under a temporary name and renamed into place, so a folder with the final name is always
complete; a killed build leaves only a `.tmp-*` folder, which is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from babylm_jax import file_modes
from babylm_jax.errors import DataError

FORMAT_VERSION = 1


def cache_root(config) -> str:
  root = (config.data.cache_dir or os.environ.get("BABYLM_JAX_CACHE")
          or os.path.join(os.path.expanduser("~"), ".cache", "babylm_jax"))
  return os.path.abspath(os.path.expanduser(root))


def digest(*parts) -> str:
  """A short stable hash of JSON-serialisable parts: the cache keys."""
  h = hashlib.blake2b(digest_size=16)
  h.update(json.dumps([FORMAT_VERSION, *parts], sort_keys=True, default=str).encode())
  return h.hexdigest()


class TokenStore:
  """A read-only, memory-mapped token store (see the module docstring)."""

  def __init__(self, path: str):
    self.path = path
    with open(os.path.join(path, "meta.json")) as f:
      self.meta = json.load(f)
    load = lambda name: np.load(os.path.join(path, name), mmap_mode="r")  # noqa: E731
    self.tokens: np.ndarray = load("tokens.npy")
    self.doc_offsets: np.ndarray = np.asarray(load("doc_offsets.npy"))
    self.word_starts: np.ndarray = load("word_starts.npy")
    self.doc_words: np.ndarray = np.asarray(load("doc_words.npy"))
    self.doc_domains: np.ndarray = np.asarray(load("doc_domains.npy"))
    self.num_tokens = int(len(self.tokens))
    self.num_docs = int(len(self.doc_offsets) - 1)
    self.num_words = int(self.meta["num_words"])
    self.vocab_size = int(self.meta["vocab_size"])
    self.domains: list[str] = list(self.meta["domains"])

  def doc(self, i: int) -> np.ndarray:
    return self.tokens[self.doc_offsets[i]:self.doc_offsets[i + 1]]

  def words_per_domain(self) -> dict[str, int]:
    return dict(self.meta["words_per_domain"])

  def __repr__(self):
    return (f"TokenStore({self.path!r}, docs={self.num_docs}, tokens={self.num_tokens}, "
            f"words={self.num_words})")


def open_store(path: str) -> TokenStore | None:
  """The store at `path`, or None when there is none (or only an unfinished one)."""
  if not os.path.isfile(os.path.join(path, "meta.json")):
    return None
  try:
    return TokenStore(path)
  except (OSError, ValueError, KeyError, json.JSONDecodeError):
    return None


def write_store(path: str, tokens: np.ndarray, doc_lengths: np.ndarray,
                word_starts: np.ndarray, doc_domains: np.ndarray, domains: list[str],
                vocab_size: int, extra_meta: dict) -> TokenStore:
  """Writes a complete store to `path` atomically and returns it opened."""
  if len(doc_lengths) == 0:
    raise DataError(f"no documents to store in '{path}'.")
  offsets = np.zeros(len(doc_lengths) + 1, np.int64)
  np.cumsum(doc_lengths, out=offsets[1:])
  nonempty = doc_lengths > 0
  doc_words = np.zeros(len(doc_lengths), np.int64)
  doc_words[nonempty] = np.add.reduceat(word_starts.astype(np.int64),
                                        offsets[:-1][nonempty])
  words_per_domain = {d: int(doc_words[doc_domains == i].sum()) for i, d in enumerate(domains)}
  meta = dict(extra_meta, format=FORMAT_VERSION, num_tokens=int(len(tokens)),
              num_docs=int(len(doc_lengths)), num_words=int(doc_words.sum()),
              vocab_size=int(vocab_size), domains=list(domains),
              words_per_domain=words_per_domain, dtype=str(tokens.dtype))
  parent = os.path.dirname(path)
  try:
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
  except OSError as e:
    raise cache_error(parent, e) from None
  try:
    np.save(os.path.join(tmp, "tokens.npy"), tokens)
    np.save(os.path.join(tmp, "doc_offsets.npy"), offsets)
    np.save(os.path.join(tmp, "word_starts.npy"), word_starts.astype(np.uint8))
    np.save(os.path.join(tmp, "doc_words.npy"), doc_words)
    np.save(os.path.join(tmp, "doc_domains.npy"), doc_domains.astype(np.int32))
    with open(os.path.join(tmp, "meta.json"), "w") as f:  # last: marks the folder complete
      json.dump(meta, f, indent=1)
    file_modes.share(tmp)  # mkdtemp makes it 0700
    try:
      os.rename(tmp, path)
    except OSError:
      if open_store(path) is None:  # not another process's finished copy of the same store
        raise
      shutil.rmtree(tmp, ignore_errors=True)
  except BaseException as e:
    shutil.rmtree(tmp, ignore_errors=True)
    if isinstance(e, OSError):
      raise cache_error(parent, e) from None
    raise
  return TokenStore(path)


def cache_error(folder: str, e: OSError) -> DataError:
  return DataError(f"the token store cache '{folder}' cannot be written ({e.strerror or e}); "
                   f"free space there or set --config.data.cache_dir (or $BABYLM_JAX_CACHE) to a "
                   f"folder on a disk with room.")
