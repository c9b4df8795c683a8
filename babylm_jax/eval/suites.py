"""The zero-shot suites on disk: BLiMP, the supplement, EWoK, entity tracking, WUGs, COMPS, and
the multilingual track's ZhoBLiMP, BLiMP-NL, MultiBLiMP (`sen`/`wrong_sen`) and XCOMPS.

Every suite becomes a list of `Item`s: a context (maybe empty, or one per option) and two or
more candidate continuations, the first of which is the correct one (for the WUG tasks: the
one whose human preference `human` gives). Minimal pairs are the two-option case with an
empty context. Paradigms are the `UID`s of the official BabyLM 2025 pipeline, so that the
macro average over them is the number its leaderboard reports. A suite is a folder of *.jsonl
files; every line must parse, and a bad one raises `DataError` naming the file and the line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import zlib

import numpy as np

from babylm_jax.errors import DataError

SUITES = ("blimp", "blimp_fast", "supplement", "ewok", "entity_tracking", "wug_adj",
          "wug_past", "comps",
          # The 2026 multilingual track's minimal pairs (eval/multilingual.py).
          "zhoblimp", "blimp_nl", "multiblimp_eng", "multiblimp_nld", "xcomps_nl", "xcomps_zh")
# Suites scored by the Spearman correlation of the model's preference with people's.
CORRELATION_SUITES = ("wug_adj", "wug_past")
# COMPS file stem -> the official pipeline's subset name.
_COMPS_SUBSETS = {"comps_base": "base", "comps_wugs": "wugs",
                  "comps_wugs_dist-before": "wugs_dist_before",
                  "comps_wugs_dist-in-between": "wugs_dist_in_between"}


@dataclasses.dataclass(frozen=True)
class Item:
  """One decision: which of `options` (the first is correct) best continues `context`.

  `context` is one string for every option or a tuple of one per option (COMPS); `human` is
  the share of people who chose option 0 (the WUG tasks), else None.
  """
  paradigm: str
  context: str | tuple[str, ...]
  options: tuple[str, ...]
  human: float | None = None

  def contexts(self) -> tuple[str, ...]:
    if isinstance(self.context, tuple):
      return self.context
    return (self.context,) * len(self.options)


@dataclasses.dataclass(frozen=True)
class Suite:
  name: str
  items: tuple[Item, ...]
  files: tuple[dict, ...]  # {'name', 'sha256', 'items'} per file, sorted by name

  @property
  def paradigms(self) -> list[str]:
    return sorted({it.paradigm for it in self.items})


def _text(record: dict, key: str, where: str) -> str:
  value = record.get(key)
  if not isinstance(value, str) or not value.strip():
    raise DataError(f"{where} has no non-empty string field '{key}'; fix or remove that line.")
  return value


def _pair(record, stem, where) -> Item:
  # BLiMP names its paradigm in 'UID'; the supplement files are one paradigm each.
  paradigm = record.get("UID") or stem
  return Item(str(paradigm), "", (_text(record, "sentence_good", where),
                                  _text(record, "sentence_bad", where)))


def _multiblimp(record, stem, where) -> Item:
  # MultiBLiMP: the grammatical `sen` against `wrong_sen`; one file (task) per language.
  return Item(str(record.get("phenomenon") or stem), "",
              (_text(record, "sen", where), _text(record, "wrong_sen", where)))


def _xcomps(record, stem, where) -> Item:
  # XCOMPS as the track's yaml scores it: two whole sentences, no shared context.
  return Item(stem, "", (_text(record, "acceptable_sent", where),
                         _text(record, "unacceptable_sent", where)))


def _ewok(record, stem, where) -> Item:
  # The target that fits Context1 (Target1) against the one that does not (Target2).
  return Item(str(record.get("Domain") or stem), _text(record, "Context1", where),
              (_text(record, "Target1", where), _text(record, "Target2", where)))


def _entity(record, stem, where) -> Item:
  options = record.get("options")
  if (not isinstance(options, list) or len(options) < 2
      or not all(isinstance(o, str) and o.strip() for o in options)):
    raise DataError(f"{where} needs 'options': a list of at least two non-empty strings "
                    f"(the first the correct one); fix or remove that line.")
  numops = record.get("numops")
  if not isinstance(numops, int) or isinstance(numops, bool):
    raise DataError(f"{where} needs an integer 'numops' (the number of operations); fix or "
                    f"remove that line.")
  # The official subsets: one per file and number of operations.
  return Item(f"{stem}_{numops}_ops", _text(record, "input_prefix", where), tuple(options))


def _wug(record, stem, where) -> Item:
  # Alternative sentences separated by tabs; 'ratio' is people's share for the first one.
  options = tuple(_text(record, "sentences", where).split("\t"))
  ratio = record.get("ratio")
  if len(options) < 2 or not all(o.strip() for o in options):
    raise DataError(f"{where} needs 'sentences': two or more non-empty sentences separated "
                    f"by tabs; fix or remove that line.")
  if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 <= ratio <= 1:
    raise DataError(f"{where} needs a number 'ratio' in [0, 1] (people's preference for the "
                    f"first sentence); fix or remove that line.")
  return Item(stem, "", options, float(ratio))


def _comps(record, stem, where) -> Item:
  # The same property phrase after an acceptable and an unacceptable prefix.
  phrase = _text(record, "property_phrase", where)
  contexts = (_text(record, "prefix_acceptable", where),
              _text(record, "prefix_unacceptable", where))
  return Item(_COMPS_SUBSETS.get(stem, stem), contexts, (phrase, phrase))


_PARSERS = {"blimp": _pair, "blimp_fast": _pair, "supplement": _pair, "ewok": _ewok,
            "entity_tracking": _entity, "wug_adj": _wug, "wug_past": _wug, "comps": _comps,
            # ZhoBLiMP names its paradigm in 'UID' as BLiMP does; a BLiMP-NL file is one.
            "zhoblimp": _pair, "blimp_nl": _pair, "multiblimp_eng": _multiblimp,
            "multiblimp_nld": _multiblimp, "xcomps_nl": _xcomps, "xcomps_zh": _xcomps}


def read_jsonl(path, what: str):
  """Yields (where, record) for each non-blank line of a jsonl file of JSON objects.

  `where` names the file and line ("<what> file 'PATH' line N") for the caller's own checks;
  a line that is not a JSON object raises DataError naming it.
  """
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      if not line.strip():
        continue
      where = f"{what} file '{path}' line {lineno}"
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(f"{where} is not valid JSON ({e.msg}); fix or remove that line.") \
            from None
      if not isinstance(record, dict):
        raise DataError(f"{where} is not a JSON object; fix or remove that line.")
      yield where, record


def parse_file(path: pathlib.Path, suite: str) -> list[Item]:
  """The items of one jsonl file of `suite`; DataError names the first bad line."""
  parse = _PARSERS[suite]
  return [parse(record, path.stem, where) for where, record in read_jsonl(path, suite)]


def load_suite(suite: str, folder: str, names=None) -> Suite:
  """All *.jsonl files of a suite folder (or the files `names` of it, or the one .jsonl file
  `folder` names), with their names and hashes for the report."""
  if suite not in _PARSERS:
    raise DataError(f"eval suite '{suite}' is unknown; use some of {', '.join(SUITES)}.")
  path = pathlib.Path(folder).expanduser()
  if path.is_file() and path.suffix == ".jsonl" and names is None:
    path, names = path.parent, (path.name,)
  if not path.is_dir():
    raise DataError(f"eval data folder '{folder}' for suite '{suite}' does not exist; set "
                    f"--config.eval.data.{suite} to a folder of .jsonl files.")
  files = sorted(path.glob("*.jsonl"))
  if names is not None:
    absent = [n for n in names if not (path / n).is_file()]
    if absent:
      raise DataError(f"eval data folder '{folder}' for suite '{suite}' lacks "
                      f"{', '.join(absent)}; put the official file there.")
    files = sorted(path / n for n in names)
  if not files:
    raise DataError(f"eval data folder '{folder}' for suite '{suite}' holds no .jsonl "
                    f"files; set --config.eval.data.{suite} to the suite's folder.")
  items, meta = [], []
  for f in files:
    file_items = parse_file(f, suite)
    items.extend(file_items)
    meta.append(dict(name=f.name, sha256=hashlib.sha256(f.read_bytes()).hexdigest(),
                     items=len(file_items)))
  if not items:
    raise DataError(f"eval data folder '{folder}' for suite '{suite}' holds no items.")
  return Suite(suite, tuple(items), tuple(meta))


def subset(suite: Suite, max_items: int | None) -> Suite:
  """About `max_items` items of `suite`: the same number from each paradigm (at least one),
  drawn with a seed made from the paradigm's name, kept in file order.

  The draw depends on nothing else (not the run's seed, not the other paradigms), so every run
  and every evaluation that asks for the same size scores the same items. None or 0: all.
  """
  if not max_items or max_items >= len(suite.items):
    return suite
  by_paradigm: dict[str, list[int]] = {}
  for i, item in enumerate(suite.items):
    by_paradigm.setdefault(item.paradigm, []).append(i)
  per = max(1, max_items // len(by_paradigm))
  keep = []
  for name, idx in by_paradigm.items():
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    keep.extend(rng.permutation(idx)[:per].tolist())
  return dataclasses.replace(suite, items=tuple(suite.items[i] for i in sorted(keep)))
