"""The BabyLM reading task: per-word surprisal against eye-tracking and self-paced reading times.

The data (de Varda et al., 2023) is one CSV row per word of 205 sentences: the words before
it (`item`), the word (`word`), the previous word and its context (`prev_item`, `prev_word`),
the baseline predictors (log frequency `Subtlex_log10`, `length`, `context_length`,
`prev_length`) and the measures (four eye-tracking times, the self-paced reading time, six ERP
components).

Surprisal is -log p(word | context) in nats, summed over the word's tokens. The causal backend
reads it as a language model does; the masked backends see the context followed by three
`<mask>` tokens (the multi-mask ending the official pipeline uses; see scoring.py), each of the
word's tokens in turn. Which tokens (`eval.reading_subwords`):
  official  as the BabyLM 2025 pipeline: the word encoded alone; each later token is decoded,
            appended to the context text, and scored as the first token of its decoded text
            encoded alone (with a prefix-space tokenizer, `ing` becomes ` ing`), the context
            re-encoded each time. Leaderboard numbers come from this.
  exact     the word's own tokens after its context, as the text is tokenized.
Single-token words get the same surprisal either way. Every scored token is one sequence, so
the pass is packed and bucketed like the suites.

The score is what the BabyLM 2025 pipeline reports: for each measure, the increase in R^2 that
surprisal adds to an OLS regression on the baseline predictors and their pairwise interactions,
as a percentage of the possible increase, 100 x (R^2 - R^2_base) / (1 - R^2_base). "Eye
tracking" is the mean over the four eye-tracking times without spillover; "self-paced reading"
adds a one-word spillover (the previous word's length and surprisal, with all pairwise
interactions) to both regressions. Rows missing a value used by a regression are left out of
both of its fits.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import math
import pathlib

import numpy as np

from babylm_jax.errors import DataError
from babylm_jax.eval import scoring

FILE_NAME = "reading_data.csv"
MASK_ENDING = 3
SUBWORDS = ("official", "exact")
EYE_TRACKING = ("RTfirstfix", "RTfirstpass", "RTgopast", "RTrightbound")
SELF_PACED = "self_paced_reading_time"
MEASURES = EYE_TRACKING + (SELF_PACED, "ELAN", "LAN", "N400", "P600", "EPNP", "PNP")
BASELINE = ("Subtlex_log10", "length", "context_length")
SPILLOVER = ("prev_length", "prev_pred")
_TEXT = ("item", "word", "sentence", "prev_item", "prev_word")
_NUMBERS = BASELINE + ("prev_length",) + MEASURES


@dataclasses.dataclass(frozen=True)
class Reading:
  """The reading data: texts per word, numeric columns (NaN where empty), the file's hash."""
  contexts: tuple[str, ...]
  words: tuple[str, ...]
  prev_contexts: tuple[str, ...]  # '' where the previous word has no context
  prev_words: tuple[str, ...]
  columns: dict[str, np.ndarray]
  files: tuple[dict, ...]
  name: str = "reading"


def _float(text: str, where: str, column: str) -> float:
  if not text.strip():
    return math.nan
  try:
    return float(text)
  except ValueError:
    raise DataError(f"{where} has '{text}' in column '{column}', not a number; fix that "
                    f"line.") from None


def load(path: str) -> Reading:
  """The reading CSV: `path` is the file or a folder holding reading_data.csv."""
  file = pathlib.Path(path).expanduser()
  if file.is_dir():
    file = file / FILE_NAME
  if not file.is_file():
    raise DataError(f"reading data '{file}' does not exist; set --config.eval.data.reading to "
                    f"the folder of {FILE_NAME} (BabyLM's evaluation_data/*/reading).")
  with open(file, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    absent = [c for c in _TEXT + _NUMBERS if c not in (reader.fieldnames or [])]
    if absent:
      raise DataError(f"reading data '{file}' lacks the columns {', '.join(absent)}; use the "
                      f"BabyLM {FILE_NAME}.")
    rows = list(reader)
  if not rows:
    raise DataError(f"reading data '{file}' holds no rows.")
  contexts, words, prev_contexts, prev_words = [], [], [], []
  columns = {c: np.empty(len(rows)) for c in _NUMBERS}
  for i, row in enumerate(rows):
    where = f"reading file '{file}' line {i + 2}"
    for c in _NUMBERS:
      columns[c][i] = _float(row[c], where, c)
    if not row["word"].strip():
      raise DataError(f"{where} has an empty 'word'; fix or remove that line.")
    # One row has an empty context where its sentence starts with the word "None" (pandas
    # reads that as missing; the official pipeline writes "None" back): take the sentence's
    # first context_length words, which gives the same text.
    context = row["item"].strip() or " ".join(
        row["sentence"].split()[:int(columns["context_length"][i])])
    contexts.append(context)
    words.append(row["word"].strip())
    has_prev = bool(row["prev_item"].strip() and row["prev_word"].strip())
    prev_contexts.append(row["prev_item"].strip() if has_prev else "")
    prev_words.append(row["prev_word"].strip() if has_prev else "")
  meta = dict(name=file.name, sha256=hashlib.sha256(file.read_bytes()).hexdigest(),
              items=len(rows))
  return Reading(tuple(contexts), tuple(words), tuple(prev_contexts), tuple(prev_words),
                 columns, (meta,))


def _official(tokenizer, contexts, words, max_len: int):
  """The official pipeline's steps, one sequence scoring one token each, and their words."""
  steps = []  # (word, context text, token, a later token of the word)
  for k, (context, enc) in enumerate(
      zip(contexts, tokenizer.encode_batch(list(words), add_special_tokens=False))):
    text = context
    for j, token in enumerate(enc.ids):
      steps.append((k, text, token, j > 0))
      text += tokenizer.decode([token])
  ctx = tokenizer.encode_batch([s[1] for s in steps], add_special_tokens=False)
  alone = tokenizer.encode_batch([tokenizer.decode([s[2]]) for s in steps],
                                 add_special_tokens=False)
  seqs = []
  for (_, _, token, later), c, a in zip(steps, ctx, alone):
    target = a.ids[0] if later and a.ids else token
    seqs.append(scoring.to_sequence(c.ids + [target], len(c.ids), max_len))
  return seqs, np.array([s[0] for s in steps])


def sequences(tokenizer, data: Reading, max_len: int,
              subwords: str = "official") -> tuple[list[scoring.Seq], np.ndarray]:
  """The scored sequences and the word each belongs to: the words in their contexts first,
  then the previous words that have a context."""
  prev = [i for i, w in enumerate(data.prev_words) if w]
  contexts = list(data.contexts) + [data.prev_contexts[i] for i in prev]
  words = list(data.words) + [data.prev_words[i] for i in prev]
  if subwords == "official":
    return _official(tokenizer, contexts, words, max_len - MASK_ENDING)
  seqs = scoring.tokenize(tokenizer, contexts, words, max_len - MASK_ENDING)
  return seqs, np.arange(len(seqs))


def surprisals(scorer: scoring.Scorer, tokenizer, data: Reading, backend: str,
               subwords: str = "official") -> tuple[np.ndarray, np.ndarray]:
  """(surprisal of each word, of its previous word or NaN), in nats, one batched pass."""
  n = len(data.words)
  prev = [i for i, w in enumerate(data.prev_words) if w]
  seqs, owner = sequences(tokenizer, data, scorer.max_len, subwords)
  logp = scorer.score(seqs, backend, ending=MASK_ENDING)
  total = np.bincount(owner, weights=logp, minlength=n + len(prev))
  prev_pred = np.full(n, np.nan)
  prev_pred[prev] = -total[n:]
  return -total[:n], prev_pred


def _design(columns: dict[str, np.ndarray], names) -> np.ndarray:
  """Intercept, the predictors and every pairwise interaction of them."""
  cols = [np.ones_like(columns[names[0]])] + [columns[n] for n in names]
  cols += [columns[a] * columns[b] for a, b in itertools.combinations(names, 2)]
  return np.stack(cols, axis=1)


def r2_increase(columns: dict[str, np.ndarray], measure: str, baseline) -> dict:
  """OLS of `measure` on the baseline (with interactions), then with `pred` added."""
  import statsmodels.api as sm
  needed = [measure, "pred", *baseline]
  keep = np.all([np.isfinite(columns[c]) for c in needed], axis=0)
  kept = {c: columns[c][keep] for c in needed}
  y = kept[measure]
  base = sm.OLS(y, _design(kept, list(baseline))).fit()
  X = np.concatenate([_design(kept, list(baseline)), kept["pred"][:, None]], axis=1)
  model = sm.OLS(y, X).fit()
  delta = float(model.rsquared - base.rsquared)
  return dict(r2_baseline=float(base.rsquared), r2=float(model.rsquared), delta_r2=delta,
              percent_of_possible=100.0 * delta / (1.0 - float(base.rsquared)),
              coefficient=float(model.params[-1]), t=float(model.tvalues[-1]),
              p=float(model.pvalues[-1]), aic_baseline=float(base.aic), aic=float(model.aic),
              rows=int(keep.sum()))


def regressions(data: Reading, pred: np.ndarray, prev_pred: np.ndarray) -> dict:
  """Every measure with and without spillover, and the two numbers the leaderboard shows."""
  columns = dict(data.columns, pred=pred, prev_pred=prev_pred)
  measures = {m: dict(no_spillover=r2_increase(columns, m, BASELINE),
                      spillover=r2_increase(columns, m, BASELINE + SPILLOVER))
              for m in MEASURES}
  eye = float(np.mean([measures[m]["no_spillover"]["percent_of_possible"]
                       for m in EYE_TRACKING]))
  spr = measures[SELF_PACED]["spillover"]["percent_of_possible"]
  return dict(eye_tracking=eye, self_paced_reading=spr, measures=measures)


def evaluate(scorer: scoring.Scorer, tokenizer, data: Reading, backend: str,
             subwords: str = "official") -> dict:
  pred, prev_pred = surprisals(scorer, tokenizer, data, backend, subwords)
  result = regressions(data, pred, prev_pred)
  result.update(
      headline=dict(reading_eye_tracking=result["eye_tracking"],
                    reading_self_paced=result["self_paced_reading"]),
      words=len(pred), mean_surprisal=float(np.mean(pred)), mask_ending=MASK_ENDING,
      subwords=subwords,
      # Per word, in the official pipeline's order: the word's and the previous word's.
      surprisal=[round(float(s), 6) for s in pred],
      prev_surprisal=[None if math.isnan(s) else round(float(s), 6) for s in prev_pred])
  return result


def plot(path: str, report: dict, title: str):
  """Per measure, the percentage of the possible R^2 increase, without and with spillover."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from babylm_jax.eval.report import save_figure

  names = list(report["measures"])
  x = np.arange(len(names))
  fig, ax = plt.subplots(figsize=(8, 4.5))
  for k, (kind, color) in enumerate((("no_spillover", "tab:blue"), ("spillover", "tab:orange"))):
    values = [report["measures"][m][kind]["percent_of_possible"] for m in names]
    ax.bar(x + (k - 0.5) * 0.4, values, width=0.4, color=color, label=kind.replace("_", " "))
  ax.axhline(0, color="black", linewidth=0.8)
  ax.set_xticks(x)
  ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
  ax.set_ylabel("R² increase, % of possible")
  ax.set_title(f"{title}: eye tracking {report['eye_tracking']:.2f}, "
               f"self-paced {report['self_paced_reading']:.2f}")
  ax.legend()
  save_figure(fig, path)
