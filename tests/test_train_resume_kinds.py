"""Exact resume after SIGKILL for each objective, each data order, and the reference recipe's
batch ramp and ranked masks: a straight run and a killed-then-resumed run end equal."""

import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, data_path
from launch_helpers import env as _env, final_params, kill_after, losses, ok, smoke_args, smoke_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("store_cache")


def _straight_and_resumed(tmp_path, cache_dir, extra):
  """12-step smoke runs with `extra`: one straight, one SIGKILLed past step 6 (checkpoint 4
  written) and resumed; checks that the resumed run says so and logs the straight run's
  losses. Returns (straight workdir, killed workdir)."""
  straight_wd, killed_wd = tmp_path / "straight", tmp_path / "killed"
  ok(smoke_run(straight_wd, cache_dir, *extra, steps=12))
  kill_after(killed_wd, smoke_args(killed_wd, cache_dir, *extra, steps=12), 4, 6)
  r = smoke_run(killed_wd, cache_dir, *extra, steps=12)
  ok(r)
  assert "resumed from step" in r.stderr
  assert losses(killed_wd) == losses(straight_wd)
  return straight_wd, killed_wd


# objective.kind -> launch.py overrides; 12 steps, a checkpoint every 4.
OBJECTIVE_RUNS = {"masked": (), "causal": (),
                  "bootstrap": ("--config.model.decoder_layers=1",)}


@pytest.mark.parametrize("kind", list(OBJECTIVE_RUNS))
def test_exact_resume_after_sigkill_per_objective(kind, tmp_path, cache_dir):
  """Each objective resumes exactly (bootstrap: its teacher is restored too)."""
  extra = (f"--config.objective.kind={kind}", *OBJECTIVE_RUNS[kind],
           "--config.checkpoint.every=4", "--config.train.log_every=2")
  straight_wd, killed_wd = _straight_and_resumed(tmp_path, cache_dir, extra)
  import orbax.checkpoint as ocp
  trees = [ocp.StandardCheckpointer().restore(wd / "checkpoints" / "12" / "state")
           for wd in (killed_wd, straight_wd)]
  assert ("teacher" in trees[0]) == (kind == "bootstrap")
  import jax
  for a, b in zip(*(jax.tree.leaves(t) for t in trees)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# data.order -> launch.py overrides for a 12-step run of 4,096 tokens a step whose steps after
# the resume (4 or 8) cross a stage boundary: the first domain is a small one, and 100
# difficulty buckets are ~11k tokens.
DATA_ORDER_RUNS = {
    "domains": ("--config.data.order_domains=bnc_spoken_dev,bnc_spoken,open_subtitles_dev,"
                "open_subtitles,gutenberg_dev,gutenberg,simple_wiki_dev,simple_wiki",),
    "difficulty": ("--config.data.order_buckets=100",)}


def _words_seen(workdir) -> dict[int, int]:
  recs = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return {r["step"]: r["words_seen"] for r in recs if "loss" in r}


@pytest.mark.parametrize("order", list(DATA_ORDER_RUNS))
def test_exact_resume_after_sigkill_per_data_order(order, tmp_path, cache_dir):
  """A curriculum resumes exactly (losses, words seen, parameters), across a stage boundary."""
  from babylm_jax import config as config_lib
  from babylm_jax.data.batches import BatchSource
  from babylm_jax.data.prepare import prepare_data
  from babylm_jax.train.loop import derive_for_corpus
  extra = (f"--config.data.order={order}", *DATA_ORDER_RUNS[order],
           "--config.train.tokens_per_step=4096", "--config.checkpoint.every=4",
           "--config.train.log_every=2")
  straight_wd, killed_wd = _straight_and_resumed(tmp_path, cache_dir, extra)
  assert _words_seen(killed_wd) == _words_seen(straight_wd)
  for a, b in zip(final_params(killed_wd, 12), final_params(straight_wd, 12)):
    np.testing.assert_array_equal(a, b)
  # The steps after either checkpoint read rows of two stages at least.
  config = config_lib.from_run(killed_wd)
  store = prepare_data(config).train
  source = BatchSource(store, config, derive_for_corpus(config, store))
  for resumed in (4, 8):
    starts = np.concatenate([source.row_starts(s) for s in range(resumed, 12)])
    assert len(np.unique(source.doc_stage[source.documents_at(starts)])) >= 2, resumed


def _reference_args(workdir, cache, steps=30):
  """configs/gpt_bert_reference_small.py at tiny shapes on one 100 KB file (30,483 tokens an
  epoch), its ramp at 2 levels (4 shapes): 1,024 tokens a step, 4,096 from step 15; step 18
  reads the first rows of epoch 1."""
  return [sys.executable, "launch.py", "--config", "configs/gpt_bert_reference_small.py",
          "--workdir", str(workdir),
          f"--config.data.path={data_path('babylm_text', 'train_100k', 'bnc_spoken_dev.train')}",
          f"--config.data.dev_path={data_path('babylm_text', 'dev_bb25_small')}",
          f"--config.data.cache_dir={cache}", "--config.model.vocab_size=1024",
          "--config.model.hidden_size=64", "--config.model.num_layers=2",
          "--config.model.num_heads=2", "--config.model.intermediate_size=128",
          "--config.train.tokens_per_step=4096", "--config.train.seq_lens=(32,64,128)",
          "--config.train.batch_ramp_levels=2", f"--config.train.steps={steps}",
          "--config.train.log_every=5", "--config.train.eval_every=1000",
          "--config.train.eval_batches=2", "--config.checkpoint.every=10"]


def test_reference_recipe_resumes_exactly_inside_a_later_epoch(tmp_path, cache_dir):
  """The reference recipe (ramp, ranked masks with anti-repeat counts, its LAMB, head dropout),
  killed with SIGKILL after its step-20 checkpoint (in epoch 1) and resumed, logs the same
  losses and ends with the same parameters as a straight run: the resumed process replays
  epoch 0's masks to the same counts. (The three runs share a JAX compilation cache: only the
  first compiles its four step shapes.)"""
  env = dict(_env(), JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"))
  straight_wd, wd = tmp_path / "straight", tmp_path / "killed"
  r = subprocess.run(_reference_args(straight_wd, cache_dir), cwd=ROOT, capture_output=True,
                     text=True, timeout=1800, env=env)
  ok(r)
  recs = [json.loads(l) for l in (straight_wd / "metrics.jsonl").read_text().splitlines()]
  tokens = {r["step"]: r["tokens_seen"] for r in recs if "loss" in r}
  assert tokens[10] == 10 * 1024 and tokens[20] == 15 * 1024 + 5 * 4096
  kill_after(wd, _reference_args(wd, cache_dir), 20, 25, run_env=env, timeout=1800)
  r = subprocess.run(_reference_args(wd, cache_dir), cwd=ROOT, capture_output=True, text=True,
                     timeout=1800, env=env)
  ok(r)
  assert "resumed from step 20" in r.stderr
  assert losses(wd) == losses(straight_wd)
  for a, b in zip(final_params(wd, 30), final_params(straight_wd, 30)):
    np.testing.assert_array_equal(a, b)
