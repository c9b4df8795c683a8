"""A run's life through launch.py, as real subprocesses on real text with real signals.

Ctrl-C saves and resumes exactly; a second Ctrl-C ends at once and keeps the last checkpoint;
one run per workdir, and a dead run's lock never blocks; a refused resume changes no file;
every checkpoint damaged stops the run (checkpoint.restart starts over); the end-of-run
summary and the rerun of a finished run; eval and export reading the run's own config.json;
progress bars on a terminal that do not garble the log lines.
"""

import json
import re
import shutil
import signal
import socket
import sys
import threading
import time

import numpy as np
import pytest

from babylm_jax import versions
from conftest import ROOT, data_path
from launch_helpers import (checkpoint_steps, error_lines, final_params, launch, losses, render,
                            run_in_terminal, snapshot, start)

pytestmark = pytest.mark.slow

# A smaller network than configs/smoke.py (so a run differs from the recipe, as real runs do).
TINY = ("--config.model.hidden_size=32", "--config.model.intermediate_size=64")
REPLACED_WARNING = "warning: 3 bytes of data.path were not UTF-8"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """One real BabyLM file with three bytes that are not UTF-8."""
  folder = tmp_path_factory.mktemp("corpus")
  text = data_path("babylm_text", "train_100k", "gutenberg_dev.train").read_bytes()
  (folder / "gutenberg.train").write_bytes(text[:2000] + b"\xff\xfe\xfd" + text[2000:])
  return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("cache")


def train_args(workdir, corpus, cache, *extra, steps=10):
  return ["--config", "configs/smoke.py", "--workdir", workdir, f"--config.data.path={corpus}",
          f"--config.data.cache_dir={cache}", f"--config.train.steps={steps}",
          "--config.train.log_every=5", "--config.train.eval_batches=1",
          "--config.checkpoint.every=5", *TINY, *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, corpus, cache):
  """A run of 10 steps, trained to the end: (workdir, the CompletedProcess)."""
  wd = tmp_path_factory.mktemp("finished") / "run"
  r = launch(*train_args(wd, corpus, cache))
  assert r.returncode == 0, r.stderr[-3000:]
  return wd, r


def copy_of(run, tmp_path):
  dst = tmp_path / "run"
  shutil.copytree(run, dst)
  return dst


def test_summary_at_the_end_and_replaced_bytes_reported(finished):
  wd, r = finished
  out = r.stdout
  assert "finished: step 10 of 10" in out and "words seen" in out
  assert re.search(r"final training loss \d+\.\d{4}, validation loss \d+\.\d{4}", out), out
  for line in (f"checkpoints  {wd}/checkpoints (steps 5, 10)", f"metrics      {wd}/metrics.jsonl",
               f"tensorboard --logdir {wd}/tb", f"loss plot    {wd}/plots/loss.png",
               f"next: python launch.py --mode=eval --workdir {wd}"):
    assert line in out, (line, out)
  # The software the run trained with, in versions.json and in the summary.
  recorded = json.loads((wd / "versions.json").read_text())
  assert list(recorded) == ["train"]
  assert f"versions     {versions.line(recorded['train'])} ({wd}/versions.json)" in out, out
  # Training reports a corpus's replaced bytes as --mode=prepare does; nothing else on stderr
  # (no orbax chatter, no 'Exception ignored').
  assert [l for l in r.stderr.splitlines() if l.strip()] == [
      l for l in r.stderr.splitlines() if l.startswith(REPLACED_WARNING)], r.stderr


def test_rerun_of_a_finished_run_says_so_and_changes_nothing(finished, corpus, cache, tmp_path):
  wd = copy_of(finished[0], tmp_path)
  before = snapshot(wd)
  r = launch(*train_args(wd, corpus, cache))
  assert r.returncode == 0, r.stderr[-2000:]
  assert "this run is complete (step 10 of 10)" in r.stdout
  assert snapshot(wd) == before


def test_ctrl_c_saves_exits_130_and_resumes_exactly(tmp_path, corpus, cache):
  args = ("--config.train.log_every=1", "--config.train.stop_after=40")
  straight = tmp_path / "straight"
  r = launch(*train_args(straight, corpus, cache, *args, steps=300))
  assert r.returncode == 0, r.stderr[-2000:]

  wd = tmp_path / "interrupted"
  proc = start(*train_args(wd, corpus, cache, *args, steps=300))
  deadline, metrics = time.time() + 300, wd / "metrics.jsonl"
  while not (metrics.exists() and '"step": 5,' in metrics.read_text()):
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-2000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 130, err[-2000:]
  saved = checkpoint_steps(wd)[-1]
  assert 5 < saved < 40
  assert f"stopped by Ctrl-C: saved the checkpoint of step {saved} of 300" in err
  assert "Traceback" not in err and "KeyboardInterrupt" not in err

  r = launch(*train_args(wd, corpus, cache, *args, steps=300))
  assert r.returncode == 0, r.stderr[-2000:]
  assert f"resumed from step {saved}" in r.stderr
  assert losses(wd) == losses(straight)
  for a, b in zip(final_params(wd, 40), final_params(straight, 40)):
    np.testing.assert_array_equal(a, b)


def test_one_run_per_workdir_second_ctrl_c_and_a_dead_runs_lock(tmp_path, corpus, cache):
  wd = tmp_path / "shared"
  proc = start(*train_args(wd, corpus, cache, steps=300))
  lines = []
  reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
  reader.start()
  deadline = time.time() + 300
  while not (wd / "checkpoints" / "5").exists():
    assert proc.poll() is None and time.time() < deadline, "".join(lines)[-2000:]
    time.sleep(0.05)
  run_files = {n: (wd / n).stat().st_mtime_ns for n in ("config.json", "tokenizer.json")}

  # A second training on the same workdir is refused at once, naming the first.
  t0 = time.time()
  second = launch(*train_args(wd, corpus, cache, steps=300))
  assert second.returncode == 2, second.stderr[-2000:]
  [line] = error_lines(second.stderr)
  assert f"is in use by process {proc.pid} on host {socket.gethostname()}" in line, line
  assert time.time() - t0 < 60 and "Traceback" not in second.stderr
  assert {n: (wd / n).stat().st_mtime_ns for n in run_files} == run_files

  # Ctrl-C, then Ctrl-C again once the first one is being acted on: the process ends at once.
  proc.send_signal(signal.SIGINT)
  while not any("Ctrl-C: saving a checkpoint" in l for l in lines):
    assert time.time() < deadline, "".join(lines)[-2000:]
    time.sleep(0.01)
  proc.send_signal(signal.SIGINT)
  t0 = time.time()
  proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGINT and time.time() - t0 < 5
  assert list(wd.glob("lock-*.json")), "the killed run should have left its lock behind"

  # Its lock does not block the next run, which resumes from a complete checkpoint.
  newest = checkpoint_steps(wd)[-1]
  r = launch(*train_args(wd, corpus, cache, f"--config.train.stop_after={newest + 2}", steps=300))
  assert r.returncode == 0, r.stderr[-2000:]
  assert f"removed the lock of process {proc.pid}" in r.stderr
  assert f"resumed from step {newest}" in r.stderr and "damaged" not in r.stderr
  assert not list(wd.glob("lock-*"))


@pytest.fixture
def other_data(tmp_path):
  folder = tmp_path / "other"
  folder.mkdir()
  shutil.copy(data_path("babylm_text", "train_100k", "bnc_spoken_dev.train"), folder)
  return folder


def test_refused_resume_changes_no_file(finished, corpus, cache, other_data, tmp_path):
  wd = copy_of(finished[0], tmp_path)
  before = snapshot(wd)
  cases = [
      (train_args(wd, corpus, cache, "--config.model.hidden_size=64"), "model.hidden_size=32"),
      (train_args(wd, other_data, cache), "different tokenizer"),
      (train_args(wd, other_data, cache, f"--config.tokenizer.path={wd / 'tokenizer.json'}"),
       "trained on other data"),
      (train_args(wd, corpus, cache, "--config.data.order=difficulty"),
       "was trained with data.order 'shuffled' but the config says 'difficulty:4'"),
  ]
  for args, fragment in cases:
    r = launch(*args)
    assert r.returncode == 2, r.stderr[-2000:]
    [line] = error_lines(r.stderr)
    assert fragment in line and "Traceback" not in r.stderr, (fragment, r.stderr[-2000:])
    assert snapshot(wd) == before, fragment


def test_every_checkpoint_damaged_stops_and_restart_starts_over(finished, corpus, cache,
                                                                 tmp_path):
  wd = copy_of(finished[0], tmp_path)
  for p in (wd / "checkpoints").rglob("*"):
    if p.is_file() and p.stat().st_size > 1000 and "state" in p.parts:
      p.write_bytes(p.read_bytes()[:p.stat().st_size // 3])
  before = snapshot(wd)
  r = launch(*train_args(wd, corpus, cache))
  assert r.returncode == 2, r.stderr[-2000:]
  noise = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith(REPLACED_WARNING)]
  assert len(noise) == 1 and noise[0].startswith("error: every checkpoint in"), r.stderr[-3000:]
  assert "--config.checkpoint.restart=True" in noise[0] and "new --workdir" in noise[0]
  assert snapshot(wd) == before

  r = launch(*train_args(wd, corpus, cache, "--config.checkpoint.restart=True"))
  assert r.returncode == 0, r.stderr[-2000:]
  assert "resumed" not in r.stderr and "finished: step 10 of 10" in r.stdout
  [discarded] = list((wd / "discarded").iterdir())
  assert checkpoint_steps(discarded) == [5, 10] and checkpoint_steps(wd) == [5, 10]


def test_eval_and_export_read_the_runs_own_config(finished, tmp_path):
  wd = copy_of(finished[0], tmp_path)
  blimp = tmp_path / "blimp"
  blimp.mkdir()
  for f in sorted(data_path("babylm_eval", "fast_eval", "blimp_fast").glob("*.jsonl"))[:2]:
    (blimp / f.name).write_text("\n".join(f.read_text().splitlines()[:15]) + "\n")
  # No --config: the run's config.json (hidden size 32) is used, flags still apply; on a
  # terminal the mntp pass shows its rate in pairs/s and the time left.
  code, raw = run_in_terminal([sys.executable, "launch.py", "--mode=eval", "--workdir", str(wd),
                               "--config.eval.suites=blimp_fast", "--config.eval.backend=mntp",
                               f"--config.eval.data.blimp_fast={blimp}"])
  assert code == 0, raw[-3000:]
  report = json.loads((wd / "eval" / "blimp_fast-mntp.json").read_text())
  assert report["step"] == 10 and report["items"] == 30
  # e.g. "blimp_fast mntp:  40%|####      | 12/30 [00:03<00:04, 4.21pair/s]"
  assert re.search(r"blimp_fast mntp: +\d+%\|.*\| \d+/30 \[[\d:]+<[\d:]+, +([\d.]+pair/s|"
                   r"[\d.]+s/pair)\]", raw), raw

  out = tmp_path / "out"
  r = launch("--mode=export", "--workdir", wd, f"--config.export.dir={out}")
  assert r.returncode == 0, r.stderr[-2000:]
  assert json.loads((out / "config.json").read_text())["hidden_size"] == 32
  assert not [l for l in r.stderr.splitlines() if "orbax" in l.lower() or "read only" in l]
  # A config that does not match the run is still refused, from a file or a flag.
  for extra in (("--config", "configs/smoke.py"), ("--config.model.hidden_size=64",)):
    r = launch("--mode=export", "--workdir", wd, f"--config.export.dir={tmp_path / 'x'}", *extra)
    assert r.returncode == 2 and "model.hidden_size=32" in r.stderr, r.stderr[-2000:]


def test_progress_bar_does_not_garble_the_log_lines(finished, corpus, cache, tmp_path):
  wd = copy_of(finished[0], tmp_path)
  code, raw = run_in_terminal(
      [sys.executable, "launch.py",
       *map(str, train_args(wd, corpus, cache, "--config.train.log_every=1", steps=14))])
  assert code == 0, raw[-3000:]
  assert "%|" in raw, "no progress bar was drawn"
  logs = [l for l in render(raw) if re.search(r"step \d+/14 loss", l)]
  assert len(logs) == 4 and all(l.startswith("step ") for l in logs), logs
