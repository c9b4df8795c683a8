"""The exported tokenizer gives exactly the token ids we score, under both transformers.

Every sentence of every evaluation set in ../shared/data (BLiMP, the fast BLiMP, supplement and
EWoK sets, entity tracking, wug, the (Super)GLUE inputs) is tokenized twice: by our scorer
(`scoring.tokenize`) or fine-tuning encoder (`finetune.encode`) with the run's
tokenizer.json, and by `AutoTokenizer` on an export folder in a subprocess, once under the
current transformers 5.x and once under the BabyLM pipeline's pinned transformers 4.51.3 /
tokenizers 0.21.1 (tests/pinned_env.py). The zero-shot texts are formed as the pipeline forms
them (`eval/official.py`: the EWoK context and target joined by a space, the entity-tracking
prefix and option concatenated) and the first scored token is found from the offsets as the
pipeline finds it.
Ids and first scored tokens must agree for every sentence.

The GLUE pairs (multirc and wsc formed into two texts as the pipeline forms them, eval/glue.py)
go through the pair template (`<s> a </s> b`) cut to the fine-tuning length (transformers cuts
longest-first, as our fine-tuning encoder does).
"""

import json
import sys

import jax
import numpy as np
import pytest

from babylm_jax.config import base_config
from babylm_jax.data.tokenizer import train_tokenizer
from babylm_jax.eval import finetune, glue as glue_lib, official, scoring, suites
from babylm_jax.export import hf
from babylm_jax.model import hf_weights
from conftest import data_path, load_config
from pinned_env import pinned_python, probe

UNBOUNDED = 1 << 20
FINETUNE_LEN = base_config().finetune.max_length
# Our zero-shot suites: (suite, folder under ../shared/data).
ZERO_SHOT = (("blimp", ("blimp",)),
             ("blimp_fast", ("babylm_eval", "fast_eval", "blimp_fast")),
             ("supplement", ("babylm_eval", "fast_eval", "supplement_fast")),
             ("ewok", ("babylm_eval", "fast_eval", "ewok_fast")),
             ("entity_tracking", ("babylm_eval", "entity_tracking")))


def _pipeline_texts(suite, folder):
  """(sentence, length of its scored completion) per option, as the pipeline forms them."""
  return [(text, len(completion)) for _, r in official.records(folder)
          for text, completion in official.sentences(suite, r)]


def _flat(seqs):
  """{ids, lengths, starts} arrays of a list of (ids, first scored index) sequences."""
  return dict(ids=np.array([t for ids, _ in seqs for t in ids], np.int32),
              lengths=np.array([len(ids) for ids, _ in seqs], np.int32),
              starts=np.array([start for _, start in seqs], np.int32))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """An export (zero weights) whose tokenizer is trained on real text as training does."""
  tmp = tmp_path_factory.mktemp("tokens")
  text = [line for p in sorted(data_path("babylm_text", "train_100k").glob("*.train"))
          for line in p.read_text().splitlines() if line.strip()]
  raw = train_tokenizer(text, 8192)
  (tmp / "tokenizer.json").write_text(raw.to_str())
  config = load_config("smoke")
  config.model.vocab_size = 8192
  zeros = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), hf_weights.abstract_params(config.model))
  export = tmp / "export"
  export.mkdir()
  hf.write_folder(export, zeros, config.model, tmp / "tokenizer.json", {"step": 0})
  return dict(tmp=tmp, export=export, raw=raw)


@pytest.fixture(scope="module")
def case(exported):
  """Our ids of every sentence, and the texts as the pipeline forms them (texts.json)."""
  tmp, raw = exported["tmp"], exported["raw"]
  groups, want = {}, {}
  for suite, parts in ZERO_SHOT:
    items = suites.load_suite(suite, str(data_path(*parts))).items
    ctx = [it.context for it in items for _ in it.options]
    tgt = [o for it in items for o in it.options]
    want[suite] = scoring.tokenize(raw, ctx, tgt, UNBOUNDED)
    rows = _pipeline_texts(suite, data_path(*parts))
    assert len(rows) == len(tgt)
    groups[suite] = dict(texts=[t for t, _ in rows], completion_chars=[c for _, c in rows])
  wug = _pipeline_texts("wug_adj", data_path("babylm_eval", "wug_adj_nominalization"))
  want["wug"] = scoring.tokenize(raw, [""] * len(wug), [t for t, _ in wug], UNBOUNDED)
  groups["wug"] = dict(texts=[t for t, _ in wug], completion_chars=[c for _, c in wug])

  glue = data_path("babylm_eval", "glue_filtered")
  for task in glue_lib.TASKS:
    for split in ("train", "valid"):
      if not (glue / f"{task}.{split}.jsonl").is_file():
        continue
      name = f"{task}.{split}"
      pairs = glue_lib.load_split(str(glue), task, split).pairs
      ids = finetune.encode(raw, finetune.Classifier, pairs, FINETUNE_LEN).seqs
      groups[name] = dict(texts=[a for a, _ in pairs], second=[b for _, b in pairs],
                          max_length=FINETUNE_LEN)
      want[name] = [(tuple(row), 1) for row in ids]
  (tmp / "texts.json").write_text(json.dumps({"groups": groups}))
  return dict(exported, want={k: _flat(v) for k, v in want.items()})


def _theirs(got, name):
  """{ids, lengths, starts} of one of our groups from the probe's output."""
  if f"{name}/ids" in got:
    lengths = got[f"{name}/lengths"]
    starts = got[f"{name}/starts"] if f"{name}/starts" in got else np.ones_like(lengths)
    return dict(ids=got[f"{name}/ids"], lengths=lengths, starts=starts)
  raise KeyError(f"the probe gave no ids for {name}")


def _mismatches(ours, theirs) -> list[int]:
  """Indices of the sequences whose ids or first scored token differ."""
  if len(ours["lengths"]) != len(theirs["lengths"]):
    return list(range(len(ours["lengths"])))
  wrong = ours["starts"] != theirs["starts"]
  if np.array_equal(ours["lengths"], theirs["lengths"]):  # compare the flat ids per sequence
    diff = (ours["ids"] != theirs["ids"]).astype(np.int64)
    return np.flatnonzero(
        wrong | (np.add.reduceat(diff, np.r_[0, np.cumsum(ours["lengths"])[:-1]]) > 0)).tolist()
  split = [np.split(x["ids"], np.cumsum(x["lengths"])[:-1]) for x in (ours, theirs)]
  return [k for k, (a, b) in enumerate(zip(*split)) if wrong[k] or not np.array_equal(a, b)]


@pytest.mark.parametrize("which", ["current", "pinned"])
def test_exported_tokenizer_gives_our_ids_for_every_sentence(case, which):
  python = sys.executable if which == "current" else pinned_python()
  out = case["tmp"] / f"ids-{which}.npz"
  res = probe(python, "tokens", case["export"], case["tmp"] / "texts.json", out)
  info = json.loads(res.stdout.strip().splitlines()[-1])
  if which == "pinned":
    assert (info["transformers"], info["tokenizers"]) == ("4.51.3", "0.21.1")
  else:
    assert info["transformers"].startswith("5.")
  got = np.load(out)
  summary, bad = {}, []
  for name, ours in case["want"].items():
    theirs = _theirs(got, name)
    wrong = _mismatches(ours, theirs)
    summary[name] = [len(ours["lengths"]), len(wrong)]
    bad += [(name, k) for k in wrong[:2]]
  print(f"\n{which} ({info['transformers']}): sentences compared, mismatches per set: "
        f"{json.dumps(summary)}")
  assert summary["blimp"][0] == 134_000 and sum(n for n, _ in summary.values()) > 250_000
  assert (case["want"]["entity_tracking"]["starts"] > 1).all()  # contexts are compared too
  assert not bad, (f"token ids differ from ours under transformers {info['transformers']} "
                   f"(set, sentence): {bad[:6]}; per set: {summary}")


# transformers 5.x's AutoTokenizer reads the config first, and the config class is custom code
# (a model type transformers does not know), so there it asks unless trust_remote_code is given;
# False is enough. 4.51.3 reads tokenizer_config.json's class and asks nothing.
@pytest.mark.parametrize("which,trust", [("pinned", "none"), ("current", "false")])
def test_auto_tokenizer_is_a_standard_class_and_asks_nothing(exported, which, trust):
  python = sys.executable if which == "current" else pinned_python()
  res = probe(python, "tokenizer", exported["export"], trust)
  info = json.loads(res.stdout.strip().splitlines()[-1])
  assert info["module"].startswith("transformers.") and \
      info["tokenizer"] in ("PreTrainedTokenizerFast", "TokenizersBackend"), info
  assert "custom code" not in res.stdout + res.stderr, res.stdout + res.stderr
