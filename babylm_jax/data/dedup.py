"""Duplicate removal for corpus curation: exact (a normalised text hash) and near (MinHash LSH).

Both keep the first document of each group in document order and drop the later ones, so
the result does not depend on anything but the order the corpus is read in.

- Exact: two documents are duplicates when their normalised texts are equal. The
  normalisation (`exact_key`) is NFKC, case folding, and then only the runs of word
  characters (letters, digits, underscore) joined by one space, so that punctuation,
  symbols and whitespace all count as one separator ("Don't -- stop!" and "don t stop" are
  the same); the key is a 128-bit BLAKE2b digest of that text.
- Near: a document's shingles are its word n-grams (whitespace words, `shingle_words` of
  them; a document shorter than that is one shingle). Their 32-bit hashes feed a MinHash
  signature in datasketch's `affine32` scheme (the same values `MinHash.update_batch` gives,
  computed here for many documents at once), and datasketch's `MinHashLSH` proposes earlier
  documents whose bands collide. A candidate counts only when the signatures agree on at
  least `threshold` of their positions (the MinHash estimate of the Jaccard similarity of
  the two shingle sets), which removes the banding's false positives. A document is dropped
  when it is a near duplicate of any earlier document that reached this step, kept or not.
  Memory is one signature (4 x num_perm bytes) and one LSH entry per document: nothing is
  compared pairwise.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterator, NamedTuple, Sequence

import numpy as np

_WORD_RUN = re.compile(r"\w+")
EXACT_NORMALISATION = ("NFKC, casefold, then the runs of word characters (letters, digits, "
                       "underscore) joined by one space: punctuation, symbols and whitespace "
                       "all separate words alike")

# Shingles of a batch of documents are hashed and signed together: about this many bytes of
# text a batch, and this many shingle rows per signature block (rows x num_perm uint32).
_BATCH_BYTES = 1 << 21
_SIGN_ROWS = 1 << 14
_GRAM_MULT = np.uint64(0x9E3779B97F4A7C15)


def exact_key(text: str) -> bytes:
  """The digest two documents share when they are exact duplicates (see the docstring)."""
  text = " ".join(_WORD_RUN.findall(unicodedata.normalize("NFKC", text).casefold()))
  return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def exact_duplicates(texts: Sequence[str], order: np.ndarray) -> dict[int, int]:
  """{document: the earlier document it duplicates} for the documents `order` lists."""
  first, dups = {}, {}
  for i in order.tolist():
    j = first.setdefault(exact_key(texts[i]), i)
    if j != i:
      dups[i] = j
  return dups


# str.split's whitespace among ASCII bytes; cleaned text (clean.normalize) has no other.
_SPACE_BYTE = np.zeros(256, bool)
_SPACE_BYTE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_BYTE_MULT = np.uint64(0x100000001B3)


class WordBatch(NamedTuple):
  docs: np.ndarray  # indices of the documents, in order
  lengths: np.ndarray  # words per document
  hashes: np.ndarray  # uint64 per word, the words of all documents in order
  chars: np.ndarray  # characters per word


def word_batches(texts: Sequence[str], order: np.ndarray) -> Iterator[WordBatch]:
  """The words of the documents `order` lists, hashed, in groups of about _BATCH_BYTES.

  A word is a run of bytes other than ASCII whitespace in the text's UTF-8 (the words of
  `str.split` for cleaned text). Its hash is a polynomial in its bytes mod 2^64, mixed: a
  function of the word alone, computed for all words of a batch at once in numpy."""
  start = 0
  order = order.tolist()
  while start < len(order):
    docs, raw, size = [], [], 0
    for i in order[start:]:
      docs.append(i)
      raw.append(texts[i].encode("utf-8", "surrogatepass"))
      size += len(raw[-1]) + 1
      if size >= _BATCH_BYTES:
        break
    start += len(docs)
    b = np.frombuffer(b" ".join(raw) + b" ", np.uint8)  # a space keeps documents apart
    space = _SPACE_BYTE[b]
    first = ~space & np.concatenate(([True], space[:-1]))
    inside = np.flatnonzero(~space)
    word_of = np.cumsum(first)[inside] - 1
    seg = np.flatnonzero(first[inside])  # where each word's bytes begin in `inside`
    pos = np.arange(len(inside)) - seg[word_of]
    powers = np.cumprod(np.full(int(pos.max(initial=0)) + 1, _BYTE_MULT, np.uint64))
    terms = (b[inside].astype(np.uint64) + np.uint64(1)) * powers[pos]
    hashes = mix64(np.add.reduceat(terms, seg) if len(seg) else terms)
    chars = (np.add.reduceat(((b[inside] & 0xC0) != 0x80).astype(np.int64), seg)
             if len(seg) else np.zeros(0, np.int64))
    ends = np.cumsum([len(r) + 1 for r in raw])  # a document's bytes end before ends[d]
    doc_of_word = np.searchsorted(ends, inside[seg], side="right")
    lengths = np.bincount(doc_of_word, minlength=len(docs))
    yield WordBatch(np.asarray(docs, np.int64), lengths, hashes, chars)


def mix64(x: np.ndarray) -> np.ndarray:
  """SplitMix64's finaliser: spreads the polynomial n-gram hash over all 64 bits."""
  x = x ^ (x >> np.uint64(30))
  x = x * np.uint64(0xBF58476D1CE4E5B9)
  x = x ^ (x >> np.uint64(27))
  x = x * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


def gram_hashes(h: np.ndarray, lengths: np.ndarray, n: int, *, short_docs: bool
                ) -> tuple[np.ndarray, np.ndarray]:
  """64-bit hashes of every word n-gram that lies inside one document, in document order,
  and how many each document has. `h` holds the word hashes of consecutive documents of
  `lengths` words. With `short_docs`, a document of fewer than n words (but at least one)
  has one gram, its whole text; otherwise none."""
  grams = [h]  # grams[k - 1][p]: the k words from p
  for k in range(1, n):
    prev = grams[-1]
    grams.append(prev[:len(prev) - 1] * _GRAM_MULT + h[k:])
  counts = np.maximum(lengths - n + 1, 0)
  size = np.minimum(lengths, n)  # gram length per document
  if short_docs:
    counts = np.where((lengths > 0) & (lengths < n), 1, counts)
  starts = np.cumsum(lengths) - lengths
  doc_of = np.repeat(np.arange(len(lengths)), counts)
  pos = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
  pos += starts[doc_of]
  k_of = size[doc_of]
  out = np.empty(len(pos), np.uint64)
  for k in np.unique(k_of).tolist():
    sel = k_of == k
    out[sel] = grams[k - 1][pos[sel]]
  return mix64(out), counts


def _fmix32(x: np.ndarray) -> np.ndarray:
  """MurmurHash3's 32-bit finaliser, which datasketch's affine32 scheme applies first."""
  x = x ^ (x >> np.uint32(16))
  x = x * np.uint32(0x85EBCA6B)
  x = x ^ (x >> np.uint32(13))
  x = x * np.uint32(0xC2B2AE35)
  return x ^ (x >> np.uint32(16))


def signatures(shingles: np.ndarray, counts: np.ndarray, permutations: np.ndarray
               ) -> np.ndarray:
  """[docs, num_perm] MinHash signatures of consecutive documents with `counts` shingles
  each (32-bit hashes): min over a document's shingles of a * fmix32(h) + b mod 2^32, the
  values datasketch's `MinHash.update_batch` computes one document at a time."""
  a, b = (np.asarray(p, np.uint32)[:, None] for p in permutations)
  sig = np.full((len(counts), len(a)), np.iinfo(np.uint32).max, np.uint32)
  ends = np.cumsum(counts)
  doc_of = np.repeat(np.arange(len(counts)), counts)
  hv = _fmix32(shingles)
  for r0 in range(0, len(hv), _SIGN_ROWS):
    r1 = min(r0 + _SIGN_ROWS, len(hv))
    # [num_perm, rows]: the per-document minimum then runs along contiguous memory.
    phv = a * hv[None, r0:r1] + b
    docs = np.unique(doc_of[r0:r1])
    cuts = np.maximum(ends[docs] - counts[docs], r0) - r0
    sig[docs] = np.minimum(sig[docs], np.minimum.reduceat(phv, cuts, axis=1).T)
  return sig


def near_duplicates(texts: Sequence[str], order: np.ndarray, *, threshold: float,
                    shingle_words: int, num_perm: int, seed: int
                    ) -> tuple[dict[int, tuple[int, float]], dict]:
  """{document: (the earlier document it is most similar to, estimated Jaccard)} for the
  documents `order` lists that are near duplicates of an earlier one, and facts about the
  LSH index (bands, rows, candidates checked). Documents without words are never compared."""
  from datasketch import LeanMinHash, MinHash, MinHashLSH
  permutations = MinHash(num_perm=num_perm, seed=seed).permutations
  lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
  # Signatures of the documents inserted so far, to verify LSH candidates.
  seen_sig = np.empty((max(1, min(len(order), 1024)), num_perm), np.uint32)
  seen_doc, dups, checked = [], {}, 0
  for docs, lengths, h, _ in word_batches(texts, order):
    shingles, counts = gram_hashes(h, lengths, shingle_words, short_docs=True)
    sig = signatures((shingles >> np.uint64(32)).astype(np.uint32), counts, permutations)
    for doc, s, c in zip(docs.tolist(), sig, counts.tolist()):
      if not c:
        continue
      m = LeanMinHash(seed=seed, hashvalues=s, scheme="affine32")
      cands = lsh.query(m)
      if cands:
        checked += len(cands)
        cands = np.sort(np.asarray(cands, np.int64))
        est = (seen_sig[cands] == s).mean(axis=1)
        best = int(np.argmax(est))  # the first of the most similar
        if est[best] >= threshold:
          dups[doc] = (seen_doc[cands[best]], float(est[best]))
      key = len(seen_doc)
      if key == len(seen_sig):
        seen_sig = np.resize(seen_sig, (2 * key, num_perm))
      seen_sig[key] = s
      seen_doc.append(doc)
      lsh.insert(key, m, check_duplication=False)
  return dups, dict(lsh_bands=lsh.b, lsh_rows=lsh.r, candidates_checked=checked)
