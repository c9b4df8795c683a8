"""Runs that cost more than a few steps: two processes against one, a milestone checkpoint
named by words seen, and the smoke recipe learning."""

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


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one(tmp_path, cache_dir):
  single = tmp_path / "single"
  ok(smoke_run(single, cache_dir, steps=10, devices=4))
  port = _free_port()
  multi = tmp_path / "multi"
  procs = [subprocess.Popen(
      smoke_args(multi, cache_dir, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
            f"--process_id={i}", steps=10, devices=2),
      cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  errs = [p.communicate(timeout=600)[1] for p in procs]
  for p, e in zip(procs, errs):
    assert p.returncode == 0, e[-3000:]
  a, b = losses(single), losses(multi)
  assert sorted(a) == sorted(b)
  np.testing.assert_allclose([b[s] for s in sorted(b)], [a[s] for s in sorted(a)], rtol=1e-5)


def test_smoke_config_trains_and_validation_loss_falls(tmp_path, cache_dir):
  wd = tmp_path / "smoke"
  start = time.time()
  r = subprocess.run([sys.executable, "launch.py", "--config", "configs/smoke.py",
                      "--workdir", str(wd),
                      f"--config.data.path={data_path('babylm_text', 'train_100k')}",
                      f"--config.data.cache_dir={cache_dir}"],
                     cwd=ROOT, capture_output=True, text=True, timeout=600,
                     env=_env(xla_flags=""))  # 300 steps: XLA's optimised code
  ok(r)
  elapsed = time.time() - start
  recs = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
  val = [r["val_loss"] for r in recs if "val_loss" in r]
  assert len(val) == 4  # at the start and every 100 steps
  assert val[0] > 6.5 and val[-1] < val[0] - 0.8 and val == sorted(val, reverse=True), val
  assert elapsed < 180, f"smoke run took {elapsed:.0f} s"


def test_milestone_checkpoints_by_words_seen(tmp_path, cache_dir):
  """A run that crosses 1M words keeps a milestone named by words seen, beside the rolling ones."""
  from babylm_jax.train.checkpoint import MILESTONES, milestones_crossed
  assert MILESTONES[:3] == (1_000_000, 2_000_000, 3_000_000)
  assert MILESTONES[9:12] == (10_000_000, 20_000_000, 30_000_000)
  assert MILESTONES[-2:] == (900_000_000, 1_000_000_000) and len(MILESTONES) == 28
  assert milestones_crossed(999_999, 1_000_000) == [1_000_000]
  assert milestones_crossed(1_000_000, 1_999_999) == []
  wd = tmp_path / "milestones"
  # A one-layer model of width 32 (the steps' cost is in the tokens: this shape makes them
  # cheap) at about 15,600 words a step: 75 steps cross 1M words once.
  ok(smoke_run(wd, cache_dir, "--config.train.tokens_per_step=32768",
               "--config.train.seq_lens=(64,)", "--config.train.seq_len_fractions=(1.0,)",
               "--config.model.num_layers=1", "--config.model.hidden_size=32",
               "--config.model.intermediate_size=64", "--config.checkpoint.every=1000",
               steps=75, run_env=_env(xla_flags="")))  # 2.5M tokens: XLA's optimised code
  words = [json.loads(l)["words_seen"] for l in (wd / "metrics.jsonl").read_text().splitlines()
           if '"loss"' in l]
  assert 1_000_000 < max(words) < 2_000_000
  assert [p.name for p in (wd / "milestones").iterdir()] == ["words_1000000"]
  assert sorted(int(p.name) for p in (wd / "checkpoints").iterdir()) == [75]
  import orbax.checkpoint as ocp
  mngr = ocp.CheckpointManager(wd / "milestones", item_names=("state", "meta"),
                               options=ocp.CheckpointManagerOptions(step_prefix="words",
                                                                    read_only=True))
  meta = mngr.restore(1_000_000, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  # Saved at the first step whose words seen reach 1M (a step reads about 15,600 words).
  assert 1_000_000 <= meta["words_seen"] < 1_000_000 + 20_000 and 55 < meta["step"] < 75


