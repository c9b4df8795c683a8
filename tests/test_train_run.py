"""Training runs end to end through launch.py, as real subprocesses on the real BabyLM text.

Exact resume after SIGKILL, restore onto other meshes, SIGTERM, a non-finite loss, a damaged
newest checkpoint, a mismatched checkpoint, the BabyLM exposure cap, a relative workdir.
Resume per objective, data order and the reference recipe: test_train_resume_kinds.py; two
processes, milestones and the smoke recipe's learning: test_train_scale.py (separate files so
that pytest-xdist's --dist loadfile spreads these slow tests over its workers).
"""

import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, data_path
from launch_helpers import (env as _env, final_params, kill_after, losses, ok, smoke_args,
                            smoke_run)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("store_cache")


@pytest.fixture(scope="module")
def straight(tmp_path_factory, cache_dir):
  wd = tmp_path_factory.mktemp("straight")
  ok(smoke_run(wd, cache_dir))
  return wd


def test_run_writes_its_files(straight):
  for name in ("config.json", "tokenizer.json", "metrics.jsonl", "plots/loss.png"):
    assert (straight / name).exists(), name
  recs = [json.loads(l) for l in (straight / "metrics.jsonl").read_text().splitlines()]
  train = [r for r in recs if "loss" in r]
  for key in ("step", "words_seen", "tokens_seen", "loss", "masked_loss", "causal_loss",
              "masked_accuracy", "causal_accuracy", "lr", "grad_norm", "tokens_per_s", "mfu",
              "step_time_s"):
    assert key in train[-1], key
  words = [r["words_seen"] for r in train]
  assert words == sorted(words) and words[0] > 0
  assert sorted(int(p.name) for p in (straight / "checkpoints").iterdir()) == [10, 20, 30]
  assert list((straight / "tb").iterdir())


def test_exact_resume_after_sigkill(straight, tmp_path, cache_dir):
  wd = tmp_path / "killed"
  # Kill once a checkpoint exists and training has gone past it.
  kill_after(wd, smoke_args(wd, cache_dir), 10, 15)
  r = smoke_run(wd, cache_dir)
  ok(r)
  assert "resumed from step" in r.stderr
  assert losses(wd) == losses(straight)
  for a, b in zip(final_params(wd, 30), final_params(straight, 30)):
    np.testing.assert_array_equal(a, b)


def test_restore_on_other_meshes(straight, tmp_path, cache_dir):
  wd = tmp_path / "meshes"
  ok(smoke_run(wd, cache_dir, "--config.train.stop_after=10", devices=8))
  ok(smoke_run(wd, cache_dir, "--config.train.stop_after=20", devices=4))
  r = smoke_run(wd, cache_dir, devices=1)
  ok(r)
  assert "resumed from step 20" in r.stderr
  ref, got = losses(straight), losses(wd)
  assert sorted(got) == sorted(ref)
  np.testing.assert_allclose([got[s] for s in sorted(got)], [ref[s] for s in sorted(ref)],
                             rtol=1e-4)


def test_sigterm_saves_and_exits_cleanly(tmp_path, cache_dir):
  wd = tmp_path / "term"
  proc = subprocess.Popen(smoke_args(wd, cache_dir, steps=300), cwd=ROOT, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while time.time() < deadline and not (wd / "checkpoints" / "10").exists():
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    time.sleep(0.05)
  time.sleep(1.0)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-2000:]
  steps = sorted(int(p.name) for p in (wd / "checkpoints").iterdir() if p.name.isdigit())
  assert steps[-1] > 10 and steps[-1] < 300


def test_non_finite_loss_stops_without_checkpoint(tmp_path, cache_dir):
  wd = tmp_path / "nan"
  r = smoke_run(wd, cache_dir, "--config.train.inject_nan_at_step=14", steps=30)
  assert r.returncode == 2
  assert "non-finite" in r.stderr and "step 15" in r.stderr and "Traceback" not in r.stderr
  steps = sorted(int(p.name) for p in (wd / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [10]


def test_damaged_newest_checkpoint_falls_back(tmp_path, cache_dir):
  wd = tmp_path / "damaged"
  ok(smoke_run(wd, cache_dir, "--config.train.stop_after=20"))
  # Truncate the array data of the newest checkpoint.
  files = [p for p in (wd / "checkpoints" / "20" / "state").rglob("*")
           if p.is_file() and p.stat().st_size > 1000]
  assert files
  for p in files:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
  r = smoke_run(wd, cache_dir, steps=30)
  ok(r)
  assert "damaged" in r.stderr and "resumed from step 10" in r.stderr


def test_mismatched_checkpoint_is_refused(straight, tmp_path, cache_dir):
  wd = tmp_path / "mismatch"
  ok(smoke_run(wd, cache_dir, steps=10))
  r = smoke_run(wd, cache_dir, "--config.model.hidden_size=96", "--config.model.num_heads=2",
          steps=20)
  assert r.returncode == 2
  assert "model.hidden_size" in r.stderr and "Traceback" not in r.stderr


def test_over_exposure_cap_is_refused(tmp_path, cache_dir):
  # 300,000 steps of 2,048 tokens is about 290M words of this corpus: over the 100M cap.
  r = smoke_run(tmp_path / "cap", cache_dir, steps=300_000)
  assert r.returncode == 2
  assert "caps training exposure" in r.stderr and "outside_rules" in r.stderr
  assert not (tmp_path / "cap" / "checkpoints").exists() or not list(
      (tmp_path / "cap" / "checkpoints").iterdir())


def test_relative_workdir(tmp_path, cache_dir):
  """A workdir given relative to the current folder (orbax itself wants absolute paths)."""
  r = subprocess.run([sys.executable, str(ROOT / "launch.py"), "--config",
                      str(ROOT / "configs" / "smoke.py"), "--workdir", "runs/rel",
                      f"--config.data.path={data_path('babylm_text', 'train_100k')}",
                      f"--config.data.cache_dir={cache_dir}", "--config.train.steps=4",
                      "--config.checkpoint.every=2", "--config.train.eval_batches=1"],
                     cwd=tmp_path, capture_output=True, text=True, timeout=600, env=_env())
  ok(r)
  assert sorted(p.name for p in (tmp_path / "runs/rel/checkpoints").iterdir()) == ["2", "4"]


