"""Age of acquisition (`AoA_word`, Chang and Bergen 2022) as the BabyLM 2025 pipeline does it.

The task reads every milestone checkpoint of a run, not one: when does the model learn each
word, and does it learn first what children learn first?

Data (BabyLM's evaluation_data, https://osf.io/ryjfm/):
  cdi_childes.json  {word: [{"context": "...", ...}, ...]}: CDI words, each with sentence-start
                    contexts it follows in C4. Words of one character are left out.
  cdi_human.csv     a `word` column and columns "16" .. "30": the share of children of that
                    age in months who produce the word (Wordbank).

Surprisal, per word, context and milestone, in nats: the text is the context (stripped) + " " +
the word, tokenized as one text; the word's tokens are those whose span ends past the first
character of the word, and every one of them is summed (a word of several tokens counts them
all). `causal` reads each from the position before it; `mntp` masks one of them at a time,
everything else visible (the tokens after it too), and reads it at the position before the
mask; `pll` (the pipeline's `mlm`) reads it at the mask itself. The pipeline feeds the whole
context; a context longer than the model's positions loses its oldest tokens here (`cut`).

The file the submission needs, per backend:
  <results>/<model>/main/zero_shot/<backend>/AoA_word/surprisal.json
  {"metadata": {model_name, use_bos_only, total_steps, completed_steps},
   "results": [{step, word_count, target_word, context_id, context, surprisal}, ...]}
one entry per (word, context) for each checkpoint, `step` the checkpoint's revision name
(`chck_1M` ... `chck_100M` for strict-small, up to `chck_1000M` otherwise; words_<N> for a
milestone off the BabyLM schedule), in milestone, word and context order.

The score (the pipeline's calculate_results_from_pred): per word, a sigmoid
a / (1 + exp(-b (x - c))) + d fitted to minus surprisal over x = log10(words + 1), every
(context, checkpoint) point pooled; the word's AoA is the x where the curve crosses the
point half way from "chance", log2(300,000) (a log2 constant set against surprisals in nats,
as the pipeline has it), to the lowest surprisal seen. Children's AoA is the age where a sigmoid
of the share of children (bounded fit) crosses 0.5. A fit that fails or crosses outside its
range leaves the word out. The headline is Pearson's r between the two over the words with
both, 0.0 with fewer than three (as the pipeline reports it): positive when the model learns
earlier the words children learn earlier.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import pathlib
import re
import time
import warnings

import numpy as np

from babylm_jax.errors import ConfigError, DataError, UserError
from babylm_jax.eval import scoring

TASK = "aoa"
CONTEXTS_FILE = "cdi_childes.json"
HUMAN_FILE = "cdi_human.csv"
# Our backend -> the pipeline's name for it (its results folder); fused has none.
OFFICIAL_BACKENDS = {"causal": "causal", "mntp": "mntp", "pll": "mlm"}
CHANCE_SURPRISAL = math.log2(300_000)  # the pipeline's "random chance", in bits
AGES = tuple(range(16, 31))  # the CDI columns, months
WHERE = "BabyLM's evaluation_data at https://osf.io/ryjfm/ (full_eval/aoa/)"


@dataclasses.dataclass(frozen=True)
class Words:
  """The target words in file order, each with its contexts, and the file's hash."""
  words: tuple[str, ...]
  contexts: tuple[tuple[str, ...], ...]
  files: tuple[dict, ...]
  name: str = TASK

  def pairs(self) -> list[tuple[str, int, str]]:
    """(word, context id, context) for every entry of a checkpoint, in the file's order."""
    return [(w, i, c) for w, cs in zip(self.words, self.contexts) for i, c in enumerate(cs)]


def load(path: str) -> Words:
  """The CDI contexts file: `path` is cdi_childes.json or a folder holding it."""
  file = pathlib.Path(path).expanduser()
  if file.is_dir():
    file = file / CONTEXTS_FILE
  if not file.is_file():
    raise DataError(f"the AoA words file '{file}' does not exist; get {CONTEXTS_FILE} from "
                    f"{WHERE} and pass its path with --config.eval.data.aoa.")
  try:
    data = json.loads(file.read_text(encoding="utf-8"))
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise DataError(f"the AoA words file '{file}' is not valid JSON ({e}); use the "
                    f"pipeline's {CONTEXTS_FILE}.") from None
  if not isinstance(data, dict):
    raise DataError(f"the AoA words file '{file}' is not a JSON object of words; use the "
                    f"pipeline's {CONTEXTS_FILE}.")
  words, contexts = [], []
  for word, entries in data.items():
    if len(word) <= 1:  # the pipeline skips one-character words
      continue
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("context"), str) for e in entries):
      raise DataError(f"the AoA words file '{file}' has word '{word}' without a list of "
                      f"{{\"context\": text}} objects; use the pipeline's {CONTEXTS_FILE}.")
    words.append(word)
    contexts.append(tuple(e["context"] for e in entries))
  if not any(contexts):
    raise DataError(f"the AoA words file '{file}' holds no word with a context.")
  meta = dict(name=file.name, sha256=hashlib.sha256(file.read_bytes()).hexdigest(),
              items=sum(len(c) for c in contexts))
  return Words(tuple(words), tuple(contexts), (meta,))


# ---------------------------------------------------------------------------------------
# Checkpoints.


def official_steps(track: str) -> list[tuple[str, int]]:
  """(revision name, words) of the checkpoints the pipeline reads for our track: 1M .. 10M,
  20M .. 100M, and for tracks other than strict-small 200M .. 1000M."""
  millions = list(range(1, 10)) + list(range(10, 101, 10))
  if track != "strict_small":
    millions += list(range(200, 1001, 100))
  return [(f"chck_{m}M", m * 1_000_000) for m in millions]


def step_name(words: int) -> str:
  """A milestone's revision name, as --mode=export names its sub-folder (chck_10M)."""
  from babylm_jax.export.hf import milestone_folder
  return milestone_folder(words)


def step_words(name: str) -> float | None:
  """The number of words a revision name stands for: its first number, times 10^3, 10^6 or
  10^9 for a K, M or B right after it (chck_10M -> 1e7, words_8000 -> 8000)."""
  found = re.search(r"(\d+(?:\.\d+)?)\s*([KMB]?)", str(name), re.IGNORECASE)
  if not found:
    return None
  scale = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9}[found.group(2).upper()]
  return float(found.group(1)) * scale


# ---------------------------------------------------------------------------------------
# Surprisal.


def sequences(tokenizer, data: Words, max_len: int) -> tuple[list[scoring.Seq], int]:
  """One scored sequence per (word, context) and how many lost context tokens to max_len."""
  texts, starts = [], []
  for word, _, context in data.pairs():
    word = word.strip()
    text = context.strip() + " " + word
    texts.append(text)
    starts.append(len(text) - len(word))
  seqs, cut = [], 0
  for enc, first_char in zip(tokenizer.encode_batch(texts, add_special_tokens=False), starts):
    start = next((i for i, (_, end) in enumerate(enc.offsets) if end > first_char),
                 len(enc.ids))
    cut += len(enc.ids) + 1 > max_len
    seqs.append(scoring.to_sequence(enc.ids, start, max_len))
  return seqs, cut


def surprisals(scorer: scoring.Scorer, seqs: list[scoring.Seq], backend: str,
               label: str = "aoa") -> np.ndarray:
  """-log p(word | context) in nats per sequence; NaN where a masked backend has no token to
  read (the pipeline's masked scorers fail there and record NaN; its causal one sums none)."""
  s = -scorer.score(seqs, backend, progress=(f"{label} {backend}", len(seqs), "word"))
  if backend != "causal":
    s[[len(ids) == start for ids, start in seqs]] = np.nan
  return s + 0.0  # no -0.0 for an empty causal span


def entries(data: Words, name: str, words_seen: int, surprisal: np.ndarray) -> list[dict]:
  """One checkpoint's entries of surprisal.json."""
  return [dict(step=name, word_count=int(words_seen), target_word=w, context_id=i,
               context=c, surprisal=float(s))
          for (w, i, c), s in zip(data.pairs(), surprisal)]


def surprisal_file(model_name: str, results: list[dict], total_steps: int) -> dict:
  """surprisal.json: the entries of every checkpoint and the pipeline's metadata."""
  return dict(metadata=dict(model_name=model_name, use_bos_only=False, total_steps=total_steps,
                            completed_steps=len({r["step"] for r in results})),
              results=results)


# ---------------------------------------------------------------------------------------
# The score: a sigmoid per word, model against children.


def sigmoid(x, a, b, c, d):
  return a / (1 + np.exp(-b * (x - c))) + d


def _crossing(a, b, c, d, y) -> float | None:
  """The x where an increasing sigmoid reaches y, or None if it never does."""
  if a <= 0 or b <= 0 or not d < y < a + d:
    return None
  return float(c - np.log(a / (y - d) - 1) / b)


def _fit(x, y, **kwargs):
  """curve_fit of the sigmoid; None when it fails (too few points, no convergence)."""
  from scipy.optimize import OptimizeWarning, curve_fit
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", OptimizeWarning)
      warnings.simplefilter("ignore", RuntimeWarning)  # exp overflow while searching
      return curve_fit(sigmoid, x, y, maxfev=1000, **kwargs)[0]
  except Exception:  # noqa: BLE001 - as the pipeline: any failed fit leaves the word out
    return None


def model_aoa(surprisal, words) -> float | None:
  """log10(words + 1) at which the word counts as learned, or None.

  `surprisal` and `words` are every point of the word (contexts and checkpoints pooled), in
  the file's order: the first and last points bound where the crossing may lie.
  """
  s, w = np.asarray(surprisal, np.float64), np.asarray(words, np.float64)
  if len(s) < 3:
    return None
  keep = ~np.isnan(s)
  if not keep.any():
    return None
  s, w = s[keep], w[keep]
  threshold = CHANCE_SURPRISAL - 0.5 * (CHANCE_SURPRISAL - s.min())
  x, y = np.log10(w + 1), -s
  params = _fit(x, y, p0=[y.max() - y.min(), 1.0, x.mean(), y.min()])
  if params is None:
    return None
  with np.errstate(all="ignore"):
    x_aoa = _crossing(*params, -threshold)
  if x_aoa is None or not w[0] <= 10**x_aoa - 1 <= w[-1]:
    return None
  return x_aoa


def child_aoa(shares) -> float | None:
  """The age in months at which half the children produce the word, or None.

  `shares` holds one value per month of AGES (NaN where missing).
  """
  shares = np.asarray(shares, np.float64)
  keep = ~np.isnan(shares)
  ages, y = np.asarray(AGES, np.float64)[keep], shares[keep]
  if len(y) < 3:
    return None
  params = _fit(ages, y, p0=[1.0, 0.1, ages.mean(), 0.0],
                bounds=([0, 0, ages[0], -0.5], [2.0, 1.0, ages[-1], 0.5]))
  if params is None:
    return None
  with np.errstate(all="ignore"):
    age = _crossing(*params, 0.5)
  if age is None or not ages[0] <= age <= ages[-1]:
    return None
  return age


def read_human(path: str) -> dict[str, np.ndarray]:
  """cdi_human.csv: per word (the first row of each), its shares at the ages of AGES."""
  import pandas as pd  # as the pipeline reads it: its missing-value rules
  table = pd.read_csv(path)
  if "word" not in table.columns:
    raise DataError(f"the children's AoA file '{path}' has no 'word' column; use the "
                    f"pipeline's {HUMAN_FILE}.")
  ages = [str(a) for a in AGES if str(a) in table.columns]
  if not ages:
    raise DataError(f"the children's AoA file '{path}' has none of the columns "
                    f"{AGES[0]}..{AGES[-1]} (months); use the pipeline's {HUMAN_FILE}.")
  full = table.reindex(columns=[str(a) for a in AGES])
  try:
    values = full.to_numpy(np.float64)
  except (TypeError, ValueError):
    raise DataError(f"the children's AoA file '{path}' has a value that is not a number in "
                    f"columns {ages[0]}..{ages[-1]}; use the pipeline's {HUMAN_FILE}.") from None
  out = {}
  for word, row in zip(table["word"], values):
    if isinstance(word, str) and word not in out:
      out[word] = row
  return out


def score(surprisal_json: dict, human: dict[str, np.ndarray]) -> dict:
  """The pipeline's AoA number from a surprisal.json: Pearson's r of model and child AoA."""
  from scipy.stats import pearsonr
  points: dict[str, tuple[list, list]] = {}
  for r in surprisal_json["results"]:
    w = step_words(r["step"])
    if w is not None:
      s, ws = points.setdefault(r["target_word"], ([], []))
      s.append(float(r["surprisal"]))
      ws.append(w)
  words, model, child = [], [], []
  for word, (s, ws) in points.items():
    if word not in human:
      continue
    age = child_aoa(human[word])
    if age is None:
      continue
    x = model_aoa(s, ws)
    if x is None:
      continue
    words.append(word)
    model.append(x)
    child.append(age)
  out = dict(words=len(points), words_in_cdi=sum(w in human for w in points),
             n_words=len(words), valid_words=words, model_aoa_log10_words=model,
             child_aoa_months=child)
  if len(words) < 3:
    return dict(out, curve_fitness=0.0, p_value=None)
  r, p = pearsonr(model, child)
  return dict(out, curve_fitness=float(r), p_value=float(p))


# ---------------------------------------------------------------------------------------
# --mode=eval with eval.suites=aoa.


def human_path(config) -> pathlib.Path | None:
  """cdi_human.csv: eval.aoa_human, else beside the words file or in ../aoa/ (the pipeline's
  full_eval layout); None if there is none."""
  if config.eval.aoa_human:
    return pathlib.Path(config.eval.aoa_human).expanduser()
  words = pathlib.Path(config.eval.data.aoa).expanduser()
  folder = words if words.is_dir() else words.parent
  for candidate in (folder / HUMAN_FILE, folder.parent / "aoa" / HUMAN_FILE):
    if candidate.is_file():
      return candidate
  return None


def check_backends(backends: list[str]):
  for b in backends:
    if b not in OFFICIAL_BACKENDS:
      raise ConfigError(f"eval.backend '{b}' has no counterpart in the official AoA task; "
                        f"use {', '.join(OFFICIAL_BACKENDS)} with eval.suites=aoa.")


def run_aoa(config, workdir: str, tokenizer, milestones: list[int]) -> list[dict]:
  """Scores every milestone; writes surprisal.json (results layout) and eval/aoa-<b>.json.

  The results folder and model name are those fine-tuning writes to (finetune.results_dir,
  default workdir/results; finetune.model_name, default the workdir's name).
  """
  from babylm_jax.eval.report import write_json
  from babylm_jax.checkpoint_params import load_model
  backends = scoring.parse_backends(config.eval.backend)
  check_backends(backends)
  data = load(config.eval.data.aoa)
  human_file = human_path(config)
  if config.eval.aoa_human and not human_file.is_file():
    raise DataError(f"eval.aoa_human '{human_file}' does not exist; get {HUMAN_FILE} from "
                    f"{WHERE} or leave eval.aoa_human empty.")
  human = read_human(str(human_file)) if human_file else None
  if human is None:
    logging.warning("AoA: no %s beside '%s'; surprisal.json is written without the score. Get "
                    "it from %s and pass --config.eval.aoa_human=PATH.", HUMAN_FILE,
                    config.eval.data.aoa, WHERE)
  if not milestones:
    raise UserError(f"workdir '{workdir}' holds no milestone checkpoints, which the AoA task "
                    f"reads; train with checkpoint.milestones=True past 1M words.")
  expected = official_steps(config.track)
  names = [step_name(n) for n in milestones]
  missing = [n for n, _ in expected if n not in names]
  if missing:
    logging.warning("AoA: the run has no milestone for %s; the official collate_preds "
                    "refuses a surprisal.json without every one of %d checkpoints.",
                    ", ".join(missing), len(expected))
  t0 = time.perf_counter()
  results: dict[str, list[dict]] = {b: [] for b in backends}
  scorer, seqs, cut, info = None, None, 0, {}
  for n, name in zip(milestones, names):
    model, info = load_model(config, workdir, words=n, use_ema=config.eval.use_ema)
    if scorer is None:
      scorer = scoring.Scorer(model, max_len=config.model.max_position,
                              tokens_per_batch=config.eval.tokens_per_batch)
      seqs, cut = sequences(tokenizer, data, scorer.max_len)
    else:
      scorer.load(model)  # same shapes: nothing compiles again
    for b in backends:
      results[b] += entries(data, name, n, surprisals(scorer, seqs, b, f"aoa {name}"))
  model_name = config.finetune.model_name or os.path.basename(os.path.abspath(workdir))
  results_dir = config.finetune.results_dir or os.path.join(workdir, "results")
  rows = []
  for b in backends:
    payload = surprisal_file(model_name, results[b], len(expected))
    path = os.path.join(results_dir, model_name, "main", "zero_shot", OFFICIAL_BACKENDS[b],
                        "AoA_word", "surprisal.json")
    write_json(path, payload)
    fit = score(payload, human) if human is not None else None
    report = dict(
        suite=TASK, backend=b, headline={TASK: fit["curve_fitness"] if fit else None},
        fit=fit, surprisal_json=path, steps=names, missing_steps=missing,
        entries_per_step=len(data.pairs()), words=len(data.words), contexts_cut=cut,
        mean_surprisal={name: float(np.nanmean([r["surprisal"] for r in results[b]
                                                if r["step"] == name])) for name in names},
        human_file=str(human_file) if human_file else None,
        step=info.get("step"), words_seen=info.get("words_seen"),
        tokens_seen=info.get("tokens_seen"), use_ema=info.get("use_ema"),
        checkpoint=str(info.get("path", "")), data_dir=os.path.abspath(config.eval.data.aoa),
        files=list(data.files), seconds=round(time.perf_counter() - t0, 2))
    write_json(os.path.join(workdir, "eval", f"{TASK}-{b}.json"), report)
    rows.append(report)
  return rows
