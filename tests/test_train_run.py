"""Training runs end to end through launch.py, as real subprocesses on the real BabyLM text.

Exact resume after SIGKILL, restore onto other meshes, SIGTERM, a non-finite loss, a damaged
newest checkpoint, a mismatched checkpoint, the BabyLM exposure cap, and two processes.
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
from launch_helpers import env as _env, final_params, kill_after as _kill_after, losses

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("store_cache")


def _args(workdir, cache, *extra, steps=30, devices=None):
  args = [sys.executable, "launch.py", "--config", "configs/smoke.py", "--workdir", str(workdir),
          f"--config.data.path={data_path('babylm_text', 'train_100k')}",
          f"--config.data.cache_dir={cache}", f"--config.train.steps={steps}",
          "--config.train.log_every=5", "--config.train.eval_every=1000",
          "--config.train.eval_batches=2", "--config.checkpoint.every=10"]
  if devices:
    args.append(f"--cpu_devices={devices}")
  return args + list(extra)


def run(workdir, cache, *extra, steps=30, devices=None, timeout=600):
  return subprocess.run(_args(workdir, cache, *extra, steps=steps, devices=devices), cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout, env=_env())


def _ok(r):
  assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, cache_dir):
  wd = tmp_path_factory.mktemp("straight")
  _ok(run(wd, cache_dir))
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
  _kill_after(wd, _args(wd, cache_dir), 10, 15)
  r = run(wd, cache_dir)
  _ok(r)
  assert "resumed from step" in r.stderr
  assert losses(wd) == losses(straight)
  for a, b in zip(final_params(wd, 30), final_params(straight, 30)):
    np.testing.assert_array_equal(a, b)


# objective.kind -> launch.py overrides; 12 steps, a checkpoint every 4.
OBJECTIVE_RUNS = {"masked": (), "causal": (),
                  "bootstrap": ("--config.model.decoder_layers=1",)}


@pytest.mark.parametrize("kind", list(OBJECTIVE_RUNS))
def test_exact_resume_after_sigkill_per_objective(kind, tmp_path, cache_dir):
  """Each objective resumes exactly (bootstrap: its teacher is restored too)."""
  extra = (f"--config.objective.kind={kind}", *OBJECTIVE_RUNS[kind],
           "--config.checkpoint.every=4", "--config.train.log_every=2")
  straight_wd, killed_wd = tmp_path / "straight", tmp_path / "killed"
  _ok(run(straight_wd, cache_dir, *extra, steps=12))
  _kill_after(killed_wd, _args(killed_wd, cache_dir, *extra, steps=12), 4, 6)
  r = run(killed_wd, cache_dir, *extra, steps=12)
  _ok(r)
  assert "resumed from step" in r.stderr
  assert losses(killed_wd) == losses(straight_wd)
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
  straight_wd, killed_wd = tmp_path / "straight", tmp_path / "killed"
  _ok(run(straight_wd, cache_dir, *extra, steps=12))
  _kill_after(killed_wd, _args(killed_wd, cache_dir, *extra, steps=12), 4, 6)
  r = run(killed_wd, cache_dir, *extra, steps=12)
  _ok(r)
  assert "resumed from step" in r.stderr
  assert losses(killed_wd) == losses(straight_wd)
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


def test_restore_on_other_meshes(straight, tmp_path, cache_dir):
  wd = tmp_path / "meshes"
  _ok(run(wd, cache_dir, "--config.train.stop_after=10", devices=8))
  _ok(run(wd, cache_dir, "--config.train.stop_after=20", devices=4))
  r = run(wd, cache_dir, devices=1)
  _ok(r)
  assert "resumed from step 20" in r.stderr
  ref, got = losses(straight), losses(wd)
  assert sorted(got) == sorted(ref)
  np.testing.assert_allclose([got[s] for s in sorted(got)], [ref[s] for s in sorted(ref)],
                             rtol=1e-4)


def test_sigterm_saves_and_exits_cleanly(tmp_path, cache_dir):
  wd = tmp_path / "term"
  proc = subprocess.Popen(_args(wd, cache_dir, steps=300), cwd=ROOT, env=_env(),
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
  r = run(wd, cache_dir, "--config.train.inject_nan_at_step=14", steps=30)
  assert r.returncode == 2
  assert "non-finite" in r.stderr and "step 15" in r.stderr and "Traceback" not in r.stderr
  steps = sorted(int(p.name) for p in (wd / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [10]


def test_damaged_newest_checkpoint_falls_back(tmp_path, cache_dir):
  wd = tmp_path / "damaged"
  _ok(run(wd, cache_dir, "--config.train.stop_after=20"))
  # Truncate the array data of the newest checkpoint.
  files = [p for p in (wd / "checkpoints" / "20" / "state").rglob("*")
           if p.is_file() and p.stat().st_size > 1000]
  assert files
  for p in files:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
  r = run(wd, cache_dir, steps=30)
  _ok(r)
  assert "damaged" in r.stderr and "resumed from step 10" in r.stderr


def test_mismatched_checkpoint_is_refused(straight, tmp_path, cache_dir):
  wd = tmp_path / "mismatch"
  _ok(run(wd, cache_dir, steps=10))
  r = run(wd, cache_dir, "--config.model.hidden_size=96", "--config.model.num_heads=2",
          steps=20)
  assert r.returncode == 2
  assert "model.hidden_size" in r.stderr and "Traceback" not in r.stderr


def test_over_exposure_cap_is_refused(tmp_path, cache_dir):
  # 300,000 steps of 2,048 tokens is about 290M words of this corpus: over the 100M cap.
  r = run(tmp_path / "cap", cache_dir, steps=300_000)
  assert r.returncode == 2
  assert "caps training exposure" in r.stderr and "outside_rules" in r.stderr
  assert not (tmp_path / "cap" / "checkpoints").exists() or not list(
      (tmp_path / "cap" / "checkpoints").iterdir())


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one(tmp_path, cache_dir):
  single = tmp_path / "single"
  _ok(run(single, cache_dir, steps=10, devices=4))
  port = _free_port()
  multi = tmp_path / "multi"
  procs = [subprocess.Popen(
      _args(multi, cache_dir, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
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
                     cwd=ROOT, capture_output=True, text=True, timeout=600, env=_env())
  _ok(r)
  elapsed = time.time() - start
  recs = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
  val = [r["val_loss"] for r in recs if "val_loss" in r]
  assert len(val) == 4  # at the start and every 100 steps
  assert val[0] > 6.5 and val[-1] < val[0] - 0.8 and val == sorted(val, reverse=True), val
  assert elapsed < 180, f"smoke run took {elapsed:.0f} s"


def test_relative_workdir(tmp_path, cache_dir):
  """A workdir given relative to the current folder (orbax itself wants absolute paths)."""
  r = subprocess.run([sys.executable, str(ROOT / "launch.py"), "--config",
                      str(ROOT / "configs" / "smoke.py"), "--workdir", "runs/rel",
                      f"--config.data.path={data_path('babylm_text', 'train_100k')}",
                      f"--config.data.cache_dir={cache_dir}", "--config.train.steps=4",
                      "--config.checkpoint.every=2", "--config.train.eval_batches=1"],
                     cwd=tmp_path, capture_output=True, text=True, timeout=600, env=_env())
  _ok(r)
  assert sorted(p.name for p in (tmp_path / "runs/rel/checkpoints").iterdir()) == ["2", "4"]


def test_milestone_checkpoints_by_words_seen(tmp_path, cache_dir):
  """A run that crosses 1M words keeps a milestone named by words seen, beside the rolling ones."""
  from babylm_jax.train.checkpoint import MILESTONES, milestones_crossed
  assert MILESTONES[:3] == (1_000_000, 2_000_000, 3_000_000)
  assert MILESTONES[9:12] == (10_000_000, 20_000_000, 30_000_000)
  assert MILESTONES[-2:] == (900_000_000, 1_000_000_000) and len(MILESTONES) == 28
  assert milestones_crossed(999_999, 1_000_000) == [1_000_000]
  assert milestones_crossed(1_000_000, 1_999_999) == []
  wd = tmp_path / "milestones"
  # About 7,800 words a step: 140 steps cross 1M words once.
  _ok(run(wd, cache_dir, "--config.train.tokens_per_step=16384", "--config.train.seq_lens=(64,)",
          "--config.train.seq_len_fractions=(1.0,)", "--config.checkpoint.every=1000", steps=140))
  words = [json.loads(l)["words_seen"] for l in (wd / "metrics.jsonl").read_text().splitlines()
           if '"loss"' in l]
  assert 1_000_000 < max(words) < 2_000_000
  assert [p.name for p in (wd / "milestones").iterdir()] == ["words_1000000"]
  assert sorted(int(p.name) for p in (wd / "checkpoints").iterdir()) == [140]
  import orbax.checkpoint as ocp
  mngr = ocp.CheckpointManager(wd / "milestones", item_names=("state", "meta"),
                               options=ocp.CheckpointManagerOptions(step_prefix="words",
                                                                    read_only=True))
  meta = mngr.restore(1_000_000, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  # Saved at the first step whose words seen reach 1M.
  assert 1_000_000 <= meta["words_seen"] < 1_000_000 + 10_000 and 120 < meta["step"] < 140


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
  _ok(r)
  recs = [json.loads(l) for l in (straight_wd / "metrics.jsonl").read_text().splitlines()]
  tokens = {r["step"]: r["tokens_seen"] for r in recs if "loss" in r}
  assert tokens[10] == 10 * 1024 and tokens[20] == 15 * 1024 + 5 * 4096
  proc = subprocess.Popen(_reference_args(wd, cache_dir), cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 1800
  while time.time() < deadline:
    if (wd / "checkpoints" / "20").exists() and (wd / "metrics.jsonl").exists() and max(
        [0] + [json.loads(l)["step"] for l in (wd / "metrics.jsonl").read_text().splitlines()
               if l.strip()]) >= 25:
      break
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  r = subprocess.run(_reference_args(wd, cache_dir), cwd=ROOT, capture_output=True, text=True,
                     timeout=1800, env=env)
  _ok(r)
  assert "resumed from step 20" in r.stderr
  assert losses(wd) == losses(straight_wd)
  for a, b in zip(final_params(wd, 30), final_params(straight_wd, 30)):
    np.testing.assert_array_equal(a, b)
