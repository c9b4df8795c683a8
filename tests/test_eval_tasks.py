"""The WUG, COMPS and reading tasks: readers, and scorers against unbatched references.

wug_past and COMPS have no data in ../shared/data; their tests read small files written here
in the official pipeline's format (tab-separated `sentences` with a `ratio`; COMPS's
`prefix_acceptable` / `prefix_unacceptable` / `property_phrase`, files named as its subsets).
"""

import json

import numpy as np
import pytest
from scipy.stats import rankdata

from babylm_jax.config import BOS_ID, MASK_ID
from babylm_jax.errors import DataError
from babylm_jax.eval import reading, run, scoring, suites
from conftest import data_path
from eval_helpers import logits_fn_of, project_tokenizer, small_tokenizer, tiny_gpt_bert

WUG_PAST = [
    ("Yesterday I saw him spling the rope. Yesterday he splang.", "Yesterday I saw him spling "
     "the rope. Yesterday he splinged.", 0.35),
    ("Every day they glorp. Yesterday they glorped.", "Every day they glorp. Yesterday they "
     "glarp.", 0.9),
    ("She likes to bize. Last week she bized.", "She likes to bize. Last week she boze.", 0.7),
    ("We often drink. Yesterday we drank.", "We often drink. Yesterday we drinked.", 0.95),
    ("They usually frink. Yesterday they frank.", "They usually frink. Yesterday they "
     "frinked.", 0.4),
    ("I like to nold. Yesterday I nolded.", "I like to nold. Yesterday I neld.", 0.8),
]
COMPS = {
    "comps_base": [("A robin", "A dog", "can fly."), ("A dog", "A trout", "can bark."),
                   ("A trout", "A robin", "has gills.")],
    "comps_wugs": [("A wug is a robin. Therefore, a wug", "A wug is a dog. Therefore, a wug",
                    "can fly."), ("A dax is a dog. Therefore, a dax",
                                  "A dax is a trout. Therefore, a dax", "can bark.")],
    "comps_wugs_dist-before": [("A fep is a dog. A wug is a robin. Therefore, a wug",
                                "A fep is a robin. A wug is a dog. Therefore, a wug",
                                "can fly.")],
    "comps_wugs_dist-in-between": [("A wug is a robin. A fep is a dog. Therefore, a wug",
                                    "A wug is a dog. A fep is a robin. Therefore, a wug",
                                    "can fly.")],
}


def write_wug_past(folder):
  folder.mkdir(exist_ok=True)
  lines = [json.dumps({"sentences": f"{a}\t{b}", "ratio": r}) for a, b, r in WUG_PAST]
  (folder / "wug_past_tense.jsonl").write_text("\n".join(lines) + "\n")
  return str(folder)


def write_comps(folder):
  folder.mkdir(exist_ok=True)
  for stem, rows in COMPS.items():
    lines = [json.dumps({"prefix_acceptable": a, "prefix_unacceptable": b,
                         "property_phrase": p, "negative_sample_type": "taxonomic"})
             for a, b, p in rows]
    (folder / f"{stem}.jsonl").write_text("\n".join(lines) + "\n")
  return str(folder)


@pytest.fixture(scope="module")
def setup():
  tok = small_tokenizer(512)
  model, _ = tiny_gpt_bert(512)
  return tok, model, logits_fn_of(model)


def _log_softmax(row):
  return row - row.max() - np.log(np.sum(np.exp(row - row.max())))


def _spearman(a, b):
  return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])


def test_readers(tmp_path):
  adj = suites.load_suite("wug_adj", str(data_path("babylm_eval/wug_adj_nominalization")))
  assert len(adj.items) == 200 and all(len(it.options) == 2 for it in adj.items)
  assert all(0 <= it.human <= 1 for it in adj.items)
  assert adj.items[0].options[0].endswith("actignability")
  past = suites.load_suite("wug_past", write_wug_past(tmp_path / "past"))
  assert [it.human for it in past.items] == [r for _, _, r in WUG_PAST]
  assert past.items[0].options == WUG_PAST[0][:2]
  comps = suites.load_suite("comps", write_comps(tmp_path / "comps"))
  assert comps.paradigms == ["base", "wugs", "wugs_dist_before", "wugs_dist_in_between"]
  item = comps.items[0]
  assert item.contexts() == ("A robin", "A dog") and item.options == ("can fly.", "can fly.")


@pytest.mark.parametrize("name,bad,match", [
    ("wug", '{"sentences": "Only one sentence.", "ratio": 0.5}', r"two or more"),
    ("wug", '{"sentences": "A b.\\tA c.", "ratio": 1.5}', r"'ratio' in \[0, 1\]"),
    ("comps", '{"prefix_acceptable": "A robin", "prefix_unacceptable": "A dog"}',
     r"'property_phrase'"),
])
def test_malformed_lines(tmp_path, name, bad, match):
  folder = tmp_path / name
  write_wug_past(folder) if name == "wug" else write_comps(folder)
  path = sorted(folder.glob("*.jsonl"))[0]
  lines = path.read_text().splitlines()
  lines[0] = bad
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(DataError, match=rf"{path.name}' line 1 .*{match}"):
    suites.load_suite("wug_past" if name == "wug" else "comps", str(folder))


def _scored_and_reference(setup, suite, backend):
  """Our batched result for `suite`, and per item the unbatched reference option scores."""
  tok, model, ref_fn = setup
  scorer = scoring.Scorer(model, max_len=128, tokens_per_batch=128, pack_len=32)
  reference = []
  for item in suite.items:
    seqs = scoring.tokenize(tok, list(item.contexts()), list(item.options), 128)
    reference.append(np.array([scoring.reference_score(ref_fn, s, backend) for s in seqs]))
  return run.score_task(scorer, tok, suite, backend), reference


@pytest.mark.parametrize("backend", ["causal", "mntp", "pll"])
def test_wug_correlation_matches_reference(setup, tmp_path, backend):
  suite = suites.load_suite("wug_past", write_wug_past(tmp_path / "past"))
  got, reference = _scored_and_reference(setup, suite, backend)
  prob = [np.exp(s[0] - np.logaddexp.reduce(s)) for s in reference]
  np.testing.assert_allclose(got["probability"], prob, rtol=0, atol=1e-4)
  want = _spearman(prob, [r for _, _, r in WUG_PAST])
  assert got["spearman"] == pytest.approx(want, abs=1e-9)
  assert got["headline"] == {"wug_past": pytest.approx(100 * want, abs=1e-7)}


@pytest.mark.parametrize("backend", ["causal", "mntp", "pll"])
def test_comps_accuracy_matches_reference(setup, tmp_path, backend):
  suite = suites.load_suite("comps", write_comps(tmp_path / "comps"))
  got, reference = _scored_and_reference(setup, suite, backend)
  per = {}
  for item, s in zip(suite.items, reference):
    assert abs(s[0] - s[1]) > 1e-3  # different prefixes, same phrase: not a tie
    per.setdefault(item.paradigm, []).append(float(s[0] > s[1]))
  want = {p: float(np.mean(v)) for p, v in per.items()}
  assert {p: v["accuracy"] for p, v in got["paradigms"].items()} == want
  assert got["headline"]["comps"] == pytest.approx(100 * np.mean(list(want.values())))


def test_reading_reader():
  data = reading.load(str(data_path("babylm_eval/reading")))
  assert len(data.words) == 1726 and data.files[0]["name"] == "reading_data.csv"
  assert data.contexts[0] == "Arthur placed" and data.words[0] == "the"
  # The one empty context, of the sentence "None of the city people ...".
  assert data.contexts[320] == "None" and data.words[320] == "of"
  assert sum(1 for w in data.prev_words if not w) == 205
  assert np.isnan(data.columns["Subtlex_log10"]).sum() == 30


def _reference_surprisal(tok, ref_fn, context, word, backend, subwords):
  """<s> + context (+ 3 masks), one model call per token of the word.

  official: the word encoded alone; each later token decoded, appended to the context text,
  and scored as the first token of its text encoded alone. exact: the word's own tokens.
  """
  word_ids = tok.encode(word, add_special_tokens=False).ids
  total, text = 0.0, context
  for j, t in enumerate(word_ids):
    if subwords == "official":
      ctx = tok.encode(text, add_special_tokens=False).ids
      target = t if j == 0 else tok.encode(tok.decode([t]), add_special_tokens=False).ids[0]
      text += tok.decode([t])
    else:
      ctx = tok.encode(context, add_special_tokens=False).ids + word_ids[:j]
      target = t
    x = [BOS_ID] + ctx
    pos = -1
    if backend != "causal":
      x, pos = x + [MASK_ID] * 3, (-4 if backend == "mntp" else -3)
    logits = np.asarray(ref_fn(np.array([x]), np.ones((1, len(x)), np.int32),
                               np.array([backend == "causal"])), np.float64)[0]
    total -= _log_softmax(logits[pos])[target]
  return total


@pytest.fixture(scope="module")
def reading_subset():
  full = reading.load(str(data_path("babylm_eval/reading")))
  keep = list(range(12)) + list(range(19, 23))  # rows 19-22 have no previous word

  def pick(values):
    return tuple(values[i] for i in keep)
  return reading.Reading(pick(full.contexts), pick(full.words), pick(full.prev_contexts),
                         pick(full.prev_words), {}, full.files)


@pytest.mark.parametrize("backend,subwords", [("causal", "official"), ("mntp", "official"),
                                              ("pll", "exact")])
def test_reading_surprisal_matches_reference(setup, reading_subset, backend, subwords):
  _, model, ref_fn = setup
  tok, data = project_tokenizer(512), reading_subset
  scorer = scoring.Scorer(model, max_len=128, tokens_per_batch=256, pack_len=32)
  pred, prev = reading.surprisals(scorer, tok, data, backend, subwords)
  want = [_reference_surprisal(tok, ref_fn, c, w, backend, subwords)
          for c, w in zip(data.contexts, data.words)]
  np.testing.assert_allclose(pred, want, rtol=0, atol=1e-4)
  has = [i for i, w in enumerate(data.prev_words) if w]
  assert 0 < len(has) < len(data.words)
  assert np.isnan(np.delete(prev, has)).all()
  want_prev = [_reference_surprisal(tok, ref_fn, data.prev_contexts[i], data.prev_words[i],
                                    backend, subwords) for i in has]
  np.testing.assert_allclose(prev[has], want_prev, rtol=0, atol=1e-4)
  # The two ways agree on one-token words and not on longer ones (the official pipeline
  # scores re-encoded pieces: ' ing' for 'ing' with this prefix-space tokenizer).
  other, _ = reading.surprisals(scorer, tok, data, backend,
                                "exact" if subwords == "official" else "official")
  single = np.array([len(tok.encode(w, add_special_tokens=False).ids) == 1
                     for w in data.words])
  assert single.any() and not single.all()
  np.testing.assert_allclose(pred[single], other[single], rtol=0, atol=1e-9)
  assert np.max(np.abs(pred - other)[~single]) > 0.1


def test_reading_regressions_match_official_formulas():
  """Our design matrices against the official pipeline's statsmodels formulas."""
  import pandas as pd
  import statsmodels.formula.api as smf
  data = reading.load(str(data_path("babylm_eval/reading")))
  rng = np.random.default_rng(0)
  n = len(data.words)
  pred = 20 - data.columns["Subtlex_log10"] + rng.normal(0, 2, n)
  pred[np.isnan(pred)] = 12.0  # the surprisal is known for every word
  prev = np.where([bool(w) for w in data.prev_words], rng.normal(10, 3, n), np.nan)
  got = reading.regressions(data, pred, prev)
  df = pd.DataFrame(dict(data.columns, pred=pred, prev_pred=prev))

  def gain(dv, base):
    inter = [f"{a}:{b}" for i, a in enumerate(base) for b in base[i + 1:]]
    rhs = " + ".join(list(base) + inter)
    b = smf.ols(f"{dv} ~ {rhs}", data=df[[dv, *base]].dropna()).fit().rsquared
    m = smf.ols(f"{dv} ~ {rhs} + pred", data=df[[dv, "pred", *base]].dropna()).fit().rsquared
    return 100 * (m - b) / (1 - b)

  base = ["Subtlex_log10", "length", "context_length"]
  eye = np.mean([gain(v, base) for v in reading.EYE_TRACKING])
  spr = gain("self_paced_reading_time", base + ["prev_length", "prev_pred"])
  assert got["eye_tracking"] == pytest.approx(eye, abs=1e-8)
  assert got["self_paced_reading"] == pytest.approx(spr, abs=1e-8)
  assert got["measures"]["N400"]["no_spillover"]["percent_of_possible"] == pytest.approx(
      gain("N400", base), abs=1e-8)
  # A "surprisal" equal to the reading time explains all that is left: 100%.
  exact = reading.regressions(data, data.columns["self_paced_reading_time"], prev)
  assert exact["measures"]["self_paced_reading_time"]["spillover"][
      "percent_of_possible"] == pytest.approx(100.0, abs=1e-6)
