"""Per-domain cleaning: text blocks in, documents out.

A document is the unit for packing and for attention boundaries. Boundaries are blank lines
and Simple-Wikipedia-style headings (`= = = Title = = =`, which the BabyLM files also use to
separate CHILDES transcripts and Gutenberg books), each switchable in `config.data.clean`.
Headings and speaker tags appear both at line starts (original layout) and mid-line (the
one-line sample files), so every pattern is anchored on whitespace, not on line starts.
Documents longer than `max_doc_chars` are cut at a whitespace into several, so that a
multi-megabyte line still gives documents that can be shuffled, held out and encoded in
parallel. Text is NFKC-normalised and every whitespace run other than newlines becomes one
space, which makes "whitespace words" the same for `str.split`, the byte-level tokenizer and
the numpy word counter below.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import Iterable, Iterator

import numpy as np

# At least two '=' on each side: a single '= x =' is too common in ordinary text.
HEADING = re.compile(r"(?<!\S)(=(?: =)+) ([^=\n]{1,200}?) \1(?!\S)")
CHILDES_TAG = re.compile(r"(?<!\S)\*[A-Z][A-Z0-9]*:(?!\S)")
SWITCHBOARD_TAG = re.compile(r"(?<!\S)[AB]:(?!\S)")
BLANK_LINE = re.compile(r"\n *\n\s*")
# Whitespace other than newline, where it is not already a single space: two or more in a
# row, or one tab/NBSP/... (matching only those keeps the common single spaces untouched, 2x
# faster than rewriting every run).
_SPACES = re.compile(r"[^\S\n]{2,}|[^\S \n]")
_LINE_EDGES = re.compile(r" *\n[\n ]*")
# How far back from a cut a heading may have begun (titles are at most 200 characters).
_HEADING_ZONE = 512
_MAX_CARRY = 1 << 24


@dataclasses.dataclass(frozen=True)
class CleanSettings:
  strip_speaker_tags: bool = False
  wiki_headings_as_boundaries: bool = True
  blank_lines_as_boundaries: bool = True
  keep_heading_titles: bool = False
  max_doc_chars: int = 20_000

  @classmethod
  def from_config(cls, config) -> "CleanSettings":
    c = config.data.clean
    return cls(strip_speaker_tags=bool(c.strip_speaker_tags),
               wiki_headings_as_boundaries=bool(c.wiki_headings_as_boundaries),
               blank_lines_as_boundaries=bool(c.blank_lines_as_boundaries),
               keep_heading_titles=bool(c.keep_heading_titles),
               max_doc_chars=int(c.max_doc_chars))


def normalize(text: str) -> str:
  """NFKC, newlines for CR/CRLF, and one space for every other whitespace run."""
  text = unicodedata.normalize("NFKC", text)
  text = text.replace("\r\n", "\n").replace("\r", "\n")
  return _SPACES.sub(" ", text)


def count_words(text: str) -> int:
  """Whitespace words of normalised text (only ' ' and '\\n' are whitespace there)."""
  b = np.frombuffer(text.encode("utf-8"), np.uint8)
  if not len(b):
    return 0
  ws = (b == 32) | (b == 10)
  return int(np.count_nonzero(ws[:-1] & ~ws[1:]) + (not ws[0]))


def _safe_cut(buf: str) -> int:
  """An index where `buf` may be cut: the start of its last whitespace run, moved before any
  '=' that could open a heading not yet complete. 0 when no such place exists yet."""
  i = len(buf)
  while i > 0 and not buf[i - 1].isspace():
    i -= 1
  while i > 0 and buf[i - 1].isspace():
    i -= 1
  if i == 0:
    return 0
  # Headings that end well before i are complete; an '=' after the last of them may open one.
  lo = max(0, i - _HEADING_ZONE)
  # Scan from 0: buf starts at an earlier safe cut, so never inside a heading.
  for m in HEADING.finditer(buf, 0, i):
    if m.end() < i:  # one ending at i may be the truncated start of a longer heading
      lo = max(lo, m.end())
  j = lo
  while (j := buf.find("=", j, i)) != -1:
    if j == 0 or buf[j - 1].isspace():
      while j > 0 and buf[j - 1].isspace():
        j -= 1
      return j
    j += 1
  return i


def pieces(blocks: Iterable[str]) -> Iterator[str]:
  """Re-cuts arbitrary text blocks so that each piece ends just before a whitespace run:
  no word, whitespace run (blank line), speaker tag or heading is split between pieces."""
  carry = ""
  for block in blocks:
    buf = carry + block
    cut = _safe_cut(buf)
    if cut == 0 and len(buf) > _MAX_CARRY:  # no whitespace at all: cutting is harmless
      cut = len(buf)
    if cut:
      yield buf[:cut]
    carry = buf[cut:]
  if carry:
    yield carry


def _boundaries(piece: str, s: CleanSettings) -> list[tuple[int, int, str]]:
  """(start, end, title) of every boundary in a piece, sorted, not overlapping."""
  found = []
  if s.wiki_headings_as_boundaries:
    found += [(m.start(), m.end(), m.group(2)) for m in HEADING.finditer(piece)]
  if s.blank_lines_as_boundaries:
    found += [(m.start(), m.end(), "") for m in BLANK_LINE.finditer(piece)]
  found.sort()
  out, last = [], -1
  for b in found:
    if b[0] >= last:
      out.append(b)
      last = b[1]
  return out


def _tidy(text: str) -> str:
  """A finished document: no spaces around line breaks, no empty lines, no double spaces
  (left where tags were removed), no leading or trailing whitespace."""
  text = text.replace("  ", " ")
  if "\n" in text:  # the regex is slow on long one-line text, where it would do nothing
    text = _LINE_EDGES.sub("\n", text)
  return text.strip()


class _Doc:
  """The document being assembled; cut into several when it grows past max_doc_chars.

  Cut positions depend only on the text, never on how it arrived in pieces."""

  def __init__(self, max_chars: int):
    self.parts: list[str] = []
    self.size = 0
    self.max_chars = max_chars

  def add(self, text: str) -> Iterator[str]:
    self.parts.append(text)
    self.size += len(text)
    while self.size > self.max_chars:
      text = "".join(self.parts)
      cut = max(text.rfind(" ", 0, self.max_chars), text.rfind("\n", 0, self.max_chars))
      if cut <= 0:
        m = re.search(r"\s", text[self.max_chars:])
        if not m:
          self.parts, self.size = [text], len(text)
          return
        cut = self.max_chars + m.start()
      head, text = _tidy(text[:cut]), text[cut:]
      if head:
        yield head
      self.parts, self.size = [text], len(text)

  def flush(self) -> Iterator[str]:
    text = _tidy("".join(self.parts))
    self.parts, self.size = [], 0
    if text:
      yield text


def documents(blocks: Iterable[str], domain: str, s: CleanSettings,
              raw_words: dict | None = None) -> Iterator[str]:
  """Cleaned documents of one file (or record). `raw_words[domain]` accumulates the words
  before tags and headings are removed: the BabyLM budget counts the text as distributed."""
  strip_childes = s.strip_speaker_tags
  strip_switchboard = s.strip_speaker_tags and "switchboard" in domain
  doc = _Doc(s.max_doc_chars)
  for piece in pieces(blocks):
    piece = normalize(piece)
    if raw_words is not None:
      raw_words[domain] = raw_words.get(domain, 0) + count_words(piece)
    pos = 0
    # Boundaries first: a line that held only a speaker tag is not a blank line.
    for start, end, title in _boundaries(piece, s) + [(len(piece), len(piece), None)]:
      fragment = piece[pos:start]
      if strip_childes:
        fragment = CHILDES_TAG.sub("", fragment)
      if strip_switchboard:
        fragment = SWITCHBOARD_TAG.sub("", fragment)
      yield from doc.add(fragment)
      if title is None:
        break
      yield from doc.flush()
      if title and s.keep_heading_titles:
        yield from doc.add(title + "\n")
      pos = end
  yield from doc.flush()
