"""Corpus recipes: `--mode=corpus` turns `config.data.corpus` into a corpus folder.

A recipe names sources (local files or folders of `*.train`/`*.txt`/`*.jsonl`, `hf:ORG/NAME`
or a local dataset folder read with `datasets.load_dataset`, `tfds:`), each with a word quota
or a weight of `total_words`. `build_corpus`:

1. checks the recipe and its word budget before anything is read (the source that takes the
   total past the track's budget is named);
2. reads every source into documents with the same cleaning as training (`data.clean`), and
   refuses a missing, empty or binary source (`babylm_jax/data/readers.py`);
3. curates the candidates (deduplication, filters: `babylm_jax/data/curate.py`) when
   `data.corpus.curate` switches anything on, so that the quotas are filled from clean text;
4. selects, per source, whole units (documents or paragraphs) in an order drawn from the seed:
   a unit is taken when its words fit in what is left of the quota, else skipped. A source
   therefore gives at most its quota; it falls short only when every unit left is longer
   than the remainder (or the source runs out). With `cut_last` the first unit that does not
   fit is cut after the word that fills the quota, which then is met exactly;
5. writes `<name>.train` per source (documents separated by a blank line, which clean.py
   reads back as the same documents with the same whitespace word counts), `corpus.json`
   (the manifest) and `corpus.md` (its table) into a temporary folder that is renamed to
   the workdir at the end: an interrupted or refused build leaves nothing that looks finished.

Words are whitespace words of the cleaned text, counted as `prepare.check_budget` counts the
folder when training reads it as `data.path`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import time
import zlib

import numpy as np

from babylm_jax import config as config_lib
from babylm_jax import interrupts
from babylm_jax.data import clean, curate, readers
from babylm_jax.errors import ConfigError, DataError, UserError

MANIFEST = "corpus.json"
REPORT = "corpus.md"
FORMAT = 1
UNITS = ("document", "paragraph")
# Fields a source may set, with their defaults.
SOURCE_FIELDS = dict(
    path="",  # file, folder or glob; 'hf:ORG/NAME' or 'hf:FOLDER'; 'tfds:name/config:split'
    words=0,  # word quota; or
    weight=0.0,  # share of data.corpus.total_words left after the quotas
    files="",  # in a local folder, only the file names matching this glob
    text_field="text",  # the text of a jsonl, hf: or tfds: record
    split="train",  # hf: split
    revision="",  # hf: the pinned revision (commit or tag) of a Hub dataset
    data_files="",  # hf: files of the dataset to read (a glob), '' for its default
    streaming=True,  # hf: read records as they come (corpora larger than memory or disk)
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WORD = re.compile(r"\S+")


# ---------------------------------------------------------------------------- recipe ---

def sources_of(config) -> list[readers.Source]:
  """The recipe's sources, each checked; ConfigError naming the field otherwise."""
  section = config.data.corpus.sources
  if not len(section):
    raise ConfigError("data.corpus.sources is empty; name at least one source in the recipe, "
                      "e.g. start from configs/corpora/babylm_default.py.")
  out = []
  for name in section:
    where = f"data.corpus.sources.{name}"
    fields = section[name]
    if not hasattr(fields, "keys"):
      raise ConfigError(f"{where} is not a section; write it as ConfigDict(path=..., "
                        f"words=N) or with weight=W.")
    unknown = sorted(set(fields.keys()) - set(SOURCE_FIELDS))
    if unknown:
      raise ConfigError(f"{where}.{unknown[0]} is not a source field; use one of "
                        f"{', '.join(SOURCE_FIELDS)}.")
    if not _NAME.match(name):
      raise ConfigError(f"{where}: a source name is its file name <name>.train; use letters, "
                        f"digits, '_', '.' and '-' only.")
    values = {k: fields.get(k, default) for k, default in SOURCE_FIELDS.items()}
    if not values["path"]:
      raise ConfigError(f"{where}.path is empty; name a file, folder, hf: or tfds: source.")
    words, weight = int(values["words"]), float(values["weight"])
    if words < 0 or weight < 0 or (words > 0) == (weight > 0):
      raise ConfigError(f"{where} needs exactly one of words (a quota) and weight (a share of "
                        f"data.corpus.total_words), positive.")
    path = str(values["path"])
    if (path.startswith("hf:") and not os.path.isdir(path[3:]) and not values["revision"]):
      raise ConfigError(f"{where}.revision is empty; pin the Hub dataset to a commit or tag "
                        f"so that the corpus can be built again.")
    out.append(readers.Source(name, path, words, weight, str(values["files"]),
                              str(values["text_field"]), str(values["split"]),
                              str(values["revision"]), str(values["data_files"]),
                              bool(values["streaming"])))
  return out


def quotas(config, srcs: list[readers.Source]) -> dict[str, int]:
  """Words per source: its quota, or its weight's share of what total_words leaves after
  the quotas (largest remainders, so that the shares add up to that exactly)."""
  total = int(config.data.corpus.total_words)
  fixed = {s.name: s.words for s in srcs if s.words}
  weighted = [s for s in srcs if s.weight]
  out = dict(fixed)
  if weighted:
    left = total - sum(fixed.values())
    if total <= 0 or left <= 0:
      raise ConfigError(f"data.corpus.total_words ({total:,}) leaves no words for the weighted "
                        f"sources after the quotas ({sum(fixed.values()):,}); raise it.")
    w = np.array([s.weight for s in weighted])
    exact = left * w / w.sum()
    share = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - share), kind="stable")[:left - int(share.sum())]:
      share[i] += 1
    out.update({s.name: int(n) for s, n in zip(weighted, share)})
  elif total:
    raise ConfigError("data.corpus.total_words is set but no source gives a weight; set it to "
                      "0 or give weights.")
  return {s.name: out[s.name] for s in srcs}


def check_budget(config, want: dict[str, int]):
  """Refuses a recipe whose quotas add up to more than the track's budget, naming the source
  that takes the total past it (the rules of prepare.check_budget: data.allow_over_budget
  or outside_rules lift it)."""
  budget, _ = config_lib.track_limits(config)
  if config.data.allow_over_budget or config.outside_rules:
    return
  running = 0
  for name, n in want.items():
    running += n
    if running > budget:
      raise DataError(
          f"the recipe asks for {sum(want.values()):,} words, over the {config.track} budget "
          f"of {budget:,}: source '{name}' ({n:,} words) takes it to {running:,}; lower its "
          f"quota or weight, or set --config.data.allow_over_budget=True for a corpus outside "
          f"the rules.")


# ----------------------------------------------------------------------------- select ---

def select(words: np.ndarray, candidates: np.ndarray, quota: int, seed: int, name: str,
           cut_last: bool) -> tuple[np.ndarray, int, int]:
  """Units taken from `candidates` (indices into `words`) in their original order, the unit
  that is cut (-1 when none is) and the words kept of it. The order in which units are tried
  is a permutation drawn from (seed, name): no other source changes it."""
  rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
  order = candidates[rng.permutation(len(candidates))]
  left, taken, cut_unit, cut = quota, [], -1, 0
  for i in order:
    if left == 0:
      break
    n = int(words[i])
    if n <= left:
      taken.append(i)
      left -= n
    elif cut_last:
      taken.append(i)
      cut_unit, cut, left = int(i), left, 0
  return np.sort(np.asarray(taken, np.int64)), cut_unit, cut


def _first_words(text: str, n: int) -> str:
  """`text` up to the end of its n-th whitespace word."""
  for k, m in enumerate(_WORD.finditer(text), start=1):
    if k == n:
      return text[:m.end()]
  return text


# ------------------------------------------------------------------------------ build ---

def _target(workdir) -> str:
  workdir = str(workdir)
  if "://" in workdir:
    raise UserError(f"--mode=corpus writes a local folder, not '{workdir}'; build it on a "
                    f"local disk and copy the finished folder.")
  path = os.path.abspath(os.path.expanduser(workdir))
  if os.path.isfile(path) or (os.path.isdir(path) and os.listdir(path)):
    raise UserError(f"--workdir '{path}' already exists and is not an empty folder; a corpus "
                    f"is written into a new folder, so name another --workdir.")
  return path


def build_corpus(config, workdir) -> dict:
  """Builds the corpus of `config.data.corpus` into `workdir` (see the module docstring);
  returns the manifest, with the wall and CPU seconds of each stage under 'seconds' and
  'cpu_seconds' (not in the written manifest, which depends on the recipe and text only)."""
  recipe = config.data.corpus
  unit = str(recipe.unit)
  if unit not in UNITS:
    raise ConfigError(f"data.corpus.unit '{unit}' is unknown; use one of {', '.join(UNITS)}.")
  srcs = sources_of(config)
  want = quotas(config, srcs)
  check_budget(config, want)
  curate_settings = curate.settings_from_config(recipe.curate)  # checked before any read
  curating = curate_settings.any_on
  target = _target(workdir)
  settings = clean.CleanSettings.from_config(config)
  seconds, cpu_seconds = {}, {}  # wall and this process's CPU time per stage

  t, cpu = time.perf_counter(), time.process_time()
  read = [readers.read_source(s, config, settings, unit) for s in srcs]
  seconds["read"], cpu_seconds["read"] = time.perf_counter() - t, time.process_time() - cpu
  words_read = sum(int(r.words.sum()) for r in read)

  t, cpu = time.perf_counter(), time.process_time()
  keep = [np.ones(len(r.texts), bool) for r in read]
  curation = None
  if curating:
    texts = [x for r in read for x in r.texts]
    names = [r.source.name for r in read for _ in r.texts]
    result = curate.curate(texts, names, curate_settings,
                           strict=not config.outside_rules)
    flat = np.asarray(result.keep, bool)
    keep = np.split(flat, np.cumsum([len(r.texts) for r in read])[:-1])
    curation = result.report
  seconds["curate"], cpu_seconds["curate"] = time.perf_counter() - t, time.process_time() - cpu

  t, cpu = time.perf_counter(), time.process_time()
  picked = []
  for r, k in zip(read, keep):
    picked.append(select(r.words, np.flatnonzero(k), want[r.source.name], recipe.seed,
                         r.source.name, bool(recipe.cut_last)))
  seconds["select"], cpu_seconds["select"] = time.perf_counter() - t, time.process_time() - cpu

  t, cpu = time.perf_counter(), time.process_time()
  tmp = os.path.join(os.path.dirname(target),
                     f".{os.path.basename(target)}.tmp-{os.getpid()}-{time.time_ns()}")
  os.makedirs(os.path.dirname(target), exist_ok=True)
  os.makedirs(tmp)
  try:
    rows, files = [], {}
    for r, k, (taken, cut_unit, cut) in zip(read, keep, picked):
      docs = _documents(r, taken, cut_unit, cut)
      name = f"{r.source.name}.train"
      data = ("\n\n".join(docs) + "\n").encode("utf-8")
      with open(os.path.join(tmp, name), "wb") as f:
        f.write(data)
      files[name] = hashlib.sha256(data).hexdigest()
      selected = int(r.words[taken].sum()) - (int(r.words[cut_unit]) - cut if cut else 0)
      rows.append(dict(
          name=r.source.name, path=r.source.path, read=r.read, quota=want[r.source.name],
          weight=r.source.weight or None, raw_words=r.raw_words, raw_bytes=r.raw_bytes,
          replaced_bytes=r.replaced_bytes,
          before=dict(units=len(r.texts), words=int(r.words.sum())),
          after_curation=dict(units=int(k.sum()), words=int(r.words[k].sum())),
          selected=dict(units=len(taken), documents=len(docs), words=selected,
                        cut_unit_words=cut),
          short_by=want[r.source.name] - selected))
      interrupts.check()
    budget, _ = config_lib.track_limits(config)
    total = sum(row["selected"]["words"] for row in rows)
    manifest = dict(
        format=FORMAT, recipe=config_lib.to_dict(recipe), track=config.track, seed=int(
            recipe.seed), unit=unit, cut_last=bool(recipe.cut_last),
        clean=dataclasses.asdict(settings), sources=rows, curation=curation,
        totals=dict(words_read=words_read, words_after_curation=sum(
            row["after_curation"]["words"] for row in rows), words=total,
                    asked=sum(want.values()), budget=budget, of_budget=total / budget),
        files=files)
    with open(os.path.join(tmp, MANIFEST), "w") as f:
      json.dump(manifest, f, indent=2, sort_keys=True, default=str)
      f.write("\n")
    with open(os.path.join(tmp, REPORT), "w") as f:
      f.write(format_report(manifest))
    if os.path.isdir(target):  # an empty folder, checked by _target
      os.rmdir(target)
    os.rename(tmp, target)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  seconds["write"], cpu_seconds["write"] = time.perf_counter() - t, time.process_time() - cpu
  return dict(manifest, seconds=seconds, cpu_seconds=cpu_seconds, path=target)


def _documents(r: readers.SourceText, taken: np.ndarray, cut_unit: int, cut: int) -> list[str]:
  """The selected units as documents: paragraphs of one document rejoined by a line break."""
  docs, last_doc = [], None
  for i in taken:
    text = _first_words(r.texts[i], cut) if i == cut_unit else r.texts[i]
    if r.doc_ids[i] == last_doc:
      docs[-1] += "\n" + text
    else:
      docs.append(text)
      last_doc = r.doc_ids[i]
  return docs


def manifest_sha256(path: str) -> str | None:
  """sha256 of the corpus manifest when `path` (a data.path) is a folder built by a recipe."""
  if not isinstance(path, str) or "://" in path or path.startswith(("hf:", "tfds:")):
    return None
  manifest = os.path.join(os.path.expanduser(path), MANIFEST)
  if not os.path.isfile(manifest):
    return None
  with open(manifest, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


# ----------------------------------------------------------------------------- report ---

def format_report(m: dict) -> str:
  """corpus.md: the manifest as tables a person reads."""
  t = m["totals"]
  lines = [
      "# Corpus", "",
      f"Built by `python launch.py --mode=corpus` (babylm_jax): {t['words']:,} words, "
      f"{t['of_budget']:.1%} of the {m['track']} budget of {t['budget']:,}; seed {m['seed']}, "
      f"unit {m['unit']}, {'last unit cut to the quota' if m['cut_last'] else 'whole units'}"
      f"{', curated' if m['curation'] else ''}. Words are whitespace words of the cleaned "
      f"text, as training counts them.", "",
      "| domain | quota | read | after curation | selected | units | documents | short by |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for s in m["sources"]:
    lines.append(
        f"| {s['name']} | {s['quota']:,} | {s['before']['words']:,} | "
        f"{s['after_curation']['words']:,} | {s['selected']['words']:,} | "
        f"{s['selected']['units']:,} | {s['selected']['documents']:,} | {s['short_by']:,} |")
  lines.append(f"| total | {t['asked']:,} | {t['words_read']:,} | "
               f"{t['words_after_curation']:,} | {t['words']:,} | | | "
               f"{t['asked'] - t['words']:,} |")
  lines += ["", "## Sources", "", "| domain | read from | sha256 |", "| --- | --- | --- |"]
  for s in m["sources"]:
    for r in s["read"]:
      what = r.get("file") or f"{r['dataset']} ({r.get('split', '')} @ {r.get('revision', '')})"
      lines.append(f"| {s['name']} | {what} | "
                   f"{(r.get('sha256') or r.get('sha256_of_records'))[:16]}... |")
  if m["curation"]:
    lines += ["", "## Curation", ""] + curate.format_report(m["curation"])
  lines += ["", "## Files", ""]
  lines += [f"- `{name}` sha256 {digest}" for name, digest in sorted(m["files"].items())]
  return "\n".join(lines) + "\n"


def run_corpus(config, workdir) -> dict:
  """--mode=corpus: builds the recipe's corpus into --workdir and prints its table."""
  result = build_corpus(config, workdir)
  print(format_report(result).split("\n## Sources")[0].rstrip(), flush=True)
  for s in result["sources"]:
    if s["after_curation"]["words"] < s["quota"]:
      print(f"warning: source '{s['name']}' has only {s['after_curation']['words']:,} words "
            f"after cleaning and curation, less than its quota of {s['quota']:,}; all of them "
            f"were taken.", file=sys.stderr, flush=True)
    elif s["short_by"] > 0.1 * s["quota"]:
      print(f"warning: source '{s['name']}' gave {s['selected']['words']:,} words of its quota "
            f"of {s['quota']:,}: its units are long next to the quota; set "
            f"--config.data.corpus.cut_last=True or unit=paragraph to fill it.",
            file=sys.stderr, flush=True)
  digest = manifest_sha256(result["path"])
  secs = result["seconds"]
  print(f"wrote {result['path']} (manifest sha256 {digest}); read {secs['read']:.2f} s, "
        f"curate {secs['curate']:.2f} s, select {secs['select']:.2f} s, write "
        f"{secs['write']:.2f} s. Train on it with --config.data.path={result['path']}",
        flush=True)
  return result
