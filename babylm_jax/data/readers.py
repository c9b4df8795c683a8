"""Reading one source of a corpus recipe (data/corpus.py) into cleaned units.

A recipe source names local files (a file, a folder of `*.train`/`*.txt`/`*.jsonl` files,
optionally narrowed by a glob, or a glob), a dataset read with `datasets.load_dataset`
(`hf:ORG/NAME` or `hf:FOLDER`) or a TFDS dataset (`tfds:`). `read_source` streams its text
through the byte-level readers of data/sources.py, cleans it as training cleans it
(`data.clean`), cuts it into the recipe's units (documents or paragraphs), records what was
read with a sha256 for the manifest, and refuses a source that is empty or not text. What is
then done with the units (curation, selection, writing) is data/corpus.py's business.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from babylm_jax import interrupts
from babylm_jax.data import clean, sources
from babylm_jax.errors import DataError

LOCAL_SUFFIXES = sources.TEXT_SUFFIXES + (".jsonl",)


@dataclasses.dataclass(frozen=True)
class Source:
  """One source of a recipe as corpus.sources_of checked it (fields: corpus.SOURCE_FIELDS)."""
  name: str
  path: str
  words: int
  weight: float
  files: str
  text_field: str
  split: str
  revision: str
  data_files: str
  streaming: bool


@dataclasses.dataclass
class SourceText:
  """What one source gave: its units (documents or paragraphs) and how they were read."""
  source: Source
  texts: list[str]
  doc_ids: np.ndarray  # the document each unit comes from (paragraph units share one)
  words: np.ndarray  # whitespace words per unit
  raw_words: int  # before speaker tags and headings were removed, as training counts
  raw_bytes: int
  replaced_bytes: int
  read: list[dict]  # what was read: files or datasets, each with its sha256


def _local_paths(src: Source) -> list[str]:
  """The files a local source names, in sorted order; DataError when it names none."""
  spec = os.path.expanduser(src.path)
  where = f"source '{src.name}'"
  if os.path.isdir(spec):
    names = sorted(n for n in os.listdir(spec) if os.path.isfile(os.path.join(spec, n)))
    names = [n for n in names if n.endswith(LOCAL_SUFFIXES)]
    if src.files:
      import fnmatch
      names = [n for n in names if fnmatch.fnmatch(n, src.files)]
    if not names:
      raise DataError(f"{where}: folder '{spec}' holds no {'/'.join(LOCAL_SUFFIXES)} files"
                      f"{' matching ' + repr(src.files) if src.files else ''}; point its path "
                      f"at text files.")
    return [os.path.join(spec, n) for n in names]
  if os.path.isfile(spec):
    return [spec]
  if any(c in spec for c in "*?["):
    import glob
    paths = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
    if paths:
      return paths
    raise DataError(f"{where}: glob '{spec}' matches no files; fix its path.")
  raise DataError(f"{where}: '{spec}' does not exist; fix its path or leave the source out.")


def _records(src: Source, config, read: list[dict]):
  """(text blocks of one document stream) for each file or record of the source, and a
  record of what was read appended to `read` once each is done."""
  if src.path.startswith("hf:"):
    h = hashlib.sha256()
    local = os.path.isdir(src.path[3:])
    for text in sources.hub_records(src.path, revision=src.revision, split=src.split,
                                    field=src.text_field, data_files=src.data_files,
                                    streaming=src.streaming, hasher=h):
      yield [text]
    read.append(dict(dataset=src.path, revision="local folder" if local else src.revision,
                     split=src.split, text_field=src.text_field, data_files=src.data_files,
                     sha256_of_records=h.hexdigest()))
    return
  if src.path.startswith("tfds:"):
    cfg = config.copy_and_resolve_references()
    cfg.data.tfds_text_field = src.text_field
    corpus = sources.resolve(src.path, cfg, f"data.corpus.sources.{src.name}.path")
    h = hashlib.sha256()
    for text in corpus.tfds_records():
      h.update(text.encode("utf-8", "surrogatepass") + b"\0")
      yield [text]
    read.append(dict(dataset=src.path, text_field=src.text_field, key=corpus.key,
                     sha256_of_records=h.hexdigest()))
    return
  for path in _local_paths(src):
    h = hashlib.sha256()
    if path.endswith(".jsonl"):
      for text in sources.jsonl_records(path, src.text_field, hasher=h):
        yield [text]
    else:
      yield sources.read_blocks(path, hasher=h)
    read.append(dict(file=os.path.abspath(path), sha256=h.hexdigest()))
    interrupts.check()


def read_source(src: Source, config, settings: clean.CleanSettings, unit: str) -> SourceText:
  """The source's units, cleaned as training cleans; refuses it when empty or not text."""
  sources.take_replaced()
  sources.take_bytes_read()
  texts, doc_ids, raw_words, read = [], [], {}, []
  nul = 0
  doc = 0
  for blocks in _records(src, config, read):
    for text in clean.documents(blocks, src.name, settings, raw_words):
      nul += text.count("\0")
      if unit == "paragraph":
        lines = [line for line in text.split("\n") if line.strip()]
        texts.extend(lines)
        doc_ids.extend([doc] * len(lines))
      else:
        texts.append(text)
        doc_ids.append(doc)
      doc += 1
  replaced, raw_bytes = sources.take_replaced(), sources.take_bytes_read()
  if raw_bytes and replaced + nul > sources.MAX_REPLACED_FRACTION * raw_bytes:
    raise DataError(f"source '{src.name}' ({src.path}) does not look like text: "
                    f"{replaced + nul:,} of its {raw_bytes:,} bytes are not UTF-8 text; "
                    f"re-encode it as UTF-8 or leave it out of the recipe.")
  words = np.array([clean.count_words(t) for t in texts], np.int64)
  if not texts or not words.sum():
    raise DataError(f"source '{src.name}' ({src.path}) is empty: no words after cleaning; "
                    f"check its files (and text_field) or leave it out of the recipe.")
  return SourceText(src, texts, np.asarray(doc_ids, np.int64), words,
                    int(sum(raw_words.values())), raw_bytes, replaced, read)
