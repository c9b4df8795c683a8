"""Where the raw text comes from: local files, a Hugging Face Hub dataset, or TFDS.

`resolve(spec, config)` turns `data.path` (or `data.dev_path`) into a `Corpus`: a list of
`TextFile`s (domain = file stem) or TFDS records, plus a content key for caching. Corpus
recipes (data/readers.py) also read records: `jsonl_records` (a .jsonl file's text field) and
`hub_records` (a dataset through `datasets.load_dataset`, from the Hub or a local folder). Files are
read as a stream of text blocks (`read_blocks`): the BabyLM sample files are one line of
several megabytes, so nothing reads a whole file or line at once. Bytes that are not UTF-8
are decoded with replacement and counted.
"""

from __future__ import annotations

import codecs
import dataclasses
import fnmatch
import glob
import hashlib
import os
import re
from typing import Callable, Iterator

from babylm_jax.errors import DataError, UserError

TEXT_SUFFIXES = (".train", ".dev", ".test", ".txt")
BLOCK_BYTES = 1 << 20
# A text with more of its bytes than this replaced as invalid UTF-8 (or NUL) is not text.
MAX_REPLACED_FRACTION = 0.01

_replaced = [0]  # bytes replaced by U+FFFD since the last reset (see read_blocks)
_bytes_read = [0]  # bytes decoded since the last reset


def _count_replacements(err: UnicodeDecodeError):
  _replaced[0] += err.end - err.start
  return "\ufffd", err.end


codecs.register_error("babylm_jax_count", _count_replacements)


@dataclasses.dataclass(frozen=True)
class TextFile:
  domain: str
  path: str


@dataclasses.dataclass
class Corpus:
  """A resolved source: local files, or a TFDS reader yielding (domain, text) documents."""
  spec: str
  files: list[TextFile]
  key: str  # changes whenever any content changes
  tfds_records: Callable[[], Iterator[str]] | None = None
  tfds_domain: str = ""


def domain_of(path: str) -> str:
  """BabyLM domain from a file name: 'childes_dev.train' -> 'childes_dev'."""
  name = os.path.basename(path)
  for suffix in TEXT_SUFFIXES:
    if name.endswith(suffix):
      return name[:-len(suffix)]
  return os.path.splitext(name)[0]


def _readable(path: str):
  """The file opened for reading; DataError (one sentence) when the system refuses."""
  try:
    return open(path, "rb")
  except OSError as e:
    raise DataError(f"data file '{path}' cannot be read ({e.strerror or e}); make it readable "
                    f"for this user or leave it out of the data path.") from None


def _file_digest(path: str) -> str:
  h = hashlib.blake2b(digest_size=16)
  with _readable(path) as f:
    while chunk := f.read(BLOCK_BYTES * 4):
      h.update(chunk)
  return h.hexdigest()


def files_key(files: list[TextFile]) -> str:
  """A hash of the files' domains and contents (a corpus's key, and a generating run's)."""
  h = hashlib.blake2b(digest_size=16)
  for f in files:
    h.update(f"{f.domain}\0{_file_digest(f.path)}\0".encode())
  return h.hexdigest()


def _local_files(spec: str, field: str) -> list[TextFile]:
  if os.path.isdir(spec):
    paths = [os.path.join(spec, n) for n in sorted(os.listdir(spec))]
    paths = [p for p in paths if os.path.isfile(p) and p.endswith(TEXT_SUFFIXES)]
    if not paths:
      raise DataError(f"{field} '{spec}' holds no {'/'.join(TEXT_SUFFIXES)} files; point "
                      f"--config.{field} at a folder of BabyLM text files.")
  elif os.path.isfile(spec):
    paths = [spec]
  elif any(c in spec for c in "*?["):
    paths = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
    if not paths:
      raise DataError(f"{field} glob '{spec}' matches no files; fix --config.{field}.")
  else:
    raise DataError(f"{field} '{spec}' does not exist; set --config.{field} to a folder, "
                    f"file or glob of BabyLM text files.")
  return [TextFile(domain_of(p), p) for p in paths]


def _hub_files(spec: str, config, field: str) -> list[TextFile]:
  """Fetches (or, with HF_HUB_OFFLINE=1, finds in the cache) a Hub dataset snapshot."""
  from huggingface_hub import snapshot_download
  repo_id = spec[len("hf:"):]
  revision, pattern = config.data.hf_revision, config.data.hf_glob
  # Read the cache location and offline switch now, not at huggingface_hub import time.
  cache_dir = os.environ.get("HF_HUB_CACHE") or None
  offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
  try:
    root = snapshot_download(repo_id, repo_type="dataset", revision=revision,
                             allow_patterns=pattern, cache_dir=cache_dir,
                             local_files_only=offline)
  except Exception as e:  # noqa: BLE001 - the hub raises many kinds; all mean "not there"
    where = "in the local cache (HF_HUB_OFFLINE=1)" if offline else "on the Hub"
    raise DataError(f"{field} '{spec}' at revision '{revision}' was not found {where} "
                    f"({type(e).__name__}); check the repository id, data.hf_revision and "
                    f"HF_HUB_CACHE.") from None
  paths = []
  for dirpath, _, names in os.walk(root):
    for n in names:
      rel = os.path.relpath(os.path.join(dirpath, n), root)
      if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(n, pattern):
        paths.append(os.path.join(dirpath, n))
  if not paths:
    raise DataError(f"{field} '{spec}' has no files matching data.hf_glob '{pattern}'; "
                    f"change --config.data.hf_glob.")
  return [TextFile(domain_of(p), p) for p in sorted(paths)]


_TFDS_SPEC = re.compile(r"^tfds:(?P<name>[\w.-]+(?:/[\w.-]+)?)(?::(?P<split>[\w\[\]:%.+-]+))?$")


def parse_tfds_spec(spec: str) -> tuple[str, str]:
  """'tfds:name/config:split' -> ('name/config', 'split'); split defaults to 'train'."""
  m = _TFDS_SPEC.match(spec)
  if not m:
    raise DataError(f"'{spec}' is not a TFDS spec; write it as tfds:name/config:split, "
                    f"e.g. tfds:wikipedia/20230601.en:train.")
  return m.group("name"), m.group("split") or "train"


def _tfds_corpus(spec: str, config) -> Corpus:
  name, split = parse_tfds_spec(spec)
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise UserError(f"data.path '{spec}' needs tensorflow-datasets, which is not installed; "
                    f"run pip install 'babylm_jax[tfds]'.") from None
  field = config.data.tfds_text_field
  try:
    source = tfds.data_source(name, split=split)
  except Exception as e:  # noqa: BLE001
    raise DataError(f"TFDS dataset '{name}' split '{split}' could not be opened "
                    f"({type(e).__name__}); prepare it with tfds build or check the name.") from None
  n = len(source)

  def records() -> Iterator[str]:
    for i in range(n):
      rec = source[i]
      if field not in rec:
        raise DataError(f"TFDS records of '{name}' have no field '{field}'; set "
                        f"--config.data.tfds_text_field to one of {sorted(rec)}.")
      text = rec[field]
      if isinstance(text, bytes):
        _bytes_read[0] += len(text)
        yield text.decode("utf-8", "babylm_jax_count")
      else:
        text = str(text)
        _bytes_read[0] += len(text.encode("utf-8"))
        yield text

  # Released TFDS versions are immutable: name, split, size and version identify the content.
  version = str(getattr(getattr(source, "dataset_info", None), "version", ""))
  key = hashlib.blake2b(f"{name}\0{split}\0{n}\0{version}\0{field}".encode(),
                        digest_size=16).hexdigest()
  return Corpus(spec, [], key, tfds_records=records, tfds_domain=name.split("/")[0])


def resolve(spec: str, config, field: str = "data.path") -> Corpus:
  """The corpus named by `spec` (a `data.path`-style string)."""
  if not spec:
    raise DataError(f"{field} is empty; set --config.{field} to a folder of BabyLM text files.")
  if spec.startswith("tfds:"):
    return _tfds_corpus(spec, config)
  if spec.startswith("hf:"):
    files = _hub_files(spec, config, field)
  else:
    files = _local_files(os.path.expanduser(spec), field)
  return Corpus(spec, files, files_key(files))


def read_blocks(path: str, block_bytes: int = BLOCK_BYTES, hasher=None) -> Iterator[str]:
  """Decoded text of a file in blocks of about `block_bytes`; bad bytes become U+FFFD.
  `hasher` (a hashlib object), when given, sees every raw byte read."""
  decoder = codecs.getincrementaldecoder("utf-8")(errors="babylm_jax_count")
  with _readable(path) as f:
    while raw := f.read(block_bytes):
      _bytes_read[0] += len(raw)
      if hasher is not None:
        hasher.update(raw)
      yield decoder.decode(raw)
    tail = decoder.decode(b"", final=True)
    if tail:
      yield tail


def jsonl_records(path: str, field: str, hasher=None) -> Iterator[str]:
  """The `field` of every JSON object in a .jsonl file (one per line), as text."""
  import json
  with _readable(path) as f:
    for number, raw in enumerate(f, start=1):
      _bytes_read[0] += len(raw)
      if hasher is not None:
        hasher.update(raw)
      line = raw.decode("utf-8", "babylm_jax_count").strip()
      if not line:
        continue
      try:
        record = json.loads(line)
      except ValueError:
        raise DataError(f"'{path}' line {number} is not JSON; a .jsonl source holds one JSON "
                        f"object per line.") from None
      if not isinstance(record, dict) or field not in record:
        raise DataError(f"'{path}' line {number} has no field '{field}'; set the source's "
                        f"text_field to the field that holds the text.")
      yield str(record[field])


def hub_records(spec: str, *, revision: str, split: str, field: str, data_files: str = "",
                streaming: bool = True, hasher=None) -> Iterator[str]:
  """The `field` of every record of a dataset read with `datasets.load_dataset`.

  `spec` is 'hf:ORG/NAME' (the Hub, or its cache with HF_DATASETS_OFFLINE=1) or 'hf:FOLDER'
  (a local folder of parquet/jsonl/... files in the Hub's layout). Streaming reads records
  as they come, so a corpus larger than memory or disk is never materialised in an Arrow
  cache. `hasher` sees each record's text (UTF-8, NUL-terminated): the digest names what was
  read whether or not the files are at hand.
  """
  import datasets
  name = spec[len("hf:"):]
  try:
    ds = datasets.load_dataset(name, revision=revision or None, split=split,
                               data_files=data_files or None, streaming=streaming)
  except Exception as e:  # noqa: BLE001 - datasets raises many kinds; all mean "not there"
    offline = datasets.config.HF_HUB_OFFLINE
    where = "in the local cache (HF_DATASETS_OFFLINE=1)" if offline else "on the Hub"
    raise DataError(f"dataset '{spec}' split '{split}' at revision '{revision}' was not found "
                    f"{where} ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
                    f"); check the name, split, revision and data_files.") from None
  columns = ds.column_names
  if columns is not None and field not in columns:
    raise DataError(f"dataset '{spec}' has no field '{field}'; set the source's text_field to "
                    f"one of {sorted(columns)}.")
  for record in ds:
    text = record[field]
    if isinstance(text, bytes):
      raw = text
      text = raw.decode("utf-8", "babylm_jax_count")
    else:
      text = "" if text is None else str(text)
      raw = text.encode("utf-8", "surrogatepass")
    _bytes_read[0] += len(raw)
    if hasher is not None:
      hasher.update(raw + b"\0")
    yield text


def take_replaced() -> int:
  """Bytes replaced since the last call (decoding happens in this process only)."""
  n, _replaced[0] = _replaced[0], 0
  return n


def take_bytes_read() -> int:
  """Bytes of text decoded since the last call."""
  n, _bytes_read[0] = _bytes_read[0], 0
  return n
