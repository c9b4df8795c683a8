"""The params-only loader and --mode=generate on smoke runs trained here on the shared text.

The loader must give the very parameters the full train-state restore gives; cached decoding
must pick the same tokens as recomputing the whole forward per token; the generated folder
must enter a later run's word budget as documented; an interrupted generation must leave no
complete-looking folder; bad settings are refused in one sentence.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from babylm_jax import checkpoint_params
from babylm_jax import config as config_lib
from babylm_jax.data import generated as generated_lib
from babylm_jax.errors import DataError
from conftest import ROOT, data_path, load_config

STEPS = 20
MILESTONES = (8_000,)


def _config(kind):
  c = load_config("smoke")
  c.data.path = str(data_path("babylm_text", "train_100k"))
  c.objective.kind = kind
  c.train.steps = STEPS
  c.checkpoint.every = STEPS // 2
  return c


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  from babylm_jax.train import checkpoint
  from babylm_jax.train.loop import train
  out = {}
  for kind in ("hybrid", "causal"):
    workdir = tmp_path_factory.mktemp(kind) / "run"
    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(checkpoint, "MILESTONES", MILESTONES)
      train(_config(kind), str(workdir))
    out[kind] = workdir
  return out


def test_params_only_loader_matches_the_full_restore_bit_for_bit(runs):
  from babylm_jax.train import checkpoint, sharding, step as step_lib
  workdir = runs["hybrid"]
  c = config_lib.from_run(workdir)
  ckpt = checkpoint.Checkpointer(str(workdir), c, read_only=True)
  try:
    assert ckpt.steps() == [STEPS // 2, STEPS] and ckpt.milestone_words() == list(MILESTONES)
    _, abstract = step_lib.abstract_train_state(c, config_lib.derive(c), sharding.make_mesh(c))
    for key, milestone in ((STEPS // 2, False), (STEPS, False), (MILESTONES[0], True)):
      state, _ = ckpt.restore(key, abstract, milestone=milestone)
      for use_ema in (True, False):
        where = dict(words=key) if milestone else dict(step=key)
        _, params, info = checkpoint_params.load_params(c, str(workdir), use_ema=use_ema,
                                                        **where)
        want = state.ema_params if use_ema else state.params
        assert jax.tree.structure(params) == jax.tree.structure(want)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(want)):
          assert a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b))
        assert info["use_ema"] == use_ema and (milestone or info["step"] == key)
    # EMA and raw parameters differ after training, so the two loads were not the same read.
    ema = checkpoint_params.load_params(c, str(workdir))[1]
    raw = checkpoint_params.load_params(c, str(workdir), use_ema=False)[1]
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(ema),
                                                         jax.tree.leaves(raw)))
  finally:
    ckpt.close()


def test_params_only_loader_refuses_what_load_model_refused(runs):
  from babylm_jax.errors import UserError
  workdir = runs["hybrid"]
  c = config_lib.from_run(workdir)
  with pytest.raises(UserError, match="no milestone at 5 words"):
    checkpoint_params.load_params(c, str(workdir), words=5)
  with pytest.raises(UserError, match="no checkpoint at step 3"):
    checkpoint_params.load_params(c, str(workdir), step=3)
  c.model.hidden_size = 96
  with pytest.raises(UserError, match="hidden_size"):
    checkpoint_params.load_params(c, str(workdir))


@pytest.mark.parametrize("kind", ["hybrid", "causal"])
def test_cached_greedy_tokens_equal_full_recomputation(runs, kind):
  from babylm_jax.model import cache as cache_lib
  workdir = runs[kind]
  c = config_lib.from_run(workdir)
  graphdef, params, _ = checkpoint_params.load_params(c, str(workdir))
  rng = np.random.default_rng(0)
  lengths = [9, 4, 1]  # left padding of 0, 5 and 8 slots
  ids = np.zeros((3, 9), np.int32)
  for r, n in enumerate(lengths):
    ids[r, 9 - n:] = [1, *rng.integers(16, c.model.vocab_size, n - 1)]
  pad = np.asarray([9 - n for n in lengths], np.int32)
  greedy = cache_lib.Sampling(temperature=0.0)
  args = (graphdef, params, ids, pad, jax.random.key(0), 24, greedy)
  cached = jax.jit(cache_lib.generate, static_argnums=(5, 6))(*args)
  full = jax.jit(cache_lib.recompute, static_argnums=(5, 6))(*args)
  np.testing.assert_array_equal(np.asarray(cached), np.asarray(full))
  # The rows differ (the prompts steer them), so equality is not that of a constant output.
  assert len({tuple(r) for r in np.asarray(cached)}) > 1


def _launch(workdir, *flags, **kw):
  cmd = [sys.executable, "launch.py", "--mode=generate", f"--workdir={workdir}", *flags]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)


def test_generated_words_enter_the_next_runs_budget(runs, tmp_path):
  from babylm_jax.data import prepare, sources
  workdir = runs["causal"]
  out = tmp_path / "gen"
  p = _launch(workdir, f"--config.generate.out={out}", "--config.generate.corpus_prompts=3",
              "--config.generate.max_new_tokens=12", "--config.generate.batch_size=2")
  assert p.returncode == 0, p.stderr
  manifest = json.loads((out / generated_lib.MANIFEST).read_text())
  text = (out / generated_lib.TEXT_FILE).read_text()
  from babylm_jax.data import clean
  assert manifest["words_generated"] == clean.count_words(text) > 0
  assert manifest["samples"] == len(text.strip().split("\n\n")) == 3
  assert manifest["checkpoint"]["step"] == STEPS and manifest["tokens_generated"] == 36

  # A corpus of another text (the dev file) plus the generated folder: own + generated +
  # the generating run's training corpus, which is not this corpus.
  corpus_dir = tmp_path / "corpus"
  corpus_dir.mkdir()
  dev = data_path("babylm_text", "dev_bb25_small", "bb25_small.dev")
  shutil.copy(dev, corpus_dir / "bb25_small.train")
  shutil.copy(out / generated_lib.TEXT_FILE, corpus_dir / generated_lib.TEXT_FILE)
  shutil.copy(out / generated_lib.MANIFEST, corpus_dir / generated_lib.MANIFEST)
  c = _config("causal")
  c.data.path = str(corpus_dir)
  corpus = sources.resolve(c.data.path, c, "data.path")
  own = clean.count_words(clean.normalize(dev.read_text()))
  raw = own + manifest["words_generated"]
  lines = dict(prepare.check_budget(c, raw, c.data.path, corpus))
  assert lines == {"corpus": own, "generated": manifest["words_generated"],
                   "generating runs' training": manifest["training_words"]}
  c.data.count_generated = False
  lines = prepare.check_budget(c, raw, c.data.path, corpus)
  assert generated_lib.counted_words(c, lines) == own + manifest["training_words"]
  # The budget refuses what the generated folder and its teacher push over it.
  c.data.count_generated = True
  c.track = "strict_small"
  total = own + manifest["words_generated"] + manifest["training_words"]
  with pytest.MonkeyPatch.context() as mp:
    mp.setitem(config_lib.TRACKS["strict_small"], "word_budget", total - 1)
    with pytest.raises(DataError, match=f"counts {total:,} words"):
      prepare.check_budget(c, raw, c.data.path, corpus)
  # Trained on the same text as the generating run: its training words are counted once.
  same = tmp_path / "same"
  same.mkdir()
  for f in data_path("babylm_text", "train_100k").iterdir():
    shutil.copy(f, same / f.name)
  shutil.copy(out / generated_lib.TEXT_FILE, same / generated_lib.TEXT_FILE)
  shutil.copy(out / generated_lib.MANIFEST, same / generated_lib.MANIFEST)
  corpus = sources.resolve(str(same), c, "data.path")
  lines = dict(prepare.check_budget(c, 10, str(same), corpus))
  assert lines["generating runs' training"] == 0


def test_an_interrupted_generation_leaves_no_complete_looking_folder(runs, tmp_path):
  workdir = runs["causal"]
  out = tmp_path / "gen"
  cmd = [sys.executable, "launch.py", "--mode=generate", f"--workdir={workdir}",
         f"--config.generate.out={out}", "--config.generate.corpus_prompts=400",
         "--config.generate.batch_size=2", "--config.generate.max_new_tokens=64"]
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  # Kill it once it is decoding (its first batch logged).
  deadline = time.time() + 240
  for line in proc.stdout:
    if "generated 2 of" in line or time.time() > deadline:
      break
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert not out.exists()
  left = [p.name for p in tmp_path.iterdir()]
  assert all(n.startswith(".gen.tmp-") for n in left), left
  for n in left:  # a half-written folder holds no manifest (written last, then renamed)
    assert not (tmp_path / n / generated_lib.MANIFEST).exists() or not (
        tmp_path / n / generated_lib.TEXT_FILE).exists()


@pytest.mark.parametrize("flag,words", [
    ("--config.generate.temperature=-1", "temperature"),
    ("--config.generate.top_p=0", "top_p"),
    ("--config.generate.top_k=5000", "top_k"),
    ("--config.generate.max_new_tokens=0", "max_new_tokens"),
    ("--config.generate.prompts=/nonexistent/prompts.txt", "is not a file"),
    ("--config.objective.kind=masked", "next token"),
])
def test_bad_settings_are_refused_in_one_sentence(runs, flag, words):
  p = _launch(runs["hybrid"], flag)
  assert p.returncode == 2, p.stderr
  assert words in p.stderr and "Traceback" not in p.stderr
  assert len(p.stderr.strip().splitlines()) == 1, p.stderr
