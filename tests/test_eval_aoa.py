"""Age of acquisition (eval/aoa.py): the CDI file, the surprisal of each word in context, the
checkpoint names, and the score against sigmoids whose crossings are known in closed form.

The end-to-end run over a trained run's milestones is in test_eval_run.py (it shares that
file's trained smoke run).
"""

import json
import math

import numpy as np
import pytest

from babylm_jax.errors import DataError
from babylm_jax.eval import aoa, scoring
from eval_helpers import logits_fn_of, project_tokenizer, tiny_gpt_bert

# Official format (the pipeline's prepare_dataset.py): word -> contexts with their counts.
CDI = {
    "dog": ["The little boy saw a", "She wants to pet the", "Look at that big"],
    "a": ["There is"],  # one character: the pipeline skips it
    "banana": ["For breakfast he ate a", "Can I have a"],
    "ball": ["Throw me the"],
    "giraffe": [],  # no context: no entry
}


def write_cdi(path, cdi=CDI):
  """cdi_childes.json as the pipeline distributes it (counts are not read by anyone)."""
  data = {w: [dict(context=c, word_in_context_stats=dict(count=3 - i, frequency=0.5,
                                                         log_freq_per_million=5.7))
              for i, c in enumerate(cs)] for w, cs in cdi.items()}
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(data, indent=2))
  return str(path)


def write_human(path, midpoints: dict[str, float], slope: float = 0.5):
  """cdi_human.csv: per word, the share of children producing it at 16..30 months, a logistic
  in age with its 0.5 crossing at the given month (NaN for months 16 and 17 of the first)."""
  ages = list(aoa.AGES)
  lines = ["word,category," + ",".join(str(a) for a in ages)]
  for k, (word, m) in enumerate(midpoints.items()):
    shares = [1 / (1 + math.exp(-slope * (a - m))) for a in ages]
    cells = ["" if k == 0 and a < 18 else f"{s:.12f}" for a, s in zip(ages, shares)]
    lines.append(f"{word},animals," + ",".join(cells))
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("\n".join(lines) + "\n")
  return str(path)


def test_load_keeps_the_pipeline_words_and_order(tmp_path):
  data = aoa.load(write_cdi(tmp_path / "cdi_childes" / "cdi_childes.json"))
  assert data.words == ("dog", "banana", "ball", "giraffe")
  assert [len(c) for c in data.contexts] == [3, 2, 1, 0]
  assert data.pairs()[:4] == [("dog", 0, "The little boy saw a"),
                              ("dog", 1, "She wants to pet the"),
                              ("dog", 2, "Look at that big"),
                              ("banana", 0, "For breakfast he ate a")]
  assert data.files[0]["items"] == 6 and len(data.files[0]["sha256"]) == 64
  assert aoa.load(str(tmp_path / "cdi_childes")).words == data.words  # the folder works too


def test_missing_or_malformed_words_file(tmp_path):
  with pytest.raises(DataError, match=r"osf\.io/ryjfm.*--config\.eval\.data\.aoa"):
    aoa.load(str(tmp_path / "none.json"))
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"dog": ["The little boy saw a"]}))
  with pytest.raises(DataError, match=r"word 'dog' without a list of \{\"context\""):
    aoa.load(str(bad))


def test_checkpoint_names_per_track():
  small = aoa.official_steps("strict_small")
  assert [n for n, _ in small] == ([f"chck_{m}M" for m in range(1, 10)]
                                   + [f"chck_{m}M" for m in range(10, 101, 10)])
  strict = aoa.official_steps("strict")
  assert len(small) == 19 and len(strict) == 28 and strict[-1] == ("chck_1000M", 10**9)
  for name, words in strict:  # the names our exports and milestones get, read back
    assert aoa.step_name(words) == name and aoa.step_words(name) == words
  assert aoa.step_name(8000) == "words_8000" and aoa.step_words("words_8000") == 8000


def test_every_token_of_the_word_is_scored_after_its_context(tmp_path):
  tok = project_tokenizer(512)
  data = aoa.load(write_cdi(tmp_path / "cdi.json"))
  seqs, cut = aoa.sequences(tok, data, max_len=128)
  assert cut == 0 and len(seqs) == 6
  several = 0
  for (word, _, context), (ids, start) in zip(data.pairs(), seqs):
    assert ids[0] == 1  # <s>
    assert tok.decode(list(ids[1:start])).strip() == context.strip()
    assert tok.decode(list(ids[start:])).strip() == word
    several += len(ids) - start > 1
  assert several >= 1  # a word of several tokens (banana) has all of them scored
  # A context longer than the model keeps its newest tokens and the whole word.
  long = aoa.Words(("banana",), (("and then " * 40 + "he ate a",),), ())
  (ids, start), = aoa.sequences(tok, long, max_len=32)[0]
  assert len(ids) == 32 and tok.decode(list(ids[start:])).strip() == "banana"
  assert aoa.sequences(tok, long, max_len=32)[1] == 1


@pytest.mark.parametrize("backend", ["causal", "mntp", "pll"])
def test_surprisal_is_the_unbatched_per_token_score(tmp_path, backend):
  """The pipeline's scorers: causal sums log p(token | before); mntp masks one word token at
  a time (the rest of the text visible) and reads it one position earlier; mlm (our pll) at
  the mask. scoring.reference_score does exactly that, one model call per token."""
  tok = project_tokenizer(512)
  model, _ = tiny_gpt_bert(512)
  data = aoa.load(write_cdi(tmp_path / "cdi.json"))
  seqs, _ = aoa.sequences(tok, data, max_len=128)
  got = aoa.surprisals(scoring.Scorer(model, max_len=128), seqs, backend)
  ref = [-scoring.reference_score(logits_fn_of(model), s, backend) for s in seqs]
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)
  assert np.all(got > 0)


# A sigmoid in x = log10(words + 1) for minus surprisal, a=16, b=3, d=-20: surprisal falls from
# 20 to 4 nats around x = c.
A, B, D = 16.0, 3.0, -20.0


def _curve(c, words, offset=0.0):
  x = np.log10(np.asarray(words, np.float64) + 1)
  return -(A / (1 + np.exp(-B * (x - c))) + D) + offset


def _expected_model_aoa(c, min_surprisal):
  """Where the known curve crosses half way from log2(300k) to the lowest surprisal."""
  chance = math.log2(300_000)
  threshold = chance - 0.5 * (chance - min_surprisal)
  return c - math.log(A / (-threshold - D) - 1) / B


def test_model_aoa_is_the_known_crossing_of_pooled_contexts():
  words = [w for _, w in aoa.official_steps("strict_small")]
  # Two contexts 0.5 nats apart: the least-squares fit of the pooled points is the curve
  # between them, but the threshold uses the lowest surprisal of any context.
  s = np.stack([_curve(7.0, words, -0.5), _curve(7.0, words, 0.5)], axis=1).ravel()
  w = np.repeat(words, 2)
  got = aoa.model_aoa(s, w)
  assert got == pytest.approx(_expected_model_aoa(7.0, s.min()), abs=1e-6)
  # Independently: scipy's fit of the same points gives the generating curve back.
  from scipy.optimize import curve_fit
  params, _ = curve_fit(aoa.sigmoid, np.log10(w + 1), -s, p0=[10, 1, 7.5, -15], maxfev=5000)
  np.testing.assert_allclose(params, [A, B, 7.0, D], rtol=1e-6)
  # A NaN point is dropped; a word that gets harder, or crosses past the last step, has none.
  one = _curve(7.0, words)
  one[5] = np.nan
  assert aoa.model_aoa(one, words) == pytest.approx(
      _expected_model_aoa(7.0, np.nanmin(one)), abs=1e-6)
  assert aoa.model_aoa(s[::-1], w) is None
  assert aoa.model_aoa(_curve(9.5, words), words) is None  # learned after 100M words


def test_child_aoa_is_the_known_midpoint():
  ages = np.asarray(aoa.AGES, np.float64)
  for m in (19.0, 23.5, 27.25):
    assert aoa.child_aoa(1 / (1 + np.exp(-0.5 * (ages - m)))) == pytest.approx(m, abs=1e-5)
  shares = 1 / (1 + np.exp(-0.5 * (ages - 22.0)))
  shares[:3] = np.nan
  assert aoa.child_aoa(shares) == pytest.approx(22.0, abs=1e-5)
  assert aoa.child_aoa(np.full(15, np.nan)) is None
  assert aoa.child_aoa(np.full(15, 0.9)) is None  # known by everyone already: no crossing


def test_score_correlates_model_and_child_aoa(tmp_path):
  """The leaderboard number from a surprisal.json: four words with known crossings on both
  sides, one the children's file lacks, one the model never learns."""
  steps = aoa.official_steps("strict_small")
  midpoints = {"dog": 6.5, "ball": 6.9, "banana": 7.6, "juice": 7.2}
  months = {"dog": 19.0, "ball": 20.5, "banana": 24.0, "juice": 27.0, "spoon": 22.0}
  results = []
  for name, words in steps:
    for word in ["dog", "ball", "banana", "juice", "zebra", "spoon"]:
      for ctx, offset in enumerate((-0.3, 0.3)):
        s = (_curve(midpoints.get(word, 7.0), [words], offset)[0] if word != "spoon"
             else 10.0 + offset)  # flat: never learned
        results.append(dict(step=name, word_count=words, target_word=word, context_id=ctx,
                            context="c", surprisal=float(s)))
  payload = aoa.surprisal_file("run", results, len(steps))
  human = aoa.read_human(write_human(tmp_path / "cdi_human.csv", months))
  fit = aoa.score(payload, human)
  assert fit["valid_words"] == ["dog", "ball", "banana", "juice"]
  assert fit["words"] == 6 and fit["words_in_cdi"] == 5 and fit["n_words"] == 4
  low = {w: min(_curve(m, [x for _, x in steps], -0.3)) for w, m in midpoints.items()}
  model = [_expected_model_aoa(midpoints[w], low[w]) for w in fit["valid_words"]]
  np.testing.assert_allclose(fit["model_aoa_log10_words"], model, atol=1e-5)
  np.testing.assert_allclose(fit["child_aoa_months"], [months[w] for w in fit["valid_words"]],
                             atol=1e-5)
  from scipy.stats import pearsonr
  assert fit["curve_fitness"] == pytest.approx(
      pearsonr(model, [months[w] for w in fit["valid_words"]])[0], abs=1e-6)
  assert fit["curve_fitness"] > 0.5  # earlier for the model, earlier for children
  # Fewer than three words with both AoAs: the pipeline reports 0.
  few = aoa.score(payload, {w: human[w] for w in ("dog", "ball")})
  assert few["curve_fitness"] == 0.0 and few["n_words"] == 2


def test_surprisal_file_has_what_collate_preds_reads(tmp_path):
  """For a strict-small run: every checkpoint of the track as `step`, and each with one entry
  per (word, context) of the file; the pipeline's keys and metadata."""
  data = aoa.load(write_cdi(tmp_path / "cdi.json"))
  results = []
  for k, (name, words) in enumerate(aoa.official_steps("strict_small")):
    results += aoa.entries(data, name, words, np.arange(6.0) + k)
  payload = aoa.surprisal_file("run", results, 19)
  payload = json.loads(json.dumps(payload))
  steps = [n for n, _ in aoa.official_steps("strict_small")]
  assert {r["step"] for r in payload["results"]} == set(steps)
  assert all(sum(r["step"] == s for r in payload["results"]) == len(data.pairs())
             for s in steps)
  assert set(payload["results"][0]) == {"step", "word_count", "target_word", "context_id",
                                        "context", "surprisal"}
  assert payload["results"][7] == dict(step="chck_2M", word_count=2_000_000, target_word="dog",
                                       context_id=1, context="She wants to pet the",
                                       surprisal=2.0)
  assert payload["metadata"] == dict(model_name="run", use_bos_only=False, total_steps=19,
                                     completed_steps=19)
